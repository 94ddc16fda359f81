"""Layer 3, text: sentences (Bias in Bios or its synthetic stand-in) -> encoder -> SimCSE training -> embeddings.

Imports only :mod:`rharm.core` and :mod:`rharm.store`; knows nothing of harm measures, studies or pages.
"""
