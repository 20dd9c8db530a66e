"""The shared-prompt cache's attention: one query token per row against its prompt (stored once) and its reply."""

from __future__ import annotations

import pytest


def _reference(q, prompt_k, prompt_v, reply_k, reply_v, scale):
    """Plain softmax attention of one query over the prompt's keys followed by the reply's."""
    import torch

    keys, values = torch.cat([prompt_k, reply_k], dim=-2), torch.cat([prompt_v, reply_v], dim=-2)
    weights = torch.softmax(torch.matmul(q * scale, keys.transpose(-1, -2)), dim=-1)
    return torch.matmul(weights, values)


@pytest.mark.parametrize("fused, dtype", [(True, "float32"), (False, "float32"), (True, "bfloat16"),
                                          (False, "bfloat16")])
@pytest.mark.parametrize("blocks, replies", [(1, [5, 1, 3, 5, 2, 4]), (2, [5, 1, 3, 5, 2, 4]), (3, [5, 5, 4, 2, 2, 1])])
def test_attention_over_shared_prompts_equals_attention_over_each_rows_whole_sequence(fused, dtype, blocks, replies,
                                                                                      monkeypatch):
    """Rows of three prompts of different lengths (entries padded to the longest), rows of one prompt not adjacent,
    replies of different lengths (masked on the left), prompts attended in one block of entries or several (a block of
    shorter prompts skips the columns only longer ones use): each row's output is plain attention over its own prompt and
    reply, on the fused CPU kernel and on the plain ops, with the keys and values in fp32 and in bf16 (the mixed read's
    cache; the reference reads the same rounded numbers in fp32)."""
    import torch
    from transformers.cache_utils import DynamicLayer

    from rlhf_nb.lm import attend, shared_prefix

    monkeypatch.setattr(attend, "FUSED_CPU", fused)
    monkeypatch.setattr(shared_prefix, "ENTRY_BLOCKS", blocks)
    torch.manual_seed(0)
    kv_heads, group, dim, width, cols = 2, 3, 8, 9, 5
    lengths, entry = [9, 4, 6], [0, 2, 0, 1, 2, 0]  # replies: columns each row uses, right-aligned
    rows = len(entry)
    prefix_k, prefix_v = torch.randn(3, kv_heads, width, dim), torch.randn(3, kv_heads, width, dim)
    reply_k, reply_v = torch.randn(rows, kv_heads, cols, dim), torch.randn(rows, kv_heads, cols, dim)
    mask = torch.tensor([[c >= cols - n for c in range(cols)] for n in replies])
    query = torch.randn(rows, kv_heads * group, 1, dim)
    store = getattr(torch, dtype)
    prefix_k, prefix_v, reply_k, reply_v = (t.to(store) for t in (prefix_k, prefix_v, reply_k, reply_v))
    if store is torch.bfloat16:
        query = query.to(store).float()  # the attention reads the query at the cache's precision

    cache = shared_prefix.SharedPrefixCache.__new__(shared_prefix.SharedPrefixCache)
    layer = DynamicLayer()
    layer.prefix_k, layer.prefix_v = prefix_k, prefix_v
    cache.cache = type("C", (), {"layers": [layer]})()
    cache.prompt_lengths, cache.entry, cache._additive = lengths, entry, None
    cache.prefix_mask = torch.arange(width)[None, :] >= (width - torch.tensor(lengths))[:, None]
    cache.blocks, slot, cache.places = shared_prefix.layout(entry, lengths, width)
    cache.slot = torch.tensor(slot)
    assert len(set(slot)) == rows and max(slot) < cache.places
    assert blocks == 1 or any(b.cut > 0 for b in cache.blocks)
    module = type("M", (), {"layer_idx": 0})()

    step_mask = mask[:, None, None, :]
    out, _ = shared_prefix.attention(module, query, reply_k, reply_v, step_mask, scaling=0.3, shared_prefix=cache)
    for r in range(rows):
        e, n = entry[r], replies[r]
        for h in range(kv_heads * group):  # query head h reads key head h // group (transformers' repeat_kv)
            kv = h // group
            expected = _reference(query[r, h, 0], prefix_k[e, kv, width - lengths[e]:].float(),
                                  prefix_v[e, kv, width - lengths[e]:].float(), reply_k[r, kv, cols - n:].float(),
                                  reply_v[r, kv, cols - n:].float(), 0.3)
            tolerance = 1e-5 if store is torch.float32 else 3e-2  # bf16 probabilities and outputs inside the kernel
            torch.testing.assert_close(out[r, 0, h], expected, rtol=tolerance, atol=tolerance)


