"""One evaluator for every notebook: replies to a prompt set, with the numbers every claim needs about them.

:func:`sample` and :func:`greedy` return :class:`Replies`: per prompt the reply texts, their lengths, whether
each ended on its own (EOS, a stop string, or a ``done`` test such as a closed code block) or was cut off at
the token cap, and the sampler's tokens/s.
Scores come from whatever judges them (a gold checker, a reward model, a test PM), always on these objects,
so the share of cut-off replies travels with every score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rlhf_nb.lm.generation import Done, GenerationStats, SamplingConfig, generate


@dataclass
class Replies:
    texts: list[list[str]]  # per prompt, n replies
    tokens: list[list[int]]
    finished: list[list[bool]]
    tokens_per_s: float
    entropy: list[list[float]] | None = None  # per reply, mean next-token entropy (nats) where the config asked

    @property
    def first(self) -> list[str]:
        return [t[0] for t in self.texts]

    @property
    def cap_rate(self) -> float:
        flat = [f for row in self.finished for f in row]
        return 1 - sum(flat) / len(flat) if flat else 0.0

    def mean_tokens(self) -> list[float]:
        return [sum(t) / len(t) for t in self.tokens]


def sample(loaded: Any, prompts: list[Any], config: SamplingConfig, label: str = "sampling",
           done: Sequence[Done | None] | None = None) -> Replies:
    """``config.n`` replies per prompt (chat messages or strings); ``done``: see :func:`rlhf_nb.lm.generation.generate`."""
    stats = GenerationStats()
    out = generate(loaded.model, loaded.tokenizer, prompts, config, progress=label, stats=stats, done=done)
    return Replies([[s.text for s in per] for per in out], [[s.n_tokens for s in per] for per in out],
                   [[s.finished for s in per] for per in out], stats.tokens_per_s,
                   [[s.meta["entropy"] for s in per] for per in out] if config.entropy else None)


def greedy(loaded: Any, prompts: list[Any], max_new_tokens: int, label: str = "greedy replies",
           batch_size: int | None = None, done: Sequence[Done | None] | None = None) -> Replies:
    """One greedy reply per prompt."""
    return sample(loaded, prompts, SamplingConfig(n=1, temperature=0.0, max_new_tokens=max_new_tokens,
                                                  batch_size=batch_size), label, done)
