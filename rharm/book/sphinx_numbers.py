"""Sphinx extension: the book's tables are numbered as tables ("Table 3"), its charts as figures ("Figure 2").

Listed in ``_config.yml`` under ``sphinx.extra_extensions``. A chapter gives a chart or a table its number and its
caption through the cell's metadata, which myst-nb turns into a figure around the cell's output::

    # %% mystnb={"figure": {"name": "fig-mi-harm", "caption": "Harm left by each mitigation."}}
    # %% mystnb={"figure": {"name": "tab-mi-effects", "caption": "Harm, allocation and cost.", \
    #             "classes": "rharm-table", "caption_before": 1}}

(one line in the source; ``caption_before`` puts a table's caption above it)

and the prose refers to it with ``{numref}`fig-mi-harm```. A figure whose classes include ``rharm-table`` holds a
table (an HTML table of :mod:`rharm.page.tables`), so :class:`NumberTables` makes it a :class:`numbered_table`,
which Sphinx counts with the tables and ``{numref}`` calls "Table N" (``numfig_format`` in ``_config.yml``).
Figures and tables are numbered afresh on each page (:func:`number_per_page`): Figure 1 is a chapter's first chart.
"""

from __future__ import annotations

import re

from docutils import nodes
from sphinx.transforms import SphinxTransform

#: the figure class that marks a table
TABLE_CLASS = "rharm-table"


class numbered_table(nodes.figure):  # noqa: N801 - docutils node classes are lower case
    """A myst-nb figure that holds a table: numbered and referred to as a table."""


class NumberTables(SphinxTransform):
    """Figures of class :data:`TABLE_CLASS` become :class:`numbered_table` (same node, same ids and labels)."""

    default_priority = 200

    def apply(self, **kwargs) -> None:
        for node in list(self.document.findall(nodes.figure)):
            if TABLE_CLASS in node.get("classes", []) and type(node) is nodes.figure:
                node.__class__ = numbered_table  # keeps the object the document's ids and labels point at


# docutils' HTML writer opens <figcaption> at a figure's caption and closes it only at the figure's end (it expects
# the caption last), so a caption placed before its table would swallow the table: close it after the caption
_TABLE_FIGURE = re.compile(r'(<figure class="[^"]*\brharm-table\b[^"]*"[^>]*>\s*<figcaption>\s*<p>.*?</p>\n?)'
                           r'(.*?)</figcaption>\s*(</figure>)', re.S)


def caption_first(body: str) -> str:
    """``body`` with each table figure's caption closed before the table it captions."""
    return _TABLE_FIGURE.sub(lambda m: m.group(1) + "</figcaption>\n" + m.group(2) + m.group(3), body)


def _fix_page(app, pagename, templatename, context, doctree) -> None:
    if isinstance(context.get("body"), str):
        context["body"] = caption_first(context["body"])


def number_per_page(fignumbers: dict) -> dict:
    """Sphinx's figure numbers (``env.toc_fignumbers``: docname -> figtype -> id -> number), counted afresh on each
    page in reading order: the first chart of every chapter is Figure 1, its first table Table 1 (without a numbered
    table of contents Sphinx counts on across the whole book)."""
    return {doc: {figtype: {fid: (k + 1,) for k, (fid, _) in enumerate(sorted(ids.items(), key=lambda kv: kv[1]))}
                  for figtype, ids in types.items()}
            for doc, types in fignumbers.items()}


def _renumber(app, env) -> list[str]:
    if not env.config.numfig:
        return []
    env.toc_fignumbers = number_per_page(env.toc_fignumbers)
    return list(env.toc_fignumbers)  # the pages whose numbers this sets are written again


def _visit(self, node) -> None:
    self.visit_figure(node)


def _depart(self, node) -> None:
    self.depart_figure(node)


def setup(app):
    app.add_enumerable_node(numbered_table, "table", None, html=(_visit, _depart), latex=(_visit, _depart),
                            text=(_visit, _depart))
    app.add_transform(NumberTables)
    app.connect("html-page-context", _fix_page)
    app.connect("env-get-updated", _renumber, priority=900)  # after Sphinx's own numbering (priority 500)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
