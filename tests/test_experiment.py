import numpy as np
import pytest
import torch

from rharm.runs import images as experiment
from rharm.vision import data, train


@pytest.fixture(autouse=True)
def fake_cifar(monkeypatch, tmp_path):
    """A 10-class fake CIFAR-10 (12 train / 3 test images per class) and a private result store."""
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("RHARM_RESULTS_ROOT", str(tmp_path / "results"))
    calls = {"load": 0, "train": 0}

    def load(dataset, split, source):
        assert dataset == "cifar10"
        calls["load"] += 1
        per = 12 if split == "train" else 3
        g = torch.Generator().manual_seed(0 if split == "train" else 1)
        labels = torch.arange(10).repeat_interleave(per)
        imgs = torch.randint(0, 256, (10 * per, 3, 32, 32), dtype=torch.uint8, generator=g)
        return data.ImageData(imgs, labels, "fake")

    real_train = train.train

    def counting_train(*args, **kwargs):
        calls["train"] += 1
        return real_train(*args, **kwargs)

    monkeypatch.setattr(experiment, "_load_split", load)
    monkeypatch.setattr(experiment.train, "train", counting_train)
    yield calls
    torch.set_num_threads(torch_threads)


GRID = dict(backbone="small_cnn", epochs=1, batch_size=16, lr=0.1, minority_classes=["automobile"], ratio=5,
            seeds=[0], n_per_class=10, progress=False)


def test_grid_runs_features_and_cache_hit(fake_cifar):
    runs = experiment.run_grid(GRID)
    assert [(r.minority, r.seed, r.ratio) for r in runs] == [(None, 0, None), ("automobile", 0, 5)]
    assert fake_cifar["train"] == 2
    for r in runs:
        f = r.features
        assert set(f) == {"test_backbone", "test_projection", "test_labels", "train_backbone", "train_labels",
                          "train_in_cl"}
        assert f["test_backbone"].shape == (30, 128) and f["test_projection"].shape == (30, 128)
        assert f["train_backbone"].shape == (100, 128) and f["train_in_cl"].dtype == torch.bool
        assert (r.dir / "model.pt").is_file() and (r.dir / "history.json").is_file()
        kept = np.load(r.dir / "kept_indices.npy", allow_pickle=False)
        assert len(kept) == int(f["train_in_cl"].sum())
        torch.load(r.dir / "model.pt", weights_only=True)
    bal, imb = runs
    assert bool(bal.features["train_in_cl"].all())
    auto = imb.features["train_labels"] == data.class_index("automobile")
    assert int(imb.features["train_in_cl"][auto].sum()) == 2  # int(10 / 5)
    assert bool(imb.features["train_in_cl"][~auto].all())

    again = experiment.run_grid(GRID)
    assert fake_cifar["train"] == 2  # cache hit: nothing retrained
    assert [r.dir for r in again] == [r.dir for r in runs]
    assert torch.equal(again[1].features["test_backbone"], imb.features["test_backbone"])


def test_changed_parameter_gives_new_run(fake_cifar):
    first = experiment.run_grid(GRID)
    changed = experiment.run_grid({**GRID, "ratio": 10})
    # the balanced model does not depend on the ratio and is shared; the minority run is new
    assert changed[0].dir == first[0].dir and changed[1].dir != first[1].dir
    assert fake_cifar["train"] == 3
    other_lr = experiment.run_grid({**GRID, "lr": 0.05, "minority_classes": []})
    assert other_lr[0].dir != first[0].dir and fake_cifar["train"] == 4


def test_execution_settings_do_not_change_the_key(fake_cifar):
    first = experiment.run_grid(GRID)
    again = experiment.run_grid({**GRID, "threads": 1, "feature_batch_size": 7})
    assert [r.dir for r in again] == [r.dir for r in first] and fake_cifar["train"] == 2


@pytest.mark.parametrize("kw,match", [
    (dict(minority_classes=["unicorn"]), "unicorn"),
    (dict(ratio=0.5), "ratio=0.5"),
    (dict(ratio=20), "ratio=20"),  # keeps no minority image from a pool of 10
    (dict(seeds=[]), "seeds"),
    (dict(n_per_class=0), "n_per_class=0"),
    (dict(data_source="imagenet"), "data_source='imagenet'"),
    (dict(backbone="vgg"), "backbone='vgg'"),
    (dict(colour="red"), "colour"),
])
def test_bad_grid_raises_before_training(fake_cifar, kw, match):
    with pytest.raises(ValueError, match=match):
        experiment.run_grid({**GRID, **kw})
    assert fake_cifar["train"] == 0


def test_grid_from_params():
    class P:
        values = {"backbone": "small_cnn", "seeds": (1, 2), "quick": True, "ratio": 100}

    g = experiment.grid_from_params(P())
    assert g == {"backbone": "small_cnn", "seeds": [1, 2], "ratio": 100}
    assert experiment.grid_from_params({"epochs": 3}) == {"epochs": 3}


def test_run_config_shares_balanced_model_and_normalises_ratio():
    g = experiment.validate_grid(GRID)
    g_float = experiment.validate_grid({**GRID, "ratio": 5.0})
    assert experiment.run_config(g, "automobile", 0) == experiment.run_config(g_float, "automobile", 0)
    assert experiment.run_config(g, None, 0)["ratio"] is None
    assert experiment.run_config(g, None, 0) == experiment.run_config(experiment.validate_grid({**GRID, "ratio": 2}), None, 0)
    assert experiment.run_config(g, "automobile", 0) != experiment.run_config(g, "automobile", 1)


def test_workers_is_validated():
    with pytest.raises(ValueError, match="workers=0 is not valid"):
        experiment.run_grid({"workers": 0, "backbone": "small_cnn"})


def test_prefetch_trains_each_missing_run_of_several_grids_once(fake_cifar):
    grids = [{**GRID, "minority_classes": ["automobile", "truck"]},
             {**GRID, "ratio": 10},  # shares the balanced model of seed 0 with the first grid
             {**GRID, "temperature": 0.2}]  # another temperature: its own balanced and minority models
    assert experiment.prefetch(grids, workers=1) == 3 + 1 + 2
    assert fake_cifar["train"] == 6
    assert experiment.prefetch(grids, workers=1) == 0  # all in the store now
    before = fake_cifar["train"]
    runs = experiment.run_grid(grids[1])
    assert fake_cifar["train"] == before and [r.minority for r in runs] == [None, "automobile"]


def test_prefetch_validates_every_grid_before_training(fake_cifar):
    with pytest.raises(ValueError, match="parameter ratio=0.5 is not valid"):
        experiment.prefetch([GRID, {**GRID, "ratio": 0.5}], workers=1)
    assert fake_cifar["train"] == 0
