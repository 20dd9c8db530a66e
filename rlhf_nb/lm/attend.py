"""The attention a decoding step runs, shared by the sampler's two caches.

A decoding step has one query token a row and reads every cached key and value of that row. Both of the sampler's
attention paths, the mixed read's (:mod:`rlhf_nb.lm.mixed_read`, one cache a row) and the shared-prompt cache's
(:mod:`rlhf_nb.lm.shared_prefix`, prompts stored once), call :func:`attend` for the product and :func:`step_mask` for
the step's additive mask (the mixed read also :func:`row_blocks`). Nothing here imports the rest of the package.
"""

from __future__ import annotations

from typing import Any

#: on a CPU use PyTorch's fused attention kernel (it also returns the log-sum-exp the shared-prompt cache joins by)
FUSED_CPU = True

#: (a step's boolean attention mask, what was made of it by kind and shape): every layer of a step gets the same mask
#: object, so what a step needs of its mask is made once
_step: list[Any] = [None, {}]


def _kept(attention_mask: Any, key: tuple[Any, ...]) -> Any:
    """What was made of ``attention_mask`` under ``key`` this step, or None (a new mask forgets the last one's)."""
    if _step[0] is not attention_mask:
        _step[:] = [attention_mask, {}]
    return _step[1].get(key)


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
    key = ("additive", batch, length, dtype)
    if (additive := _kept(attention_mask, key)) is not None:
        return additive
    if attention_mask.dtype != torch.bool:
        raise TypeError(f"a decoding step's attention expects a boolean mask, got {attention_mask.dtype}")
    additive = torch.zeros(batch, 1, 1, length, dtype=dtype, device=attention_mask.device).masked_fill_(
        ~attention_mask[..., -length:].reshape(batch, 1, 1, length), float("-inf"))
    _step[1][key] = additive
    return additive


def row_blocks(attention_mask: Any, batch: int, length: int, blocks: int) -> list[tuple[slice, int]]:
    """A decoding step's rows in ``blocks`` blocks of consecutive rows, each with the first of the mask's last
    ``length`` columns any of its rows attends to (a block reads from there: left padding all its rows have is
    skipped), made once a step."""
    if attention_mask is None:
        return [(slice(0, batch), 0)]
    key = ("blocks", batch, length, blocks)
    if (kept := _kept(attention_mask, key)) is not None:
        return kept
    first = attention_mask[..., -length:].reshape(batch, length).int().argmax(-1).tolist()  # each row's first column
    size = -(-batch // blocks)
    made = [(slice(a, min(a + size, batch)), min(first[a:a + size])) for a in range(0, batch, size)]
    _step[1][key] = made
    return made


def forget() -> None:
    """Drop what was kept of the last step's mask (so nothing outlives the sampling call that made it)."""
    _step[:] = [None, {}]
