"""The batched sampler: n per prompt, order, stop strings, determinism."""

from __future__ import annotations

import pytest

from rlhf_nb.lm import models
from rlhf_nb.lm.generation import SamplingConfig, cut_at_stop, generate


@pytest.fixture(scope="module")
def tiny():
    """fp32 weights on any CPU (``baseline``): tests that compare two decoding paths token for token need the same
    maths in both up to summation order, which bf16 near-ties would turn into different greedy tokens."""
    return models.load("tiny", baseline=True)


def test_n_samples_per_prompt_in_prompt_order(tiny):
    tok, model = tiny
    prompts = ["def add(a, b):", [{"role": "user", "content": "What is 3 + 4?"}], "x"]
    out = generate(model, tok, prompts, SamplingConfig(n=3, max_new_tokens=5, batch_size=4), progress=False)
    assert [len(per) for per in out] == [3, 3, 3]
    assert all(0 < s.n_tokens <= 5 for per in out for s in per)


def test_same_seed_same_samples_other_seed_other_samples(tiny):
    tok, model = tiny
    cfg = SamplingConfig(n=4, max_new_tokens=8, temperature=1.0, seed=1)
    a = generate(model, tok, ["hello"], cfg, progress=False)
    b = generate(model, tok, ["hello"], cfg, progress=False)
    c = generate(model, tok, ["hello"], SamplingConfig(n=4, max_new_tokens=8, temperature=1.0, seed=2), progress=False)
    assert [s.text for s in a[0]] == [s.text for s in b[0]]
    assert [s.text for s in a[0]] != [s.text for s in c[0]]


def test_greedy_is_batch_independent(tiny):
    tok, model = tiny
    cfg = dict(temperature=0.0, max_new_tokens=6)
    alone = generate(model, tok, ["def f(x):"], SamplingConfig(**cfg), progress=False)
    batched = generate(model, tok, ["def f(x):", "a much longer prompt that needs left padding"],
                       SamplingConfig(**cfg, batch_size=2), progress=False)
    assert alone[0][0].text == batched[0][0].text


def test_cut_at_stop():
    assert cut_at_stop("abc\ndef x", ("\ndef", "\nclass")) == ("abc", True)
    assert cut_at_stop("abc", ("zz",)) == ("abc", False)


def test_greedy_matches_transformers_generate_with_the_same_batching(tiny):
    """The own decoding loop (rows leave the batch when they finish) gives exactly model.generate's greedy tokens."""
    import torch

    from rlhf_nb.lm.generation import render_prompt

    tok, model = tiny
    prompts = [[{"role": "user", "content": f"What is {i} + {i}?"}] for i in range(6)] + ["def f(x):", "hello"]
    ours = generate(model, tok, prompts, SamplingConfig(temperature=0.0, max_new_tokens=12, batch_size=1), progress=False)
    tok.padding_side = "left"
    for prompt, per in zip(prompts, ours):
        enc = tok([render_prompt(tok, prompt)], return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            seq = model.generate(**enc, do_sample=False, max_new_tokens=12, pad_token_id=tok.pad_token_id,
                                 eos_token_id=tok.eos_token_id)
        assert tok.decode(seq[0, enc["input_ids"].shape[1]:], skip_special_tokens=True) == per[0].text


def test_nucleus_keeps_exactly_the_tokens_transformers_keeps():
    import torch
    from transformers.generation.logits_process import TopPLogitsWarper

    from rlhf_nb.lm.generation import _nucleus

    torch.manual_seed(0)
    peaked = torch.randn(6, 1000) * 4  # nuclei within the first 256 candidates
    flat = torch.randn(3, 1000) * 0.1  # nuclei wider than 256: the full-sort path
    for logits in (peaked, flat, torch.cat([peaked, flat])):
        for top_p in (0.5, 0.9, 0.95):
            ours = torch.isfinite(_nucleus(logits, top_p))
            theirs = torch.isfinite(TopPLogitsWarper(top_p)(None, logits.clone()))
            assert torch.equal(ours, theirs)


def test_sampling_draws_follow_the_distribution():
    """The exponential race is an exact sampler: empirical frequencies match softmax probabilities."""
    import torch

    from rlhf_nb.lm.generation import next_tokens

    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).repeat(20000, 1)
    draws = next_tokens(logits, 1.0, 1.0, torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=4).float() / len(draws)
    assert torch.allclose(freq, torch.softmax(logits[0], -1), atol=0.01)


