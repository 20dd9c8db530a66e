"""Where two pass@k curves cross: the measure of Yue et al. 2025 ("Does Reinforcement Learning Really Incentivize
Reasoning Capacity in LLMs Beyond the Base Model?").

An RL-tuned model usually beats the model it was trained from at pass@1; sampling the starting model many times can
catch up and overtake it at large k. The *crossing k* is the smallest k at which the tuned model's mean pass@k is no
longer above the start's. Here, from per-task counts of passing samples (``n`` samples per task and arm):

* :func:`curves` - every task's unbiased pass@k (Chen et al. 2021) for k = 1 .. n, per seed;
* :func:`crossing_k` - the crossing of two mean curves, interpolated in log k between the last k where the tuned arm
  leads and the first where it does not; ``inf`` when it leads up to k = n, ``nan`` when it does not lead at k = 1;
* :func:`crossing` - that estimate with a bootstrap interval over tasks (shared by both arms: they answer the same
  tasks) and seeds (within each arm), and the share of resamples in which the curves do not cross up to n (then the
  interval's top reads "> n": the data say only that any crossing lies beyond the samples drawn); a resample in which
  the tuned arm does not lead at k = 1 counts as a crossing at k = 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlhf_nb.evidence.metrics import pass_at_k
from rlhf_nb.evidence.stats import N_BOOT, arm, crossed_bootstrap


def curves(correct: Any, n: int) -> np.ndarray:
    """(seeds, tasks, n): pass@k for k = 1 .. n of every task from its count of passing samples out of ``n``
    (``correct`` is (seeds, tasks) or one seed's (tasks,))."""
    raw = arm(correct)
    if not np.all(raw == np.round(raw)):
        raise ValueError("passing counts must be whole numbers of samples")
    c = raw.astype(int)
    if c.min() < 0 or c.max() > n:
        raise ValueError(f"passing counts must lie in [0, {n}]")
    table = np.array([[pass_at_k(n, j, k) for k in range(1, n + 1)] for j in range(n + 1)])
    return table[c]


def crossing_k(tuned: np.ndarray, start: np.ndarray) -> float:
    """The crossing of two mean pass@k curves (each (k,), k = 1 .. n): ``nan`` if the tuned arm does not lead at k = 1,
    ``inf`` if it leads at every k, else the k where the lead reaches 0, interpolated linearly in log k."""
    lead = np.asarray(tuned, dtype=float) - np.asarray(start, dtype=float)
    if lead[0] <= 0:
        return math.nan
    below = np.flatnonzero(lead <= 0)
    if not len(below):
        return math.inf
    j = int(below[0])  # 0-based index of k = j + 1; lead[j - 1] > 0 >= lead[j]
    a, b = math.log(j), math.log(j + 1)
    return float(math.exp(a + (b - a) * lead[j - 1] / (lead[j - 1] - lead[j])))


@dataclass(frozen=True)
class Crossing:
    """A crossing k with its bootstrap interval; ``lead`` is the tuned arm's mean pass@k minus the start's, per k."""

    k: float  # nan: no lead at k = 1; inf: no crossing up to n
    ci: tuple[float, float]  # percentile interval of the resampled crossing (inf: beyond n)
    no_crossing: float  # share of resamples without a crossing up to n
    lead: list[float]
    n: int
    tasks: int

    def describe(self) -> str:
        def fmt(v: float) -> str:
            return f"> {self.n}" if math.isinf(v) else "-" if math.isnan(v) else f"{v:.1f}"

        if math.isnan(self.k):
            head = "the tuned arm does not lead at k = 1, so there is no crossing to measure"
        elif math.isinf(self.k):
            head = f"no crossing up to k = {self.n} in the point estimate"
        else:
            head = f"crossing at k = {self.k:.1f}"
        return (f"{head} (95% interval {fmt(self.ci[0])} to {fmt(self.ci[1])}; no crossing up to {self.n} in "
                f"{100 * self.no_crossing:.0f}% of resamples, {self.tasks} tasks)")


def crossing(tuned_correct: Any, start_correct: Any, n: int, n_boot: int = N_BOOT // 2, seed: int = 0) -> Crossing:
    """The crossing k of a tuned arm's and its start's mean pass@k from passing counts ((seeds, tasks) each, the same
    tasks in the same order), with a bootstrap over tasks (shared) and seeds (within each arm)."""
    T, S = curves(tuned_correct, n), curves(start_correct, n)
    if T.shape[1] != S.shape[1]:
        raise ValueError(f"the arms answer different numbers of tasks ({T.shape[1]} vs {S.shape[1]})")
    mean = lambda x: x.mean(axis=(0, 1))  # noqa: E731
    k = crossing_k(mean(T), mean(S))
    tasks = T.shape[1]
    dist = crossed_bootstrap([T, S], lambda arms: crossing_k(mean(arms[0]), mean(arms[1])), n_boot, seed)
    # a resample where the tuned arm does not lead at k = 1 has its crossing at or before k = 1; sample quantiles (no
    # interpolation) keep an infinite top as it is
    lo, hi = np.quantile(np.where(np.isnan(dist), 1.0, dist), [0.025, 0.975], method="inverted_cdf")
    return Crossing(k, (float(lo), float(hi)), float(np.mean(np.isinf(dist))),
                    (mean(T) - mean(S)).tolist(), n, tasks)
