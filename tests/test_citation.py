"""The repository address is one setting (``_config.yml``: ``repository: url``): README.md, CITATION.cff and the
book's links must agree with it; the citation file and the bibliography must be well formed."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _repository() -> tuple[str, str]:
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    url = cfg["repository"]["url"].rstrip("/")
    m = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+)", url)
    assert m, f"_config.yml repository url {url!r} is not a GitHub repository address"
    return url, f"https://{m.group(1)}.github.io/{m.group(2)}/"


def test_citation_file_names_the_configured_repository():
    url, pages = _repository()
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert cff["repository-code"].rstrip("/") == url
    assert cff["url"] == pages
    assert cff["license"] == "MIT" and cff["authors"] and cff["title"] and cff["message"]
    assert any("2310.01583" in str(r) for r in cff.get("references", []))


def test_readme_names_the_configured_repository_and_no_placeholder():
    url, pages = _repository()
    readme = (ROOT / "README.md").read_text()
    assert url in readme and pages in readme
    assert "<owner>" not in readme and "<repository>" not in readme
    other = {u.rstrip("/.") for u in re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", readme)} - {url}
    assert not other, f"README names another repository: {other}"
    assert "## How to cite" in readme and "CITATION.cff" in readme


def test_license_file_matches_pyproject():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert 'license = {text = "MIT"}' in (ROOT / "pyproject.toml").read_text()


def test_bibliography_has_the_cited_works():
    import pybtex.database

    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    files = cfg["bibtex_bibfiles"]
    bib = pybtex.database.parse_file(str(ROOT / "book" / files[0]))
    keys = set(bib.entries)
    for key in ("maity2024harms", "chen2020simclr", "chen2021simsiam", "gao2021simcse", "jiang2021sdclr",
                "levy2021bug", "dearteaga2019bios", "holm1979", "pearl2001effects", "imai2010mediation",
                "xiao2017fashion", "krizhevsky2009cifar"):
        assert key in keys, key
    toc = (ROOT / "_toc.yml").read_text()
    assert "file: bibliography" in toc and "file: glossary" in toc


def test_source_links_point_at_the_jupytext_sources(tmp_path):
    from rharm.book import sphinx_links

    assert sphinx_links.source_path("cpu/theory", ROOT) == "notebooks/theory.py"
    assert sphinx_links.source_path("smoke/audit", ROOT) == "notebooks/audit.py"
    assert sphinx_links.source_path("intro", ROOT) == "book/intro.md"
    assert sphinx_links.source_path("cpu/no_such_chapter", ROOT) is None


def test_first_use_of_each_glossary_term_links_to_it():
    from docutils import nodes
    from docutils.frontend import get_default_settings
    from docutils.parsers.rst import Parser
    from docutils.utils import new_document
    from sphinx import addnodes

    from rharm.book import sphinx_links

    doc = new_document("page", get_default_settings(Parser))
    doc += nodes.title(text="RH in the title is left alone")
    doc += nodes.paragraph(text="RH falls; the noise floor is wide. Again RH and TE.")
    doc += nodes.literal_block(text="NIE in code is left alone")
    assert sphinx_links._link_first_uses(doc, "page") == 3
    refs = list(doc.findall(addnodes.pending_xref))
    assert [r["reftarget"] for r in refs] == ["RH", "Noise floor", "TE"]
    assert all(r["reftype"] == "term" for r in refs)
    assert "RH in the title" in doc[0].astext() and not list(doc[0].findall(addnodes.pending_xref))


def test_math_in_words_for_the_search_snippets():
    from rharm.book.sphinx_search import label_math, tex_to_text

    cases = {r"\(t\)": "t", r"\(\pi_1 \to 0\)": "π1 → 0", r"\(\log \mathrm{RH}\)": "log RH",
             r"\(\mathrm{RH}(i, j) &lt; 1\)": "RH(i, j) < 1", r"\(\pi_1=10^{-6}\)": "π1=10^(-6)",
             r"\(\pi = (\pi_1, \tfrac{1-\pi_1}{2}, \tfrac{1-\pi_1}{2})\)": "π = (π1, (1-π1)/2, (1-π1)/2)",
             r"\(\mathrm{SD}_\text{seeds}\)": "SD_seeds", r"\(h_1^\star\)": "h1*",
             r"\(n_1 \in \{4, 32\}\)": "n1 ∈ {4, 32}",
             r"\[\begin{aligned} a &= \frac{1}{\tau} \\ b &\ge 0 \end{aligned}\]": "a = 1/τ b ≥ 0"}
    for tex, words in cases.items():
        assert tex_to_text(tex) == words, (tex, tex_to_text(tex))
    body = '<p>a <span class="math notranslate nohighlight">\\(\\pi_1 \\to 0\\)</span> b</p>'
    assert label_math(body) == ('<p>a <span class="math notranslate nohighlight" data-text="π1 → 0">'
                                '\\(\\pi_1 \\to 0\\)</span> b</p>')
    assert label_math(label_math(body)) == label_math(body)


def test_numbered_anchors_are_found():
    from rharm.book.sphinx_search import numbered_anchors

    page = ('<a href="bibliography.html#id3">x</a><a href="#cite-maity2024harms">y</a><section id="id2">'
            '<section id="the-bottom-line"><a href="#id12">z</a>')
    assert numbered_anchors(page) == ["(this page)#id12", "bibliography.html#id3", "section #id2"]
    assert numbered_anchors('<a href="#fig-mi-harm">Figure 2</a>') == []


def test_the_configuration_names_the_bibliography_anchors_and_numbers_figures():
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]
    assert config["config"]["bibtex_cite_id"] == "cite-{key}"
    assert config["config"]["numfig"] and config["config"]["numfig_format"]["table"] == "Table %s"
    assert {"rharm.book.sphinx_search", "rharm.book.sphinx_numbers"} <= set(config["extra_extensions"])


def test_a_table_caption_is_closed_before_its_table():
    from rharm.book.sphinx_numbers import caption_first

    body = ('<figure class="rharm-table align-default" id="tab-x">\n<figcaption>\n<p><span>Table 1 </span></p>\n'
            '<div class="output"><table></table></div></figcaption>\n</figure>')
    assert caption_first(body) == ('<figure class="rharm-table align-default" id="tab-x">\n<figcaption>\n<p><span>'
                                   'Table 1 </span></p>\n</figcaption>\n<div class="output"><table></table></div>'
                                   '</figure>')
    chart = ('<figure class="align-default" id="fig-x">\n<div>chart</div><figcaption>\n<p>c</p>\n</figcaption>\n'
             '</figure>')
    assert caption_first(chart) == chart


def test_figures_and_tables_are_numbered_afresh_on_each_page():
    from rharm.book.sphinx_numbers import number_per_page

    book_wide = {"cpu/a": {"figure": {"fig-a1": (1,), "fig-a2": (2,)}, "table": {"tab-a": (1,)}},
                 "cpu/b": {"figure": {"fig-b2": (4,), "fig-b1": (3,)}, "table": {"tab-b": (2,)}}}
    per_page = number_per_page(book_wide)
    assert per_page["cpu/a"] == book_wide["cpu/a"]
    assert per_page["cpu/b"] == {"figure": {"fig-b1": (1,), "fig-b2": (2,)}, "table": {"tab-b": (1,)}}