def test_stats_report_tokens_and_cap_hits(tiny):
    from rlhf_nb.lm.generation import GenerationStats

    tok, model = tiny
    stats = GenerationStats()
    out = generate(model, tok, ["a", "b"], SamplingConfig(n=2, max_new_tokens=3, temperature=1.0), progress=False,
                   stats=stats)
    assert stats.sequences == 4 and stats.tokens == sum(s.n_tokens for per in out for s in per)
    assert stats.capped == sum(not s.finished for per in out for s in per) and stats.tokens_per_s > 0


@pytest.mark.parametrize("top_p", [1.0, 0.9])
def test_draws_over_a_large_vocabulary_are_exact(top_p):
    """Candidates first, the rest of the vocabulary when needed: the draw still follows the (nucleus) distribution."""
    import torch
    from transformers.generation.logits_process import TopPLogitsWarper

    from rlhf_nb.lm.generation import next_tokens

    torch.manual_seed(0)
    row = torch.randn(600) * 1.2  # a flat-ish row: much of the mass lies beyond the top 256 candidates
    row[:3] += 4.0
    target = torch.softmax(TopPLogitsWarper(top_p)(None, row[None].clone())[0] if top_p < 1 else row, -1)
    draws = next_tokens(row.repeat(40000, 1), 1.0, top_p, torch.Generator().manual_seed(1))
    freq = torch.bincount(draws, minlength=600).float() / len(draws)
    assert (freq[target == 0] == 0).all()  # nothing outside the nucleus
    assert torch.allclose(freq[:3], target[:3], atol=0.01)  # the head
    tail = torch.ones(600, dtype=torch.bool)
    tail[row.topk(256).indices] = False
    assert abs(float(freq[tail].sum() - target[tail].sum())) < 0.01  # the tail beyond the candidates


def test_top_p_rows_drawn_at_each_candidate_stage_follow_their_nucleus():
    """One batch whose rows' nuclei lie within the first candidates, within the second, and beyond both (the full
    sort): each row's draws follow its own top-p distribution, and nothing is drawn outside a nucleus."""
    import torch
    from transformers.generation.logits_process import TopPLogitsWarper

    from rlhf_nb.lm.generation import _TOP_P_CANDIDATES, next_tokens

    torch.manual_seed(0)
    vocab, reps = 5000, 6000
    kinds = []
    for scale, head in [(3.0, 4.0), (1.5, 4.0), (0.3, 2.0)]:
        row = torch.randn(vocab) * scale
        row[:3] += head
        kinds.append(row)
    targets = [torch.softmax(TopPLogitsWarper(0.9)(None, row[None].clone())[0], -1) for row in kinds]
    sizes = [int((t > 0).sum()) for t in targets]
    first, second = _TOP_P_CANDIDATES
    assert sizes[0] <= first < sizes[1] <= second < sizes[2]  # one row kind per stage
    logits = torch.cat([row.repeat(reps, 1) for row in kinds])
    draws = next_tokens(logits, 1.0, 0.9, torch.Generator().manual_seed(2)).view(3, reps)
    for kind, target in enumerate(targets):
        freq = torch.bincount(draws[kind], minlength=vocab).float() / reps
        assert (freq[target == 0] == 0).all()
        order = target.argsort(descending=True)
        for lo, hi in [(0, 3), (3, 256), (256, 4096), (4096, vocab)]:  # mass per rank band, head to tail
            assert abs(float(freq[order[lo:hi]].sum() - target[order[lo:hi]].sum())) < 0.025, (kind, lo)


