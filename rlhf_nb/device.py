"""The precision policy, in one place: which dtype weights get and whether training autocasts.

* On CUDA: bf16 (4-bit NF4 where a caller asks for it), training included.
* On a CPU that reports AMX-BF16 or AVX512-BF16 (``/proc/cpuinfo``): bf16 for models that do not train
  (sampling from a pretrained model, judges, feature extractors, degraders), because oneDNN runs bf16
  matmuls 2-7x faster than fp32 there. Models that train or carry a trained adapter stay fp32 and the
  trainers do not autocast: under bf16 a LoRA adapter's output is added to a base output that already sits
  on the bf16 grid, so a change smaller than half a unit in the last place is rounded away, and so is a
  merge into bf16 weights. A frozen model compared with models trained from it (``models.load(...,
  baseline=True)``, or ``models.baseline_of(model)`` for a model that also serves data at the fast precision)
  gets the training precision as well, so compared arms differ by training, not rounding.
  Measured on SmolLM2-135M (``benchmarks/throughput_bench.py`` and the notes of
  issue #12): an adapter trained 8 DPO steps in fp32 has an implied DPO margin of 1.87 read in fp32 and
  0.65 read under bf16 autocast, and DPO trained under bf16 reached a margin of 0.63 where fp32 reached
  1.80 (lr 5e-5; at 5e-6, 0.03-0.07 against 0.19).
* Any other CPU: fp32.

``precision`` is ``"auto"`` (the rule above), ``"bf16"`` or ``"fp32"``; an explicit ``bf16`` or ``fp32``
applies to training too. A notebook parameter, the ``RLHF_NB_PRECISION`` environment variable or
:func:`set_precision` set it, and :func:`describe` goes into every run's ``env.json``. The same settings give
the same numbers on the same machine (tested).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # pragma: no cover
    import torch

PrecisionName = Literal["auto", "bf16", "fp32"]
PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp32")
_requested: str | None = None  # set_precision(); else the environment; else "auto"


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (empty where ``/proc/cpuinfo`` cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_bf16() -> str | None:
    """The CPU's fast bf16 instruction set (``amx_bf16`` or ``avx512_bf16``), or None."""
    flags = cpu_flags()
    return next((f for f in ("amx_bf16", "avx512_bf16") if f in flags), None)


def set_precision(name: str | None) -> None:
    """Process-wide precision (``None`` returns to the environment / ``auto``)."""
    if name is not None and name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}")
    global _requested
    _requested = name


def requested() -> str:
    """The process setting: an explicit ``bf16``/``fp32`` from :func:`set_precision`, else ``RLHF_NB_PRECISION``,
    else ``auto`` (so a notebook left on ``auto`` follows the environment)."""
    name = _requested if _requested not in (None, "auto") else (os.environ.get("RLHF_NB_PRECISION") or "auto")
    if name not in PRECISIONS:
        raise ValueError(f"RLHF_NB_PRECISION={name!r} is not one of {', '.join(PRECISIONS)}")
    return name


@dataclass(frozen=True)
class Precision:
    """What a model on ``device`` gets: ``name`` for models that do not train, ``training`` for models that do
    (their weights, and whether the trainer autocasts to bf16)."""

    name: str  # "bf16" or "fp32" (resolved)
    device: str  # "cpu" or "cuda..."
    reason: str
    training: str = ""  # "bf16" or "fp32"; empty means the same as ``name``

    @property
    def train_bf16(self) -> bool:
        """Whether trainable models get bf16 (weights of their frozen parts, autocast in the trainer)."""
        return (self.training or self.name) == "bf16"

    @property
    def bf16(self) -> bool:
        return self.name == "bf16"

    def weight_dtype(self) -> torch.dtype:
        import torch

        return torch.bfloat16 if self.bf16 else torch.float32

    def training_dtype(self) -> torch.dtype:
        """Weights of a model that trains, carries a trained adapter, or is compared with one (fp32 unless the
        policy trains in bf16)."""
        import torch

        return self.weight_dtype() if self.train_bf16 else torch.float32

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast on this device (a no-op for fp32)."""
        import torch

        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast("cuda" if self.device.startswith("cuda") else "cpu", dtype=torch.bfloat16)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve(name: str | None = None, device: str | None = None) -> Precision:
    """The precision for ``device`` (default: this machine's) under ``name`` (default: the process setting)."""
    name = name or requested()
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}")
    device = device or default_device()
    if name != "auto":
        return Precision(name, device, "requested")
    if device.startswith("cuda"):
        return Precision("bf16", device, "CUDA")
    isa = cpu_bf16()
    if isa:
        return Precision("bf16", device, f"CPU has {isa}; models that train stay fp32 (bf16 rounds small LoRA "
                         "updates away)", training="fp32")
    return Precision("fp32", device, "CPU has no fast bf16 (no amx_bf16 / avx512_bf16)")


def describe() -> dict[str, Any]:
    """For ``env.json``: the requested and resolved precision, and why."""
    p = resolve()
    return {"requested": requested(), "resolved": p.name, "training": p.training or p.name, "device": p.device,
            "reason": p.reason, "cpu_bf16": cpu_bf16()}


def upcast_trainable(model: torch.nn.Module) -> int:
    """Give every trainable parameter an fp32 copy (the optimizer's master weights); returns how many moved.

    Frozen weights may stay bf16; anything the optimizer updates must not, or small updates vanish in
    bf16 rounding.
    """
    import torch

    moved = 0
    for param in model.parameters():
        if param.requires_grad and param.dtype in (torch.bfloat16, torch.float16):
            param.data = param.data.float()
            moved += 1
    return moved
