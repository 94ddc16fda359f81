"""Each mitigation of rharm.vision.mitigation changes what it claims to change, and nothing when switched off."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rharm.runs import images as experiment
from rharm.vision import data, losses, mitigation, models, train


@pytest.fixture
def one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def _fake_split(dataset, split, source):
    """Stands in for experiment._load_split: 10 classes of random images, 12 per class (train) or 3 (test)."""
    per = 12 if split == "train" else 3
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    return data.ImageData(torch.randint(0, 256, (10 * per, 3, 32, 32), dtype=torch.uint8, generator=g),
                          torch.arange(10).repeat_interleave(per), "fake")


def _toy(n_per=12, n_min=2, seed=0):
    """4 classes of ``n_per`` random images, class 0 cut to ``n_min``: (images, labels, groups)."""
    labels = torch.cat([torch.zeros(n_min, dtype=torch.long), torch.arange(1, 4).repeat_interleave(n_per)])
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (len(labels), 3, 32, 32), dtype=torch.uint8, generator=g)
    return images, labels, labels == 0


# ---------------------------------------------------------------------------------------------------------------
# re-balancing: the minority's per-epoch sampling rate
# ---------------------------------------------------------------------------------------------------------------

def test_rebalancing_gives_the_minority_the_balanced_rate():
    _, labels, groups = _toy(n_per=12, n_min=2)
    ids = torch.arange(len(labels)) * 3 + 5  # any distinct ids
    assert mitigation.rebalance_factor(groups, labels) == 6  # 12 / 2
    pos, vids = mitigation.rebalanced_samples(ids, groups, labels)
    assert torch.unique(vids).numel() == len(vids)  # every copy has its own id
    counts = torch.bincount(labels[pos], minlength=4)
    assert counts.tolist() == [12, 12, 12, 12]  # the minority's rate per epoch = an average other class's
    # without re-balancing the minority is 2 of 38 samples per epoch
    assert torch.bincount(labels, minlength=4)[0] / len(labels) == pytest.approx(2 / 38)
    # the originals keep their ids, hence their relative batch order (common random numbers)
    order_plain = train.epoch_order(0, 1, ids)
    order_rb = pos[train.epoch_order(0, 1, vids)]
    originals = order_rb[torch.isin(torch.arange(len(pos))[train.epoch_order(0, 1, vids)], torch.arange(len(ids)))]
    assert torch.equal(originals, order_plain)


def test_rebalancing_is_a_noop_without_a_minority_and_grows_the_epoch_with_one(one_thread):
    images, labels, groups = _toy(n_per=12, n_min=2)
    cfg = dict(backbone="small_cnn", batch_size=8, epochs=1, lr=0.05, checkpoint_every=0, augment="simclr_grey")
    plain = train.train(train.TrainConfig(**cfg), images, labels, progress=False)
    rb = train.train(train.TrainConfig(**cfg, rebalance=True), images, labels, progress=False, groups=groups)
    assert plain.history["steps_per_epoch"] == 38 // 8 and rb.history["steps_per_epoch"] == 48 // 8
    none = train.train(train.TrainConfig(**cfg, rebalance=True), images, labels, progress=False,
                       groups=torch.zeros(len(labels), dtype=torch.bool))
    assert none.history["loss"] == plain.history["loss"]
    with pytest.raises(ValueError, match="groups"):
        train.train(train.TrainConfig(**cfg, rebalance=True), images, labels, progress=False)


# ---------------------------------------------------------------------------------------------------------------
# re-weighting: the loss gradient's weight on a minority anchor
# ---------------------------------------------------------------------------------------------------------------

def test_reweighted_nt_xent_weights_a_minority_anchors_gradient():
    torch.manual_seed(0)
    z1, z2 = torch.randn(6, 5), torch.randn(6, 5)
    plain = losses.nt_xent(z1, z2, 0.5)
    assert float(losses.nt_xent(z1, z2, 0.5, weights=torch.ones(6))) == pytest.approx(float(plain), rel=1e-6)
    w = mitigation.anchor_weights(torch.tensor([True, False, False, False, False, False]), 4.0)
    assert w.tolist() == [4.0, 1, 1, 1, 1, 1]
    # d loss / d l_a = w_a / sum(w): the per-anchor losses enter with weight 4 for image 0's two anchors
    u = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = (u @ u.t() / 0.5).masked_fill(torch.eye(12, dtype=torch.bool), float("-inf"))
    per_anchor = F.cross_entropy(logits, torch.cat([torch.arange(6, 12), torch.arange(6)]), reduction="none")
    w2 = torch.cat([w, w])
    assert float(losses.nt_xent(z1, z2, 0.5, weights=w)) == pytest.approx(float((per_anchor * w2).sum() / 18), 1e-6)
    # the positive-pair gradient of image 0 (it only enters through its own two anchors' numerators) scales by
    # 4 * 12 / 18 against the unweighted loss
    a = z1.clone().requires_grad_(True)
    b = z1.clone().requires_grad_(True)
    g_plain = torch.autograd.grad(losses.nt_xent(a, z2, 0.5), a)[0]
    g_w = torch.autograd.grad(losses.nt_xent(b, z2, 0.5, weights=w), b)[0]
    assert not torch.allclose(g_plain[0], g_w[0])
    assert float(g_w[0].norm() / g_plain[0].norm()) > 2.0  # the minority row's gradient grows ...
    assert float(g_w[1:].norm() / g_plain[1:].norm()) < 1.0  # ... and the others' share shrinks
    with pytest.raises(ValueError, match="weights"):
        losses.nt_xent(z1, z2, 0.5, weights=torch.ones(5))


def test_minority_weight_changes_training_only_through_the_minority(one_thread):
    images, labels, groups = _toy()
    cfg = dict(backbone="small_cnn", batch_size=8, epochs=1, lr=0.05, checkpoint_every=0, augment="simclr_grey")
    plain = train.train(train.TrainConfig(**cfg), images, labels, progress=False)
    rw = train.train(train.TrainConfig(**cfg, minority_weight=10.0), images, labels, progress=False, groups=groups)
    none = train.train(train.TrainConfig(**cfg, minority_weight=10.0), images, labels, progress=False,
                       groups=torch.zeros(len(labels), dtype=torch.bool))
    # weights of 1 everywhere: the weighted mean is the mean (up to float rounding)
    assert np.allclose(none.history["loss"], plain.history["loss"], rtol=1e-5)
    assert not np.allclose(rw.history["loss"], plain.history["loss"], rtol=1e-3)
    for bad in (dict(minority_weight=0.0), dict(minority_weight=2.0, method="simsiam"),
                dict(sdclr_prune=1.0), dict(sdclr_prune=0.5, method="simsiam"), dict(rebalance=1)):
        with pytest.raises(ValueError, match=next(iter(k for k in bad if k != "method"))):
            train.TrainConfig(**cfg, **bad)


# ---------------------------------------------------------------------------------------------------------------
# SDCLR: the second view goes through a magnitude-pruned copy sharing the dense weights
# ---------------------------------------------------------------------------------------------------------------

def test_prune_masks_remove_the_smallest_weights_of_each_layer_but_the_first():
    torch.manual_seed(0)
    model = models.ContrastiveModel("simclr", "small_cnn")
    masks = mitigation.prune_masks(model, 0.9)
    convs = [n for n, p in model.named_parameters() if n.startswith("backbone") and p.ndim == 4]
    assert list(masks) == convs[1:]  # the first convolution stays dense, the projection head too
    params = dict(model.named_parameters())
    for name, m in masks.items():
        w = params[name].detach().abs()
        assert int((~m).sum()) == int(0.9 * w.numel())
        assert float(w[~m].max()) <= float(w[m].min())  # magnitude pruning
    assert all(bool(m.all()) for m in mitigation.prune_masks(model, 0.0).values())


def test_pruned_branch_shares_weights_and_leaves_running_stats(one_thread):
    torch.manual_seed(0)
    model = models.ContrastiveModel("simclr", "small_cnn")
    x = torch.rand(4, 3, 32, 32)
    masks = mitigation.prune_masks(model, 0.5)
    stats = {n: b.clone() for n, b in model.named_buffers()}
    h, z = mitigation.pruned_forward(model, x, masks)
    assert all(torch.equal(b, stats[n]) for n, b in model.named_buffers())  # dense BN statistics untouched
    # it is the dense network with the pruned entries zeroed
    ref = models.ContrastiveModel("simclr", "small_cnn")
    ref.load_state_dict(model.state_dict())
    with torch.no_grad():
        for n, p in ref.named_parameters():
            if n in masks:
                p.mul_(masks[n])
    assert torch.allclose(ref(x)[1], z, atol=1e-5)
    assert not torch.allclose(model(x)[1], z, atol=1e-3)
    # gradients reach the shared dense weights, only at the surviving entries
    z.pow(2).sum().backward()
    name = next(iter(masks))
    grad = dict(model.named_parameters())[name].grad
    assert float(grad[~masks[name]].abs().max()) == 0.0 and float(grad[masks[name]].abs().max()) > 0


def test_sdclr_loss_contrasts_dense_and_pruned_views(one_thread):
    torch.manual_seed(0)
    model = models.ContrastiveModel("simclr", "small_cnn")
    v1, v2 = torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32)
    cfg = train.TrainConfig(backbone="small_cnn", sdclr_prune=0.9)
    masks = mitigation.prune_masks(model, 0.9)
    got = train.method_loss(model, cfg, v1, v2, masks=masks)
    _, z1 = model(v1)
    _, z2 = mitigation.pruned_forward(model, v2, masks)
    assert float(got.detach()) == pytest.approx(float(losses.nt_xent(z1, z2, 0.5).detach()), rel=1e-5)
    # a damaged branch disagrees more with the dense one than the dense one with itself: larger loss
    dense_only = train.method_loss(model, cfg, v1, v1)
    assert float(train.method_loss(model, cfg, v1, v1, masks=masks)) > float(dense_only)


def test_sdclr_refreshes_the_mask_each_epoch(one_thread, monkeypatch):
    images, labels, _ = _toy()
    calls = []
    real = mitigation.prune_masks

    def spy(model, ratio):
        calls.append(ratio)
        return real(model, ratio)

    monkeypatch.setattr(mitigation, "prune_masks", spy)
    cfg = train.TrainConfig(backbone="small_cnn", batch_size=8, epochs=3, lr=0.05, checkpoint_every=0,
                            augment="simclr_grey", sdclr_prune=0.5)
    out = train.train(cfg, images, labels, progress=False)
    assert calls == [0.5, 0.5, 0.5] and out.history["finished"]


# ---------------------------------------------------------------------------------------------------------------
# the grid: defaults keep every existing key; group mitigations reach only the minority run
# ---------------------------------------------------------------------------------------------------------------

def test_grid_keys_and_the_minority_groups(monkeypatch, tmp_path, one_thread):
    monkeypatch.setenv("RHARM_RESULTS_ROOT", str(tmp_path / "results"))

    seen = []
    real_train = train.train

    def spy(*args, **kwargs):
        seen.append((args[0], kwargs.get("groups")))
        return real_train(*args, **kwargs)

    monkeypatch.setattr(experiment, "_load_split", _fake_split)
    monkeypatch.setattr(experiment.train, "train", spy)
    grid = dict(backbone="small_cnn", epochs=1, batch_size=8, lr=0.1, minority_classes=["automobile"], ratio=5,
                seeds=[0], n_per_class=10, progress=False)
    g0 = experiment.validate_grid(grid)
    key = experiment.run_config(g0, "automobile", 0)
    assert not set(experiment.MITIGATION_OFF) & set(key["train"])  # off = not in the key (unchanged keys)
    g_rw = experiment.validate_grid({**grid, "minority_weight": 5.0, "rebalance": True})
    assert experiment.run_config(g_rw, None, 0) == experiment.run_config(g0, None, 0)  # balanced model shared
    k_rw = experiment.run_config(g_rw, "automobile", 0)["train"]
    assert k_rw["minority_weight"] == 5.0 and k_rw["rebalance"] is True
    g_sd = experiment.validate_grid({**grid, "sdclr_prune": 0.5})
    assert experiment.run_config(g_sd, None, 0)["train"]["sdclr_prune"] == 0.5  # SDCLR changes the balanced model

    runs = experiment.run_grid({**grid, "rebalance": True})
    cfg_bal, groups_bal = seen[0]
    cfg_min, groups_min = seen[1]
    assert groups_bal is None and cfg_bal.rebalance is False
    assert cfg_min.rebalance is True and int(groups_min.sum()) == 2  # int(10 / 5) automobile images
    kept = np.load(runs[1].dir / "kept_indices.npy")
    assert (torch.arange(10).repeat_interleave(12)[kept] == 1).sum() == 2
    with pytest.raises(ValueError, match="sdclr_prune"):
        experiment.run_grid({**grid, "sdclr_prune": 1.5})


# ---------------------------------------------------------------------------------------------------------------
# warm start: every run of the grid starts from a model pre-trained without the minority class
# ---------------------------------------------------------------------------------------------------------------

def test_init_state_replaces_the_seeded_weights(one_thread):
    images, labels, _ = _toy(n_per=12, n_min=2)
    cfg = train.TrainConfig(backbone="small_cnn", batch_size=8, epochs=1, lr=0.05, checkpoint_every=0,
                            augment="simclr_grey", seed=0)
    other = models.ContrastiveModel("simclr", "small_cnn")
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    start = {k: v.clone() for k, v in other.state_dict().items()}
    zero = train.train(cfg, images, labels, progress=False, stop_after_steps=0, init_state=start)
    assert all(torch.equal(zero.model.state_dict()[k].cpu(), v) for k, v in start.items())
    seeded = train.train(cfg, images, labels, progress=False, stop_after_steps=0)
    assert not torch.equal(seeded.model.state_dict()["backbone.net.0.weight"].cpu(), start["backbone.net.0.weight"])
    with pytest.raises(ValueError, match="init_state"):
        train.train(cfg, images, labels, progress=False, init_state={"nope": torch.zeros(1)})


def test_warm_start_pretrains_without_the_minority_and_starts_every_run_from_it(monkeypatch, tmp_path, one_thread):
    monkeypatch.setenv("RHARM_RESULTS_ROOT", str(tmp_path / "results"))

    seen = []
    real_train = train.train

    def spy(*args, **kwargs):
        seen.append((args[1].shape[0], args[1].clone(), kwargs.get("init_state")))
        return real_train(*args, **kwargs)

    monkeypatch.setattr(experiment, "_load_split", _fake_split)
    monkeypatch.setattr(experiment.train, "train", spy)
    grid = dict(backbone="small_cnn", epochs=1, batch_size=8, lr=0.1, classes=["airplane", "automobile", "bird",
                "cat"], minority_classes=["automobile"], ratio=5, seeds=[0], n_per_class=10, progress=False)
    plain_key = experiment.run_config(experiment.validate_grid(grid), None, 0)
    runs = experiment.run_grid({**grid, "warm_start": True})
    assert len(seen) == 3  # the pre-training, then the balanced and the underrepresented run
    n_pre, images_pre, init_pre = seen[0]
    automobiles = _fake_split("fashion_mnist", "train", "fake").images[12:24]  # class 1 of the fake train split
    assert init_pre is None and n_pre == 30  # 3 classes x 10
    assert not (images_pre[:, None] == automobiles[None]).flatten(2).all(2).any()  # no automobile image in it
    pre = experiment.run_one(experiment.pretrain_grid(experiment.validate_grid({**grid, "warm_start": True})), None, 0)
    pre_state = torch.load(pre.dir / "model.pt", weights_only=True)
    for n_train, _, init in seen[1:]:
        assert init is not None and all(torch.equal(init[k], v) for k, v in pre_state.items())
    assert seen[1][0] == 40 and seen[2][0] == 32  # balanced 4 x 10; automobile cut to 10 // 5
    warm_key = experiment.run_config(experiment.validate_grid({**grid, "warm_start": True}), None, 0)
    assert warm_key["warm_start"] == "automobile" and "warm_start" not in plain_key  # old keys unchanged
    assert [r.minority for r in runs] == [None, "automobile"]
    with pytest.raises(ValueError, match="exactly one minority"):
        experiment.run_grid({**grid, "minority_classes": ["automobile", "bird"], "warm_start": True})


def test_initial_model_is_the_model_train_starts_from(one_thread):
    images, labels, _ = _toy(n_per=12, n_min=2)
    cfg = train.TrainConfig(backbone="small_cnn", batch_size=8, epochs=1, lr=0.05, checkpoint_every=0,
                            augment="simclr_grey", seed=3)
    torch.manual_seed(123)  # whatever the global state, the seed alone decides
    start = train.initial_model(cfg).state_dict()
    zero = train.train(cfg, images, labels, progress=False, stop_after_steps=0).model.state_dict()
    assert all(torch.equal(zero[k].cpu(), v) for k, v in start.items())
    other = train.initial_model(train.TrainConfig(**{**cfg.to_dict(), "seed": 4})).state_dict()
    assert not torch.equal(other["backbone.net.0.weight"], start["backbone.net.0.weight"])