def test_rows_finishing_at_different_steps_decode_as_if_alone(tiny):
    """Rows that end early stay in the batch until a share of it has finished, then leave it together (the cache is
    compacted): every row's greedy tokens are what it decodes alone, whichever steps the others end at."""
    import torch

    from rlhf_nb.lm.generation import decode_batch, render_prompt

    tok, model = tiny
    prompts = [render_prompt(tok, [{"role": "user", "content": f"Count to {i}, slowly {'and ' * i}"}]) for i in range(8)]
    cfg = SamplingConfig(temperature=0.0, max_new_tokens=16)
    tok.padding_side = "left"

    def run(texts, eos):
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            return decode_batch(model, enc["input_ids"], enc["attention_mask"], cfg, eos, None, None)

    alone = [run([t], set())[0][0] for t in prompts]
    # an "EOS" that the rows reach at different steps (or never): a token from the middle of some greedy reply
    counts: dict[int, set[int]] = {}
    for row in alone:
        for step, token in enumerate(row):
            counts.setdefault(token, set()).add(step)
    eos = max(counts, key=lambda t: len(counts[t]))
    expected = [(row[: row.index(eos)] if eos in row else row, eos in row) for row in alone]
    assert len({len(ids) for ids, _ in expected}) > 2  # rows do end at different steps
    assert run(prompts, {eos}) == [(ids, ended) for ids, ended in expected]


def test_prefill_groups_hold_prompts_down_to_a_share_of_their_longest():
    from rlhf_nb.lm.generation import prefill_groups

    lengths = [10, 300, 95, 100, 240, 40, 76]
    groups = prefill_groups(lengths, share=0.75)
    assert groups == [[1, 4], [3, 2, 6], [5], [0]]  # longest first; 76 >= 0.75 x 100, 40 < 75
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    assert prefill_groups(lengths, share=0.0) == [[1, 4, 3, 2, 6, 5, 0]]  # one pass


def test_grouped_prefill_gives_each_row_what_one_padded_pass_gives(tiny, monkeypatch):
    """Prompts of very different lengths are prefilled in groups cut to their own longest prompt: the next-token
    logits and the greedy replies match one left-padded pass over the whole batch."""
    import torch

    from rlhf_nb.lm import generation
    from rlhf_nb.lm.generation import decode_batch, prefill_groups, render_prompt

    tok, model = tiny
    prompts = [render_prompt(tok, [{"role": "user", "content": "word " * k}]) for k in (1, 40, 3, 25, 90, 2)]
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    assert len(prefill_groups(enc["attention_mask"].sum(-1).tolist())) >= 3
    cfg = SamplingConfig(temperature=0.0, max_new_tokens=10)

    def run():
        with torch.inference_mode():
            cache = generation._buffer_cache(model, enc["input_ids"].shape[1] + 1)
            position = (enc["attention_mask"].cumsum(-1) - 1).clamp_min(0)
            logits = generation._prefill(model, enc["input_ids"], enc["attention_mask"], position, cache)
            return logits, decode_batch(model, enc["input_ids"], enc["attention_mask"], cfg, set(), None, None)

    grouped_logits, grouped = run()
    monkeypatch.setattr(generation, "PREFILL_GROUP_SHARE", 0.0)
    single_logits, single = run()
    torch.testing.assert_close(grouped_logits, single_logits, rtol=1e-4, atol=1e-4)
    assert grouped == single


def test_a_done_test_ends_only_its_own_prompts_reply(tiny):
    """``done`` (one test per prompt) ends a reply as soon as it holds on the text so far: kept whole, counted as
    finished; a prompt without a test decodes as it would without any."""
    from dataclasses import dataclass

    tok, model = tiny

    @dataclass(frozen=True)
    class Long:
        chars: int
        trigger: str = "".join(map(chr, range(32, 127)))

        def __call__(self, text: str) -> bool:
            return len(text) >= self.chars

    prompts = ["def f(x):", "hello there"]
    cfg = SamplingConfig(temperature=0.0, max_new_tokens=24, batch_size=2)
    free = generate(model, tok, prompts, cfg, progress=False)
    assert all(len(per[0].text) > 6 for per in free)  # the tiny model writes past six characters unstopped
    cut = generate(model, tok, prompts, cfg, progress=False, done=[Long(6), None])
    assert cut[0][0].finished and cut[0][0].n_tokens < free[0][0].n_tokens
    assert free[0][0].text.startswith(cut[0][0].text) and len(cut[0][0].text) >= 6
    assert cut[1][0] == free[1][0]
    with pytest.raises(ValueError, match="done has 1 tests for 2 prompts"):
        generate(model, tok, prompts, cfg, progress=False, done=[None])


