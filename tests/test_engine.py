"""The seed-batched engine (rharm.vision.engine) against S single runs of rharm.vision.train.train, on a tiny CPU
setting."""

import pytest
import torch

from rharm.vision import engine, train
from rharm.vision.train import TrainConfig

SEEDS = (3, 7, 11)
#: fp32 tolerances. "loop" runs each model's own kernels: its results are those of a single run up to the batched
#: augmentation call (bit-for-bit on the development CPU: max |difference| 0). "stacked" sums each grouped
#: convolution and batched product in another order (measured max |difference| 2.7e-7 after the 4 steps below).
TOL = {"loop": dict(rtol=1e-5, atol=1e-6), "stacked": dict(rtol=1e-4, atol=1e-5)}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def images(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)


def configs(**kw):
    base = dict(backbone="small_cnn", epochs=2, batch_size=8, lr=0.05, augment="simclr", checkpoint_every=0)
    base.update(kw)
    return [TrainConfig(**base, seed=s) for s in SEEDS]


def data(n=20):
    """One training set per model (different images and sample ids, same size), as the seeds of a grid point have."""
    imgs = [images(n, 100 + k) for k in range(len(SEEDS))]
    ids = [torch.arange(n) * (k + 1) for k in range(len(SEEDS))]
    return imgs, ids


def singles(cfgs, imgs, ids, **kw):
    return [train.train(c, x, progress=False, sample_ids=i, **kw) for c, x, i in zip(cfgs, imgs, ids)]


def assert_same_model(a, b, tol):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        if sa[k].dtype == torch.int64:  # num_batches_tracked
            assert torch.equal(sa[k], sb[k]), k
        else:
            torch.testing.assert_close(sa[k], sb[k], **tol, msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.parametrize("strategy", ["loop", "stacked"])
def test_batched_equals_single_runs_parameter_by_parameter(strategy):
    cfgs = configs()
    imgs, ids = data()
    ref = singles(cfgs, imgs, ids)
    got = engine.train_batched(cfgs, imgs, sample_ids=ids, strategy=strategy)
    assert len(got) == len(SEEDS)
    for r, g in zip(ref, got):
        assert g.history["steps"] == r.history["steps"] == 4 and g.history["finished"]
        assert g.history["lr"] == r.history["lr"]
        torch.testing.assert_close(torch.tensor(g.history["loss"]), torch.tensor(r.history["loss"]), **TOL[strategy])
        assert_same_model(g.model, r.model, TOL[strategy])  # every parameter and BatchNorm buffer


@pytest.mark.parametrize("strategy", ["loop", "stacked"])
def test_batched_features_match_single_runs(strategy):
    cfgs = configs(epochs=1)
    imgs, ids = data()
    ref = singles(cfgs, imgs, ids)
    got = engine.train_batched(cfgs, imgs, sample_ids=ids, strategy=strategy)
    probe = images(12, 999)
    for r, g in zip(ref, got):
        for a, b in zip(train.extract_features(g.model, probe), train.extract_features(r.model, probe)):
            torch.testing.assert_close(a, b, **TOL[strategy])


@pytest.mark.parametrize("strategy", ["loop", "stacked"])
def test_perturbing_one_model_leaves_the_others_unchanged(strategy):
    cfgs = configs(epochs=1)
    imgs, ids = data()
    base = engine.train_batched(cfgs, imgs, sample_ids=ids, strategy=strategy)
    changed = list(imgs)
    changed[1] = 255 - imgs[1]  # model 1 sees other images: its batches, BN statistics and gradients change
    pert = engine.train_batched(cfgs, changed, sample_ids=ids, strategy=strategy)
    for k in (0, 2):  # bit for bit: nothing of model 1 reaches the others (BatchNorm statistics included)
        sa, sb = base[k].model.state_dict(), pert[k].model.state_dict()
        assert all(torch.equal(sa[n], sb[n]) for n in sa), k
        assert base[k].history["loss"] == pert[k].history["loss"]
    s1, p1 = base[1].model.state_dict(), pert[1].model.state_dict()
    assert not torch.equal(s1["backbone.net.1.running_mean"], p1["backbone.net.1.running_mean"])


def test_mitigations_match_single_runs():
    # re-weighting (per-model anchor weights) and re-balancing (per-model sampling plan) in the loop strategy,
    # re-weighting in the stacked one
    n = 20
    imgs, ids = data(n)
    labels = [torch.arange(n) % 4 for _ in SEEDS]
    groups = [lab == 0 for lab in labels]
    for strategy, kw in (("loop", dict(rebalance=True, minority_weight=3.0)), ("stacked", dict(minority_weight=3.0))):
        cfgs = configs(epochs=1, **kw)
        ref = [train.train(c, x, y, progress=False, sample_ids=i, groups=g)
               for c, x, y, i, g in zip(cfgs, imgs, labels, ids, groups)]
        got = engine.train_batched(cfgs, imgs, labels, sample_ids=ids, groups=groups, strategy=strategy)
        for r, g in zip(ref, got):
            assert g.history["steps"] == r.history["steps"]
            assert_same_model(g.model, r.model, TOL[strategy])


def test_simsiam_loop_matches_single_runs():
    cfgs = configs(epochs=1, method="simsiam", lr=0.02)
    imgs, ids = data()
    for r, g in zip(singles(cfgs, imgs, ids), engine.train_batched(cfgs, imgs, sample_ids=ids)):
        assert_same_model(g.model, r.model, TOL["loop"])


@pytest.mark.parametrize("strategy", ["loop", "stacked"])
def test_resume_from_a_batched_checkpoint_is_exact(strategy, tmp_path):
    cfgs = configs(epochs=2, checkpoint_every=1)
    imgs, ids = data()
    full = engine.train_batched(cfgs, imgs, sample_ids=ids, strategy=strategy)
    ck = tmp_path / "job.pt"
    part = engine.train_batched(cfgs, imgs, sample_ids=ids, strategy=strategy, checkpoint_path=ck, stop_after_steps=3)
    assert not part[0].history["finished"] and ck.exists()
    done = engine.train_batched(cfgs, imgs, sample_ids=ids, strategy=strategy, checkpoint_path=ck)
    for a, b in zip(full, done):
        assert b.history["finished"] and a.history["loss"] == b.history["loss"]
        sa, sb = a.model.state_dict(), b.model.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_invalid_groups_are_refused():
    imgs, ids = data()
    cfgs = configs()
    with pytest.raises(ValueError, match="differ only in"):
        engine.train_batched([cfgs[0], TrainConfig(**{**cfgs[1].to_dict(), "lr": 0.1})], imgs[:2])
    with pytest.raises(ValueError, match="distinct seeds"):
        engine.train_batched([cfgs[0], cfgs[0]], imgs[:2])
    with pytest.raises(ValueError, match="steps per epoch"):
        engine.train_batched(cfgs[:2], [imgs[0], images(40, 5)])
    with pytest.raises(ValueError, match="one per model"):
        engine.train_batched(cfgs, imgs[:2])
    with pytest.raises(ValueError, match="strategy"):
        engine.train_batched(configs(method="simsiam", lr=0.02), imgs, strategy="stacked")


def test_nt_xent_stacked_is_nt_xent_per_model():
    from rharm.vision import losses

    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, 10, 6, generator=g)
    w = torch.rand(3, 5, generator=g) + 0.5
    for clamp in (False, True):
        got = engine.nt_xent_stacked(z, 0.5, clamp=clamp)
        want = torch.stack([losses.nt_xent(zz[:5], zz[5:], 0.5, clamp=clamp) for zz in z])
        torch.testing.assert_close(got, want)
    got = engine.nt_xent_stacked(z, 0.5, weights=w)
    want = torch.stack([losses.nt_xent(zz[:5], zz[5:], 0.5, weights=ww) for zz, ww in zip(z, w)])
    torch.testing.assert_close(got, want)


