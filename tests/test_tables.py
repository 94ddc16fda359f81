import numpy as np
import pandas as pd
import pytest

from rharm.page import tables


def _df():
    return pd.DataFrame({"TE": [-0.123456, -0.00001, np.nan], "n": [1200, 3, 40], "ok": [True, False, True]},
                        index=pd.Index(["cat", "dog", "mean"], name="minority"))


def test_significant_digits_no_negative_zero_and_nan_dash():
    t = tables.show(_df(), index="minority")
    assert list(t.text.columns) == ["minority", "TE", "n", "ok"]
    assert t.text["TE"].tolist() == ["-0.123", "0", "–"]
    assert t.text["n"].tolist() == ["1,200", "3", "40"] and t.text["ok"].tolist() == ["yes", "no", "yes"]


def test_index_dropped_unless_named_and_units_in_header():
    t = tables.show(_df(), units={"TE": "accuracy"}, rename={"TE": "total effect"})
    assert list(t.text.columns) == ["total effect (accuracy)", "n", "ok"]
    html = t.to_html()
    assert "padding" in html and "<th" in html and "minority" not in html


def test_column_decimals_follow_magnitude():
    assert tables.column_decimals(pd.Series([2.678, 1.2]), 3) == 2
    assert tables.column_decimals(pd.Series([0.0123, 0.001]), 2) == 3
    assert tables.column_decimals(pd.Series([1234.5]), 3) == 0


def test_bad_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="units names \\['nope'\\]"):
        tables.show(_df(), units={"nope": "s"})
    with pytest.raises(ValueError, match="digits=0"):
        tables.show(_df(), digits=0)


def test_plural():
    assert tables.plural(1, "seed") == "1 seed" and tables.plural(3, "seed") == "3 seeds"
    assert tables.plural(2, "split seed") == "2 split seeds"


def test_provenance_ends_with_the_command_that_rebuilds_the_page():
    from rharm.page import provenance

    rec = {"notebook": "theory", "profile": "cpu", "overrides": {"alpha": 0.2, "method": "simclr"}}
    assert provenance.rebuild_command(rec) == "rharm run theory --profile cpu -p alpha 0.2 -p method simclr"
    assert provenance.rebuild_command({**rec, "overrides": {}}) == "rharm run theory --profile cpu"


def test_scientific_columns():
    t = tables.show(pd.DataFrame({"grad": [3.2e-9, 1.1e-8]}), scientific=["grad"], digits=2)
    assert t.text["grad"].tolist() == ["3.2e-09", "1.1e-08"]


def test_headers_in_words_and_text_cells_wrap():
    df = pd.DataFrame({"TE_lo": [-0.0004, 0.2], "p_adj": [0.01, 0.5], "rh_seed_mean": [1.0, 0.9],
                       "kind": ["a long text cell", "b"]})
    t = tables.show(df)
    assert list(t.text.columns) == ["TE lower", "p adjusted", "RH seed mean", "kind"]
    assert t.text["TE lower"].tolist()[0] == "0"  # never "-0.00"
    html = t.to_html()
    assert "white-space:nowrap'>0.200<" in html.replace(" ", "") or "nowrap" in html
    assert "white-space:normal'>a long text cell<" in html


def test_provenance_parameters_are_formatted_and_hide_local_paths():
    from rharm.page import provenance

    text = provenance.format_parameters({"pi1": [1 / 3, 1 / 6], "alpha": 0.4, "path": "/home/me/data/bios.pkl",
                                         "method": "simclr", "seeds": 3})
    assert text == "pi1 = [0.3333, 0.1667]; alpha = 0.4; path = …/bios.pkl; method = simclr; seeds = 3"


def test_publish_returns_a_path_that_displays_as_nothing():
    from pathlib import Path

    from rharm.page import headline

    p = headline._Unshown("/x/book/cpu/theory.json")
    assert p == Path("/x/book/cpu/theory.json") and isinstance(p, Path)
    from IPython.core.interactiveshell import InteractiveShell

    assert InteractiveShell.instance().display_formatter.format(p) == ({}, {})
