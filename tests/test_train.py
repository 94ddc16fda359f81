import math

import pytest
import torch

from rharm import store
from rharm.vision import train
from rharm.vision.train import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def patterns(n):
    """n gratings of different orientation and frequency: structure that survives crops and colour jitter."""
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    out = []
    for i in range(n):
        ang, f = math.pi * i / n, 0.3 + 0.15 * (i % 3)
        v = torch.sin(f * (xx * math.cos(ang) + yy * math.sin(ang)))
        out.append(((v + 1) * 127.5).round().to(torch.uint8).expand(3, 32, 32))
    return torch.stack(out)


def images(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)


def tiny(**kw):
    base = dict(backbone="small_cnn", epochs=2, batch_size=8, lr=0.05, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def test_tiny_fit_decreases_loss():
    res = train.train(tiny(epochs=20, batch_size=16, lr=0.3), patterns(16), progress=False)
    loss = res.history["loss"]
    assert len(loss) == 20 and all(math.isfinite(v) for v in loss)
    assert sum(loss[-5:]) / 5 < sum(loss[:5]) / 5 - 0.1


def test_history_fields_and_schedule():
    cfg = tiny(epochs=2)
    res = train.train(cfg, images(24), progress=False)
    h = res.history
    assert h["steps"] == 6 and h["steps_per_epoch"] == 3 and h["finished"]
    assert len(h["lr"]) == 6 and h["lr"][0] == pytest.approx(0.05) and h["lr"][-1] < h["lr"][0]
    assert [t["epoch"] for t in h["throughput"]] == [1, 2] and all(t["images_per_s"] > 0 for t in h["throughput"])


def test_lr_schedules():
    cos = TrainConfig(lr=0.6)
    off = TrainConfig(lr=0.6, schedule="official")
    assert train.lr_at(cos, 0, 100) == pytest.approx(0.6)
    assert train.lr_at(cos, 100, 100) == pytest.approx(0.6e-3)
    # the official LambdaLR quirk: multiplier runs from lr to 1e-3, so lr*lr -> lr*1e-3 (paper.md E1)
    assert train.lr_at(off, 0, 100) == pytest.approx(0.36)
    assert train.lr_at(off, 100, 100) == pytest.approx(6e-4)
    assert train.lr_at(cos, 50, 100) == pytest.approx(0.5 * (0.6 + 0.6e-3))


def test_exact_resume_matches_uninterrupted_run(tmp_path):
    x = images(24, seed=1)
    cfg = tiny(epochs=2)  # 3 steps per epoch
    full = train.train(cfg, x, progress=False)
    ckpt = tmp_path / "run.pt"
    part = train.train(cfg, x, checkpoint_path=ckpt, progress=False, stop_after_steps=4)  # stops mid-epoch 2
    assert part.history["steps"] == 4 and not part.history["finished"]
    torch.manual_seed(12345)  # disturb global RNG state: resume must restore it
    resumed = train.train(cfg, x, checkpoint_path=ckpt, progress=False)
    assert resumed.history["finished"] and resumed.history["loss"] == full.history["loss"]
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_checkpoint_loads_with_weights_only(tmp_path):
    ckpt = tmp_path / "c.pt"
    train.train(tiny(epochs=1), images(16), checkpoint_path=ckpt, progress=False)
    ck = torch.load(ckpt, weights_only=True)
    assert ck["step"] == 2 and set(ck) >= {"model", "optimizer", "scheduler", "rng", "config", "history"}
    assert ck["config"]["lr"] == 0.05


def test_resume_rejects_other_config(tmp_path):
    ckpt = tmp_path / "c.pt"
    train.train(tiny(epochs=1), images(16), checkpoint_path=ckpt, progress=False)
    with pytest.raises(ValueError, match="different TrainConfig"):
        train.train(tiny(epochs=1, lr=0.01), images(16), checkpoint_path=ckpt, progress=False)


@pytest.mark.parametrize("kw,match", [
    (dict(method="byol"), "method='byol'"),
    (dict(backbone="vgg"), "backbone='vgg'"),
    (dict(schedule="step"), "schedule='step'"),
    (dict(lr=-1.0), "lr=-1.0"),
    (dict(epochs=0), "epochs=0"),
    (dict(temperature=0.0), "temperature=0.0"),
    (dict(precision="fp8"), "precision='fp8'"),
    (dict(compile="yes"), "compile='yes'"),
    (dict(clamp="yes"), "clamp='yes'"),
    (dict(backbone="small_cnn", init="imagenet"), "init='imagenet'"),
])
def test_config_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kw)


def test_train_input_validation():
    with pytest.raises(ValueError, match="batch_size=8"):
        train.train(tiny(), images(5), progress=False)
    with pytest.raises(ValueError, match="uint8"):
        train.train(tiny(), images(16).float(), progress=False)


def test_method_defaults():
    assert TrainConfig(method="simclr").to_dict()["lr"] == 0.6
    d = TrainConfig(method="simsiam").to_dict()
    assert d["lr"] == 0.06 and d["weight_decay"] == 5e-4 and d["augment"] == "simsiam" and d["nesterov"] is False
    assert TrainConfig(method="simclr").to_dict()["nesterov"] is True
    with pytest.raises(ValueError, match="nesterov=True"):
        TrainConfig(nesterov=True, momentum=0.0)


def test_simsiam_runs_and_features():
    res = train.train(tiny(method="simsiam", epochs=1), images(16), progress=False)
    h, z = train.extract_features(res.model, images(5), batch_size=2)
    assert h.shape == (5, 128) and z.shape == (5, 2048) and torch.isfinite(h).all()


