"""Sphinx extension: the book's reading aids that no page has to write by hand.

Listed in ``_config.yml`` under ``sphinx.extra_extensions``.

* **Source of each page.** Under the title of every page a line (and the first entry of the theme's download menu)
  links to the file a reader would edit: for an
  executed chapter (``<profile>/<name>``) its jupytext source ``notebooks/<name>.py`` (the ``.ipynb`` beside it and
  the executed page are generated from it), for a prose page ``book/<page>.md``. The address is built from the one
  repository setting of ``_config.yml`` (``repository: url`` and ``branch``, which Jupyter Book passes to the
  theme as ``repository_url`` / ``repository_branch``).
* **Glossary links from first use.** The first use of each glossary term on a page (:data:`TERMS`: "RH", "TE",
  "Holm", "noise floor", ...) becomes a link to its entry on the Glossary page. Code, math, titles, links and
  tables are left alone. Pages without a ``glossary`` document in the book are untouched.
"""

from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from sphinx import addnodes

#: glossary term -> the pattern of its uses in prose (whole words; case as written in the book)
TERMS: dict[str, str] = {
    "RH": r"\bRH\b",
    "GRH": r"\bGRH\b",
    "TE": r"\bTE\b",
    "NIE": r"\bNIE\b",
    "NDE": r"\bNDE\b",
    "Holm": r"\bHolm\b",
    "Noise floor": r"\b[Nn]oise floor\b",
    "Pre-registration": r"\b[Pp]re-regist(?:ration|ered)\b",
    "Allocation harm": r"\b[Aa]llocation harm\b",
    "Underrepresentation": r"\b[Uu]nderrepresentation\b",
    "t-interval on log RH over paired seeds": r"\bt-interval (?:of|on) (?:the )?(?:per-seed )?log",
    "Bootstrap interval": r"\bbootstrap interval\b",
    "Fieller interval": r"\bFieller interval\b",
}

GLOSSARY_DOC = "glossary"
#: pages that never get glossary links (the glossary itself, indices)
_NO_LINKS = {GLOSSARY_DOC, "bibliography", "genindex", "search", "py-modindex"}
# nodes whose text is not prose: nothing inside them is linked
_SKIP = (nodes.literal, nodes.literal_block, nodes.math, nodes.math_block, nodes.title, nodes.reference,
         nodes.raw, nodes.table, nodes.target, nodes.comment, nodes.term, addnodes.pending_xref,
         addnodes.desc_signature, nodes.citation_reference)


def _skipped(node: nodes.Node) -> bool:
    parent = node.parent
    while parent is not None:
        if isinstance(parent, _SKIP):
            return True
        if isinstance(parent, nodes.Element) and "cell_input" in parent.get("classes", []):
            return True
        parent = parent.parent
    return False


def _link_first_uses(doctree: nodes.document, docname: str) -> int:
    """Turn the first use of each glossary term in ``doctree`` into a term reference; returns how many."""
    todo = dict(TERMS)
    linked = 0
    for text in list(doctree.findall(nodes.Text)):
        if not todo:
            break
        if not isinstance(text.parent, (nodes.paragraph, nodes.strong, nodes.emphasis, nodes.inline,
                                        nodes.list_item)) or _skipped(text):
            continue
        source = str(text)
        hits = sorted((m.start(), m.end(), term) for term, pat in todo.items()
                      for m in [re.search(pat, source)] if m)
        if not hits:
            continue
        pieces, pos = [], 0
        for start, end, term in hits:
            if start < pos:
                continue  # overlapping uses: the earlier one is linked, this term waits for a later use
            pieces.append(nodes.Text(source[pos:start]))
            ref = addnodes.pending_xref("", nodes.inline(source[start:end], source[start:end],
                                                         classes=["xref", "std", "std-term"]),
                                        refdomain="std", reftype="term", reftarget=term, refexplicit=True,
                                        refwarn=True, refdoc=docname)
            pieces.append(ref)
            pos = end
            del todo[term]
            linked += 1
        pieces.append(nodes.Text(source[pos:]))
        text.parent.replace(text, [p for p in pieces if not (isinstance(p, nodes.Text) and not str(p))])
    return linked


def source_path(docname: str, project_root: Path) -> str | None:
    """The repository path a reader edits to change page ``docname`` (None when there is none)."""
    parts = docname.split("/")
    if len(parts) == 2 and (project_root / "notebooks" / f"{parts[1]}.py").is_file():
        return f"notebooks/{parts[1]}.py"
    for suffix in (".md", ".rst"):
        if (project_root / "book" / f"{docname}{suffix}").is_file():
            return f"book/{docname}{suffix}"
    return None


def _repository(app) -> tuple[str | None, str]:
    opts = getattr(app.config, "html_theme_options", None) or {}
    url = (opts.get("repository_url") or "").rstrip("/") or None
    return url, opts.get("repository_branch") or "main"


def _project_root(app) -> Path:
    """The repository root: the folder above the book that holds ``notebooks/`` (or the book's parent)."""
    srcdir = Path(app.srcdir).resolve()
    for cand in (srcdir.parent, *srcdir.parents):
        if (cand / "notebooks").is_dir() or (cand / ".git").exists():
            return cand
    return srcdir.parent


def _doctree_read(app, doctree: nodes.document) -> None:
    docname = app.env.docname
    if docname not in _NO_LINKS and GLOSSARY_DOC in app.env.found_docs:
        _link_first_uses(doctree, docname)
    url, branch = _repository(app)
    path = source_path(docname, _project_root(app))
    if not path:
        return
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None or not section.children or not isinstance(section.children[0], nodes.title):
        return
    para = nodes.paragraph(classes=["rharm-source-link"])
    para += nodes.Text("Source of this page: ")
    if url:
        link = f"{url}/blob/{branch}/{path}"
        para += nodes.reference("", "", nodes.literal(path, path), refuri=link, internal=False)
    else:
        para += nodes.literal(path, path)
    if path.startswith("notebooks/"):
        para += nodes.Text(" (a jupytext notebook: edit it, and ")
        para += nodes.literal("rharm run", "rharm run")
        para += nodes.Text(" executes it into this page).")
    section.insert(1, para)


def _header_button(app, pagename, templatename, context, doctree) -> None:
    """Put the page's source file first in the theme's download menu (the executed .ipynb is not what one edits)."""
    url, branch = _repository(app)
    path = source_path(pagename, _project_root(app))
    if not (url and path):
        return
    for button in context.get("header_buttons", []):
        if button.get("label") == "download-buttons":
            button["buttons"].insert(0, {
                "type": "link", "url": f"{url}/blob/{branch}/{path}", "text": Path(path).name,
                "tooltip": "Source file of this page (edit this)", "icon": "fas fa-file-code",
                "label": "rharm-source-button"})


def setup(app):
    app.connect("doctree-read", _doctree_read)
    app.connect("html-page-context", _header_button, priority=900)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
