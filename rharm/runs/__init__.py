"""Layer 5, runs: train a model (or fetch it from the result store) and measure it; one module per modality.

``images`` (a grid of SimCLR/SimSiam/SDCLR runs on an image dataset) and ``text`` (SimCSE runs on sentences).
"""
