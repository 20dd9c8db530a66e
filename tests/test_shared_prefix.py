"""The shared-prompt cache's attention: one query token per row against its prompt (stored once) and its reply."""

from __future__ import annotations

import pytest


def _reference(q, prompt_k, prompt_v, reply_k, reply_v, scale):
    """Plain softmax attention of one query over the prompt's keys followed by the reply's."""
    import torch

    keys, values = torch.cat([prompt_k, reply_k], dim=-2), torch.cat([prompt_v, reply_v], dim=-2)
    weights = torch.softmax(torch.matmul(q * scale, keys.transpose(-1, -2)), dim=-1)
    return torch.matmul(weights, values)


@pytest.mark.parametrize("fused", [True, False])
def test_attention_over_shared_prompts_equals_attention_over_each_rows_whole_sequence(fused, monkeypatch):
    """Rows of three prompts of different lengths (entries padded to the longest), rows of one prompt not adjacent,
    replies of different lengths (masked on the left): each row's output is plain attention over its own prompt and
    reply, on the fused CPU kernel and on the plain ops."""
    import torch
    from transformers.cache_utils import DynamicLayer

    from rlhf_nb.lm import shared_prefix

    monkeypatch.setattr(shared_prefix, "FUSED_CPU", fused)
    torch.manual_seed(0)
    kv_heads, group, dim, width, cols = 2, 3, 8, 9, 5
    lengths, entry = [9, 4, 6], [0, 2, 0, 1, 2, 0]
    replies = [5, 1, 3, 5, 2, 4]  # columns each row uses, right-aligned
    rows = len(entry)
    prefix_k, prefix_v = torch.randn(3, kv_heads, width, dim), torch.randn(3, kv_heads, width, dim)
    reply_k, reply_v = torch.randn(rows, kv_heads, cols, dim), torch.randn(rows, kv_heads, cols, dim)
    mask = torch.tensor([[c >= cols - n for c in range(cols)] for n in replies])
    query = torch.randn(rows, kv_heads * group, 1, dim)

    cache = shared_prefix.SharedPrefixCache.__new__(shared_prefix.SharedPrefixCache)
    layer = DynamicLayer()
    layer.prefix_k, layer.prefix_v = prefix_k, prefix_v
    cache.cache = type("C", (), {"layers": [layer]})()
    cache.prompt_lengths, cache.entry, cache._additive = lengths, entry, None
    ranks = [entry[:i].count(e) for i, e in enumerate(entry)]
    cache.per_entry = max(entry.count(e) for e in set(entry))
    cache.slot = torch.tensor([e * cache.per_entry + r for e, r in zip(entry, ranks)])
    cache.prefix_mask = torch.arange(width)[None, :] >= (width - torch.tensor(lengths))[:, None]
    module = type("M", (), {"layer_idx": 0})()

    out, _ = shared_prefix.attention(module, query, reply_k, reply_v, mask[:, None, None, :], scaling=0.3,
                                     shared_prefix=cache)
    for r in range(rows):
        e, n = entry[r], replies[r]
        for h in range(kv_heads * group):  # query head h reads key head h // group (transformers' repeat_kv)
            kv = h // group
            expected = _reference(query[r, h, 0], prefix_k[e, kv, width - lengths[e]:], prefix_v[e, kv, width - lengths[e]:],
                                  reply_k[r, kv, cols - n:], reply_v[r, kv, cols - n:], 0.3)
            torch.testing.assert_close(out[r, 0, h], expected, rtol=1e-5, atol=1e-5)


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
