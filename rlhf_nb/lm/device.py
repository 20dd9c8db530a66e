"""The precision policy, in one place: which dtype weights get and whether training autocasts.

* On CUDA: bf16 (4-bit NF4 where a caller asks for it), training included.
* On a CPU that reports AMX-BF16 or AVX512-BF16 (``/proc/cpuinfo``): bf16 for models that do not train
  (sampling from a pretrained model, judges, feature extractors, degraders), because oneDNN runs bf16
  matmuls 2-7x faster than fp32 there. Models that train or carry a trained adapter keep fp32 weights, are read
  (sampled, scored) in fp32, and train in ``mixed`` precision: the trl trainers autocast to bf16 and every LoRA
  layer adds its adapter's output in fp32 (:func:`keep_adapter_sums_fp32`). Under plain bf16 a LoRA adapter's
  output is added to a base output that already sits on the bf16 grid, so a change smaller than half a unit in
  the last place is rounded away, and so is a merge into bf16 weights. A frozen model compared with models
  trained from it (``models.load(..., baseline=True)``, or ``models.baseline_of(model)`` for a model that also
  serves data at the fast precision) gets the training precision as well, so compared arms differ by training,
  not rounding.
  Measured on SmolLM2-135M, 8 DPO steps at lr 5e-5, two seeds (``benchmarks/train_precision.py``): the adapter
  trained in fp32 has an implied DPO margin of 1.570 / 1.563 read in fp32 and 0.52 read under bf16 autocast. Trained
  under plain bf16 the trainer saw margins of 0.63-0.64, yet the adapter read in fp32 has 1.562 / 1.553: the
  rounding lives in the forward pass, not in what the adapter learns. Trained in ``mixed`` the trainer sees
  1.70 / 1.65, the adapter reads 1.570 / 1.562 in fp32, and training runs 1.73x as fast as fp32 (plain bf16 1.80x).
  PPO's own loop (:mod:`rlhf_nb.train.ppo`) does not autocast: it trains in fp32.
* Any other CPU: fp32.

``precision`` is ``"auto"`` (the rule above), ``"bf16"``, ``"mixed"`` or ``"fp32"``. An explicit ``bf16`` or
``fp32`` applies to training too (``bf16``: frozen weights of trained models in bf16 as well). ``mixed`` asks for
the CPU rule above on any fast-bf16 device. A notebook parameter, the ``RLHF_NB_PRECISION`` environment variable or
:func:`set_precision` set it, and :func:`describe` goes into every run's ``env.json``. The same settings give
the same numbers on the same machine (tested).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # pragma: no cover
    import torch

PrecisionName = Literal["auto", "bf16", "mixed", "fp32"]
PRECISIONS: tuple[str, ...] = ("auto", "bf16", "mixed", "fp32")
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
    training: str = ""  # "bf16", "mixed" or "fp32"; empty means the same as ``name``

    @property
    def train_bf16(self) -> bool:
        """Whether trainers autocast to bf16 (``bf16``: frozen weights in bf16 too; ``mixed``: weights stay fp32)."""
        return (self.training or self.name) in ("bf16", "mixed")

    @property
    def fp32_adapter_sums(self) -> bool:
        """Whether training adds each LoRA adapter's output to its layer's output in fp32 (``mixed``)."""
        return self.training == "mixed"

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

        return torch.bfloat16 if (self.training or self.name) == "bf16" else torch.float32

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
    if name == "mixed":
        if device.startswith("cuda") or cpu_bf16():
            return Precision("bf16", device, "requested: training autocasts to bf16 with fp32 weights and fp32 adapter "
                             "sums", training="mixed")
        return Precision("fp32", device, "requested mixed, but the CPU has no fast bf16 (no amx_bf16 / avx512_bf16)")
    if name != "auto":
        return Precision(name, device, "requested")
    if device.startswith("cuda"):
        return Precision("bf16", device, "CUDA")
    isa = cpu_bf16()
    if isa:
        return Precision("bf16", device, f"CPU has {isa}; models that train keep fp32 weights and train under bf16 "
                         "autocast with fp32 LoRA sums (mixed)", training="mixed")
    return Precision("fp32", device, "CPU has no fast bf16 (no amx_bf16 / avx512_bf16)")


def keep_adapter_sums_fp32(model: Any) -> int:
    """Make every LoRA layer of ``model`` add its adapter's output in fp32 (once per layer; returns how many layers).

    Under autocast a LoRA layer's frozen base runs its matmul in bf16 and peft adds the adapter's output to that bf16
    result and casts the sum back to bf16, so an adapter output below half a unit in the last place of the base
    output (8 bits of mantissa) is rounded away: the forward pass, and so the loss the trainer sees, lags the
    adapter. A forward hook upcasts the base output to fp32; peft then keeps the sum in fp32 and the residual stream
    follows. Outside autocast, on fp32 weights, the hook changes nothing."""
    from peft.tuners.lora import LoraLayer

    count = 0
    for module in model.modules():
        if isinstance(module, LoraLayer) and not getattr(module, "_rlhf_nb_fp32_sum", False):
            module.base_layer.register_forward_hook(_upcast_output)
            module._rlhf_nb_fp32_sum = True
            count += 1
    return count


def _upcast_output(module: Any, inputs: Any, output: Any) -> Any:
    import torch

    return output.float() if isinstance(output, torch.Tensor) and output.dtype == torch.bfloat16 else output


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_HEAP_LIMIT = 2**31 - 1  # bytes: inside the block, allocations below this come from the heap and freed memory is kept
_AFTER = (32 << 20, 64 << 20)  # mmap and trim thresholds after it: the values glibc's adaptive ones settle at


@lru_cache(maxsize=1)
def _glibc() -> Any:
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def trim_heap() -> None:
    """Collect garbage and hand the allocator's free pages back to the system (glibc's ``malloc_trim``, ~0.1 s; no-op
    elsewhere). Called where a phase ends (a model load, a training run): glibc otherwise keeps what a phase freed in
    holes the next phase's tensors may not fit, and a long notebook process grows (04's trained arms reached 20.7 GB
    at 384ab6b with the allocator as it comes; whether trimming bounds that is not yet shown by a finished run)."""
    import gc

    gc.collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def keeps_freed_memory() -> bool:
    """Whether :func:`freed_memory_kept` takes effect here: glibc, and ``RLHF_NB_MALLOC`` is not ``default``."""
    return os.environ.get("RLHF_NB_MALLOC", "").strip().lower() != "default" and _glibc() is not None


_kept_depth: list[Any] = [0, False]  # (open freed_memory_kept blocks, whether the outermost took effect)


@contextlib.contextmanager
def freed_memory_kept() -> Iterator[bool]:
    """For a ``with`` block (a training run, a sampling call), glibc's allocator keeps freed memory for the next tensor
    instead of handing it back to the system; on exit the free pages go back and the thresholds are fixed at the
    values glibc's adaptive ones settle at (32 MB mmap, 64 MB trim; glibc adapts them no more after a first block).
    Yields whether it took effect (:func:`keeps_freed_memory`; ``RLHF_NB_MALLOC=default`` leaves the allocator
    alone; the free pages go back on exit either way, :func:`trim_heap`).

    By default glibc serves an allocation over 128 KB-32 MB (its threshold adapts) with a fresh ``mmap`` and unmaps
    it when freed, so every large tensor an operation creates is new memory, and the kernel zeroes and maps it a
    page at a time on first touch. On the 2-core machines of this project a page fault costs microseconds: an
    element-wise pass over a fresh 67 MB tensor took ~40 ms where the same pass over reused memory took ~11 ms. A
    training step creates hundreds of such tensors, of similar sizes batch after batch (activations of positions x
    the MLP width, logits of positions x the vocabulary): one epoch of 02's RFT step ran 1.3-1.4x as fast with freed
    memory kept, with the same loss (the arithmetic is untouched; ``benchmarks/results/heap.md``). Kept for a whole
    notebook process it was not shown safe: 04's run of 384ab6b (which also had more training prompts) was killed
    for memory at 24 GB, and 02's run of 3c957e6 held 22.3 GB (999e1f4's, allocator as it comes, peaked at 22.9).
    Hence blocks around training and around a sampling call (:func:`rlhf_nb.lm.generation.generate`: a prefill's
    activations, a decoding step's rows x vocabulary logits; SmolLM2-135M's mixed-read prefill of 47 x 131 tokens
    took 4.4 s with 1.8 M page faults as glibc comes and 2.9 s with 12 k kept), each handing its pages back on exit;
    a block opened inside another leaves the outer one's setting alone. Where glibc refuses the 2 GB threshold (older
    versions cap it at 32 MB) the cap is used. Not glibc: no-op."""
    if _kept_depth[0]:  # inside another such block (sampling during a training run): that block's setting holds
        _kept_depth[0] += 1
        try:
            yield _kept_depth[1]
        finally:
            _kept_depth[0] -= 1
        return
    libc = _glibc() if keeps_freed_memory() else None
    kept = libc is not None and bool(libc.mallopt(_M_MMAP_THRESHOLD, _HEAP_LIMIT) or libc.mallopt(_M_MMAP_THRESHOLD,
                                                                                                  _AFTER[0]))
    kept = kept and bool(libc.mallopt(_M_TRIM_THRESHOLD, _HEAP_LIMIT))
    _kept_depth[:] = [1, kept]
    try:
        yield kept
    finally:
        _kept_depth[:] = [0, False]
        trim_heap()  # kept or not, what the block freed goes back
        if kept:
            libc.mallopt(_M_MMAP_THRESHOLD, _AFTER[0])
            libc.mallopt(_M_TRIM_THRESHOLD, _AFTER[1])


def describe() -> dict[str, Any]:
    """For ``env.json``: the requested and resolved precision, and why; and whether training keeps freed memory."""
    p = resolve()
    return {"requested": requested(), "resolved": p.name, "training": p.training or p.name, "device": p.device,
            "reason": p.reason, "cpu_bf16": cpu_bf16(), "training_keeps_freed_memory": keeps_freed_memory()}


def machine_probe(size: int = 1024, reps: int = 5) -> dict[str, float]:
    """How fast this machine is right now (best of ``reps``): GFLOP/s of a ``size``-square matmul in fp32 and in bf16,
    which fits in cache, and GB/s of copying 256 MB, which does not (decoding a small model is bound by memory).

    A shared 2-core machine's speed drifts by up to 2x within an hour (measured: sampling speed doubled while the
    matmul probe barely moved), so a run records this at its start and end and a timing can be read against it.
    About half a second. A CPU without fast bf16 emulates bf16 matmuls at ~1 GFLOP/s, where the full-size bf16 probe
    alone took 17 s (2-core AMD EPYC, one thread), so there it multiplies matrices a quarter of the size."""
    import time

    import torch

    def best(fn: Any) -> float:
        fn()  # warm-up
        times = []
        for _ in range(reps):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return min(times)

    def copy_gb_s() -> float:  # its two 256 MB buffers are freed when it returns
        src = torch.empty(64 * 1024 * 1024)
        dst = torch.empty_like(src)
        return 2 * src.numel() * src.element_size() / best(lambda: dst.copy_(src)) / 1e9

    out = {"copy_gb_s": copy_gb_s()}
    bf16_size = size if cpu_bf16() else size // 4
    for name, dtype, n in (("fp32_gflop_s", torch.float32, size), ("bf16_gflop_s", torch.bfloat16, bf16_size)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        out[name] = 2 * n**3 / best(lambda: a @ b) / 1e9
    return {k: round(v, 1) for k, v in out.items()}


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
