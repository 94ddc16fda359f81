import pytest

from rharm.core import params

PROFILE_YML = """
nb:
  title: t
  parameters:
    alpha: {type: float, range: [0.0, 1.0], help: "a probability"}
    n: {type: int, range: [1, 10]}
    method: {type: str, choices: [a, b]}
    xs: {type: "list[float]", range: [0, 1], min_len: 1}
    names: {type: "list[str]", choices: [u, v]}
    flag: {type: bool}
  profiles:
    smoke: {alpha: 0.1, n: 1, method: a, xs: [0.5], names: [u], flag: true}
    cpu: {alpha: 0.4, n: 2, method: b, xs: [0.5, 0.25], names: [u, v], flag: false}
    gpu: {alpha: 0.4, n: 10, method: b, xs: [0.5], names: [v], flag: false}
"""


@pytest.fixture
def yml(tmp_path):
    path = tmp_path / "profiles.yml"
    path.write_text(PROFILE_YML)
    return path


def test_profile_values_and_defaults(yml):
    assert params.profile_values("nb", "smoke", yml)["alpha"] == 0.1
    profile, values = params.resolve("nb", {"profile": "cpu", "alpha": None, "n": 5}, yml)
    assert profile == "cpu" and values["alpha"] == 0.4 and values["n"] == 5


def test_default_profile_is_cpu(yml):
    profile, values = params.resolve("nb", {}, yml)
    assert profile == "cpu" and values["method"] == "b"


@pytest.mark.parametrize(
    "name,value,fragment",
    [
        ("alpha", 1.5, "out of range"),
        ("alpha", "x", "not a number"),
        ("n", 2.5, "not an integer"),
        ("n", True, "not an integer"),
        ("method", "c", "one of 'a', 'b'"),
        ("xs", [], "too few"),
        ("xs", [0.2, 3.0], "out of range"),
        ("names", ["w"], "unknown choice"),
        ("flag", "yes", "not a bool"),
        ("alpha", float("nan"), "not finite"),
    ],
)
def test_bad_values_name_parameter_value_and_valid_set(yml, name, value, fragment):
    with pytest.raises(params.ParameterError) as err:
        params.resolve("nb", {name: value}, yml)
    msg = str(err.value)
    assert f"parameter {name}={value!r} is not valid" in msg and fragment in msg


def test_unknown_parameter_is_an_error_listing_valid_names(yml):
    with pytest.raises(params.ParameterError, match=r"unknown parameter\(s\) 'beta'.*alpha, n, method"):
        params.resolve("nb", {"beta": 1}, yml)


def test_unknown_profile(yml):
    with pytest.raises(params.ParameterError, match="valid profiles: smoke, cpu, gpu"):
        params.resolve("nb", {"profile": "tpu"}, yml)


def test_profile_must_set_every_parameter(tmp_path):
    path = tmp_path / "p.yml"
    path.write_text(PROFILE_YML.replace("smoke: {alpha: 0.1, ", "smoke: {"))
    with pytest.raises(params.ParameterError, match="missing \\['alpha'\\]"):
        params.profile_values("nb", "smoke", path)


def test_check_fills_from_the_profile_reads_the_namespace_only_and_ignores_kernel_names(yml):
    import math

    ns = {"profile": "smoke", "alpha": None, "n": 3, "method": None, "xs": None, "names": None, "flag": None,
          "In": [], "Out": {}, "_": None, "math": math, "get_ipython": print}
    before = dict(ns)
    P = params.check("nb", ns, yml)
    assert P.alpha == 0.1 and P.n == 3 and P.overrides == {"n": 3}
    assert ns == before  # the notebook's globals are not written: a chapter reads P.<name> only
    with pytest.raises(AttributeError):
        P.nonexistent


def test_check_rejects_names_injected_by_papermill(yml):
    ns = {"profile": "cpu", "alpha": None, "gamma": 0.3}
    with pytest.raises(params.ParameterError, match="'gamma'"):
        params.check("nb", ns, yml)


def test_parse_cli_value():
    assert params.parse_cli_value("0.2") == 0.2
    assert params.parse_cli_value("[1, 2]") == [1, 2]
    assert params.parse_cli_value("true") is True
    assert params.parse_cli_value("ship") == "ship"
