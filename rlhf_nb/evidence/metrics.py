"""Measurements: pass@k, diversity, BLEU. Intervals and tests live in :mod:`rlhf_nb.evidence.stats` (one set
of functions for tables and verdicts alike).

Edit distance uses rapidfuzz; BLEU uses sacrebleu.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# ----------------------------------------------------------------------------------------------
# pass@k
# ----------------------------------------------------------------------------------------------


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k estimator 1 - C(n-c, k) / C(n, k) (Chen et al. 2021), computed as a stable product."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"need 0 <= c <= n and k >= 1 (got n={n}, c={c}, k={k})")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per task (got n={n})")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


# ----------------------------------------------------------------------------------------------
# diversity
# ----------------------------------------------------------------------------------------------


def token_entropy(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt: str, response: str) -> float:
    """Mean over response tokens of the policy's next-token entropy (nats), given prompt + response so far."""
    import torch

    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    if not response_ids:
        return float("nan")
    ids = torch.tensor([prompt_ids + response_ids], device=next(model.parameters()).device)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float()
    logp = torch.log_softmax(logits, dim=-1)
    return float(-(logp.exp() * logp).sum(-1).mean())


def pairwise_edit_distances(responses: Sequence[str], normalized: bool = False) -> list[float]:
    """Levenshtein distance (rapidfuzz) for every unordered pair; normalized -> divided by the longer length."""
    from rapidfuzz.distance import Levenshtein

    fn = Levenshtein.normalized_distance if normalized else Levenshtein.distance
    return [float(fn(responses[i], responses[j])) for i in range(len(responses)) for j in range(i + 1, len(responses))]


def edit_distance_stats(responses: Sequence[str], normalized: bool = False) -> dict[str, float]:
    """Max and mean pairwise edit distance of n responses to one prompt (0 for fewer than two)."""
    d = pairwise_edit_distances(responses, normalized)
    return {"max": max(d, default=0.0), "mean": float(np.mean(d)) if d else 0.0}


def edit_distance_bins(values: Sequence[float], n_bins: int = 5, fmt: str = ".0f") -> list[str]:
    """Bin labels for per-prompt max edit distances, as on the x-axis of Shen et al.'s Figures 10-11.

    The paper bins prompts by the maximum edit distance among their five responses but does not state
    the bin edges; we use equal-count (quantile) bins labelled by their ranges (``fmt``: how an edge is written,
    e.g. ``".2f"`` for normalised distances).
    """
    x = np.asarray(values, dtype=float)
    edges = np.unique(np.quantile(x, np.linspace(0, 1, n_bins + 1)))
    if len(edges) < 2:
        return [f"{x[0]:{fmt}}"] * len(x)
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    labels = [f"{edges[i]:{fmt}}-{edges[i + 1]:{fmt}}" for i in range(len(edges) - 1)]
    return [labels[i] for i in idx]


# ----------------------------------------------------------------------------------------------
# translation
# ----------------------------------------------------------------------------------------------


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu, default 13a tokenisation), 0-100."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)
