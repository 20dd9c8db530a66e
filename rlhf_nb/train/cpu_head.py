"""A CPU fast path for trl's fused LM head (per-token log-probabilities in DPO, SFT, GRPO, RLOO).

trl 1.16 patches the model so that ``model(..., labels=..., fused_lm_head=True)`` returns per-token
log-probabilities computed in vocabulary tiles (``trl.kernels.ChunkedLogProbFunction``). With Triton (CUDA)
that kernel scores only the labelled positions; without Triton it scores *every* position, prompt and
padding included, and folds each tile in fp32 element-wise passes, and its backward upcasts both matmul
operands to fp32. On a 2-core CPU that head took about half of a DPO step on SmolLM2-135M (49k-token
vocabulary), and bf16 could not speed it up.

:func:`install` replaces the kernel on CPU only with :class:`HeadLogProbs`, over the labelled positions: the
projection runs in the autocast dtype (bf16 under the precision policy), everything after it in fp32, a block of
rows at a time, and the backward recomputes each block's logits (from the forward's bf16 cast of the weight)
instead of keeping them. Plain autograd over all rows at once (what this module did first) kept the fp32 logits,
their log-softmax and its exponential alive for the backward, three tensors of positions x vocabulary (~350 MB
each for 570 positions of Qwen2.5's 152k-token vocabulary), and spent about half of an SFT step on
Qwen2.5-Coder-0.5B in passes over them. The optional outputs (entropy, mean logit, top-1 agreement, log of the
summed squared probabilities) are as trl defines them, and the entropy carries a gradient as in trl. On CUDA and
other devices trl's kernel runs unchanged. In fp32 the two agree on every output and on the gradients to float
tolerance (``tests/test_precision.py``); under bf16 autocast the backward's product with the head's weight is a
bf16 matmul (trl accumulates bf16 operands in fp32), tested against plain autograd over a bf16 projection.
"""

from __future__ import annotations

from typing import Any

_installed = False
BLOCK_ELEMENTS = 1 << 24  # fp32 logits per block of rows (64 MB): rows per block = this // vocabulary


def _logits(hidden: Any, weight: Any, bias: Any, dtype: Any, logit_scale: float, softcap: float | None,
            temperature: float) -> tuple[Any, Any]:
    """A block's logits in fp32 after scale, soft cap and temperature, and the soft-capped values before the
    temperature (``None`` without a cap; the backward needs them)."""
    import torch
    import torch.nn.functional as F

    z = F.linear(hidden.to(dtype), weight, None if bias is None else bias.to(dtype)).float()
    if logit_scale != 1.0:
        z.mul_(logit_scale)
    capped = None
    if softcap:
        z = softcap * torch.tanh(z / softcap)
        capped = z
    if temperature != 1.0:
        z = z / temperature
    return z, capped


class HeadLogProbs:
    """``trl.kernels.ChunkedLogProbFunction``'s contract (same arguments, same five outputs) for CPU tensors."""

    @staticmethod
    def apply(hidden: Any, weight: Any, bias: Any, targets: Any, temperature: float, chunk_size: int,
              softcap: float | None, logit_scale: float, outputs: tuple[str, ...]) -> tuple[Any, ...]:
        return _Function.apply(hidden, weight, bias, targets, temperature, softcap, logit_scale, tuple(outputs))


def _compute_dtype(device_type: str, fallback: Any) -> Any:
    import torch

    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else fallback


