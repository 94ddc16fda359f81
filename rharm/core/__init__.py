"""Layer 1, the ground floor: plain helpers every other layer may use and that import no other layer.

``paths`` (where files live), ``common`` (checks, hashing, number formatting), ``runtime`` (threads, offline mode,
precision), ``schema`` (the vocabulary of classes and groups), ``params`` (profiles and parameter validation),
``reference`` (the paper's published numbers) and ``sampling`` (the underrepresentation draw).
"""
