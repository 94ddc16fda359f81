"""One schema per run parameter (rharm.core.schema): the profiles, the training code and the statistics read it."""

import pytest

from rharm.core import params, sampling, schema
from rharm.harm import mediation
from rharm.language import data as textdata
from rharm.runs import images as experiment
from rharm.vision import train


def test_validate_converts_and_refuses_with_one_message():
    assert schema.check("epochs", 2.0) == 2 and isinstance(schema.check("epochs", 2.0), int)
    assert schema.check("ratio", 100) == 100.0 and isinstance(schema.check("ratio", 100), float)
    assert schema.check("seeds", (0, 3)) == [0, 3]
    for name, bad, why in [("epochs", 2.5, "not an integer"), ("epochs", True, "not an integer"),
                           ("ratio", 0.5, "out of range"), ("ratio", float("inf"), "not finite"),
                           ("ratio", "10", "not a number"), ("seeds", [], "too few items"),
                           ("seeds", [-1], "out of range"), ("method", "byol", "unknown choice"),
                           ("clamp", "yes", "not a bool")]:
        with pytest.raises(schema.ParameterError) as err:
            schema.check(name, bad)
        assert f"parameter {name}={bad!r} is not valid ({why}); expected" in str(err.value)
    with pytest.raises(schema.ParameterError, match="'lion' is not a parameter of the schema"):
        schema.check("lion", 1)


def test_a_declaration_may_narrow_but_not_widen():
    ratio = schema.spec("ratio")
    narrowed = ratio.narrowed(type="int", range=(2, 6000))
    assert narrowed.validate(100) == 100 and isinstance(narrowed.validate(100), int)
    with pytest.raises(schema.ParameterError, match="out of range"):
        narrowed.validate(1)
    for widening in ({"range": (0.5, 10)}, {"type": "str"}):
        with pytest.raises(schema.ParameterError, match="widens"):
            ratio.narrowed(**widening)
    with pytest.raises(schema.ParameterError, match="widens"):
        schema.spec("method").narrowed(choices=("simclr", "byol"))


def test_profiles_yml_declarations_come_from_the_schema(tmp_path):
    yml = tmp_path / "profiles.yml"
    yml.write_text("nb:\n  parameters:\n    ratio: {schema: ratio, type: int, range: [2, 50]}\n"
                   "    dose_seeds: {schema: seeds, min_len: 2, help: seeds of the dose points}\n"
                   "  profiles:\n    smoke: {ratio: 10, dose_seeds: [0, 1]}\n    cpu: {ratio: 10, dose_seeds: [0, 1]}\n"
                   "    gpu: {ratio: 10, dose_seeds: [0, 1]}\n")
    spec = params.specs("nb", yml)
    assert spec["ratio"].type == "int" and spec["ratio"].range == (2.0, 50.0)
    assert spec["ratio"].help == schema.spec("ratio").help  # help inherited
    assert spec["dose_seeds"].name == "dose_seeds" and spec["dose_seeds"].min_len == 2
    with pytest.raises(params.ParameterError, match="parameter ratio=1 is not valid"):
        params.resolve("nb", {"ratio": 1}, yml)
    yml.write_text(yml.read_text().replace("range: [2, 50]", "range: [0, 50]"))
    with pytest.raises(params.ParameterError, match="profiles.yml: nb.ratio: .*widens"):
        params.specs("nb", yml)


def test_the_repository_profiles_share_the_training_specs():
    for name in ("representation_harm", "fashion_harm", "mitigation"):
        spec = params.specs(name)
        for key in ("epochs", "batch_size", "lr", "temperature", "seeds", "threads"):
            base = schema.spec(key)
            assert spec[key].type == base.type and spec[key].range == base.range, (name, key)


def test_train_and_models_read_their_choices_from_the_schema():
    from rharm.vision import models

    assert train.PRECISIONS == schema.spec("precision").choices and train.SCHEDULES == schema.spec("schedule").choices
    assert models.BACKBONES == schema.spec("backbone").choices and models.METHODS == schema.spec("method").choices


@pytest.mark.parametrize("bad", [0.5, 0, "10", True])
def test_every_user_of_ratio_refuses_a_bad_one_with_the_schema_message(bad):
    expected = f"parameter ratio={bad!r} is not valid"
    calls = [
        lambda: sampling.kept_count(10, bad),
        lambda: experiment.run_grid({"backbone": "small_cnn", "epochs": 1, "minority_classes": ["cat"],
                                     "ratio": bad, "n_per_class": 20, "data_source": "jpeg"}),
        lambda: textdata.underrepresented_split(["a", "b"] * 20, minority="a", ratio=bad, cl_fraction=0.5,
                                                n_train_per_group=5, n_eval_per_group=5, seed=0),
        lambda: mediation.mediation_runs([], ratio=bad),
    ]
    for call in calls:
        with pytest.raises(ValueError) as err:
            call()
        assert expected in str(err.value)


def test_train_config_converts_integral_floats_and_refuses_the_rest():
    cfg = train.TrainConfig(backbone="small_cnn", epochs=2.0, batch_size=8, checkpoint_every=0)
    assert cfg.epochs == 2 and isinstance(cfg.epochs, int)
    with pytest.raises(ValueError, match=r"parameter temperature=0.0 is not valid \(out of range\)"):
        train.TrainConfig(backbone="small_cnn", temperature=0.0)
    with pytest.raises(ValueError, match="parameter nesterov='yes' is not valid"):
        train.TrainConfig(backbone="small_cnn", nesterov="yes")
