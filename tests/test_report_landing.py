"""The landing page's bottom line: every sentence and verdict follows the chapters' numbers."""

import json

from rharm.report import landing


def _fh(held=(True, True), h4b=(False, True), survives=True, rh_hi=0.6, nie_hi=-0.01):
    tests = [{"minority": m, "partner": p, "role": "minority", "rh": 0.5, "rh_lo": 0.4, "rh_hi": rh_hi, "held": h}
             for (m, p), h in zip((("sneaker", "sandal"), ("sandal", "sneaker")), held)]
    tests.append({"minority": "trouser", "partner": "shirt", "role": "control", "rh": 0.7, "rh_lo": 0.6,
                  "rh_hi": 0.8, "held": False})
    dose = {k: {"h4b": {"held": v}} for k, v in zip(("backbone", "projection"), h4b)}
    alloc = [{"x": 100, "TE_auc": -0.1, "TE_auc_lo": -0.15, "TE_auc_hi": -0.05, "NIE_auc": -0.03,
              "NIE_auc_lo": -0.05, "NIE_auc_hi": nie_hi}]
    return {"v2": {"tests": tests, "seeds": [10, 11, 12, 13, 14, 15], "dose_response": dose,
                   "contradiction_survives": survives, "allocation": alloc, "registration": {"fit_ratio": 100}}}


RH = {"n_reject": 0, "n_tests": 18}
TX = {"groups_rh_below_one": []}
AL = {"paper_share": 0.09}


def test_sentences_follow_the_numbers():
    s = landing.sentences(_fh(), RH, TX, "cpu")
    assert len(s) == 5 and s[0].startswith("**Asked.**")
    assert "both registered minorities collapsed specifically" in s[1] and "1:100" in s[1]
    assert "6 fresh seeds" in s[2]
    assert "predicted how the harm grows with the imbalance on the projection output, not on the backbone" in s[3]
    assert "failed, with the learning rate scaled" in s[3]
    assert "0 of 18 tests" in s[4] and "no harm for a profession-gender group" in s[4]
    s = landing.sentences(_fh(held=(True, False), h4b=(False, False), survives=False), RH,
                          {"groups_rh_below_one": ["doctor|female"]}, "cpu")
    assert "1 of 2 registered minorities" in s[1]
    assert "did not predict the dose-response on the projection output nor on the backbone" in s[3]
    assert "was not contradicted" in s[3] and "harm for doctor|female" in s[4]
    assert "no registered minority" in landing.sentences(_fh(held=(False, False)), RH, TX, "cpu")[1]


def test_claims_table_verdicts_follow_the_numbers():
    t = landing.claims_table(_fh(), RH, AL)
    rows = [r for r in t.splitlines()[2:]]
    assert len(rows) == 5 and all(r.count("|") == 5 for r in rows)
    assert "RH(automobile, truck) = 0.78" in rows[0] and rows[0].endswith("| replicated at small scale |")
    assert rows[1].endswith("| replicated |") and "2 of 2" in rows[1]
    assert "NIE / TE = 0.09" in rows[2] and rows[2].endswith("| replicated (a small part) |")
    assert "backbone no, projection yes" in rows[3] and rows[3].endswith("| partly |")
    assert rows[4].endswith("| not testable at this scale |")
    t2 = landing.claims_table(_fh(held=(False, False), h4b=(False, False), rh_hi=1.2, nie_hi=0.01), RH, AL)
    r2 = t2.splitlines()[2:]
    assert r2[0].endswith("| not replicated |") and r2[1].endswith("| not replicated |")
    assert r2[2].endswith("| not resolved |") and r2[3].endswith("| not supported |")


def test_bottom_line_reads_the_headline_files(tmp_path):
    for name, values in (("fashion_harm", _fh()), ("representation_harm", RH), ("text_harm", TX),
                         ("allocation_harm", AL)):
        (tmp_path / f"{name}.json").write_text(json.dumps({"values": values}))
    md = landing.bottom_line(tmp_path, "cpu")
    assert md.count("**") >= 10 and "| claim |" in md
    (tmp_path / "fashion_harm.json").unlink()
    assert "no confirmatory result at the `cpu` profile" in landing.bottom_line(tmp_path, "cpu")


def test_the_text_arms_decisive_test_is_named_with_its_verdict():
    def tx(t3):
        return {"groups_rh_below_one": [], "verdicts": [
            {"encoder": enc, "test": t, "holds": t != "T3" or ok} for enc, ok in zip(("minilm", "scratch"), t3)
            for t in ("T1", "T2", "T3")]}

    assert "its registered test of why" in landing.sentences(_fh(), RH, tx((False, False)), "cpu")[4]
    assert "did not hold on either encoder" in landing.sentences(_fh(), RH, tx((False, False)), "cpu")[4]
    assert "held on 1 of 2 encoders" in landing.sentences(_fh(), RH, tx((True, False)), "cpu")[4]
    assert "test of why" not in landing.sentences(_fh(), RH, TX, "cpu")[4]  # a page from before v2 says nothing
