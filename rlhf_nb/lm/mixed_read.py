"""Reading policies fast at one precision: bf16 matmuls on fp32 weights, the LoRA adapter added in fp32.

Arms that are compared (a start policy and the policies trained from it) must be read at one precision, and a
trained adapter's small update must survive the read. Reading everything in fp32 does both but is slow on CPU
(SmolLM2-135M: ~630 tok/s for the forward pass alone at 128 rows, ~250-280 tok/s end to end); bf16 weights are
fast but a merge into them rounds an update below half a unit in the last place away.

:func:`mixed_read` reads a model the way the ``mixed`` training precision computes (:mod:`rlhf_nb.lm.device`): every
frozen linear layer multiplies in bf16 against a bf16 copy of its weights made once on entry, and hands back fp32; a
LoRA adapter (unmerged) computes in fp32 and is added to that fp32 output, so nothing rounds the update away at the
add; the residual stream, norms and logits stay fp32. Attention runs in bf16 on a CPU (elsewhere a decoding step
attends in fp32): a prefill's through SDPA, a decoding step's through PyTorch's fused CPU kernel against the sampler's
cache, which keeps keys and values in bf16 under this read (:func:`rlhf_nb.lm.generation._buffer_cache`), the query
heads that share a key head stacked as that head's queries. A decoding step at 128 rows reads the cache's keys and
values for every row, and that read is most of the step: on SmolLM2-135M at 128 rows x 384 cached positions, 4.3 ms a
layer of a 236-ms step with freed memory kept (~9 GB/s; an fp32 cache read by a grouped fp32 matmul took 5.4 ms a
layer of a 278-ms step without it, ~16 GB/s on twice the bytes; measured while building this). (The sampler's
shared-prompt cache, :mod:`rlhf_nb.lm.shared_prefix`, attends through the same code: :mod:`rlhf_nb.lm.attend`.) The
start policy read under it (no adapter) and a trained policy differ by their adapter only.

Under ``mixed`` the pieces are those of training under autocast with fp32 adapter sums, which
``benchmarks/train_precision.py`` measured to keep a small DPO update (implied margin 1.70 / 1.65 seen by the trainer
against 1.57 / 1.56 read in fp32; plain bf16 reads 0.52). ``benchmarks/mixed_read_bench.py`` measures the speed and
the agreement with fp32 side by side (its recorded figures predate the bf16 cache).
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

ATTENTION = "rlhf_nb_mixed"  # the attention implementation registered for mixed reads


def _is_adapter(name: str) -> bool:
    return any(part.startswith("lora_") for part in name.split("."))


def _bf16_linear(self: Any, x: Any) -> Any:
    import torch
    import torch.nn.functional as F

    return F.linear(x.to(torch.bfloat16), self._rlhf_w16, self._rlhf_b16).float()


def _bf16_product(self: Any, x: Any) -> Any:
    """:func:`_bf16_linear` without the fp32 copy of its product (:func:`bf16_logits`)."""
    import torch
    import torch.nn.functional as F

    return F.linear(x.to(torch.bfloat16), self._rlhf_w16, self._rlhf_b16)


def _bf16_lora(self: Any, x: Any) -> Any:
    """A peft LoRA linear layer, lean: the base in bf16 handed back as fp32, plus the adapter computed in fp32 with
    its scaling folded into B (peft's forward spends more time in Python than in its two small matmuls), its second
    product accumulated into the output (SmolLM2-135M's prefill of 8 x 131 tokens: 405 against 448 ms with the product
    made and then added; 361 with no adapter)."""
    import torch
    import torch.nn.functional as F

    base = self.base_layer
    out = F.linear(x.to(torch.bfloat16), base._rlhf_w16, base._rlhf_b16).float()
    flat = out.view(-1, out.shape[-1])  # the adapter's product accumulated into it: no temporary, no separate sum
    flat.addmm_(F.linear(x, self._rlhf_a).view(flat.shape[0], self._rlhf_bt.shape[0]), self._rlhf_bt)
    return out


def _attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
               scaling: float | None = None, **kwargs: Any) -> tuple[Any, None]:
    """Attention in bf16: SDPA for a prefill; for a decoding step :func:`rlhf_nb.lm.attend.attend` (on a CPU PyTorch's
    fused kernel) at the cache's precision (bf16 under this read on a CPU; fp32 for a cache that keeps fp32: another
    device, a sliding-window model), the query heads that share a key head stacked as that head's queries.
    ``attention_mask`` is SDPA's (boolean, True = attend, or None)."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from rlhf_nb.lm import attend

    if query.shape[2] != 1:
        query, key, value = (t.to(torch.bfloat16) for t in (query, key, value))
        out, _ = sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                        **kwargs)
        return out.float(), None
    batch, heads, _, dim = query.shape
    kv_heads, length = key.shape[1], key.shape[2]
    scale = scaling if scaling is not None else dim**-0.5
    out = query.new_empty(batch, kv_heads, heads // kv_heads, value.shape[-1])
    query = query.reshape(batch, kv_heads, heads // kv_heads, dim).to(key.dtype)
    additive = attend.step_mask(attention_mask, batch, length, key.dtype)
    for rows, cut in attend.row_blocks(attention_mask, batch, length, ATTENTION_BLOCKS):
        out[rows] = attend.attend(query[rows], key[rows, :, cut:], value[rows, :, cut:],
                                  None if additive is None else additive[rows, ..., cut:], scale)[0]
    return out.reshape(batch, 1, heads, -1), None


#: a decoding step's rows are attended in this many blocks of consecutive rows, each from the first column any of
#: its rows attends to: the sampler sorts prompts by length, so left padding is mostly skipped
ATTENTION_BLOCKS = 4


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION, _attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)


def _adapter(name: str, layer: Any) -> tuple[Any, Any]:
    """The fp32 A and scaled B of a LoRA layer's one active adapter (a zero update where adapters are disabled)."""
    if getattr(layer, "merged", False):
        raise ValueError(f"mixed_read needs the adapter unmerged ({name} is merged): a bf16 copy of merged weights "
                         "rounds a small update away")
    active = [a for a in layer.active_adapters if a in layer.lora_A]
    if len(active) > 1 or any(a in getattr(layer, "lora_variant", {}) for a in active):
        raise ValueError(f"mixed_read reads one plain LoRA adapter; {name} has active adapters {active}")
    base = layer.base_layer.weight
    if not active or getattr(layer, "disable_adapters", False):
        return base.new_zeros(1, base.shape[1]), base.new_zeros(base.shape[0], 1)
    a, b = layer.lora_A[active[0]].weight, layer.lora_B[active[0]].weight
    return a.detach().float(), (b.detach().float() * layer.scaling[active[0]])


def _inner(model: Any) -> Any:
    """The transformers model under a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@contextmanager
def mixed_read(model: Any) -> Iterator[Any]:
    """``model`` read in ``mixed`` precision for the duration of a ``with`` block (see the module docstring); its fp32
    weights are untouched and everything is undone on exit. A model whose weights are not fp32 (bf16 on CUDA or on a
    fast-bf16 CPU's frozen path, 4-bit) is read as it is: its arms are compared at that precision already."""
    import torch

    from rlhf_nb.lm import attend

    inner = _inner(model)
    weights = [p for n, p in model.named_parameters() if not _is_adapter(n)]
    if not weights or any(p.dtype != torch.float32 for p in weights):
        yield model
        return
    _register()
    patched: list[tuple[Any, tuple[str, ...]]] = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not _is_adapter(name):
            module._rlhf_w16 = module.weight.detach().to(torch.bfloat16)
            module._rlhf_b16 = None if module.bias is None else module.bias.detach().to(torch.bfloat16)
            module.forward = types.MethodType(_bf16_linear, module)
            patched.append((module, ("forward", "_rlhf_w16", "_rlhf_b16")))
        elif hasattr(module, "lora_A") and isinstance(getattr(module, "base_layer", None), torch.nn.Linear):
            module._rlhf_a, b = _adapter(name, module)
            module._rlhf_bt = b.t().contiguous()
            module.forward = types.MethodType(_bf16_lora, module)
            patched.append((module, ("forward", "_rlhf_a", "_rlhf_bt")))
    attention = inner.config._attn_implementation
    inner.set_attn_implementation(ATTENTION)
    model._rlhf_mixed_read = True  # what active() reports while the block runs
    try:
        yield model
    finally:
        del model._rlhf_mixed_read
        attend.forget()  # no mask outlives the read
        for module, names in patched:
            for attribute in names:
                delattr(module, attribute)
        inner.set_attn_implementation(attention)


def active(model: Any) -> bool:
    """Whether ``model`` is being read under :func:`mixed_read` right now."""
    return bool(getattr(model, "_rlhf_mixed_read", False))


@contextmanager
def bf16_logits(model: Any) -> Iterator[None]:
    """Inside :func:`mixed_read`, the LM head hands back its bf16 product as it is for the ``with`` block, instead of an
    fp32 copy of it (the same numbers: the product was rounded to bf16 before the copy). A sampler that reads the
    logits in fp32 a piece at a time (:func:`rlhf_nb.lm.generation.next_tokens`) then skips a copy of rows x vocabulary
    a step (53 ms at 384 rows x 152k here). Anything else (no mixed read, a head with an adapter) is left as it is."""
    import types

    inner = _inner(model)
    head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
    bound = None if head is None else head.__dict__.get("forward")
    if bound is None or getattr(bound, "__func__", None) is not _bf16_linear:
        yield
        return
    head.forward = types.MethodType(_bf16_product, head)
    try:
        yield
    finally:
        head.forward = bound
