"""The store's recipes: every stored kind's canary gives its committed output (else: bump RECIPE), a planted change
of behaviour moves a canary, keys no longer depend on code, and `rekey` adopts exactly the results whose code
fingerprint its recipe names."""

from __future__ import annotations

import json

import pytest
import torch

from rharm import store
from rharm.store import cache, recipes


@pytest.mark.parametrize("kind", list(recipes.RECIPES))
def test_canary_matches_its_recipe(kind, one_thread):
    out = cache.canary_output(kind)
    why = cache.canary_mismatch(kind, out)
    assert why is None, f"{kind}: {why}\nits output now: {out}"


def test_a_planted_change_of_behaviour_moves_the_canary(monkeypatch, one_thread):
    from rharm.vision import losses

    real = losses.nt_xent

    def hotter(*args, **kwargs):  # a "harmless refactor" that changed the loss by 5 %
        return 1.05 * real(*args, **kwargs)

    monkeypatch.setattr(losses, "nt_xent", hotter)
    why = cache.canary_mismatch("simclr_run")
    assert why is not None and "bump RECIPE for simclr_run" in why


def test_a_planted_change_of_the_draw_moves_the_mediation_canary(monkeypatch):
    from rharm.core import sampling

    real = sampling.undersample

    def keep_more(members, ratio, rng=None, **kw):
        return real(members, max(ratio / 2, 1), rng, **kw)

    monkeypatch.setattr(sampling, "undersample", keep_more)
    assert "bump RECIPE for mediation" in (cache.canary_mismatch("mediation") or "")


def test_recipe_keys_ignore_code_and_name_the_recipe_and_torch():
    cfg = {"a": 1}
    assert store.key("simclr_run", cfg, ["def f(): return 1"]) == store.key("simclr_run", cfg, ["def f(): return 2"])
    payload = store.key_payload("simclr_run", cfg)
    assert payload["recipe"] == recipes.RECIPES["simclr_run"].version
    assert payload["torch"] == ".".join(torch.__version__.split("+")[0].split(".")[:2])
    # a kind without a recipe (a user's own) is still keyed on its code
    assert store.key("mine", cfg, ["def f(): return 1"]) != store.key("mine", cfg, ["def f(): return 2"])


def _legacy_result(root, kind, config, code_fp, payload=b"x"):
    """A result as the pre-recipe store wrote it: key = hash(kind, config, code)."""
    name = cache.hash_payload({"kind": kind, "config": config, "code": code_fp})
    folder = root / kind / name
    folder.mkdir(parents=True)
    (folder / "data.bin").write_bytes(payload)
    import hashlib

    meta = {"kind": kind, "key": name, "files": {"data.bin": {"size": len(payload),
                                                             "sha256": hashlib.sha256(payload).hexdigest()}}}
    (folder / "meta.json").write_text(json.dumps(meta))
    (folder / "config.json").write_text(json.dumps({"kind": kind, "config": config, "code": code_fp}))
    assert store.problem(folder) is None
    return folder


def test_rekey_adopts_legacy_fingerprints_only_and_maps_mediation_runs(tmp_path):
    legacy = recipes.RECIPES["simclr_run"].legacy[0]
    good = _legacy_result(tmp_path, "simclr_run", {"seed": 0}, legacy, b"good")
    _legacy_result(tmp_path, "simclr_run", {"seed": 1}, "0" * 64, b"other code")
    med_cfg = {"runs": [f"None|0|/somewhere/else/simclr_run/{good.name}"], "ratio": 100}
    _legacy_result(tmp_path, "mediation", med_cfg, recipes.RECIPES["mediation"].legacy[0], b"med")

    report = store.rekey(tmp_path, check_canary=False)
    assert report["simclr_run"]["adopted"] == 1 and report["simclr_run"]["other_code"] == 1
    assert report["mediation"]["adopted"] == 1
    new = store.result_dir("simclr_run", {"seed": 0}, root=tmp_path)
    assert store.problem(new) is None and (new / "data.bin").read_bytes() == b"good"
    assert good.is_dir()  # the old folder is left as it was
    assert not store.result_dir("simclr_run", {"seed": 1}, root=tmp_path).exists()
    med = store.result_dir("mediation", {"runs": [f"None|0|{new.name}"], "ratio": 100}, root=tmp_path)
    assert store.problem(med) is None
    # a second rekey finds everything in place
    again = store.rekey(tmp_path, check_canary=False)
    assert again["simclr_run"]["adopted"] == 0 and again["simclr_run"]["present"] == 1


def test_rekey_refuses_a_kind_whose_canary_moved(tmp_path, monkeypatch):
    _legacy_result(tmp_path, "theory_sbm_node", {"n": 1}, recipes.RECIPES["theory_sbm_node"].legacy[0])
    monkeypatch.setattr(cache, "canary_mismatch", lambda kind, output=None: "moved")
    report = store.rekey(tmp_path, kinds=["theory_sbm_node"])
    assert report["theory_sbm_node"]["refused"] == "moved" and report["theory_sbm_node"]["adopted"] == 0
