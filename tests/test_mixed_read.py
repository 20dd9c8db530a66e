"""Reading compared policies at one precision, fast: rlhf_nb.lm.mixed_read and models.reading."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from rlhf_nb.lm import mixed_read as mr
from rlhf_nb.lm import models
from rlhf_nb.lm.generation import SamplingConfig, generate

PROMPTS = ["def add(a, b):", "a much longer prompt that needs left padding in its batch, and then some more words",
           [{"role": "user", "content": "What is 3 + 4?"}], "hi"]
GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=10, batch_size=4)


def _lora(scale: float, seed: int = 0) -> models.Loaded:
    loaded = models.load("tiny", lora={"r": 4}, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    for name, p in loaded.model.named_parameters():
        if "lora_B" in name:
            p.data = torch.randn(p.shape, generator=gen) * scale
    loaded.model.eval()  # no LoRA dropout
    return loaded


def _texts(loaded: models.Loaded, config: SamplingConfig = GREEDY) -> list[str]:
    return [s.text for per in generate(loaded.model, loaded.tokenizer, PROMPTS, config, progress=False) for s in per]


def _logits(model, ids) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=ids).logits.float()


def test_a_zero_adapter_read_mixed_gives_the_base_models_replies():
    base = models.load("tiny", dtype=torch.float32)
    with mr.mixed_read(base.model):
        plain = _texts(base)
    adapted = _lora(0.0)
    with mr.mixed_read(adapted.model):
        assert _texts(adapted) == plain
        sampled = _texts(adapted, SamplingConfig(n=2, temperature=1.0, max_new_tokens=8, seed=3))
    with mr.mixed_read(base.model):
        assert _texts(base, SamplingConfig(n=2, temperature=1.0, max_new_tokens=8, seed=3)) == sampled


def test_mixed_read_is_undone_on_exit_and_leaves_the_weights_alone():
    loaded = _lora(1e-2)
    ids = torch.tensor([[1, 5, 9, 14, 3]])
    before = _logits(loaded.model, ids)
    weights = {n: p.detach().clone() for n, p in loaded.model.named_parameters()}
    with mr.mixed_read(loaded.model):
        inside = _logits(loaded.model, ids)
        assert loaded.model.config._attn_implementation == mr.ATTENTION
    assert torch.equal(_logits(loaded.model, ids), before)
    assert not torch.equal(inside, before)  # bf16 matmuls do change the numbers a little
    assert loaded.model.config._attn_implementation != mr.ATTENTION
    assert not any(hasattr(m, "_rlhf_w16") or hasattr(m, "_rlhf_a") for m in loaded.model.modules())
    assert all(torch.equal(p, weights[n]) for n, p in loaded.model.named_parameters())


def test_mixed_read_adds_any_update_whole_where_bf16_weights_round_it_away():
    """A LoRA layer read mixed outputs its base's bf16 matmul (handed back in fp32) plus the adapter's update computed
    and added in fp32, so an update far below the bf16 grid of the base output is still there, to fp32 rounding;
    merged into bf16 weights the same update vanishes. The whole model read mixed stays close to fp32."""
    adapted = _lora(1e-4, seed=1)  # a weight update ~1e-6, below half a unit in the last place of most bf16 weights
    layer = adapted.model.get_base_model().model.layers[0].self_attn.q_proj
    x = torch.randn(5, layer.base_layer.in_features, generator=torch.Generator().manual_seed(0))
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    update = (x @ a.T @ b.T * layer.scaling["default"]).detach()
    with torch.inference_mode(), mr.mixed_read(adapted.model):
        added = layer(x) - layer.base_layer(x)
    def error(got: torch.Tensor) -> float:
        return float((got - update).norm() / update.norm())

    assert error(added) < 0.02  # what is left: the fp32 rounding of base + update
    merged = (layer.base_layer.weight + (b @ a) * layer.scaling["default"]).detach().to(torch.bfloat16)
    x16 = x.to(torch.bfloat16)
    in_bf16 = (x16 @ merged.T).float() - (x16 @ layer.base_layer.weight.detach().to(torch.bfloat16).T).float()
    assert error(in_bf16) > 0.5

    ids = torch.tensor([[1, 5, 9, 14, 3, 7, 22, 8]])
    base = models.load("tiny", dtype=torch.float32)
    with mr.mixed_read(base.model):
        mixed = _logits(base.model, ids)
    assert (mixed - _logits(base.model, ids)).abs().mean() < 0.03  # bf16 matmuls: close to fp32 (logits ~ +-3)


def _decode_attention(blocks: int, monkeypatch, cache_dtype=torch.bfloat16, masked: bool = True):
    """mixed_read's attention for one decoding step over a left-padded cache (rows sorted by prompt length, as the
    sampler admits them), against softmax attention computed in fp32 on the same keys, each query head reading the
    key head transformers' ``repeat_kv`` gives it (head h -> key head h // group)."""
    gen = torch.Generator().manual_seed(0)
    batch, heads, kv_heads, dim, length = 8, 6, 2, 16, 20
    query = torch.randn(batch, heads, 1, dim, generator=gen)
    # a buffer's slice, as the cache hands it over
    key = torch.randn(batch, kv_heads, length + 5, dim, generator=gen).to(cache_dtype)[:, :, :length]
    value = torch.randn(batch, kv_heads, length + 5, dim, generator=gen).to(cache_dtype)[:, :, :length]
    first = torch.tensor([12, 11, 9, 6, 4, 3, 1, 0]) if masked else torch.zeros(batch, dtype=torch.long)
    mask = (torch.arange(length)[None, :] >= first[:, None]).reshape(batch, 1, 1, length)
    monkeypatch.setattr(mr, "ATTENTION_BLOCKS", blocks)
    from rlhf_nb.lm import attend

    attend.forget()
    module = type("Attention", (), {})()
    out, _ = mr._attention(module, query, key, value, mask if masked else None, scaling=dim**-0.5)
    group = heads // kv_heads
    want = torch.empty(batch, 1, heads, dim)
    for h in range(heads):
        k, v = key[:, h // group].float(), value[:, h // group].float()
        scores = (query[:, h] @ k.transpose(-1, -2)) * dim**-0.5  # batch x 1 x length
        scores = scores.masked_fill(~mask[:, 0], float("-inf"))
        want[:, 0, h] = (torch.softmax(scores, -1) @ v)[:, 0]
    return out, want


@pytest.mark.parametrize("cache_dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("masked", [True, False])
def test_a_decoding_steps_attention_over_the_cache_is_softmax_attention_whatever_the_row_blocks(monkeypatch,
                                                                                               cache_dtype, masked):
    tol = 2e-2 if cache_dtype == torch.bfloat16 else 1e-5  # a bf16 cache: queries and outputs rounded to bf16
    for blocks in (1, 4):  # four blocks skip each block's padding columns; one reads them all (masked)
        out, want = _decode_attention(blocks, monkeypatch, cache_dtype, masked)
        assert out.dtype == torch.float32 and out.shape == want.shape
        assert (out - want).abs().max() < tol, blocks


def test_the_lean_lora_layer_is_base_plus_bias_plus_scaled_adapter_in_fp32():
    gen = torch.Generator().manual_seed(1)
    w, bias = torch.randn(6, 8, generator=gen), torch.randn(6, generator=gen)
    a, b = torch.randn(3, 8, generator=gen), torch.randn(6, 3, generator=gen) * 1e-3
    base = type("Base", (), {"_rlhf_w16": w.bfloat16(), "_rlhf_b16": bias.bfloat16()})()
    layer = type("Lora", (), {"base_layer": base, "_rlhf_a": a, "_rlhf_bt": b.t().contiguous()})()
    x = torch.randn(2, 5, 8, generator=gen)
    out = mr._bf16_lora(layer, x)
    base_only = torch.nn.functional.linear(x.bfloat16(), w.bfloat16(), bias.bfloat16()).float()
    assert out.shape == (2, 5, 6) and out.dtype == torch.float32
    assert torch.allclose(out - base_only, x @ a.t() @ b.t(), atol=1e-6)  # the update survives, computed in fp32
    assert mr._bf16_lora(layer, x[:0]).shape == (0, 5, 6)  # no rows: an empty output, not an error


def test_the_samplers_cache_is_bf16_under_the_mixed_read_on_cpu_and_fp32_otherwise():
    from rlhf_nb.lm.generation import _buffer_cache

    loaded = _lora(1e-2)
    ids = torch.tensor([[5, 6, 7]])
    for read in (True, False):
        with (mr.mixed_read(loaded.model) if read else contextlib.nullcontext()), torch.inference_mode():
            cache = _buffer_cache(loaded.model, 8)
            loaded.model(input_ids=ids, past_key_values=cache, use_cache=True)
        assert cache.layers[0].k_buf.dtype == (torch.bfloat16 if read else torch.float32)


def test_a_merged_adapter_is_refused():
    loaded = _lora(1e-2)
    loaded.model.merge_adapter()
    with pytest.raises(ValueError, match="unmerged"):
        with mr.mixed_read(loaded.model):
            pass


def test_reading_reads_mixed_on_a_fast_bf16_cpu_and_merges_elsewhere(monkeypatch):
    from rlhf_nb.lm import device

    monkeypatch.setenv("RLHF_NB_PRECISION", "auto")  # the tests' default is fp32
    loaded = _lora(1e-2)
    monkeypatch.setattr(device, "cpu_bf16", lambda: "amx_bf16")
    assert models.read_precision(loaded) == "float32"  # what it is outside a read
    with models.reading(loaded):
        assert loaded.model.config._attn_implementation == mr.ATTENTION
        assert models.read_precision(loaded) == "mixed"  # recorded from the state, not from the configuration
    monkeypatch.setattr(device, "cpu_bf16", lambda: None)
    with models.reading(loaded):
        assert loaded.model.config._attn_implementation != mr.ATTENTION
        assert any(getattr(m, "merged", False) for m in loaded.model.modules())
        assert models.read_precision(loaded) == "float32"
    loaded.model.__dict__["_original_forward"] = loaded.model.forward  # accelerate's wrapper left on: not a plain read
    assert models.read_precision(loaded) == "autocast-bf16"
    del loaded.model.__dict__["_original_forward"]
    assert not any(getattr(m, "merged", False) for m in loaded.model.modules())


def test_sampled_replies_record_their_next_token_entropy():
    loaded = models.load("tiny")
    hot = generate(loaded.model, loaded.tokenizer, ["hello"], SamplingConfig(n=3, temperature=1.0, max_new_tokens=6,
                                                                            entropy=True), progress=False)
    cold = generate(loaded.model, loaded.tokenizer, ["hello"], SamplingConfig(n=3, temperature=0.3, max_new_tokens=6,
                                                                             entropy=True), progress=False)
    vocab = np.log(len(loaded.tokenizer))
    assert all(0 < s.meta["entropy"] <= vocab for s in hot[0])
    assert np.mean([s.meta["entropy"] for s in cold[0]]) < np.mean([s.meta["entropy"] for s in hot[0]])


def test_bf16_logits_hand_back_the_heads_bf16_product_and_samples_stay_the_same(monkeypatch):
    """Inside the mixed read, ``bf16_logits`` makes the LM head return its bf16 product (the numbers of its fp32 copy)
    and restores the head on exit; outside a mixed read it changes nothing. Sampling reads bf16 logits as it reads
    their fp32 copy: the same draws for the same seed."""
    import contextlib

    import torch

    from rlhf_nb.lm import generation, models
    from rlhf_nb.lm import mixed_read as mr
    from rlhf_nb.lm.generation import SamplingConfig, generate

    tok, model = models.load("tiny", baseline=True)
    ids = tok(["def f(x):"], return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        with mr.bf16_logits(model):  # no mixed read: fp32 logits
            assert model(input_ids=ids).logits.dtype == torch.float32
        with mr.mixed_read(model):
            fp32 = model(input_ids=ids).logits
            with mr.bf16_logits(model):
                raw = model(input_ids=ids).logits
            assert model(input_ids=ids).logits.dtype == torch.float32  # restored
    assert fp32.dtype == torch.float32 and raw.dtype == torch.bfloat16
    assert torch.equal(raw.float(), fp32)

    seen = []
    real = generation.next_tokens
    monkeypatch.setattr(generation, "next_tokens", lambda logits, *a: (seen.append(logits.dtype), real(logits, *a))[1])
    config = SamplingConfig(n=4, temperature=0.9, top_p=0.9, max_new_tokens=8, seed=3)
    with mr.mixed_read(model):
        bf16 = generate(model, tok, ["def f(x):", "x ="], config, progress=False)
        assert set(seen) == {torch.bfloat16}  # the sampler really read the head's bf16 product
        seen.clear()
        monkeypatch.setattr(mr, "bf16_logits", lambda m: contextlib.nullcontext())  # the head's fp32 copy
        copied = generate(model, tok, ["def f(x):", "x ="], config, progress=False)
        assert set(seen) == {torch.float32}
    assert [[s.text for s in per] for per in bf16] == [[s.text for s in per] for per in copied]

