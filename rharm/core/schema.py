"""The one schema of the parameters of a training run: type, allowed values and help, each written once.

The training code (:class:`rharm.vision.train.TrainConfig`, :func:`rharm.runs.images.run_grid`, the
underrepresentation of
:mod:`rharm.harm.stats`), the notebooks' ``profiles.yml`` (a parameter declared as ``{schema: <name>}``) and so the CLI
all validate a value with :func:`check`, and a bad value gets the same message everywhere, naming the parameter, the
value and what is allowed. Rules that involve several parameters (``ratio <= n_per_class``, a batch that fits the
training set, the classes of a dataset) are checked where all of them are known: ``rules`` in ``profiles.yml``
before a kernel starts, and :func:`rharm.runs.images.run_grid` before any training.

Only the standard library is imported.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from typing import Any

TYPES = ("int", "float", "str", "bool", "list[int]", "list[float]", "list[str]")


class ParameterError(ValueError):
    """A parameter has an unknown name or an invalid value."""


@dataclass(frozen=True)
class Spec:
    """What one parameter may be: ``type`` (one of :data:`TYPES`), a closed ``range`` for numbers (of each item for
    lists), ``choices``, and for lists ``min_len``."""

    name: str
    type: str
    help: str = ""
    range: tuple[float, float] | None = None
    choices: tuple | None = None
    min_len: int = 0

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ParameterError(f"parameter {self.name!r}: type {self.type!r} is not one of {', '.join(TYPES)}")

    def describe(self) -> str:
        parts = [self.type]
        if self.choices is not None:
            parts.append("one of " + ", ".join(map(repr, self.choices)))
        if self.range is not None:
            parts.append(f"in [{self.range[0]:g}, {self.range[1]:g}]")
        if self.min_len:
            parts.append(f"at least {self.min_len} item(s)")
        return "; ".join(parts)

    def error(self, value: Any, why: str = "") -> ParameterError:
        extra = f" ({why})" if why else ""
        return ParameterError(f"parameter {self.name}={value!r} is not valid{extra}; expected {self.describe()}"
                              + (f" — {self.help}" if self.help else ""))

    def validate(self, value: Any) -> Any:
        """``value`` converted to this type (an integral float to int, an int to float, a tuple to a list), or raise
        :class:`ParameterError`."""
        if self.type.startswith("list["):
            if isinstance(value, tuple):
                value = list(value)
            if not isinstance(value, list):
                raise self.error(value, "not a list")
            if len(value) < self.min_len:
                raise self.error(value, "too few items")
            return [self._scalar(self.type[5:-1], v, shown=value) for v in value]
        return self._scalar(self.type, value, shown=value)

    def _scalar(self, base: str, value: Any, *, shown: Any) -> Any:
        if base == "bool":
            if isinstance(value, bool) or type(value).__name__ == "bool_":
                return bool(value)
            raise self.error(shown, "not a bool")
        if base == "int":
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise self.error(shown, "not an integer")
            if not isinstance(value, numbers.Integral):
                if not (math.isfinite(value) and float(value).is_integer()):
                    raise self.error(shown, "not an integer")
            value = int(value)
        elif base == "float":
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise self.error(shown, "not a number")
            value = float(value)
            if not math.isfinite(value):
                raise self.error(shown, "not finite")
        elif base == "str" and not isinstance(value, str):
            raise self.error(shown, "not a string")
        if self.range is not None and base in ("int", "float") and not self.range[0] <= value <= self.range[1]:
            raise self.error(shown, "out of range")
        if self.choices is not None and value not in self.choices:
            raise self.error(shown, "unknown choice")
        return value

    def narrowed(self, **changes: Any) -> "Spec":
        """This spec with ``changes`` (type, range, choices, min_len, help) that may only narrow what it allows:
        an int within a float, a range inside the range, choices among the choices, a longer ``min_len``."""
        new = replace(self, **changes)
        ok = (new.type == self.type or (self.type, new.type) in (("float", "int"), ("list[float]", "list[int]")))
        if self.range is not None:
            ok = ok and new.range is not None and self.range[0] <= new.range[0] <= new.range[1] <= self.range[1]
        if self.choices is not None:
            ok = ok and new.choices is not None and set(new.choices) <= set(self.choices)
        ok = ok and new.min_len >= self.min_len
        if not ok:
            raise ParameterError(f"parameter {self.name!r}: {changes} widens the schema's {self.describe()}; a "
                                 "declaration may only narrow it")
        return new


_SEED_RANGE = (0, 1_000_000)

#: Every run parameter, once. ``choices`` of class names and the upper bound of ``n_per_class`` depend on the
#: dataset: :func:`rharm.runs.images.run_grid` checks them against :func:`rharm.vision.data.dataset_info`.
SPECS: dict[str, Spec] = {s.name: s for s in (
    Spec("method", "str", "contrastive method (paper: simclr; simsiam is its SimSiam variant)",
         choices=("simclr", "simsiam")),
    Spec("backbone", "str", "encoder; the paper's SimCLR uses resnet34", choices=("small_cnn", "resnet18", "resnet34")),
    Spec("init", "str", "imagenet = torchvision IMAGENET1K_V1 weights as the official code loads, read from a local "
         "file ($RHARM_IMAGENET_WEIGHTS or the torch hub cache), never downloaded", choices=("random", "imagenet")),
    Spec("epochs", "int", "contrastive training epochs (paper: 500)", range=(1, 5000)),
    Spec("batch_size", "int", "images per step, two views each, drop_last (paper: 512)", range=(2, 8192)),
    Spec("lr", "float", "SGD learning rate (paper: 0.6 = 0.3 x 512/256)", range=(1.0e-6, 10.0)),
    Spec("momentum", "float", "SGD momentum (paper: 0.9)", range=(0.0, 1.0)),
    Spec("weight_decay", "float", "SGD weight decay (paper: 1e-6)", range=(0.0, 0.1)),
    Spec("temperature", "float", "NT-Xent temperature (paper: 0.5)", range=(0.01, 10.0)),
    Spec("nesterov", "bool", "Nesterov momentum (the paper's SimCLR code: true; SimSiam: false)"),
    Spec("compile", "bool", "run the model under torch.compile (CUDA; the first steps pay the compilation)"),
    Spec("clamp", "bool", "clamp similarities at 1e-7 inside NT-Xent, as the official code does"),
    Spec("engine", "str", "single = one model per job (today's engine); batched = the seeds of a grid point trained "
         "together in one job (rharm.vision.engine; equal to single runs to floating-point rounding, a different "
         "store key)",
         choices=("single", "batched")),
    Spec("schedule", "str", "cosine lr -> lr/1000 per step; official = the code's LambdaLR quirk (lr*lr -> lr*1e-3)",
         choices=("cosine", "official")),
    Spec("augment", "str", "augmentation (rharm.vision.augment.SPECS); simclr_grey for greyscale images",
         choices=("simclr", "simsiam", "simclr_grey")),
    Spec("precision", "str", "training precision; auto = bf16 autocast on CUDA, fp32 on CPU (the resolved one is in "
         "the store key and the provenance)", choices=("auto", "fp32", "bf16", "fp16")),
    Spec("deterministic", "bool", "deterministic kernels (exact resume; CUDA needs CUBLAS_WORKSPACE_CONFIG=:4096:8); "
         "false = cuDNN benchmark, faster on a GPU"),
    Spec("checkpoint_every", "int", "epochs between checkpoints (one file per run, replaced; 0 = only when "
         "interrupted)", range=(0, 5000)),
    Spec("knn_every", "int", "epochs between k-NN monitor evaluations (0 = never)", range=(0, 5000)),
    Spec("knn_k", "int", "neighbours of the k-NN monitor", range=(1, 100000)),
    Spec("seed", "int", "model seed (init, batch order, augmentation, minority draw)", range=_SEED_RANGE),
    Spec("seeds", "list[int]", "model seeds (init, batch order, augmentation, minority draw)", range=_SEED_RANGE,
         min_len=1),
    Spec("ratio", "float", "the minority keeps 1/ratio of its pool images (paper: 100; 20 as a variant)",
         range=(1, 1.0e6)),
    Spec("n_per_class", "int", "per-class training pool (the dataset's whole train split at most)",
         range=(1, 1.0e6)),
    Spec("threads", "int", "torch CPU threads while training (0 = leave as is; 1 is fastest on a shared 2-core "
         "machine)", range=(0, 256)),
    Spec("workers", "int", "runs trained at once in separate processes (execution only: results are identical to "
         "workers = 1)", range=(1, 64)),
    Spec("rebalance", "bool", "re-balancing: each minority image repeated ratio times per epoch"),
    Spec("minority_weight", "float", "weight of the minority's anchors in NT-Xent (1 = unchanged)",
         range=(1.0e-6, 1.0e6)),
    Spec("sdclr_prune", "float", "SDCLR's pruned fraction of the backbone (0 = plain SimCLR)", range=(0.0, 0.99)),
    Spec("warm_start", "bool", "every run starts from the model pre-trained on the other classes"),
)}


def spec(name: str) -> Spec:
    """The schema's :class:`Spec` of ``name``."""
    try:
        return SPECS[name]
    except KeyError:
        raise ParameterError(f"{name!r} is not a parameter of the schema; known: {', '.join(SPECS)}") from None


def check(name: str, value: Any) -> Any:
    """``value`` validated by the schema's spec of ``name`` (converted to its type), or :class:`ParameterError`."""
    return spec(name).validate(value)