def test_n_samples_prefilled_once_decode_as_each_prompt_alone(tiny):
    """n > 1: generate prefills a prompt once and copies its cache to its n rows (``expand``). Greedy, every copy is
    what the prompt decodes alone (n = 1, no expansion), whether a batch holds one prompt's copies or several
    prompts' of different lengths."""
    tok, model = tiny
    prompts = ["def f(x):", [{"role": "user", "content": "What is 3 + 4? Think step by step. " * 4}], "hello",
               [{"role": "user", "content": "Name a colour."}]]
    cfg = {"temperature": 0.0, "max_new_tokens": 12}
    alone = [generate(model, tok, [p], SamplingConfig(**cfg), progress=False)[0][0] for p in prompts]
    assert len({s.text for s in alone}) == len(prompts)  # the prompts do decode differently
    for batch_size in (3, 5, 12):  # one prompt's copies per batch; copies of two prompts; everything in one batch
        out = generate(model, tok, prompts, SamplingConfig(**cfg, n=3, batch_size=batch_size), progress=False)
        for per, one in zip(out, alone):
            assert [(s.text, s.n_tokens, s.finished) for s in per] == [(one.text, one.n_tokens, one.finished)] * 3


def test_expanded_rows_decode_as_the_repeated_prompts_do(tiny):
    """decode_batch's ``expand`` (prefill each prompt once, copy its cache) against the same prompts repeated in the
    batch: greedy with rows ending at different steps (the cache is compacted under the copies) equals each prompt
    alone, and seeded sampling draws the same tokens as the repeated batch."""
    import torch

    from rlhf_nb.lm.generation import decode_batch, render_prompt

    tok, model = tiny
    texts = [render_prompt(tok, [{"role": "user", "content": f"Count to {i}, slowly {'and ' * i}"}]) for i in (1, 6, 11)]
    expand = [2, 0, 0, 1, 2, 2, 1]  # unordered, uneven copies
    tok.padding_side = "left"
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    repeated = tok([texts[i] for i in expand], return_tensors="pt", padding=True, add_special_tokens=False)
    assert repeated["input_ids"].shape[1] == enc["input_ids"].shape[1]

    def run(batch, cfg, eos, seed=None, rows=None):
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        with torch.inference_mode():
            return decode_batch(model, batch["input_ids"], batch["attention_mask"], cfg, eos, None, generator, rows)

    greedy = SamplingConfig(temperature=0.0, max_new_tokens=16)
    alone = [run(tok([t], return_tensors="pt", add_special_tokens=False), greedy, set())[0][0] for t in texts]
    counts: dict[int, set[int]] = {}  # an "EOS" the rows reach at different steps (or never), as above
    for row in alone:
        for step, token in enumerate(row):
            counts.setdefault(token, set()).add(step)
    eos = max(counts, key=lambda t: len(counts[t]))
    expected = [(row[: row.index(eos)] if eos in row else row, eos in row) for row in alone]
    assert len({len(ids) for ids, _ in expected}) > 1
    assert run(enc, greedy, {eos}, rows=expand) == [expected[i] for i in expand]

    sampled = SamplingConfig(temperature=1.0, max_new_tokens=16)
    drawn = run(enc, sampled, set(), seed=5, rows=expand)
    assert drawn == run(repeated, sampled, set(), seed=5)
    assert drawn[1] != drawn[2]  # copies of one prompt draw their own tokens


def _an_eos_rows_reach_at_different_steps(replies: list[list[int]]) -> int:
    counts: dict[int, set[int]] = {}
    for row in replies:
        for step, token in enumerate(row):
            counts.setdefault(token, set()).add(step)
    return max(counts, key=lambda t: len(counts[t]))


