"""Batched sampling: n completions per prompt, KV cache, temperature/top-p, stop strings, tokens/s.

Prompts are chat messages (the chat template is applied) or plain strings (used as-is). Jobs are
sorted by prompt length and padded on the left; prompts entering together are prefilled in groups of similar
length (:func:`prefill_groups`), so a short prompt batched with a long one does not pay for the long one's width.

The decoding loop is our own (a prefill, then one token per step through the model's KV cache), not
``model.generate``, for measured reasons on CPU: a prompt sampled n times is prefilled once and its keys are
cached once for its rows (:mod:`rlhf_nb.lm.shared_prefix`; copied to n rows, the attention read them n times a step);
rows that finish (EOS or a stop string) give their places to waiting rows (continuous batching, :func:`decode`)
instead of leaving a batch that runs thinner until its longest reply ends; and a token is drawn among the top 256
candidates where the draw allows it (exactly, see :func:`next_tokens`; the candidates found by block maxima,
:func:`top_candidates`) rather than with ``torch.multinomial`` or noise over the whole vocabulary, which took a
quarter of all sampling time over a 49k-token vocabulary and more over Qwen's 152k. Greedy decoding
(``temperature=0``) is a plain argmax. ``benchmarks/continuous_bench.py`` measures the loop before and after the
shared cache and refills on two notebooks' workloads.

``batch_size=None`` picks the batch the machine likes (:func:`auto_batch_size`: on CPU 128 sequences for
models under 1B parameters, 32 above; 64 on CUDA; on CPU a call that samples each prompt once takes as many rows as
fit a KV-cache budget, :func:`one_reply_batch_size`). A call draws from one generator seeded from ``seed``, so the same
call gives the same samples on the same machine (the samples depend on the batch size: rows draw in batch order).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from rlhf_nb.lm import mixed_read, shared_prefix
from rlhf_nb.lm.device import freed_memory_kept

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Messages = list[dict[str, str]]
_TOP_P_CANDIDATES = (256, 4096)  # top-p draws look among this many tokens, then this many, then the vocabulary


class Done(Protocol):
    """A test on a reply so far that ends it when it holds; ``trigger``: characters one of which the newest tokens
    must contain before the test runs (so a test on the whole text runs on few steps)."""

    trigger: str

    def __call__(self, text: str) -> bool: ...


@dataclass(frozen=True)
class SamplingConfig:
    n: int = 1  # samples per prompt
    temperature: float = 1.0  # 0 -> greedy
    top_p: float = 1.0
    max_new_tokens: int = 128
    stop: tuple[str, ...] = ()  # generation ends at (and the text is cut before) the first stop string
    batch_size: int | None = None  # sequences per forward pass; None: auto_batch_size() (see one_reply_batch_size)
    seed: int = 0
    entropy: bool = False  # record each reply's mean next-token entropy (nats, at the temperature) in Sample.meta
    continuous: bool = True  # n > 1: continuous batching over a shared-prompt cache (see decode); else batch after batch


@dataclass
class Sample:
    text: str
    n_tokens: int  # generated tokens (before cutting at a stop string)
    finished: bool  # ended by EOS or a stop string rather than the token limit
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class GenerationStats:
    """Filled by :func:`generate` when passed in: how much was generated, how fast."""

    sequences: int = 0
    tokens: int = 0
    seconds: float = 0.0
    capped: int = 0  # sequences that hit max_new_tokens

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def cap_rate(self) -> float:
        return self.capped / self.sequences if self.sequences else 0.0


def auto_batch_size(device: str, n_params: int = 0) -> int:
    """Sequences per forward pass. On CPU, tokens/s keeps rising with the batch because finished rows leave it
    (measured by ``benchmarks/throughput_bench.py`` and in the notes: Qwen2.5-Coder-0.5B code samples, n = 10,
    52 / 62 / 113 / 132 tok/s at 16 / 32 / 64 / 128; SmolLM2-135M 134 / 191 / 245 at 16 / 32 / 64), so models
    under 1B parameters sample 128 at a time and larger ones 32 (their caches are larger); CUDA: 64."""
    if device.startswith("cuda"):
        return 64
    return 128 if n_params and n_params < 1_000_000_000 else 32


#: on a CPU, where every prompt is sampled once (each row caches its own prompt and reply), as many rows decode together
#: as fit this many bytes of KV cache: a batch runs until its longest reply ends, so a call split into batches of 128
#: spends most of its steps on the few rows still running at each batch's end (05's 300 held-out prompts, cap 192,
#: SmolLM2-135M with a trained adapter read mixed: 89.2 s as 128 + 128 + 44 rows, 79.2 s as 184 + 116 under this
#: budget, one run each; one batch of 300 was 1.23x alternated, 573 -> 191 steps). The process's peak memory grows
#: faster than the cache: 4.8 GB RSS in batches of 128, 6.4 GB under this budget, 13.5 GB at twice it (one batch)
ONE_REPLY_KV_BYTES = 3 * 2**30
ONE_REPLY_MAX_ROWS = 512


def kv_bytes_per_position(model: Any) -> int:
    """Bytes of keys and values one cached position of one row takes in the sampler's buffer cache
    (:func:`_buffer_cache`): bf16 under the mixed read on a CPU, else the weights' dtype (4 bytes for weights that are
    not floating point: quantized layers may compute in fp32)."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    import torch

    dtype = _cache_dtype(model)
    if dtype is not None:
        size = torch.empty((), dtype=dtype).element_size()
    elif any(not p.dtype.is_floating_point for p in model.parameters()):  # quantized layers: fp32 at worst
        size = 4
    else:
        size = next(model.parameters()).element_size()
    return config.num_hidden_layers * (getattr(config, "num_key_value_heads", None) or heads) * head_dim * 2 * size