# ----------------------------------------------------------------------------------------------------------------
# integration: the grid trainer (rharm.runs.images) with engine="batched"
# ----------------------------------------------------------------------------------------------------------------

GRID = dict(backbone="small_cnn", epochs=1, batch_size=16, lr=0.1, minority_classes=["automobile"], ratio=5,
            seeds=[0, 1, 2], n_per_class=10, progress=False)


@pytest.fixture
def fake_cifar(monkeypatch, tmp_path):
    """A 10-class fake CIFAR-10 (12 train / 3 test images per class), a private store, and counts of what trained."""
    from rharm.runs import images as experiment
    from rharm.vision import data

    monkeypatch.setenv("RHARM_RESULTS_ROOT", str(tmp_path / "results"))
    calls = {"single": 0, "batched": []}

    def load(dataset, split, source):
        per = 12 if split == "train" else 3
        g = torch.Generator().manual_seed(0 if split == "train" else 1)
        labels = torch.arange(10).repeat_interleave(per)
        return data.ImageData(torch.randint(0, 256, (10 * per, 3, 32, 32), dtype=torch.uint8, generator=g),
                              labels, "fake")

    real_train, real_batched = train.train, engine.train_batched

    def counting_train(*args, **kwargs):
        calls["single"] += 1
        return real_train(*args, **kwargs)

    def counting_batched(configs, *args, **kwargs):
        calls["batched"].append(sorted(c.seed for c in configs))
        return real_batched(configs, *args, **kwargs)

    monkeypatch.setattr(experiment, "_load_split", load)
    monkeypatch.setattr(experiment.train, "train", counting_train)
    monkeypatch.setattr(experiment.engine, "train_batched", counting_batched)
    return calls