def test_continuous_batching_refills_finished_rows_and_decodes_each_row_as_alone(tiny, monkeypatch):
    """Rows that finish give their places to waiting rows (prompts of other lengths, prefilled while the others run):
    every greedy row is what its prompt decodes alone, and the batch really was refilled mid-run."""
    import torch

    from rlhf_nb.lm import generation
    from rlhf_nb.lm.generation import decode, render_prompt

    tok, model = tiny
    texts = [render_prompt(tok, [{"role": "user", "content": f"Count to {i}, slowly {'and ' * (3 * i)}"}])
             for i in range(9)]
    prompts = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    cfg = SamplingConfig(temperature=0.0, max_new_tokens=16)
    with torch.inference_mode():
        alone = [decode(model, [p], [0], cfg, set(), None, None, batch_size=1)[0][0] for p in prompts]
    eos = _an_eos_rows_reach_at_different_steps(alone)
    expected = [(row[: row.index(eos)] if eos in row else row, eos in row) for row in alone]
    assert len({len(ids) for ids, _ in expected}) > 2

    admitted: list[tuple[int, int]] = []  # (rows kept running, rows entering) per admission
    admit = generation._Running.admit

    def spy(self, keep, *args, rows=(), **kwargs):
        admitted.append((len(keep), len(rows)))
        return admit(self, keep, *args, rows=rows, **kwargs)

    monkeypatch.setattr(generation._Running, "admit", spy)
    rows = [2, 7, 0, 5, 1, 8, 3, 6, 4, 2, 0]  # unordered, one prompt twice
    with torch.inference_mode():
        out = decode(model, prompts, rows, cfg, {eos}, None, None, batch_size=4)
    assert out == [expected[i] for i in rows]
    assert any(kept and entering for kept, entering in admitted)  # newcomers joined rows still running
    assert sum(entering for _, entering in admitted) == len(rows)


def test_a_sampling_call_keeps_freed_memory_while_it_decodes(tiny, monkeypatch):
    import contextlib

    from rlhf_nb.lm import generation

    opened = []

    @contextlib.contextmanager
    def spy():
        opened.append("in")
        yield True
        opened.append("out")

    monkeypatch.setattr(generation, "freed_memory_kept", spy)
    decode = generation.decode
    monkeypatch.setattr(generation, "decode", lambda *a, **k: (opened.append("decode"), decode(*a, **k))[1])
    tok, model = tiny
    generate(model, tok, ["hi"], SamplingConfig(temperature=0.0, max_new_tokens=3), progress=False)
    assert opened == ["in", "decode", "out"]


def test_continuous_and_batch_after_batch_sampling_are_each_deterministic_and_agree_when_greedy(tiny):
    tok, model = tiny
    prompts = ["def f(x):", [{"role": "user", "content": "What is 3 + 4? " * 5}], "hello", "x = [1, 2"]
    greedy = dict(temperature=0.0, max_new_tokens=12, n=2, batch_size=3)
    texts = {c: [s.text for per in generate(model, tok, prompts, SamplingConfig(**greedy, continuous=c),
                                            progress=False) for s in per] for c in (True, False)}
    assert texts[True] == texts[False]
    sampled = dict(temperature=1.0, max_new_tokens=12, n=3, batch_size=4, seed=3)
    for c in (True, False):
        a, b = (generate(model, tok, prompts, SamplingConfig(**sampled, continuous=c), progress=False) for _ in "ab")
        assert a == b


@pytest.mark.parametrize("vocab", [151936, 49152, 50000 + 37])
def test_top_candidates_are_the_top_k(vocab):
    """The block scan returns topk's values exactly (and tokens holding them), whole blocks or a partial last one,
    with the largest values bunched in one block or spread, with ties, and with -inf logits."""
    import torch

    from rlhf_nb.lm import generation
    from rlhf_nb.lm.generation import top_candidates

    torch.manual_seed(0)
    x = torch.randn(6, vocab) * 3
    x[1, 640:704] += 20  # the top in one block
    x[2, -5:] += 20  # the top in the last (partial) block
    x[3] = x[3].round()  # ties everywhere
    x[4, : vocab - 100] = float("-inf")  # masked logits: fewer finite tokens than the candidate blocks hold
    for k in (64, 256):
        assert vocab >= 4 * k * generation._BLOCK  # the block scan, not the plain top-k
        values, index = top_candidates(x, k)
        expected = x.topk(k, dim=-1).values
        assert torch.equal(values, expected)
        assert torch.equal(x.gather(-1, index), values)
        assert all(len(set(row.tolist())) == k for row in index)  # no token twice
        assert int(index.max()) < vocab


