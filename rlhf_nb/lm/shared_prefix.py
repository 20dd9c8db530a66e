"""Decoding many replies to one prompt against one copy of the prompt's keys and values.

A prompt sampled n times used to be prefilled once and its KV cache copied to its n rows. On a CPU the copies are
what a decoding step reads, and every change of the batch copied them all again: on 02's workload (Qwen2.5-Coder-0.5B,
code prompts, 16 samples each, read mixed) the attention took 128 ms of a 365-ms step at 256 rows and ~300 cached
positions, and dropping finished rows took ~2 s a time (timed while building this module). Here the cache holds

* the **prompts** once per admission (an *entry*: keys and values of one prompt's prefill, right-aligned in
  ``[entries, heads, width, dim]``; a prompt whose rows enter the batch at two refills has two entries), and
* per row only its **reply so far** (right-aligned in a buffer of at most the reply cap),

and a decoding step's attention (:func:`attention`, registered as ``rlhf_nb_shared_prefix`` while :func:`decoding`
is active) scores each row's query against its entry's prompt (the queries of the rows that share an entry stacked
into one matrix product) and against its own reply, and joins the two by their log-sum-exps (which is one softmax over
both, as flash attention combines blocks). Each row computes what attention over its whole sequence computes, up to
summation order.
When rows leave and join, the cache is rebuilt by copying the replies and each entry still in use once (never a
prompt per row).

Under :mod:`rlhf_nb.lm.mixed_read` (whose prefill attends in bf16) the cache holds bf16 keys and values and the
decoding step attends in bf16 (PyTorch's fused CPU kernel: 2.3 against 4.3 ms on 28 prompts' keys, measured; joined in
fp32); a model read at its own precision keeps that precision. Prompts enter longest first, so their entries are
attended in a few blocks (:data:`ENTRY_BLOCKS`), each from the first column one of its prompts uses. On 02's workload
(40 tasks x 16) the two took the prompts' attention from 18 to 6 s of a 95-s call (380 -> 450 tok/s).

It serves models whose every layer attends to the whole past through SDPA-style boolean masks (``sdpa``, or
:mod:`rlhf_nb.lm.mixed_read`'s attention); prefills run through the model's own attention.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rlhf_nb.lm.attend import attend, forget, step_mask

ATTENTION = "rlhf_nb_shared_prefix"
_delegate: list[Any] = []  # the attention a prefill (or a model call without the cache) runs through


def _inner(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def full_attention_only(model: Any) -> bool:
    """Whether every layer of ``model`` attends to the whole past (no sliding-window layers)."""
    config = _inner(model).config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    types = getattr(text, "layer_types", None) or ["full_attention"] * text.num_hidden_layers
    sliding = getattr(text, "sliding_window", None) and getattr(text, "use_sliding_window", False)
    return all(t == "full_attention" for t in types) and not sliding


def supported(model: Any) -> bool:
    """Whether :func:`decoding` can serve ``model``: full attention in every layer, through SDPA-style masks."""
    from rlhf_nb.lm import mixed_read

    return full_attention_only(model) and _inner(model).config._attn_implementation in ("sdpa", mixed_read.ATTENTION)


def append_in_place(layer: Any, key_states: Any, value_states: Any) -> tuple[Any, Any]:
    """A cache layer's ``update`` over preallocated buffers (``k_buf``/``v_buf``, ``length`` columns used): write the
    new keys and values after the used columns and hand back the used part."""
    n = key_states.shape[-2]
    layer.k_buf[:, :, layer.length:layer.length + n].copy_(key_states)
    layer.v_buf[:, :, layer.length:layer.length + n].copy_(value_states)
    layer.length += n
    layer.keys, layer.values = layer.k_buf[:, :, :layer.length], layer.v_buf[:, :, :layer.length]
    return layer.keys, layer.values


@contextmanager
def decoding(model: Any) -> Iterator[None]:
    """Route ``model``'s attention through :func:`attention` for the block (the previous attention serves prefills).
    The implementation stays registered with transformers by name; the model's own setting is restored on exit."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    inner = _inner(model)
    previous = inner.config._attn_implementation
    AttentionInterface.register(ATTENTION, attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)
    _delegate.append(ALL_ATTENTION_FUNCTIONS[previous])
    inner.set_attn_implementation(ATTENTION)
    try:
        yield
    finally:
        inner.set_attn_implementation(previous)
        _delegate.pop()
        forget()  # no mask outlives the block


@dataclass(frozen=True)
class Block:
    """Consecutive entries attended together: ``per`` query places an entry (its most rows), from ``offset`` in the
    stacked queries, against the prompts' columns from ``cut`` on."""

    entries: slice
    per: int
    offset: int
    cut: int


