"""The attention a decoding step runs, shared by the sampler's two caches.

A decoding step has one query token a row and reads every cached key and value of that row. Both of the sampler's
attention paths, the mixed read's (:mod:`rlhf_nb.lm.mixed_read`, one cache a row) and the shared-prompt cache's
(:mod:`rlhf_nb.lm.shared_prefix`, prompts stored once), call :func:`attend` for the product and :func:`step_mask` for
the step's additive mask. Nothing here imports the rest of the package.
"""

from __future__ import annotations

from typing import Any

#: on a CPU use PyTorch's fused attention kernel (it also returns the log-sum-exp the shared-prompt cache joins by)
FUSED_CPU = True

#: (a step's boolean attention mask, the additive mask made of it): every layer of a step gets the same mask object
_step: list[Any] = [None, None]


def attend(query: Any, key: Any, value: Any, additive_mask: Any, scale: float) -> tuple[Any, Any]:
    """Softmax attention and its log-sum-exp per query: ``query`` [b, h, q, d] against ``key``/``value`` [b, h, k, d]
    (one dtype) with an additive mask (0 or -inf, broadcast over heads and queries; ``None``: none). On a CPU PyTorch's
    fused kernel (3-4x the plain ops on a prompt's keys, measured while building the shared-prompt cache), elsewhere
    the plain ops with the scores in fp32."""
    import torch

    if FUSED_CPU and query.device.type == "cpu":
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            query, key, value, attn_mask=additive_mask, scale=scale)
        return out, lse.unsqueeze(-1)
    scores = torch.matmul(query * scale, key.transpose(-1, -2)).float()
    if additive_mask is not None:
        scores = scores + additive_mask.float()
    lse = torch.logsumexp(scores, dim=-1, keepdim=True)
    return torch.matmul((scores - lse).exp().to(value.dtype), value), lse


def step_mask(attention_mask: Any, batch: int, length: int, dtype: Any) -> Any:
    """A decoding step's boolean mask (SDPA's: True = attend; its last ``length`` columns) as an additive one of
    ``dtype`` (rows x 1 x 1 x columns, 0 / -inf), made once a step: the result is kept for the mask object the model
    hands every layer. ``None`` for no mask."""
    import torch

    if attention_mask is None:
        return None
    if (_step[0] is attention_mask and _step[1].shape[0] == batch and _step[1].shape[-1] == length
            and _step[1].dtype == dtype):
        return _step[1]
    if attention_mask.dtype != torch.bool:
        raise TypeError(f"a decoding step's attention expects a boolean mask, got {attention_mask.dtype}")
    additive = torch.zeros(batch, 1, 1, length, dtype=dtype, device=attention_mask.device).masked_fill_(
        ~attention_mask[..., -length:].reshape(batch, 1, 1, length), float("-inf"))
    _step[:] = [attention_mask, additive]
    return additive


def forget() -> None:
    """Drop the kept mask (so none outlives the sampling call that made it)."""
    _step[:] = [None, None]
