
from rharm.core import paths
from rharm.page import provenance


def test_roots_follow_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RHARM_DATA_ROOT", str(tmp_path / "d"))
    monkeypatch.setenv("RHARM_RESULTS_ROOT", str(tmp_path / "r"))
    monkeypatch.setenv("RHARM_CACHE_ROOT", str(tmp_path / "c"))
    assert paths.data_root() == tmp_path / "d"
    assert paths.results_root() == tmp_path / "r"
    assert paths.cache_root() == tmp_path / "c"


def test_project_root_override_moves_everything(monkeypatch, tmp_path):
    for var in ("RHARM_RESULTS_ROOT", "RHARM_BOOK_DIR", "RHARM_CACHE_ROOT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RHARM_PROJECT_ROOT", str(tmp_path))
    assert paths.repo_root() == tmp_path
    assert paths.results_root() == tmp_path / "results"
    assert paths.book_dir() == tmp_path / "book"
    assert paths.profiles_file() == tmp_path / "profiles.yml"


def test_provenance_record_has_what_a_page_must_state():
    class P:
        notebook, profile, values, overrides = "x", "cpu", {"a": 1}, {}
        started = 0.0

    rec = provenance.record(P)
    for key in ("profile", "parameters", "git_commit", "hardware", "versions", "wall_time_s"):
        assert key in rec
    assert rec["versions"]["torch"] != "not installed"
    html = provenance.to_html(rec)
    assert "cpu" in html and "wall time" in html and rec["hardware"]["cpu"].split()[0] in html
