"""rharm.report.throughput: the summary of the benchmark's rounds, on hand-made results with known answers."""

from __future__ import annotations

import dataclasses

import pytest

from rharm.page.headline import FINDING_MAX_WORDS, word_count
from rharm.report import throughput


def _result(ratios, device="cpu", ours=(100.0, 300.0, 200.0)):
    rounds = [{"round": i, "ours_img_s": o, "baseline_img_s": o / r, "ratio": r}
              for i, (o, r) in enumerate(zip(ours, ratios))]
    return {"device": device, "torch_threads": 1, "ratio_median": sorted(ratios)[len(ratios) // 2],
            "rounds": rounds}


def test_summary_states_the_median_range_and_a_faster_finding():
    s = throughput.summary(_result([1.5, 2.0, 1.2]), model="small_cnn", batch=64, workers=2)
    assert s.ratio == 1.5 and s.ratio_min == 1.2 and s.ratio_max == 2.0
    assert s.ours_median == 200.0  # median of 100, 300, 200
    assert s.base_median == pytest.approx(sorted([100 / 1.5, 300 / 2.0, 200 / 1.2])[1])
    assert s.n_rounds == 3 and not s.on_gpu
    assert "1.50× as fast as" in s.finding and "3 rounds" in s.finding and "CPU measurement" in s.finding
    assert "training the small CNN with" in s.finding and word_count(s.finding) <= FINDING_MAX_WORDS
    assert "no GPU number" in s.gpu_note
    # scalars are plain Python values: a numpy scalar would be glued as "np.float64(...)", unreadable by {glue:text}
    for f in dataclasses.fields(s):
        v = getattr(s, f.name)
        if not isinstance(v, list):
            assert type(v) in (str, int, float, bool), (f.name, type(v))


@pytest.mark.parametrize("ratio, words", [(0.5, "at 0.50× the speed of"), (1.02, "about as fast as (1.02×)"),
                                          (0.96, "about as fast as (0.96×)")])
def test_finding_words_follow_the_ratio(ratio, words):
    s = throughput.summary(_result([ratio], ours=(100.0,)), model="m", batch=8, workers=1)
    assert words in s.finding and "1 round:" in s.finding


def test_gpu_device_drops_the_cpu_caveat():
    s = throughput.summary(_result([2.0], device="cuda:0 (NVIDIA H200)", ours=(100.0,)), model="m", batch=8,
                           workers=1)
    assert s.on_gpu and "GPU ratio" in s.gpu_note and "CPU measurement" not in s.finding


def test_bad_results_are_refused():
    with pytest.raises(ValueError, match="rounds.*empty"):
        throughput.summary({"device": "cpu", "torch_threads": 1, "ratio_median": 1.0, "rounds": []}, model="m",
                           batch=8, workers=1)
    bad = _result([1.0], ours=(100.0,))
    del bad["rounds"][0]["ratio"]
    with pytest.raises(ValueError, match="'ratio'"):
        throughput.summary(bad, model="m", batch=8, workers=1)