def test_knn_monitor_and_accuracy():
    feats = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    labels = torch.tensor([0, 0, 1, 1])
    assert train.knn_accuracy(feats, labels, feats, labels, k=2) == 1.0
    assert train.knn_accuracy(feats, labels, feats, 1 - labels, k=2) == 0.0
    x, y = images(16), torch.arange(16) % 2
    res = train.train(tiny(epochs=2, knn_every=1, knn_k=3), x, y, knn_eval=(x, y, x[:8], y[:8]), progress=False)
    assert [k["epoch"] for k in res.history["knn"]] == [1, 2]
    assert all(0.0 <= k["accuracy"] <= 1.0 for k in res.history["knn"])


def test_common_random_numbers_share_initialisation_and_order():
    a = train.train(tiny(epochs=1), images(16), progress=False, stop_after_steps=0)
    b = train.train(tiny(epochs=1), images(24), progress=False, stop_after_steps=0)
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k])
    ids = torch.arange(10)
    full = train.epoch_order(5, 0, ids)
    sub_ids = torch.tensor([0, 1, 2, 4, 6, 7, 9])
    sub = train.epoch_order(5, 0, sub_ids)
    assert sub_ids[sub].tolist() == [i for i in ids[full].tolist() if i in set(sub_ids.tolist())]


def test_resolve_precision():
    assert train.resolve_precision("auto", "cpu") == "fp32"
    assert train.resolve_precision("bf16", "cpu") == "bf16"
    assert train.resolve_precision("auto", "cuda") in ("bf16", "fp16")
    with pytest.raises(ValueError, match="precision='fp16'.*'cpu'"):
        train.resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="precision='half'"):
        train.resolve_precision("half", "cpu")
    with pytest.raises(ValueError, match="precision='fp16'"):  # refused before any work
        train.train(tiny(precision="fp16"), images(16), progress=False)


def test_store_key_holds_device_and_precision():
    from rharm import store
    from rharm.runs import images as experiment

    grid = dict(backbone="small_cnn", epochs=1, batch_size=8, n_per_class=2, seeds=[0])
    cpu = experiment.run_config(experiment.validate_grid({**grid, "device": "cpu"}), None, 0)
    gpu = experiment.run_config(experiment.validate_grid({**grid, "device": "cuda"}), None, 0)
    assert (cpu["device"], cpu["precision"]) == ("cpu", "fp32")
    assert gpu["device"] == "cuda" and gpu["precision"] in ("bf16", "fp16")
    # deterministic "auto": exact on the CPU, cuDNN benchmark on CUDA
    assert cpu["train"]["deterministic"] is True and gpu["train"]["deterministic"] is False
    assert store.key(experiment.KIND, cpu) != store.key(experiment.KIND, gpu)
    fp32_gpu = experiment.run_config(experiment.validate_grid({**grid, "device": "cuda", "precision": "fp32",
                                                           "deterministic": False}), None, 0)
    assert store.key(experiment.KIND, fp32_gpu) != store.key(experiment.KIND, gpu)
    with pytest.raises(ValueError, match="precision='fp16'"):
        experiment.validate_grid({**grid, "device": "cpu", "precision": "fp16"})


def test_process_switches_are_restored():
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    train.train(tiny(epochs=1), images(16), progress=False)
    train.train(tiny(epochs=1, deterministic=False), images(16), progress=False)
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark) == before


def test_checkpoint_every_n_epochs_keeps_one_file(tmp_path):
    ckpt = tmp_path / "run.pt"
    seen = {}

    def look(epoch, history):
        seen[epoch] = train.load_checkpoint(ckpt)["step"] if ckpt.exists() else None

    train.train(tiny(epochs=5, checkpoint_every=2), images(16), checkpoint_path=ckpt, progress=False,
                on_epoch_end=look)
    # the callback runs before the epoch's checkpoint: epoch 3 sees the one written after epoch 2
    assert seen == {1: None, 2: None, 3: 4, 4: 4, 5: 8}
    assert train.load_checkpoint(ckpt)["step"] == 10  # the finished run's state
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]


def test_non_finite_loss_stops_before_a_checkpoint(tmp_path, monkeypatch):
    real = train.losses.nt_xent
    calls = {"n": 0}

    def poisoned(*a, **k):
        calls["n"] += 1
        out = real(*a, **k)
        return out * float("nan") if calls["n"] == 3 else out

    monkeypatch.setattr(train.losses, "nt_xent", poisoned)
    ckpt = tmp_path / "run.pt"
    with pytest.raises(FloatingPointError, match="at step 2"):
        train.train(tiny(epochs=2), images(16), checkpoint_path=ckpt, progress=False)
    assert train.load_checkpoint(ckpt)["step"] == 2  # epoch 1's checkpoint; nothing written from the bad state


def test_a_truncated_checkpoint_is_moved_aside_with_one_line_and_training_starts_over(tmp_path, capsys):
    ckpt = tmp_path / "run.pt"
    full = train.train(tiny(epochs=2), images(16), progress=False)
    train.train(tiny(epochs=2), images(16), checkpoint_path=ckpt, progress=False)
    ckpt.write_bytes(ckpt.read_bytes()[:100])  # cut short, as a kill during a copy leaves it
    with pytest.raises(store.UnreadableFileError, match=str(ckpt)):
        train.load_checkpoint(ckpt)
    again = train.train(tiny(epochs=2), images(16), checkpoint_path=ckpt, progress=False)
    err = capsys.readouterr().err
    assert f"{ckpt} is unreadable" in err and "run.pt.damaged" in err and err.count("\n") == 1
    assert (tmp_path / "run.pt.damaged").exists()
    for a, b in zip(full.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)  # from scratch, the same run