def _blocks(n: int, vocab: int) -> list[slice]:
    rows = max(1, BLOCK_ELEMENTS // max(1, vocab))
    return [slice(s, min(s + rows, n)) for s in range(0, n, rows)]


def _make_function() -> Any:
    import torch

    class Function(torch.autograd.Function):
        @staticmethod
        def forward(ctx, hidden, weight, bias, targets, temperature, softcap, logit_scale, outputs):
            ctx.set_materialize_grads(False)
            dtype = _compute_dtype(hidden.device.type, hidden.dtype)
            n, vocab = hidden.shape[0], weight.shape[0]
            w = weight.to(dtype)
            f32 = dict(device=hidden.device, dtype=torch.float32)
            log_z, target_logit = torch.empty(n, **f32), torch.empty(n, **f32)
            entropy = torch.empty(n, **f32) if "entropy" in outputs else None
            log_sum_sq = torch.empty(n, **f32) if "log_sum_sq_probs" in outputs else None
            mean_logits = torch.empty(n, **f32) if "mean_logits" in outputs else None
            is_top1 = torch.empty(n, device=hidden.device, dtype=torch.bool) if "is_top1" in outputs else None
            with torch.autocast(hidden.device.type, enabled=False):
                for b in _blocks(n, vocab):
                    z, _ = _logits(hidden[b], w, bias, dtype, logit_scale, softcap, temperature)
                    lz = torch.logsumexp(z, dim=-1)
                    log_z[b], target_logit[b] = lz, z.gather(-1, targets[b].unsqueeze(-1)).squeeze(-1)
                    if mean_logits is not None:
                        mean_logits[b] = z.mean(-1)
                    if is_top1 is not None:
                        is_top1[b] = z.argmax(-1) == targets[b]
                    if log_sum_sq is not None:
                        log_sum_sq[b] = torch.logsumexp(2 * z, dim=-1) - 2 * lz
                    if entropy is not None:
                        p = (z - lz.unsqueeze(-1)).exp_()
                        entropy[b] = lz - (p * z).sum(-1)
            ctx.save_for_backward(hidden, weight, bias, targets, log_z, log_z if entropy is None else entropy)
            # the backward reuses the forward's cast of the weight (Qwen2.5's head: 136M values, 272 MB in bf16, held
            # until the backward); an in-place change of the saved weight in between fails autograd's version check
            # (a write through .data would not, as for any saved tensor)
            ctx.cast = w
            ctx.settings = (temperature, softcap, logit_scale, entropy is not None, dtype)  # backward runs outside autocast
            ctx.mark_non_differentiable(*(x for x in (log_sum_sq, mean_logits, is_top1) if x is not None))
            return target_logit - log_z, entropy, log_sum_sq, mean_logits, is_top1

        @staticmethod
        def backward(ctx, grad_log_probs, grad_entropy, *_):
            hidden, weight, bias, targets, log_z, entropy = ctx.saved_tensors
            temperature, softcap, logit_scale, has_entropy, dtype = ctx.settings
            grad_entropy = grad_entropy if has_entropy else None
            need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
            w, ctx.cast = ctx.cast, None
            grad_hidden = torch.zeros(hidden.shape, device=hidden.device, dtype=hidden.dtype) if need_hidden else None
            grad_weight = torch.zeros(weight.shape, device=weight.device, dtype=torch.float32) if need_weight else None
            grad_bias = torch.zeros(bias.shape, device=bias.device, dtype=torch.float32) if need_bias else None
            with torch.autocast(hidden.device.type, enabled=False):
                for b in _blocks(hidden.shape[0], weight.shape[0]):
                    z, capped = _logits(hidden[b], w, bias, dtype, logit_scale, softcap, temperature)
                    lz = log_z[b].unsqueeze(-1)
                    p = (z - lz).exp()
                    g = torch.zeros_like(z)
                    if grad_log_probs is not None:  # d log p_t / dz = onehot(t) - p
                        gl = grad_log_probs[b].float().unsqueeze(-1)
                        g.sub_(p * gl).scatter_add_(-1, targets[b].unsqueeze(-1), gl)
                    if grad_entropy is not None:  # dH / dz = -p (log p + H)
                        ge = grad_entropy[b].float().unsqueeze(-1)
                        g.sub_(p * (z - lz + entropy[b].unsqueeze(-1)) * ge)
                    if temperature != 1.0:
                        g.div_(temperature)
                    if capped is not None:  # d (c tanh(x / c)) / dx = 1 - tanh^2
                        g.mul_(1 - (capped / softcap) ** 2)
                    if logit_scale != 1.0:
                        g.mul_(logit_scale)
                    if grad_hidden is not None:
                        grad_hidden[b] = (g.to(dtype) @ w).to(hidden.dtype)
                    if grad_weight is not None:
                        grad_weight += g.t() @ hidden[b].float()
                    if grad_bias is not None:
                        grad_bias += g.sum(0)
            return (grad_hidden, None if grad_weight is None else grad_weight.to(weight.dtype),
                    None if grad_bias is None else grad_bias.to(bias.dtype), None, None, None, None, None)

    return Function


class _Lazy:
    """The autograd Function, built on first use (importing this module does not import torch)."""

    fn: Any = None

    @classmethod
    def apply(cls, *args: Any) -> Any:
        if cls.fn is None:
            cls.fn = _make_function()
        return cls.fn.apply(*args)


_Function = _Lazy


def install() -> None:
    """Route trl's fused LM head through :class:`HeadLogProbs` on CPU (idempotent)."""
    global _installed
    if _installed:
        return
    import trl.trainer.utils as trl_utils

    kernel = trl_utils._ChunkedLogProbFunction
    use_triton = trl_utils._use_triton

    class _CPUAwareLogProb:
        @staticmethod
        def apply(hidden, weight, bias, targets, temperature, chunk_size, softcap, logit_scale, outputs):
            if hidden.device.type != "cpu":
                return kernel.apply(hidden, weight, bias, targets, temperature, chunk_size, softcap, logit_scale, outputs)
            return HeadLogProbs.apply(hidden, weight, bias, targets, temperature, chunk_size, softcap, logit_scale,
                                      outputs)

    trl_utils._ChunkedLogProbFunction = _CPUAwareLogProb
    # "compact": pass only the labelled positions (trl does so wherever Triton runs the kernel)
    trl_utils._use_triton = lambda device: device.type == "cpu" or use_triton(device)
    _installed = True
