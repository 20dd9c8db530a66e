"""A CPU fast path for trl's fused LM head (per-token log-probabilities in DPO, SFT, GRPO, RLOO).

trl 1.16 patches the model so that ``model(..., labels=..., fused_lm_head=True)`` returns per-token
log-probabilities computed in vocabulary tiles (``trl.kernels.ChunkedLogProbFunction``). With Triton (CUDA)
that kernel scores only the labelled positions; without Triton it scores *every* position, prompt and
padding included, and folds each tile in fp32 element-wise passes, and its backward upcasts both matmul
operands to fp32. On a 2-core CPU that head took about half of a DPO step on SmolLM2-135M (49k-token
vocabulary), and bf16 could not speed it up.

:func:`install` replaces the kernel on CPU only with plain autograd over the labelled positions: the
projection runs in the autocast dtype (bf16 under the precision policy), the log-softmax in fp32, and
the optional outputs (entropy, mean logit, top-1 agreement, log of the summed squared probabilities) are
computed as trl defines them. On CUDA and other devices trl's kernel runs unchanged. The two agree on
log-probabilities and gradients to float tolerance (``tests/test_precision.py``).
"""

from __future__ import annotations

from typing import Any

_installed = False


def _token_outputs(hidden: Any, weight: Any, bias: Any, targets: Any, temperature: float, softcap: float | None,
                   logit_scale: float, outputs: tuple[str, ...]) -> tuple[Any, ...]:
    import torch
    import torch.nn.functional as F

    z = F.linear(hidden, weight, bias).float() * logit_scale  # projection in the autocast dtype, the rest in fp32
    if softcap:
        z = softcap * torch.tanh(z / softcap)
    z = z / temperature
    log_p = torch.log_softmax(z, dim=-1)
    log_probs = log_p.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    entropy = -(log_p.exp() * log_p).sum(-1) if "entropy" in outputs else None
    log_sum_sq = torch.logsumexp(2 * log_p, dim=-1) if "log_sum_sq_probs" in outputs else None
    mean_logits = z.mean(-1).detach() if "mean_logits" in outputs else None
    is_top1 = (z.argmax(-1) == targets) if "is_top1" in outputs else None
    return log_probs, entropy, log_sum_sq, mean_logits, is_top1


def install() -> None:
    """Route trl's fused LM head through :func:`_token_outputs` on CPU (idempotent)."""
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
            return _token_outputs(hidden, weight, bias, targets, temperature, softcap, logit_scale, tuple(outputs))

    trl_utils._ChunkedLogProbFunction = _CPUAwareLogProb
    # "compact": pass only the labelled positions (trl does so wherever Triton runs the kernel)
    trl_utils._use_triton = lambda device: device.type == "cpu" or use_triton(device)
    _installed = True
