"""Layer 4, the harm measures: statistics over seeds, the linear probe, representation harm (RH), mediation of
allocation harm, and the audit of any encoder's embeddings.

Works on features (arrays or tensors); imports no training code, no study and no page.
"""