def test_layout_blocks_entries_by_how_many_rows_they_hold_and_by_width(monkeypatch):
    """Entries sampled 16 times, then twice, then 6 times: a new block where the rows an entry holds change more than
    twofold or the block is full, each block with its own places per entry and first used column; every row a place."""
    from rlhf_nb.lm import shared_prefix

    monkeypatch.setattr(shared_prefix, "ENTRY_BLOCKS", 2)
    counts, lengths = [16, 16, 16, 2, 2, 6], [9, 9, 8, 7, 5, 4]
    entry = [e for e, c in enumerate(counts) for _ in range(c)][::-1]  # rows in any order
    blocks, slot, places = shared_prefix.layout(entry, lengths, 9)
    assert [(b.entries.start, b.entries.stop, b.per, b.offset, b.cut) for b in blocks] == [
        (0, 3, 16, 0, 0), (3, 5, 2, 48, 2), (5, 6, 6, 52, 5)]
    assert places == 58 and sorted(slot) == list(range(58))  # no place wasted here


def test_a_model_call_without_the_cache_goes_to_the_models_own_attention(monkeypatch):
    """Inside ``decoding``, a prefill (or any call that does not pass the cache) runs the attention the model had, and
    the model's attention is restored on exit."""
    import torch

    from rlhf_nb.lm import models, shared_prefix

    tok, model = models.load("tiny")
    assert shared_prefix.supported(model)
    ids = tok(["def f(x):"], return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        plain = model(input_ids=ids).logits
        with shared_prefix.decoding(model):
            assert model.config._attn_implementation == shared_prefix.ATTENTION
            inside = model(input_ids=ids).logits
    assert model.config._attn_implementation == "sdpa"
    torch.testing.assert_close(inside, plain)


def test_the_decoding_cache_is_bf16_under_the_mixed_read_and_the_weights_dtype_otherwise(monkeypatch):
    """Under the mixed read (whose prefill attends in bf16) the shared cache holds bf16 prompts and replies; a model read
    at its own precision keeps its dtype there. Replies come either way."""
    import torch

    from rlhf_nb.lm import models, shared_prefix
    from rlhf_nb.lm.generation import SamplingConfig, generate
    from rlhf_nb.lm.mixed_read import mixed_read

    seen = []
    real = shared_prefix.SharedPrefixCache.rebuild

    def spy(self, *args, **kwargs):
        mask = real(self, *args, **kwargs)
        seen.append((self.layers[0].prefix_k.dtype, self.layers[0].k_buf.dtype))
        return mask

    monkeypatch.setattr(shared_prefix.SharedPrefixCache, "rebuild", spy)
    tok, model = models.load("tiny", baseline=True)
    config = SamplingConfig(n=3, temperature=1.0, max_new_tokens=4)
    with mixed_read(model):
        out = generate(model, tok, ["def f(x):", "x ="], config, progress=False)
    assert seen and set(seen) == {(torch.bfloat16, torch.bfloat16)} and all(len(per) == 3 for per in out)
    seen.clear()
    generate(model, tok, ["def f(x):", "x ="], config, progress=False)
    assert seen and set(seen) == {(torch.float32, torch.float32)}
