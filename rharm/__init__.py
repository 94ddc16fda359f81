"""rharm: representation and allocation harms in contrastive learning.

The companion package of the rharm compendium, which reproduces and extends Maity, Agarwal, Yurochkin and Sun,
"An Investigation of Representation and Allocation Harms in Contrastive Learning" (ICLR 2024, arXiv 2310.01583).
"""

__version__ = "0.1.0"


def __getattr__(name):
    # rharm.audit(...) without importing numpy/pandas at `import rharm`; the module rharm.audit is itself
    # callable (it calls rharm.audit.audit), so the name means the same whether or not the submodule was imported
    if name == "audit":
        import importlib

        return importlib.import_module(".audit", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
