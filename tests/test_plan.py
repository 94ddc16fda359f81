import pytest

from rharm import models, plan
from rharm.book import cli


def test_gpu_plan_counts_the_paper_grid_once():
    rows = plan.plan_table("gpu")
    assert len(rows) == 1
    r = rows[0]
    # 10 seeds x (balanced + 10 minorities); the three image chapters share these runs
    assert (r.backbone, r.runs, r.epochs) == ("resnet34", 110, 500)
    assert set(r.notebooks) >= {"representation_harm", "allocation_harm", "scale_study"}
    # 10 balanced runs of 50,000 images (97 steps of 512) and 100 runs of 45,050, 500 epochs each
    assert r.images_seen == 500 * (10 * (50000 // 512) * 512 + 100 * (45050 // 512) * 512)
    assert r.train_flop == pytest.approx(r.images_seen * 2 * models.training_flops_per_view("resnet34"))
    assert 3.0e19 < r.flop < 4.0e19  # the issue's ~3.6e19


def test_measured_throughput_sets_the_hours():
    r = plan.plan_table("gpu", images_per_s={"resnet34": 5000.0})[0]
    assert r.throughput_source == "measured"
    assert r.gpu_hours == pytest.approx(r.images_seen / 5000.0 / 3600)
    assumed = plan.plan_table("gpu", utilisation=0.5)[0]
    assert assumed.gpu_hours == pytest.approx(plan.plan_table("gpu", utilisation=0.25)[0].gpu_hours / 2)


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
    assert "resnet34" in out and "GPU-days" in out and "110 runs" in out and "measured" in out
