"""Measurements: pass@k, win rates, confidence intervals and tests, diversity, BLEU.

Statistics use scipy; edit distance uses rapidfuzz; BLEU uses sacrebleu.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
# intervals and tests
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}] (n={self.n})"


def wilson(successes: float, n: int, confidence: float = 0.95) -> Estimate:
    """Wilson score interval for a proportion (ties counted as half a success are allowed)."""
    if n <= 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    from scipy.stats import norm

    z = norm.ppf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half), n)


def bootstrap_ci(values: Sequence[float], statistic: Callable[[np.ndarray], float] = np.mean,
                 confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> Estimate:
    """Percentile bootstrap interval of ``statistic`` over ``values`` (scipy.stats.bootstrap)."""
    from scipy.stats import bootstrap

    x = np.asarray(values, dtype=float)
    if len(x) < 2 or np.all(x == x[0]):
        v = float(statistic(x)) if len(x) else float("nan")
        return Estimate(v, v, v, len(x))
    res = bootstrap((x,), statistic, confidence_level=confidence, n_resamples=n_resamples, method="percentile",
                    random_state=np.random.default_rng(seed))
    return Estimate(float(statistic(x)), float(res.confidence_interval.low), float(res.confidence_interval.high), len(x))


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of B against A: mean difference (B - A), its interval, a one-sided p-value."""

    diff: float
    low: float
    high: float
    p_value: float  # H0: B is not better than A
    n: int

    @property
    def significant(self) -> bool:
        return self.p_value < 0.05 and self.low > 0


def paired_bootstrap(a: Sequence[float], b: Sequence[float], confidence: float = 0.95, n_resamples: int = 5000,
                     seed: int = 0) -> Comparison:
    """Is B better than A on the same items? Bootstrap interval of the mean paired difference, one-sided
    p-value from the paired permutation test."""
    a_, b_ = np.asarray(a, float), np.asarray(b, float)
    if a_.shape != b_.shape or a_.ndim != 1:
        raise ValueError("paired samples need two 1-d sequences of equal length")
    d = b_ - a_
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n_resamples, len(d)))].mean(axis=1)
    alpha = (1 - confidence) / 2
    # the p-value comes from the paired sign-flip permutation test (exact for small n): a bootstrap fraction
    # would call two items with equal differences "significant"
    p = permutation_test(a_, b_, paired=True, seed=seed) if np.any(d != 0) else 1.0
    return Comparison(float(d.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha)), p, len(d))


def permutation_test(a: Sequence[float], b: Sequence[float], paired: bool = True, n_resamples: int = 10_000,
                     seed: int = 0) -> float:
    """One-sided p-value for "B has a larger mean than A" (scipy.stats.permutation_test)."""
    from scipy.stats import permutation_test as scipy_permutation_test

    def stat(x, y, axis=-1):
        return np.mean(y, axis=axis) - np.mean(x, axis=axis)

    res = scipy_permutation_test((np.asarray(a, float), np.asarray(b, float)), stat, vectorized=True,
                                 permutation_type="samples" if paired else "independent",
                                 n_resamples=n_resamples, alternative="greater", random_state=seed)
    return float(res.pvalue)


def win_rate(outcomes: Sequence[float], confidence: float = 0.95) -> Estimate:
    """Win rate from per-item outcomes (1 win, 0.5 tie, 0 loss), with a Wilson interval."""
    x = np.asarray(outcomes, dtype=float)
    if np.any((x < 0) | (x > 1)):
        raise ValueError("outcomes must lie in [0, 1] (1 win, 0.5 tie, 0 loss)")
    return wilson(float(x.sum()), len(x), confidence)


def linear_fit(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    """Least-squares line with R² (scipy.stats.linregress)."""
    from scipy.stats import linregress

    r = linregress(np.asarray(x, float), np.asarray(y, float))
    return {"slope": float(r.slope), "intercept": float(r.intercept), "r2": float(r.rvalue ** 2),
            "p_value": float(r.pvalue)}


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