def layout(entry: list[int], lengths: list[int], width: int) -> tuple[list[Block], list[int], int]:
    """Where each row's query goes for the prompts' attention: blocks of consecutive entries (prompts of ``lengths``
    tokens right-aligned in ``width`` columns; ``entry[row]``: the row's entry), at most a quarter of the entries
    (:data:`ENTRY_BLOCKS`) a block and a new block where an entry holds more than twice or under half the rows of the
    block's first (a prompt sampled twice next to one sampled 16 times would otherwise stack 16 places), each with its
    own places per entry and the first column any of its prompts uses; each row's place; and the number of places."""
    counts = [0] * len(lengths)
    for e in entry:
        counts[e] += 1
    size = -(-len(lengths) // ENTRY_BLOCKS)
    blocks: list[Block] = []
    start, offset = 0, 0
    for e in range(1, len(lengths) + 1):
        if e == len(lengths) or e - start >= size or not counts[start] / 2 <= counts[e] <= 2 * counts[start]:
            per = max(1, max(counts[start:e]))
            blocks.append(Block(slice(start, e), per, offset, width - max(lengths[start:e])))
            start, offset = e, offset + (e - start) * per
    block_of = [b for b in blocks for _ in range(b.entries.start, b.entries.stop)]
    seen, slot = [0] * len(lengths), []
    for e in entry:
        b = block_of[e]
        slot.append(b.offset + (e - b.entries.start) * b.per + seen[e])
        seen[e] += 1
    return blocks, slot, offset


class SharedPrefixCache:
    """The cache a decoding step hands the model: per layer the prompts' keys/values (one entry per prefill row)
    and each row's reply so far; ``blocks`` and ``slot[row]``: where each row's query is stacked for the prompts'
    attention (:func:`layout`)."""

    def __init__(self, model: Any, max_new_tokens: int) -> None:
        import torch
        from transformers.cache_utils import Cache, DynamicLayer

        config = _inner(model).config
        text = config.get_text_config() if hasattr(config, "get_text_config") else config

        class Layer(DynamicLayer):
            """A layer's prompts (``prefix_k``/``prefix_v``) and replies (``k_buf``/``v_buf``, ``length`` columns
            used). ``update`` appends the step's keys to the replies and hands the replies back."""

            def __init__(self) -> None:
                super().__init__()
                self.length = 0
                self.is_initialized = True

            def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
                return append_in_place(self, key_states, value_states)

            def get_seq_length(self) -> int:
                return self.length

        self.max_new_tokens = max_new_tokens
        # under the mixed read the prefill attends in bf16 (mixed_read's SDPA); the decoding steps read the keys and
        # values it made in bf16 as well (PyTorch's fused CPU kernel takes half the time of fp32 on a prompt's keys)
        from rlhf_nb.lm import mixed_read

        self.dtype: Any = torch.bfloat16 if mixed_read.active(model) else None
        self.cache = Cache(layers=[Layer() for _ in range(text.num_hidden_layers)])
        self.blocks: list[Block] = []
        self.prompt_lengths: list[int] = []  # per entry
        self.entry: list[int] = []  # per row
        self.slot: Any = None
        self.places = 0
        self.prefix_mask: Any = None  # entries x width: True on a prompt's tokens
        self._additive: Any = None

    @property
    def layers(self) -> list[Any]:
        return self.cache.layers

    def rebuild(self, keep: list[int], reply_mask: Any, new: tuple[Any, list[int], list[int]] | None) -> Any:
        """Keep rows ``keep`` (their replies trimmed of columns none of them uses) and add rows prefilled in ``new``:
        (a prefill cache, the prompt length of each of its rows, the prefill row each new row reads). Returns the new
        reply mask (rows x columns)."""
        import torch

        prefill, new_lengths, new_rows = new if new is not None else (None, [], [])
        device = prefill.layers[0].keys.device if prefill is not None else reply_mask.device
        kept_entries = list(dict.fromkeys(self.entry[j] for j in keep))
        renumber = {e: i for i, e in enumerate(kept_entries)}
        entry = [renumber[self.entry[j]] for j in keep]
        lengths = [self.prompt_lengths[e] for e in kept_entries]
        entry += [len(kept_entries) + r for r in new_rows]
        lengths += new_lengths
        width = max(lengths)

        # replies: the kept rows' columns from the first any of them uses; new rows have none yet
        index = torch.tensor(keep, dtype=torch.long, device=device)
        old = reply_mask[index] if keep else None
        used = old.any(0).nonzero() if old is not None else []
        lo = int(used[0]) if len(used) else (old.shape[1] if old is not None else 0)
        cols = (old.shape[1] - lo) if old is not None else 0
        rows = len(keep) + len(new_rows)
        mask = torch.zeros(rows, cols, dtype=torch.long, device=device)
        if keep:
            mask[: len(keep)] = old[:, lo:]
        for i, layer in enumerate(self.layers):
            sample = layer.k_buf if keep else prefill.layers[i].keys
            heads, dim, vdim = sample.shape[1], sample.shape[3], (layer.v_buf if keep else prefill.layers[i].values).shape[3]
            dtype = self.dtype or sample.dtype
            k = sample.new_zeros(rows, heads, cols + self.max_new_tokens, dim, dtype=dtype)
            v = sample.new_zeros(rows, heads, cols + self.max_new_tokens, vdim, dtype=dtype)
            pk = sample.new_zeros(len(lengths), heads, width, dim, dtype=dtype)
            pv = sample.new_zeros(len(lengths), heads, width, vdim, dtype=dtype)
            if keep:
                k[: len(keep), :, :cols] = layer.k_buf[index, :, lo:layer.length]
                v[: len(keep), :, :cols] = layer.v_buf[index, :, lo:layer.length]
                if kept_entries:
                    kept = torch.tensor(kept_entries, dtype=torch.long, device=device)
                    old_width = layer.prefix_k.shape[2]
                    span = min(old_width, width)
                    pk[: len(kept_entries), :, width - span:] = layer.prefix_k[kept, :, old_width - span:]
                    pv[: len(kept_entries), :, width - span:] = layer.prefix_v[kept, :, old_width - span:]
            if prefill is not None:
                filled = prefill.layers[i]
                span = filled.keys.shape[2]
                pk[len(kept_entries):, :, width - span:] = filled.keys
                pv[len(kept_entries):, :, width - span:] = filled.values
            layer.k_buf, layer.v_buf, layer.prefix_k, layer.prefix_v = k, v, pk, pv
            layer.length = cols
            layer.keys, layer.values = k[:, :, :cols], v[:, :, :cols]
        self.prompt_lengths, self.entry = lengths, entry
        self.blocks, slot, self.places = layout(entry, lengths, width)
        self.slot = torch.tensor(slot, dtype=torch.long, device=pk.device)
        positions = torch.arange(width, device=pk.device)
        self.prefix_mask = positions[None, :] >= (width - torch.tensor(lengths, device=pk.device))[:, None]
        self._additive = None
        return mask

    def additive_mask(self, dtype: Any) -> Any:
        """The prompts' mask as an additive one (0 on a prompt's tokens, -inf on padding), entries x 1 x 1 x width."""
        import torch

        if self._additive is None or self._additive.dtype != dtype:
            self._additive = torch.zeros(self.prefix_mask.shape, dtype=dtype, device=self.prefix_mask.device
                                         ).masked_fill_(~self.prefix_mask, float("-inf"))[:, None, None, :]
        return self._additive


#: a decoding step attends to the prompts in up to this many blocks of consecutive entries, each from the first column
#: any of its entries uses (the sampler admits prompts longest first, so the entries padded to the longest are few)
ENTRY_BLOCKS = 4


def attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
              scaling: float | None = None, shared_prefix: SharedPrefixCache | None = None,
              **kwargs: Any) -> tuple[Any, None]:
    """One query token per row against its entry's prompt and its own reply (``key``/``value``: the replies), the
    two joined by their log-sum-exps (one softmax over both); anything else (a prefill) goes to the attention the
    model had."""
    import torch

    if shared_prefix is None or query.shape[2] != 1:
        return _delegate[-1](module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    layer = shared_prefix.layers[module.layer_idx]
    batch, heads, _, dim = query.shape
    kv_heads, length = key.shape[1], key.shape[2]
    group, dtype = heads // kv_heads, key.dtype
    scale = scaling if scaling is not None else dim**-0.5
    q = query.reshape(batch, kv_heads, group, dim).to(dtype)

    # the reply so far, each row its own (attending in blocks of rows by reply length saved nothing measurable: rows alive
    # together have replies of similar widths)
    out, lse = attend(q, key, value, step_mask(attention_mask, batch, length, dtype), scale)

    # the prompt, once per entry: the queries of an entry's rows stacked (by slot) against its keys, a block of entries
    # at a time; a place no row holds computes on whatever the buffer held and is never read
    vdim, places = layer.prefix_v.shape[-1], shared_prefix.places
    stacked = q.new_empty(places, kv_heads, group, dim)
    stacked[shared_prefix.slot] = q
    p_out = q.new_empty(places, kv_heads, group, vdim)
    p_lse = torch.empty(places, kv_heads, group, 1, dtype=torch.float32, device=q.device)
    additive = shared_prefix.additive_mask(dtype)
    for b in shared_prefix.blocks:
        n_entries = b.entries.stop - b.entries.start
        span = slice(b.offset, b.offset + n_entries * b.per)
        queries = stacked[span].reshape(n_entries, b.per, kv_heads, group, dim).transpose(1, 2).reshape(
            n_entries, kv_heads, b.per * group, dim)
        o, l = attend(queries, layer.prefix_k[b.entries, :, b.cut:], layer.prefix_v[b.entries, :, b.cut:],
                       additive[b.entries, ..., b.cut:], scale)
        # entries x kv heads x (per group) x d -> places x kv heads x group x d
        p_out[span] = o.reshape(n_entries, kv_heads, b.per, group, vdim).transpose(1, 2).reshape(-1, kv_heads, group, vdim)
        p_lse[span] = l.reshape(n_entries, kv_heads, b.per, group, 1).transpose(1, 2).reshape(-1, kv_heads, group, 1)
    p_out, p_lse = p_out[shared_prefix.slot].float(), p_lse[shared_prefix.slot]
    own = torch.sigmoid(lse.float() - p_lse)  # the reply's share of the softmax mass (joined in fp32)
    result = p_out + own * (out.float() - p_out)
    return result.reshape(batch, 1, heads, dim).to(query.dtype), None
