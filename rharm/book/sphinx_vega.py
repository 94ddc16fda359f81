"""Sphinx extension: serve vega-embed from the book itself, so Altair charts draw with no network.

Listed in ``_config.yml`` under ``sphinx.extra_extensions``. At build time it asks vl-convert for its JavaScript
bundle of vega, vega-lite and vega-embed (shipped inside the ``vl-convert-python`` wheel, so nothing is downloaded),
wraps it in a function scope so its top-level names cannot clash with Sphinx's own globals, exposes only
``window.rharmVegaEmbed`` (:func:`rharm.page.charts.vega_bundle`), writes it to ``_static/`` and adds it to every page. :mod:`rharm.page.charts` emits the
matching ``<div>`` and call.
"""

from __future__ import annotations

import os
from pathlib import Path

from rharm.page.charts import vega_bundle

BUNDLE_NAME = "rharm-vega-embed.js"


def _write_bundle(app, exc) -> None:
    if exc is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / BUNDLE_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(vega_bundle())
    os.replace(tmp, target)


def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    """Drop repeated script entries: sphinx-thebe adds its ``const THEBE_JS_URL`` block once per environment read,
    and a second copy is a console error ("already declared") on every page."""
    seen, kept = set(), []
    for js in context.get("script_files", []):
        # the copies differ only in filename None vs "" (one from the registry, one from the builder)
        key = (getattr(js, "filename", str(js)) or "", repr(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    if "script_files" in context:
        context["script_files"] = kept


def setup(app):
    app.add_js_file(BUNDLE_NAME)
    app.connect("build-finished", _write_bundle)
    app.connect("html-page-context", _dedupe_scripts)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
