import pytest

from rharm.book import cli
from rharm.study import plan
from rharm.vision import models


def _row(rows, backbone, method="simclr"):
    (r,) = [r for r in rows if (r.backbone, r.method) == (backbone, method)]
    return r


def test_gpu_plan_counts_the_paper_grid_once():
    rows = plan.plan_table("gpu")
    r = _row(rows, "resnet34")
    # 10 seeds x (balanced + 10 minorities); the three image chapters share these runs
    assert (r.backbone, r.runs, r.epochs) == ("resnet34", 110, 500)
    assert set(r.notebooks) >= {"representation_harm", "allocation_harm", "scale_study"}
    # 10 balanced runs of 50,000 images (97 steps of 512) and 100 runs of 45,050, 500 epochs each
    assert r.images_seen == 500 * (10 * (50000 // 512) * 512 + 100 * (45050 // 512) * 512)
    assert r.train_flop == pytest.approx(r.images_seen * 2 * models.training_flops_per_view("resnet34"))
    assert 3.0e19 < r.flop < 4.0e19  # the issue's ~3.6e19


def test_measured_throughput_sets_the_hours():
    r = _row(plan.plan_table("gpu", images_per_s={"resnet34": 5000.0}), "resnet34")
    assert r.throughput_source == "measured"
    assert r.gpu_hours == pytest.approx(r.images_seen / 5000.0 / 3600)
    assumed = _row(plan.plan_table("gpu", utilisation=0.5), "resnet34")
    assert assumed.gpu_hours == pytest.approx(_row(plan.plan_table("gpu", utilisation=0.25), "resnet34").gpu_hours / 2)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="profile='tpu'"):
        plan.plan_table("tpu")
    with pytest.raises(ValueError, match="resnet50=1.0"):
        plan.plan_table("gpu", images_per_s={"resnet50": 1.0})
    with pytest.raises(ValueError, match="BACKBONE=IMAGES_PER_S"):
        plan.parse_throughputs(["resnet34:5000"])


def test_cli_prints_a_cost_table(capsys):
    assert cli.main(["plan", "--profile", "gpu", "--images-per-s", "resnet34=4000"]) == 0
    out = capsys.readouterr().out
    assert "resnet34" in out and "GPU-days" in out and "measured" in out
    assert "with batching" in out and "runs/job" in out and "not counted" not in out


def test_every_image_chapter_is_counted_with_and_without_batching():
    from rharm.core import params

    for profile in params.PROFILES:
        runs, unknown = plan.chapter_runs(profile)
        assert unknown == []
        assert {"fashion_harm", "mitigation", "representation_harm"} <= {name for name, *_ in runs}
        rows = plan.plan_table(profile)
        assert {r.backbone for r in rows} >= ({"resnet18", "resnet34"} if profile == "gpu" else {"small_cnn"})
        for r in rows:
            assert 1 <= r.jobs <= r.runs and r.runs_per_job >= 1
            assert r.batched_gpu_hours == pytest.approx(r.gpu_hours / r.batched_speedup)
    gpu = plan.plan_table("gpu", batched_speedup={"resnet18": 2.0})
    r18 = _row(gpu, "resnet18")
    assert r18.speedup_source == "given" and r18.batched_gpu_hours == pytest.approx(r18.gpu_hours / 2)
    # the paper's grid: 11 grid points (balanced + 10 minorities) of 10 seeds each, one job each
    r34 = _row(gpu, "resnet34")
    assert (r34.jobs, r34.runs_per_job, r34.speedup_source) == (11, 10, "not measured on this device")
    with pytest.raises(ValueError, match="batched_speedup"):
        plan.plan_table("gpu", batched_speedup={"resnet18": 0.0})


def test_fashion_design_counts_runs_by_registered_structure(tmp_path):
    """A v2-style design: balanced + (n_close + control) minorities, dose ratios, two low-temperature conditions."""
    v = {"dataset": "fashion_mnist", "method": "simclr", "backbone": "small_cnn", "epochs": 2, "batch_size": 16,
         "lr": 0.3, "temperature": 0.5, "ratio": 10, "seeds": [0, 1], "n_per_class": 20,
         "classes": ["tshirt_top", "trouser", "sandal", "shirt", "sneaker"], "n_close": 2,
         "dose_ratios": [1, 2, 10], "low_temperature": 0.1}
    runs = plan._fashion_runs(v)
    keys = {(m, s, g.get("ratio"), g.get("temperature"), g.get("lr")) for g, m, s in runs}
    # per seed: balanced, 3 minorities at 1:10, m0 at 1:2 (+ its balanced, shared), 2 temperature conditions x 2
    per_seed = 1 + 3 + 1 + 4
    distinct = {k for k in keys if not (k[0] is None and k[2] == 2)}  # the dose grid's balanced run is shared
    assert len(distinct) == 2 * per_seed
    assert plan._n_train({**v, "rebalance": False}, "sandal") == 4 * 20 + 2
    assert plan._n_train({**v, "rebalance": True}, "sandal") == 4 * 20 + 2 * 10
