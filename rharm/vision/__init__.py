"""Layer 3, images: data -> augment -> models/losses -> train (SimCLR, SimSiam, SDCLR) -> features.

Imports only :mod:`rharm.core` and :mod:`rharm.store`; knows nothing of harm measures, studies or pages.
"""