def _cache_dtype(model: Any) -> Any:
    """The dtype the buffer cache keeps keys and values in where it is not theirs: bf16 under the mixed read on a CPU
    (attention runs in bf16 there: the prefill's SDPA, a decoding step's fused kernel), else None (their own)."""
    import torch

    return torch.bfloat16 if mixed_read.active(model) and next(model.parameters()).device.type == "cpu" else None


def one_reply_batch_size(model: Any, widest: int, max_new_tokens: int, rows: int, least: int) -> int:
    """The batch for ``rows`` prompts sampled once each on a CPU: all of them where their caches (``widest`` prompt
    tokens + ``max_new_tokens`` a row) fit :data:`ONE_REPLY_KV_BYTES`, else as many as fit, never fewer than ``least``
    (the general batch, :func:`auto_batch_size`) nor more than :data:`ONE_REPLY_MAX_ROWS`. Models with sliding-window
    layers (transformers' own cache, prefilled in one pass) keep ``least``. The prefill's activations do not grow
    with the batch: its groups hold at most :data:`PREFILL_GROUP_TOKENS`."""
    if not shared_prefix.full_attention_only(model):
        return least
    fit = ONE_REPLY_KV_BYTES // max(1, kv_bytes_per_position(model) * (widest + max_new_tokens))
    return max(least, min(rows, ONE_REPLY_MAX_ROWS, fit))


