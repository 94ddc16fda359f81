"""The book's own tooling, apart from the science: the papermill runner (:mod:`rharm.book.runner`), the ``rharm``
command line (:mod:`rharm.book.cli`), the offline Vega Sphinx extension (:mod:`rharm.book.sphinx_vega`) and the
headless-Chromium page check (:mod:`rharm.book.browser_check`).

They need the book stack (papermill, jupytext, jupyter-book); the science core (training, metrics, mediation,
theory, probes) imports without it, so a GPU machine with only torch and scikit-learn can run it.
"""
