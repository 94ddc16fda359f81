"""Layer 6, studies: pre-registered designs and their tests (``design``, ``confirmatory``), cluster sweeps
(``sweep``) and cost plans (``plan``)."""