def render_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str | Messages) -> str:
    """Chat messages -> the model's chat template with the assistant turn opened; strings pass through."""
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    cut = min((i for s in stop if (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def next_tokens(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> torch.Tensor:
    """One token per row of ``logits`` (rows x vocab): argmax when ``temperature == 0``, else an exact draw from
    softmax(logits / temperature) restricted to the top-p nucleus.

    A draw looks at the top ``_TOP_P_CANDIDATES[0]`` tokens first (one top-k pass over the vocabulary): a row whose
    nucleus lies among them (the usual case for top-p < 1) is sampled there, a row whose nucleus is wider looks
    among the next candidate count, and only what is left sorts the whole vocabulary (a sort costs ~7 top-4096
    passes here). With top-p = 1 a row is sampled among the first candidates with their total probability and from
    the rest of the vocabulary otherwise, so the draw stays exact. Draws use the exponential race, argmax p / E
    with E ~ Exp(1).
    """
    import torch

    if temperature <= 0:
        return logits.argmax(-1)
    # z = x / temperature, formed only where needed (a copy of all rows x vocab is slow); bf16 logits (the mixed read's
    # head, :func:`rlhf_nb.lm.mixed_read.bf16_logits`) are read as they are and upcast a piece at a time
    x = logits
    log_total = _logsumexp_rows(x, temperature)
    out = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    rows = torch.arange(x.shape[0], device=x.device)  # rows still to draw
    stages = _TOP_P_CANDIDATES if top_p < 1.0 else _TOP_P_CANDIDATES[:1]
    for stage, k in enumerate(stages):
        left, left_total = (x, log_total) if stage == 0 else (x[rows], log_total[rows])  # no copy of the full batch
        top_x, top_i = top_candidates(left, min(k, x.shape[-1]))  # sorted, largest first
        top_prob = (top_x.float() / temperature - left_total).exp()
        if top_p < 1.0:
            keep = (top_prob.cumsum(-1) - top_prob) < top_p  # HF's rule: keep while the mass ranked above is < top_p
            inside = top_prob.sum(-1) >= top_p
        else:
            keep = torch.ones_like(top_prob, dtype=torch.bool)
            inside = torch.rand(len(rows), generator=generator, device=x.device) < top_prob.sum(-1)
        if inside.any():
            weights = torch.where(keep[inside], top_prob[inside], torch.zeros((), device=x.device))
            race = torch.empty_like(weights).exponential_(1.0, generator=generator)
            out[rows[inside]] = top_i[inside].gather(-1, (weights / race).argmax(-1, keepdim=True)).squeeze(-1)
        rows, top_i = rows[~inside], top_i[~inside]
        if not len(rows):
            return out
    # the whole vocabulary (top-p: a nucleus wider than every candidate set; top-p = 1: the tail)
    full = x[rows].float() / temperature
    if top_p < 1.0:
        full = _nucleus(full, top_p)
    else:
        full = full.scatter(-1, top_i, float("-inf"))  # the tail only: the candidates' mass was drawn above
    probs = torch.softmax(full, dim=-1)
    race = torch.empty_like(probs).exponential_(1.0, generator=generator)
    out[rows] = (probs / race).argmax(-1)
    return out


#: rows per piece when a per-row reduction runs over the vocabulary: temporaries stay small and are reused
_ROW_CHUNK = 16


def _logsumexp_rows(x: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logsumexp(x / temperature)`` per row (rows x 1), a few rows at a time: each row's maximum, then
    ``exp((x - max) / temperature)`` summed in place (``torch.logsumexp`` took 62 against 14 ms on this CPU at 200 rows x
    152k; the same value up to rounding, ~2e-6)."""
    import torch

    out = x.new_empty(x.shape[0], 1, dtype=torch.float32)
    for a in range(0, x.shape[0], _ROW_CHUNK):
        piece = x[a:a + _ROW_CHUNK].float()
        top = piece.amax(-1, keepdim=True)
        top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))  # a row of -inf stays -inf, not nan
        total = (piece - top).mul_(1.0 / temperature).exp_().sum(-1, keepdim=True)
        out[a:a + _ROW_CHUNK] = total.log_().add_(top / temperature)
    return out


#: :func:`top_candidates` scans blocks of this many tokens
_BLOCK = 32


def top_candidates(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``x.topk(k)`` per row (values sorted, largest first; indices), found among the ``k`` blocks of
    :data:`_BLOCK` tokens with the largest maxima (and the few tokens after the last whole block): a token outside them
    lies in a block whose maximum is at most the least of theirs, and each of the ``k`` blocks holds a token at least
    that large, so no token outside them can rank above the ``k``-th inside (ties aside, which any top-k breaks
    arbitrarily). One pass for the block maxima
    and a top-k over k x 32 candidates replace a top-k over the vocabulary (31 against 48 ms at 256 rows x 152k
    tokens, measured)."""
    import torch

    rows, vocab = x.shape
    if vocab < 4 * k * _BLOCK:
        return x.topk(k, dim=-1)
    blocks = vocab // _BLOCK
    maxima = x[:, :blocks * _BLOCK].view(rows, blocks, _BLOCK).amax(-1)
    chosen = maxima.topk(k, dim=-1).indices  # rows x k whole blocks
    columns = (chosen.unsqueeze(-1) * _BLOCK + torch.arange(_BLOCK, device=x.device)).reshape(rows, -1)
    if blocks * _BLOCK < vocab:  # the tokens after the last whole block are candidates always
        tail = torch.arange(blocks * _BLOCK, vocab, device=x.device).expand(rows, -1)
        columns = torch.cat([columns, tail], dim=-1)
    values, where = x.gather(-1, columns).topk(k, dim=-1)
    return values, columns.gather(-1, where)


def _nucleus(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Mask tokens outside the smallest set whose probability reaches ``top_p`` (HF's rule: a token stays
    when the mass of the tokens ranked above it is below ``top_p``), sorting the whole vocabulary."""
    import torch

    probs = torch.softmax(logits, dim=-1)
    sorted_probs, order = probs.sort(-1, descending=True)
    keep = (sorted_probs.cumsum(-1) - sorted_probs) < top_p
    kept = torch.where(keep, logits.gather(-1, order), torch.tensor(float("-inf"), device=logits.device))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, kept)


def _buffer_cache(model: Any, capacity: int) -> Any:
    """A KV cache whose layers keep keys and values in one buffer allocated at the prefill for the whole reply
    (``capacity`` = prompt + ``max_new_tokens``): a step writes its token in place. transformers' DynamicCache
    concatenates, copying the whole cache every step: half of all decoding time at 64+ rows on CPU (measured).
    Models with sliding-window or other non-full attention layers get transformers' own cache."""
    from transformers import DynamicCache
    from transformers.cache_utils import Cache, DynamicLayer

    if not shared_prefix.full_attention_only(model):
        return DynamicCache(config=model.config)
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    dtype = _cache_dtype(model)  # bf16 under the mixed read on a CPU: half the bytes a decoding step reads

    class BufferLayer(DynamicLayer):
        def __init__(self) -> None:
            super().__init__()
            self.length = 0

        def lazy_initialization(self, key_states: Any, value_states: Any, batch: int | None = None) -> None:
            """Buffers for ``batch`` rows (default: the rows of ``key_states``), zeroed when a group's prefill fills
            only part of them (:meth:`place`), else left for the one prefill to overwrite."""
            self.dtype, self.device = dtype or key_states.dtype, key_states.device
            b, h, _, d = key_states.shape
            new = key_states.new_empty if batch is None else key_states.new_zeros
            self.k_buf = new(batch or b, h, capacity, d, dtype=self.dtype)
            self.v_buf = new(batch or b, h, capacity, value_states.shape[-1], dtype=self.dtype)
            self.is_initialized = True

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            return shared_prefix.append_in_place(self, key_states, value_states)

        def place(self, rows: Any, key_states: Any, value_states: Any, batch: int, width: int) -> None:
            """Write one group's prefill (``rows`` of a ``batch``, its keys right-aligned in ``width`` columns) into
            zeroed buffers: the columns left of a short group are padding, masked, and hold zeros, never garbage."""
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states, batch)
            n = key_states.shape[-2]
            self.k_buf[rows, :, width - n:width] = key_states.to(self.dtype)
            self.v_buf[rows, :, width - n:width] = value_states.to(self.dtype)
            self.length = width
            self.keys, self.values = self.k_buf[:, :, :width], self.v_buf[:, :, :width]

        def get_seq_length(self) -> int:
            return self.length

        def batch_select_indices(self, indices: Any) -> None:
            if self.is_initialized:
                self.k_buf, self.v_buf = self.k_buf[indices], self.v_buf[indices]
                self.keys, self.values = self.k_buf[:, :, :self.length], self.v_buf[:, :, :self.length]

    return Cache(layers=[BufferLayer() for _ in range(config.num_hidden_layers)])


#: a prefill group takes prompts down to this share of its longest one; a shorter prompt starts the next group
PREFILL_GROUP_SHARE = 0.75
#: and, in a batch of more than 128 rows (:func:`one_reply_batch_size`'s), at most this many tokens (rows x its longest
#: prompt), so its prefill's activations stay what a batch of 128 prompts of 512 tokens made; smaller batches are
#: grouped as before the limit existed
PREFILL_GROUP_TOKENS = 128 * 512
PREFILL_LIMIT_ROWS = 128


def prefill_groups(lengths: list[int], share: float | None = None,
                   tokens: int | None = PREFILL_GROUP_TOKENS) -> list[list[int]]:
    """Rows (indices into ``lengths``) grouped for the prefill: longest first, a group holding prompts down to
    ``share`` (default :data:`PREFILL_GROUP_SHARE`) of its longest, so padding costs at most ``1 - share`` of a
    group's forward pass, and at most ``tokens`` (default :data:`PREFILL_GROUP_TOKENS`; ``None``: no bound) rows x
    its longest prompt (a prompt longer than that is a group of its own); ``share=0`` gives one group where the rows
    fit ``tokens``."""
    share = PREFILL_GROUP_SHARE if share is None else share
    tokens = math.inf if tokens is None else tokens
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if (groups and lengths[i] >= share * lengths[groups[-1][0]]
                and (len(groups[-1]) + 1) * lengths[groups[-1][0]] <= tokens):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _prefill(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, position: torch.Tensor,
             cache: Any) -> torch.Tensor:
    """Fill ``cache`` with the prompts and return each row's next-token logits.

    A left-padded batch is as wide as its longest prompt, and a prefill costs rows x width: with held-out prompts
    of 45-306 tokens (mean 94) two thirds of an fp32 prefill went to padding, and the prefill was most of a greedy
    evaluation (measured on SmolLM2-135M: 33 s of a 48-prompt batch). Rows are therefore prefilled in groups of
    similar length (:func:`prefill_groups`), each group cut to its own longest prompt, and written right-aligned into
    the one cache the batch then decodes from. Positions and masks are the batch's own, so each row computes what
    it computes in a single pass (up to floating-point summation order). Caches other than the buffer cache
    (sliding-window models) get the single pass."""
    import torch

    width = input_ids.shape[1]
    lengths = attention_mask.sum(-1).tolist()
    groups = prefill_groups(lengths, tokens=PREFILL_GROUP_TOKENS if len(lengths) > PREFILL_LIMIT_ROWS else None)
    if len(groups) == 1 or not all(hasattr(layer, "place") for layer in cache.layers):
        out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position, past_key_values=cache,
                    use_cache=True, logits_to_keep=1)
        return out.logits[:, -1, :]
    from transformers import DynamicCache

    logits: torch.Tensor | None = None
    for group in groups:
        rows = torch.tensor(group, device=input_ids.device)
        cut = int(attention_mask[rows].sum(-1).max())  # the group's longest prompt; left padding sits before it
        part = DynamicCache(config=model.config)
        out = model(input_ids=input_ids[rows, width - cut:], attention_mask=attention_mask[rows, width - cut:],
                    position_ids=position[rows, width - cut:], past_key_values=part, use_cache=True, logits_to_keep=1)
        for layer, filled in zip(cache.layers, part.layers):
            layer.place(rows, filled.keys, filled.values, input_ids.shape[0], width)
        if logits is None:
            logits = out.logits.new_empty(input_ids.shape[0], out.logits.shape[-1])
        logits[rows] = out.logits[:, -1, :]
    assert logits is not None
    return logits


#: finished rows stay in the batch (their tokens ignored) until this share of it has finished, then leave it
#: together: dropping a row copies the whole cache, which costs about as much as a step at 64+ rows on CPU
COMPACT_FRACTION = 0.25
#: with rows waiting (continuous batching), finished rows give their places to waiting ones once this share of the
#: batch is free: a refill prefills the newcomers and copies the cache once
REFILL_FRACTION = 0.125


class _Running:
    """The rows decoding together: their KV cache, the attention mask over its columns, each row's next position and
    next-token logits.

    With ``share`` where :func:`rlhf_nb.lm.shared_prefix.supported` (full attention through SDPA-style masks: the
    models here) the cache is a :class:`~rlhf_nb.lm.shared_prefix.SharedPrefixCache`: each prompt's keys once, each
    row's reply on its own, so rows leave and join by copying replies (:meth:`admit`); the mask covers the replies. Otherwise each row
    holds its prompt and reply (:func:`_buffer_cache`), a prompt sampled n times has its cache copied to its rows,
    and rows only leave (batch after batch).
    """

    def __init__(self, model: Any, max_new_tokens: int, share: bool = True) -> None:
        self.model, self.max_new_tokens = model, max_new_tokens
        self.shared = share and shared_prefix.supported(model)
        self.cache: Any = shared_prefix.SharedPrefixCache(model, max_new_tokens) if self.shared else None
        self.mask: Any = None  # rows x columns
        self.position: Any = None  # rows: the position of each row's newest token
        self.logits: Any = None  # rows x vocab: the next draw's
        self.rows: list[int] = []  # batch position -> output row
        self.running: list[bool] = []

    def admit(self, keep: list[int], input_ids: Any = None, attention_mask: Any = None,
              expand: list[int] | None = None, rows: list[int] = ()) -> None:
        """Keep batch positions ``keep`` and add ``rows`` (output rows) prefilled from the left-padded ``input_ids``
        (``expand`` maps each new row to one of its prompts: a prompt sampled n times is prefilled once)."""
        import torch

        device = input_ids.device if rows else self.mask.device
        index = torch.tensor(keep, dtype=torch.long, device=device)
        if rows:
            width = input_ids.shape[1]
            position = (attention_mask.cumsum(-1) - 1).clamp_min(0)
            cache = _buffer_cache(self.model, width if self.shared else width + self.max_new_tokens)
            logits = _prefill(self.model, input_ids, attention_mask, position, cache)
            pick = torch.tensor(expand if expand is not None else range(len(rows)), dtype=torch.long, device=device)
            last, logits = position[pick, -1], logits[pick]
        if self.shared:
            new = (cache, attention_mask.sum(-1).tolist(), pick.tolist()) if rows else None
            self.mask = self.cache.rebuild(keep, self.mask, new)
        elif rows:  # a fresh batch (rows join only an empty one here)
            assert not keep
            for layer in cache.layers:
                layer.batch_select_indices(pick)
            self.cache, self.mask = cache, attention_mask[pick]
        else:
            for layer in self.cache.layers:
                layer.batch_select_indices(index)
            self.mask = self.mask[index]
        self.position = torch.cat(([self.position[index]] if keep else []) + ([last] if rows else []))
        self.logits = torch.cat(([self.logits[index]] if keep else []) + ([logits] if rows else []))
        self.rows = [self.rows[j] for j in keep] + list(rows)
        self.running = [True] * len(self.rows)

    def step(self, tokens: list[int]) -> None:
        """Feed one token per row (finished rows are fed anything; their logits are ignored)."""
        import torch

        next_ids = torch.tensor(tokens, device=self.mask.device).unsqueeze(-1)
        self.mask = torch.cat([self.mask, self.mask.new_ones((self.mask.shape[0], 1))], dim=-1)
        self.position = self.position + 1
        extra = {"shared_prefix": self.cache} if self.shared else {}
        out = self.model(input_ids=next_ids, attention_mask=self.mask, position_ids=self.position.unsqueeze(-1),
                         past_key_values=self.cache.cache if self.shared else self.cache, use_cache=True, **extra)
        self.logits = out.logits[:, -1, :]


def decode(model: Any, prompts: list[list[int]], rows: list[int], config: SamplingConfig, eos: set[int],
           stop_check: Any, generator: torch.Generator | None, batch_size: int, pad_id: int = 0,
           entropy: list[list[float]] | None = None, on_finish: Any = None) -> list[tuple[list[int], bool]]:
    """Decode output rows ``rows`` (``rows[r]``: the index into ``prompts``, token ids, that row ``r`` samples from),
    at most ``batch_size`` at a time; returns (new token ids, finished) per output row.

    Rows enter in order. With ``config.continuous``, rows that repeat prompts (n > 1) and a model
    :mod:`~rlhf_nb.lm.shared_prefix` serves, the cache holds each prompt once and each row's reply, and a row that
    finishes gives its place to the next waiting row (continuous batching: once :data:`REFILL_FRACTION` of the batch
    is free, the waiting rows are prefilled and join the running ones), so the batch stays full until no row waits.
    Otherwise each row caches its prompt and reply and a batch runs until its last row ends before the next starts.
    Either way finished rows leave together once :data:`COMPACT_FRACTION` of the batch has finished. ``eos`` ends a
    row (the EOS itself is not returned); ``stop_check(row, ids) -> bool`` (optional) ends
    output row ``row`` early. Rows draw in batch order from ``generator``; a finished row draws nothing. ``entropy``
    (optional, one ``[0, 0]`` per output row) gets each row's summed next-token entropy and its number of draws (the
    distribution at the temperature, over the whole vocabulary; none for greedy). ``on_finish(row)`` is called as
    each row ends, with its number of tokens. Call under ``torch.inference_mode()``.
    """
    import torch

    tokens: list[list[int]] = [[] for _ in rows]
    if config.max_new_tokens <= 0:
        return [([], False) for _ in rows]
    finished = [False] * len(rows)
    steps = [0] * len(rows)
    # the shared cache pays where prompts repeat: for one reply a prompt its entries are as large as a per-row cache and
    # every refill copies them (SmolLM2-135M's greedy held-out replies ran at 0.84x, benchmarks/results/continuous.md)
    batch = _Running(model, config.max_new_tokens, share=config.continuous and len(set(rows)) < len(rows))
    refills = batch.shared
    waiting = 0  # the next output row to enter
    filler = next(iter(eos), pad_id)  # what a finished row is fed until it leaves the batch
    device = next(model.parameters()).device

    def encode(entering: list[int]) -> tuple[Any, Any, list[int] | None]:
        unique = list(dict.fromkeys(rows[r] for r in entering))
        width = max(len(prompts[i]) for i in unique)
        ids = torch.full((len(unique), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(unique), width), dtype=torch.long)
        for k, i in enumerate(unique):
            ids[k, width - len(prompts[i]):] = torch.tensor(prompts[i])
            mask[k, width - len(prompts[i]):] = 1
        expand = [unique.index(rows[r]) for r in entering] if len(unique) < len(entering) else None
        return ids.to(device), mask.to(device), expand

    with shared_prefix.decoding(model) if batch.shared else contextlib.nullcontext(), mixed_read.bf16_logits(model):
        while True:
            alive = [j for j, run in enumerate(batch.running) if run]
            dead = len(batch.rows) - len(alive)
            left = len(rows) - waiting
            free = batch_size - len(alive)
            refill = left > 0 and (not alive or refills and free >= min(left, max(1, REFILL_FRACTION * batch_size)))
            if refill or (dead and dead >= max(1, COMPACT_FRACTION * len(batch.rows))):
                entering = list(range(waiting, waiting + min(free, left))) if refill else []
                waiting += len(entering)
                batch.admit(alive, *encode(entering), rows=entering) if entering else batch.admit(alive)
                alive = list(range(len(batch.rows)))
            if not alive:
                break
            live_logits = batch.logits if len(alive) == len(batch.rows) else batch.logits[alive]
            drawn = next_tokens(live_logits, config.temperature, config.top_p, generator).tolist()
            if entropy is not None and config.temperature > 0:
                logp = torch.log_softmax(live_logits.float() / config.temperature, dim=-1)
                for j, h in zip(alive, (-(logp.exp() * logp).sum(-1)).tolist()):
                    entropy[batch.rows[j]][0] += h
                    entropy[batch.rows[j]][1] += 1
            chosen = [filler] * len(batch.rows)
            for j, token in zip(alive, drawn):
                chosen[j] = token
                row = batch.rows[j]
                steps[row] += 1
                if token in eos:
                    finished[row] = True
                else:
                    tokens[row].append(token)
                    finished[row] = stop_check is not None and stop_check(row, tokens[row])
                if finished[row] or steps[row] >= config.max_new_tokens:
                    batch.running[j] = False
                    if on_finish is not None:
                        on_finish(row, len(tokens[row]))
            if not any(batch.running) and waiting == len(rows):
                break
            if any(batch.running):
                batch.step(chosen)
    return [(t, f) for t, f in zip(tokens, finished)]


def decode_batch(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, config: SamplingConfig,
                 eos: set[int], stop_check: Any, generator: torch.Generator | None,
                 expand: list[int] | None = None, entropy: list[list[float]] | None = None) -> list[tuple[list[int], bool]]:
    """:func:`decode` for one left-padded batch (``input_ids`` / ``attention_mask``), every row at once; ``expand``
    (optional) maps each output row to a row of ``input_ids`` (a prompt sampled n times is prefilled once)."""
    prompts = [ids[mask.bool()].tolist() for ids, mask in zip(input_ids.cpu(), attention_mask.cpu())]
    rows = expand if expand is not None else list(range(len(prompts)))
    return decode(model, prompts, rows, config, eos, stop_check, generator, batch_size=len(rows), entropy=entropy)


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """Token ids that end a reply: the tokenizer's EOS and any the model's generation config adds."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    extra = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(extra) if isinstance(extra, (list, tuple)) else ({extra} if isinstance(extra, int) else set())
    return ids


def _stop_checker(tokenizer: Any, stop: tuple[str, ...]):
    """A cheap test on a row's newest tokens: does the decoded tail contain a stop string?"""
    if not stop:
        return None
    window = max(len(s) for s in stop) + 8  # tokens; every token decodes to at least one character

    def check(ids: list[int]) -> bool:
        tail = tokenizer.decode(ids[-window:], skip_special_tokens=True)
        return any(s in tail for s in stop)

    return check


def _row_checker(tokenizer: Any, stop: tuple[str, ...], done: Sequence[Done | None] | None) -> Any:
    """``check(row, ids)`` for :func:`decode_batch`: a stop string in the row's tail, or the row's ``done`` test on
    its whole reply. A ``done`` test runs only when the newest tokens hold one of its ``trigger`` characters."""
    strings = _stop_checker(tokenizer, stop)
    if strings is None and not (done and any(done)):
        return None

    def check(row: int, ids: list[int]) -> bool:
        if strings is not None and strings(ids):
            return True
        test = done[row] if done else None
        if test is None or not any(c in tokenizer.decode(ids[-3:], skip_special_tokens=True) for c in test.trigger):
            return False
        return test(tokenizer.decode(ids, skip_special_tokens=True))

    return check


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab or papermill): finished progress bars stay there as a record of
    what ran and how long; in a terminal they clear themselves."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return type(get_ipython()).__name__ == "ZMQInteractiveShell"


def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str | Messages],
    config: SamplingConfig = SamplingConfig(),
    progress: bool | str = True,
    stats: GenerationStats | None = None,
    done: Sequence[Done | None] | None = None,
    counts: Sequence[int] | None = None,
) -> list[list[Sample]]:
    """``config.n`` samples for each prompt, in prompt order (``stats``, if given, gets tokens/s and cap hits).

    ``done`` (optional, one per prompt) ends a reply as soon as its test holds on the text so far: the reply is kept
    whole and counts as finished (e.g. :func:`rlhf_nb.rewards.code.code_done`: the code block a scorer reads is
    closed, so nothing after it can change the score). ``counts`` (optional, one per prompt) samples each prompt that
    many times instead of ``config.n``: prompts that need different numbers of samples share one call, so the batch
    stays full (a small set sampled on its own decodes at a fraction of the rate)."""
    import torch
    from tqdm.auto import tqdm

    texts = [render_prompt(tokenizer, p) for p in prompts]
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    if empty := [i for i, prompt in enumerate(ids) if not prompt]:
        raise ValueError(f"prompts {empty[:5]} are empty (no tokens): a reply needs a prompt to continue")
    if counts is not None and (len(counts) != len(prompts) or any(c < 0 for c in counts)):
        raise ValueError(f"counts must give a number >= 0 of samples for each of the {len(prompts)} prompts")
    per_prompt = list(counts) if counts is not None else [config.n] * len(prompts)
    jobs = [(i, j) for i in range(len(texts)) for j in range(per_prompt[i])]
    # prompts sampled equally often enter together (the shared cache stacks queries by entry, in blocks of entries that
    # hold alike numbers of rows: shared_prefix.layout), similar lengths together within them
    jobs.sort(key=lambda job: (-per_prompt[job[0]], -len(ids[job[0]])))
    device = next(model.parameters()).device
    batch_size = config.batch_size or auto_batch_size(device.type, sum(p.numel() for p in model.parameters()))
    once = max(per_prompt, default=0) <= 1  # every prompt sampled once: each row caches its own prompt
    if config.batch_size is None and device.type == "cpu" and once and len(jobs) > batch_size:
        batch_size = one_reply_batch_size(model, max(len(prompt) for prompt in ids), config.max_new_tokens, len(jobs),
                                          batch_size)
    if done is not None and len(done) != len(prompts):
        raise ValueError(f"done has {len(done)} tests for {len(prompts)} prompts")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    generator = None
    if config.temperature > 0:
        generator = torch.Generator(device=device).manual_seed(config.seed * 100_003)
    stop_check = _row_checker(tokenizer, config.stop, [done[i] for i, _ in jobs] if done else None)
    entropy = [[0.0, 0] for _ in jobs] if config.entropy else None
    was_training = model.training
    model.eval()
    desc = progress if isinstance(progress, str) else "sampling"
    bar = tqdm(total=len(jobs), desc=desc, disable=not progress, leave=in_notebook(), unit="seq")
    started, written = time.perf_counter(), [0]

    def tick(row: int, n_tokens: int) -> None:
        written[0] += n_tokens
        bar.update(1)
        bar.set_postfix_str(f"{written[0] / max(time.perf_counter() - started, 1e-9):.0f} tok/s", refresh=False)

    try:
        # computes in the weights' dtype (see rlhf_nb.lm.device); freed memory is kept for the next tensor while
        # the call runs: fresh large tensors (a prefill's activations, a step's rows x vocabulary logits) otherwise
        # come from new pages the kernel zeroes and maps on first touch
        with torch.inference_mode(), freed_memory_kept():
            rows = decode(model, ids, [i for i, _ in jobs], config, eos_ids(model, tokenizer), stop_check, generator,
                          batch_size, pad_id, entropy, on_finish=tick)
    finally:
        bar.close()
        model.train(was_training)
    out: list[list[Sample | None]] = [[None] * per_prompt[i] for i in range(len(texts))]
    n_tokens = n_capped = 0
    for r, ((i, j), (row_ids, ended)) in enumerate(zip(jobs, rows)):
        text, stopped = cut_at_stop(tokenizer.decode(row_ids, skip_special_tokens=True), config.stop)
        meta = {"entropy": entropy[r][0] / max(1, entropy[r][1])} if entropy is not None else {}
        out[i][j] = Sample(text, len(row_ids), bool(ended or stopped), meta)
        n_tokens += len(row_ids)
        n_capped += not (ended or stopped)
    if stats is not None:
        stats.sequences += len(jobs)
        stats.tokens += n_tokens
        stats.seconds += time.perf_counter() - started
        stats.capped += n_capped
    return out  # type: ignore[return-value]