def test_empty_prompts_and_a_zero_token_cap(tiny):
    tok, model = tiny
    with pytest.raises(ValueError, match=r"prompts \[1\] are empty"):
        generate(model, tok, ["a", ""], SamplingConfig(max_new_tokens=4), progress=False)
    out = generate(model, tok, ["a", "b"], SamplingConfig(max_new_tokens=0, n=2), progress=False)
    assert [(s.text, s.n_tokens) for per in out for s in per] == [("", 0)] * 4


def test_counts_sample_each_prompt_its_own_number_of_times(tiny):
    """Prompts sampled different numbers of times in one call: each gets its count, in prompt order, a prompt with
    count 0 none; greedy replies equal those of a call per prompt; a wrong count is refused before any work."""
    tok, model = tiny
    prompts = ["def add(a, b):", "x = ", "hello"]
    greedy = SamplingConfig(n=1, max_new_tokens=6, temperature=0.0)
    out = generate(model, tok, prompts, greedy, progress=False, counts=[3, 0, 2])
    assert [len(per) for per in out] == [3, 0, 2]
    alone = [generate(model, tok, [p], greedy, progress=False)[0][0].text for p in prompts]
    assert {s.text for s in out[0]} == {alone[0]} and {s.text for s in out[2]} == {alone[2]}
    sampled = generate(model, tok, prompts, SamplingConfig(max_new_tokens=6, temperature=1.0), progress=False,
                       counts=[4, 1, 2])
    assert [len(per) for per in sampled] == [4, 1, 2]
    for bad in ([1, 2], [1, -1, 1]):
        with pytest.raises(ValueError, match="counts"):
            generate(model, tok, prompts, greedy, progress=False, counts=bad)


@pytest.mark.parametrize("temperature", [0.7, 1.0, 1.3])
def test_logsumexp_rows_equals_torch_logsumexp(temperature):
    """The chunked log-sum-exp from each row's maximum equals torch's (large logits, -inf entries, a row of -inf)."""
    import torch

    from rlhf_nb.lm import generation

    torch.manual_seed(0)
    x = torch.randn(37, 5000) * 8 + 30
    x[3, :4000] = float("-inf")
    x[5] = float("-inf")
    got = generation._logsumexp_rows(x, temperature)
    expected = torch.logsumexp(x / temperature, dim=-1, keepdim=True)
    assert got.shape == (37, 1)
    assert torch.isneginf(got[5]).all()
    finite = torch.isfinite(expected).squeeze(-1)
    assert torch.allclose(got[finite], expected[finite], rtol=0, atol=1e-4)


def _buffer_bytes_per_position(model) -> int:
    """Bytes a row's cached position takes in the buffer cache a prefill really allocates (one row, 10 positions)."""
    import torch

    from rlhf_nb.lm import generation as G

    ids = torch.tensor([[5, 6, 7, 8]])
    mask = torch.ones_like(ids)
    cache = G._buffer_cache(model, 10)
    with torch.inference_mode():
        G._prefill(model, ids, mask, mask.cumsum(-1) - 1, cache)
    return sum(layer.k_buf.nbytes + layer.v_buf.nbytes for layer in cache.layers) // 10


