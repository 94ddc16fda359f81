"""rharm: representation and allocation harms in contrastive learning.

The companion package of the rharm compendium, which reproduces and extends Maity, Agarwal, Yurochkin and Sun,
"An Investigation of Representation and Allocation Harms in Contrastive Learning" (ICLR 2024, arXiv 2310.01583).

The package is built in layers; a module imports only from its own layer or lower ones (``tests/test_layers.py``):

1. :mod:`rharm.core`: paths, checks, runtime, schema, parameters, the paper's numbers, the underrepresentation draw
2. :mod:`rharm.store`: the result store (files, keys, recipes and their canaries)
3. :mod:`rharm.vision` (images -> SimCLR/SimSiam/SDCLR features), :mod:`rharm.language` (sentences -> SimCSE
   embeddings), :mod:`rharm.theory` (the stochastic block model)
4. :mod:`rharm.harm`: statistics over seeds, the probe, RH, mediation, the audit
5. :mod:`rharm.runs`: train (or fetch) and measure, per modality
6. :mod:`rharm.study`: pre-registered designs and their tests, sweeps, plans
7. :mod:`rharm.page`: charts, tables, headline JSON, provenance, the audit's HTML
8. :mod:`rharm.report`: one summary per chapter section
9. :mod:`rharm.book`: the papermill runner and the ``rharm`` command line

Modules keep their earlier flat names as aliases (``rharm.train`` is :mod:`rharm.vision.train`), so code written
against them keeps working; importing one through its old name warns once with a ``DeprecationWarning``.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

__version__ = "0.1.0"

#: earlier flat module names -> their place in the layers
MOVED = {
    "common": "core.common",
    "paths": "core.paths",
    "runtime": "core.runtime",
    "schema": "core.schema",
    "params": "core.params",
    "reference": "core.reference",
    "data": "vision.data",
    "augment": "vision.augment",
    "models": "vision.models",
    "losses": "vision.losses",
    "mitigation": "vision.mitigation",
    "train": "vision.train",
    "engine": "vision.engine",
    "textdata": "language.data",
    "simcse": "language.simcse",
    "stats": "harm.stats",
    "probe": "harm.probe",
    "metrics": "harm.metrics",
    "mediation": "harm.mediation",
    "audit": "harm.audit",
    "testing": "harm.synthetic",
    "experiment": "runs.images",
    "text": "runs.text",
    "study": "study.design",
    "confirmatory": "study.confirmatory",
    "sweep": "study.sweep",
    "plan": "study.plan",
    "charts": "page.charts",
    "tables": "page.tables",
    "headline": "page.headline",
    "provenance": "page.provenance",
    "audit_report": "page.audit_html",
}


class _MovedLoader(importlib.abc.Loader):
    """Imports ``rharm.<old>`` as the module it moved to: the same module object, not a copy."""

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        old = module.__name__.split(".", 1)[1]
        new = f"rharm.{MOVED[old]}"
        warnings.warn(f"rharm.{old} moved to {new}; import it from there", DeprecationWarning, stacklevel=2)
        sys.modules[module.__name__] = importlib.import_module(new)  # the import system returns what is here


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.startswith("rharm.") and name.split(".", 1)[1] in MOVED:
            return importlib.util.spec_from_loader(name, _MovedLoader())
        return None


if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
    sys.meta_path.append(_MovedFinder())  # after the regular finders: a real module of that name always wins


def __getattr__(name):
    # ``from rharm import train`` and ``rharm.audit(...)`` without importing numpy/pandas at ``import rharm``; the
    # module rharm.harm.audit is itself callable (it calls rharm.harm.audit.audit)
    if name in MOVED:
        return importlib.import_module(f"rharm.{MOVED[name]}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