def test_batched_grid_trains_the_seeds_of_a_grid_point_together_and_equals_the_single_grid(fake_cifar):
    from rharm.runs import images as experiment

    single = experiment.run_grid(GRID)
    assert fake_cifar["single"] == 6 and fake_cifar["batched"] == []
    batched = experiment.run_grid({**GRID, "engine": "batched"})
    assert fake_cifar["single"] == 6  # nothing of the single grid was reused: another engine, another key
    assert sorted(fake_cifar["batched"]) == [[0, 1, 2], [0, 1, 2]]  # balanced seeds together, minority seeds together
    assert [(r.minority, r.seed) for r in single] == [(r.minority, r.seed) for r in batched]
    for a, b in zip(single, batched):
        assert a.dir != b.dir
        for k in ("test_backbone", "test_projection", "train_backbone"):
            torch.testing.assert_close(a.features[k], b.features[k], **TOL["loop"])
        assert b.meta["extra"]["engine"] == "batched" and b.meta["extra"]["job_models"] == 3
    assert experiment.run_grid({**GRID, "engine": "batched"})[0].dir == batched[0].dir  # a store hit
    assert len(fake_cifar["batched"]) == 2


def test_engine_is_in_the_key_only_when_batched():
    from rharm.runs import images as experiment

    g = experiment.validate_grid(GRID)
    assert "engine" not in experiment.run_config(g, None, 0)["train"]  # today's keys are unchanged
    gb = experiment.validate_grid({**GRID, "engine": "batched"})
    assert experiment.run_config(gb, None, 0)["train"]["engine"] == "batched"
    with pytest.raises(ValueError, match="engine"):
        experiment.run_grid({**GRID, "engine": "vmap"})


def test_batched_jobs_keep_every_worker_busy():
    from rharm.runs import images as experiment

    g = {**GRID, "engine": "batched"}
    missing = [(g, m, s) for m in (None, "automobile") for s in range(5)]
    one = experiment._batched_jobs(missing, workers=1)
    assert sorted((m or "", sorted(s)) for _, m, s in one) == [("", [0, 1, 2, 3, 4]), ("automobile", [0, 1, 2, 3, 4])]
    two = experiment._batched_jobs(missing, workers=2)  # 10 runs, 2 workers: jobs of at most 3 seeds
    assert max(len(s) for _, _, s in two) <= 3 and len(two) == 4
    assert sorted(s for _, m, seeds in two if m is None for s in seeds) == [0, 1, 2, 3, 4]
    assert len(experiment._batched_jobs(missing[:5], workers=2)) == 3  # 5 balanced seeds: jobs of 2, 2, 1


@pytest.mark.slow
def test_batched_jobs_in_spawned_workers_equal_serial_single_runs(tmp_path, monkeypatch):
    """workers=2 with engine="batched": the seeds' jobs train in spawned processes (real Fashion-MNIST data: a
    spawned process cannot see a fake loader) and give the single engine's serial results."""
    from rharm.runs import images as experiment
    from rharm.vision import data as rdata

    try:
        rdata.load_dataset("fashion_mnist", "test")
    except FileNotFoundError:
        pytest.skip("no Fashion-MNIST copy under the data root")
    grid = {"dataset": "fashion_mnist", "backbone": "small_cnn", "epochs": 1, "batch_size": 8, "lr": 0.1,
            "augment": "simclr_grey", "minority_classes": ["sandal"], "ratio": 2, "seeds": [0, 1, 2],
            "n_per_class": 4, "threads": 1, "progress": False}
    monkeypatch.setenv("RHARM_RESULTS_ROOT", str(tmp_path / "single"))
    single = experiment.run_grid({**grid, "workers": 1})
    monkeypatch.setenv("RHARM_RESULTS_ROOT", str(tmp_path / "batched"))
    batched = experiment.run_grid({**grid, "workers": 2, "engine": "batched"})
    assert [(r.minority, r.seed) for r in single] == [(r.minority, r.seed) for r in batched]
    for a, b in zip(single, batched):
        assert str(tmp_path / "batched") in str(b.dir) and b.meta["extra"]["engine"] == "batched"
        torch.testing.assert_close(a.features["test_backbone"], b.features["test_backbone"], **TOL["loop"])


def test_bf16_autocast_loop_matches_single_runs():
    # precision bf16 on the CPU (autocast): the loop strategy runs the same kernels as train() in the same precision
    cfgs = configs(epochs=1, precision="bf16")
    imgs, ids = data()
    for r, g in zip(singles(cfgs, imgs, ids), engine.train_batched(cfgs, imgs, sample_ids=ids)):
        assert g.config["resolved_precision"] == r.config["resolved_precision"] == "bf16"
        assert_same_model(g.model, r.model, TOL["loop"])