def test_prompts_sampled_once_decode_in_batches_as_large_as_the_kv_budget_allows(tiny, monkeypatch):
    """On a CPU a call whose every prompt is sampled once takes as many rows a batch as their caches fit
    ``ONE_REPLY_KV_BYTES`` (a batch runs until its longest reply ends, so fewer batches leave fewer thin steps); a call
    that repeats prompts (the shared cache, continuous batching) and an explicit batch size keep theirs."""
    from rlhf_nb.lm import generation as G

    tok, model = tiny
    per_position = G.kv_bytes_per_position(model)
    assert per_position == _buffer_bytes_per_position(model)  # what the sampler's cache really allocates
    row = per_position * (10 + 20)  # one row's cache: 10 prompt tokens + 20 new
    monkeypatch.setattr(G, "ONE_REPLY_KV_BYTES", 200 * row)
    assert G.one_reply_batch_size(model, 10, 20, 300, 128) == 200  # as many as fit
    assert G.one_reply_batch_size(model, 10, 20, 150, 128) == 150  # all of them
    assert G.one_reply_batch_size(model, 40, 20, 300, 128) == 128  # never fewer than the general batch

    seen: list[int] = []

    def spy(model, prompts, rows, config, eos, stop_check, generator, batch_size, *args, **kwargs):
        seen.append(batch_size)
        return [([], True) for _ in rows]

    monkeypatch.setattr(G, "decode", spy)
    monkeypatch.setattr(G, "ONE_REPLY_KV_BYTES", 10**12)
    prompts = [f"prompt {i}" for i in range(300)]
    generate(model, tok, prompts, SamplingConfig(n=1, max_new_tokens=4), progress=False)
    generate(model, tok, prompts, SamplingConfig(n=2, max_new_tokens=4), progress=False)
    generate(model, tok, prompts, SamplingConfig(n=1, max_new_tokens=4, batch_size=64), progress=False)
    generate(model, tok, prompts[:100], SamplingConfig(n=1, max_new_tokens=4), progress=False)
    assert seen == [300, 128, 64, 128]


def test_the_one_reply_batch_counts_the_caches_bytes_and_keeps_the_general_batch_where_it_cannot_use_its_cache(
        tiny, monkeypatch):
    """Under the mixed read on a CPU the cache holds bf16 (2 bytes a value, half the fp32 count); at most
    ``ONE_REPLY_MAX_ROWS`` rows; a model with sliding-window layers (transformers' cache) keeps the general batch."""
    from rlhf_nb.lm import generation as G
    from rlhf_nb.lm import mixed_read, shared_prefix

    tok, model = tiny
    fp32 = G.kv_bytes_per_position(model)
    with mixed_read.mixed_read(model):
        assert G.kv_bytes_per_position(model) * 2 == fp32 == _buffer_bytes_per_position(model) * 2
    monkeypatch.setattr(G, "ONE_REPLY_KV_BYTES", 10**12)
    assert G.one_reply_batch_size(model, 10, 20, 5000, 128) == G.ONE_REPLY_MAX_ROWS
    monkeypatch.setattr(shared_prefix, "full_attention_only", lambda m: False)
    assert G.one_reply_batch_size(model, 10, 20, 300, 128) == 128


def test_one_batch_of_every_prompt_gives_the_replies_of_batches_of_128(tiny, monkeypatch):
    """fp32 greedy replies of 150 prompts: one batch of 150 (the one-reply batch, really decoded) and batches of
    128 + 22 agree."""
    from rlhf_nb.lm import generation as G

    tok, model = tiny
    prompts = [f"item {i}: " + "word " * (i % 7) for i in range(150)]
    seen, decode = [], G.decode

    def spy(*args, **kwargs):
        seen.append(args[7])  # batch_size
        return decode(*args, **kwargs)

    monkeypatch.setattr(G, "decode", spy)
    one = generate(model, tok, prompts, SamplingConfig(temperature=0.0, max_new_tokens=4), progress=False)
    assert seen == [150]
    split = generate(model, tok, prompts, SamplingConfig(temperature=0.0, max_new_tokens=4, batch_size=128),
                     progress=False)
    assert [r[0].text for r in one] == [r[0].text for r in split]


def test_prefill_groups_hold_at_most_the_token_limit():
    from rlhf_nb.lm.generation import prefill_groups

    groups = prefill_groups([100] * 10 + [300], share=0.0, tokens=450)
    assert groups == [[10], [0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]  # rows x the group's longest prompt <= 450
    assert prefill_groups([100] * 10, share=0.0, tokens=10**6) == [list(range(10))]
    assert prefill_groups([100] * 10 + [10**7], share=0.0, tokens=None) == [[10, *range(10)]]  # no bound
