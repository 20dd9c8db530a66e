"""The statistics every table and verdict uses: one set of functions, so a table's interval and a claim's verdict on
the same data cannot disagree.

Data are arrays of shape ``(seeds, items)``: several independent trainings (or data draws) evaluated on the same
items; a 1-d array is one seed. Items that are not independent (pairs that share a prompt) are first averaged within
their cluster (:func:`by_cluster`), so that every resample and every sign flip moves an independent unit.

* :func:`wilson` - the Wilson score interval of a rate (ties counted half);
* :func:`sign_flip_p` - the exact (or Monte-Carlo) one-sided sign-flip test of a paired mean;
* :func:`crossed_bootstrap` - resample items, and seeds independently within each arm;
* :func:`crossed_se` - the standard error of a weighted sum of arm means with seeds and items both random (its
  terms, :func:`crossed_terms`, project it onto other designs);
* :func:`score_test` and :func:`score_interval` - a paired mean difference of a *bounded* outcome against a
  value other than 0 (a non-inferiority margin), with its variance taken under the null: a constrained maximum
  likelihood over the observed differences plus the worst one the outcome allows (Tango 1998's score test for
  paired proportions, generalised to outcomes with many ties);
* :func:`paired` - mean difference, bootstrap interval and sign-flip p of B - A (what a table reports);
* :func:`bootstrap_ci` - a plain percentile interval of any statistic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ALPHA = 0.05
POWER = 0.80
Z_POWER = 1.6448536269514722 + 0.8416212335729143  # z_{1-alpha} (one-sided) + z_{power}
N_BOOT = 4000
N_PERM = 20000


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}] (n={self.n})"


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def arm(values: Any) -> np.ndarray:
    """An arm as (seeds, items): a 1-d sequence is one seed."""
    x = np.asarray(values, dtype=float)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"an arm must be (items,) or (seeds, items) with at least one item, got shape {x.shape}")
    return x


def by_cluster(values: Any, clusters: Sequence[Any] | None) -> np.ndarray:
    """Average the items of each cluster (e.g. the pairs of one prompt): (seeds, items) -> (seeds, clusters), the
    clusters in order of first appearance. ``None`` leaves the items as they are."""
    x = arm(values)
    if clusters is None:
        return x
    labels = list(clusters)
    if len(labels) != x.shape[1]:
        raise ValueError(f"{len(labels)} cluster labels for {x.shape[1]} items")
    order = list(dict.fromkeys(labels))
    index = {c: i for i, c in enumerate(order)}
    which = np.array([index[c] for c in labels])
    sums = np.zeros((x.shape[0], len(order)))
    np.add.at(sums.T, which, x.T)
    return sums / np.bincount(which, minlength=len(order))


def interval(dist: np.ndarray, level: float = 0.95, n: int | None = None) -> tuple[float, float]:
    """The percentile interval of a bootstrap distribution; given ``n``, the number of independent units resampled,
    expanded by t_{n-1} / z x sqrt(n / (n - 1)) about the distribution's mean (Hesterberg's expanded percentile
    interval): the plain percentile interval is too narrow for a mean of few units, and the rule reads its edges."""
    lo, hi = np.quantile(dist, [(1 - level) / 2, 1 - (1 - level) / 2])
    if n is not None and n > 1:
        from scipy.stats import norm, t

        q = 1 - (1 - level) / 2
        factor = float(t.ppf(q, n - 1) / norm.ppf(q)) * math.sqrt(n / (n - 1))
        centre = float(np.mean(dist))
        lo, hi = centre - factor * (centre - lo), centre + factor * (hi - centre)
    return float(lo), float(hi)


def exact_interval(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson interval of a rate: each tail holds at most (1 - level) / 2, whatever the rate (Wilson's can
    hold more on the side away from 0.5). Ties counted as half a success take the lower bound from the successes
    rounded down and the upper from them rounded up."""
    from scipy.stats import binomtest

    low = binomtest(int(math.floor(successes + 1e-9)), n).proportion_ci(level, method="exact").low if n else math.nan
    high = binomtest(int(math.ceil(successes - 1e-9)), n).proportion_ci(level, method="exact").high if n else math.nan
    return float(low), float(high)


def wilson(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a rate (ties counted as half a success are allowed); (nan, nan) for n = 0."""
    if n <= 0:
        return (float("nan"), float("nan"))
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(max(p * (1 - p), 0.0) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate_estimate(outcomes: Sequence[float], level: float = 0.95) -> Estimate:
    """A rate from per-item outcomes (1 success, 0.5 tie, 0 failure) with the interval a proportion verdict reads
    (:func:`exact_interval`), so a win-rate table and a claim on the same outcomes agree."""
    x = np.asarray(outcomes, dtype=float)
    if np.any((x < 0) | (x > 1)):
        raise ValueError("outcomes must lie in [0, 1] (1 success, 0.5 tie, 0 failure)")
    if len(x) == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    lo, hi = exact_interval(float(x.sum()), len(x), level)
    return Estimate(float(x.mean()), lo, hi, len(x))


def sign_flip_p(d: Any, n_perm: int = N_PERM, seed: int = 0) -> float:
    """One-sided p of mean(d) > 0 under sign flips (exact up to 2^16 patterns, Monte-Carlo beyond)."""
    d = np.asarray(d, dtype=float)
    observed = d.mean()
    nonzero = d[d != 0]
    if nonzero.size == 0:
        return 1.0
    if nonzero.size <= 16:
        signs = ((np.arange(2 ** nonzero.size)[:, None] >> np.arange(nonzero.size)) & 1) * 2 - 1
        means = (signs * nonzero).sum(1) / d.size
        return float(np.mean(means >= observed - 1e-12))
    signs = rng(seed).choice([-1.0, 1.0], size=(n_perm, nonzero.size))
    means = (signs * nonzero).sum(1) / d.size
    return float((np.sum(means >= observed - 1e-12) + 1) / (n_perm + 1))


def min_sign_flip_p(d: Any) -> float:
    """The smallest p a sign-flip test on these items could give (all differences in the favoured direction)."""
    return 0.5 ** int(np.count_nonzero(np.asarray(d)))


def crossed_bootstrap(arms: Sequence[np.ndarray], statistic: Callable[[list[np.ndarray]], float], n_boot: int = N_BOOT,
                      seed: int = 0) -> np.ndarray:
    """Bootstrap distribution of ``statistic(arms)``: items resampled once per replicate (shared by all arms: they are
    paired over items), seeds resampled independently within each arm (Owen 2007's pigeonhole bootstrap)."""
    gen = rng(seed)
    n_items = arms[0].shape[1]
    out = np.empty(n_boot)
    for b in range(n_boot):
        items = gen.integers(0, n_items, n_items)
        resampled = [a[gen.integers(0, a.shape[0], a.shape[0])][:, items] for a in arms]
        out[b] = statistic(resampled)
    return out


def crossed_bootstrap_means(arms: Sequence[np.ndarray], weights: Sequence[float], n_boot: int = N_BOOT,
                            seed: int = 0) -> np.ndarray:
    """The bootstrap distribution of ``sum(w * mean(arm))`` under :func:`crossed_bootstrap`'s resampling (items shared,
    seeds per arm), computed at once: a resample's mean is (seed counts) @ arm @ (item counts) / (S n)."""
    gen = rng(seed)
    n = arms[0].shape[1]
    rows = np.repeat(np.arange(n_boot), n)
    items = np.zeros((n_boot, n))
    np.add.at(items, (rows, gen.integers(0, n, n_boot * n)), 1.0)
    out = np.zeros(n_boot)
    for w, a in zip(weights, arms):
        s = a.shape[0]
        seeds = np.zeros((n_boot, s))
        np.add.at(seeds, (np.repeat(np.arange(n_boot), s), gen.integers(0, s, n_boot * s)), 1.0)
        out += w * np.einsum("bs,bs->b", seeds, items @ a.T) / (s * n)
    return out


def crossed_terms(arms: Sequence[np.ndarray], weights: Sequence[float]
                  ) -> list[tuple[float, int, int, float]] | None:
    """The terms :func:`crossed_se` sums, each ``(variance, degrees of freedom, seeds, noise)``: first the items' (seeds
    0), then one per arm that holds several seeds (its seed count). ``noise`` is the part of a term that the
    item-by-seed noise puts there (MS_error / (n * S) for each seeded arm, at most the term), which more seeds shrink
    too: in the items' term (whose per-item means average the seeds) the seeded arms' sum, the rest being the items'
    own spread; in a seed term its arm's, the rest being the seeds' own spread. ``None`` where :func:`crossed_se` is."""
    if all(a.shape[0] < 2 for a in arms) or arms[0].shape[1] < 2:
        return None
    n = arms[0].shape[1]
    combined = sum(w * a.mean(0) for w, a in zip(weights, arms))
    item_term = float(np.var(combined, ddof=1)) / n
    seeded, noise = [], 0.0
    for w, a in zip(weights, arms):
        s = a.shape[0]
        if s < 2 or w == 0:
            continue
        ms_seed = n * float(np.var(a.mean(1), ddof=1))
        residual = a - a.mean(1, keepdims=True) - a.mean(0, keepdims=True) + a.mean()
        ms_error = w * w * float((residual ** 2).sum()) / ((s - 1) * (n - 1)) / (n * s)  # item-by-seed noise, / n S
        term = w * w * ms_seed / (n * s)
        seeded.append((term, s - 1, s, min(term, ms_error)))
        noise += ms_error
    return [(item_term, n - 1, 0, min(item_term, noise)), *seeded]


def satterthwaite(terms: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """Standard error and Satterthwaite degrees of freedom of a sum of independent variance terms ``(variance, df)``;
    ``None`` when the sum is not positive."""
    variance = sum(t for t, _ in terms)
    if variance <= 0:
        return None
    return math.sqrt(variance), variance ** 2 / sum(t * t / d for t, d in terms if t > 0)


def crossed_se(arms: Sequence[np.ndarray], weights: Sequence[float]) -> tuple[float, float] | None:
    """Standard error and Satterthwaite degrees of freedom of ``sum(w * mean(arm))`` when an arm holds several
    seeds; ``None`` when every arm has one (then items are the only source of chance).

    Each arm is a seeds x items table, seeds random (independent trainings, not paired across arms) and items random
    and shared by the arms. The variance is estimated term by term (a two-way random-effects decomposition,
    :func:`crossed_terms`): the item term is the variance over items of the weighted per-item combination, over n;
    each arm's seed term is MS_seed / (n * S) = var(seed means) / S from its two-way table, taken whole. (The unbiased
    seed component, (MS_seed - MS_error) / (n * S) where positive, was liberal with three seeds: 3.1% [2.6, 3.7] false
    *reproduced* on tied points over 3600 simulated data sets, benchmarks/results/verdict_calibration_followup.md;
    taken whole it is never below what the seeds' own spread shows.) With three seeds the seed term has two degrees
    of freedom, which the Satterthwaite degrees of freedom carry into the t distribution a test reads: that is what
    three trainings can say."""
    terms = crossed_terms(arms, weights)
    return None if terms is None else satterthwaite([(t, d) for t, d, _, _ in terms])


def seed_share(arms: Sequence[np.ndarray], weights: Sequence[float]) -> float | None:
    """The share of the variance of ``sum(w * mean(arm))`` that comes from the seeds themselves (0 with one seed per
    arm): where it is large, more items cannot shrink the interval, only more seeds can. For this projection each
    arm's seed component is the unbiased one, its term of :func:`crossed_terms` less the item-by-seed noise in it,
    (MS_seed - MS_error) / (n * S) where positive, unlike :func:`crossed_se`, which takes the seed term whole for the
    test itself."""
    if arms[0].shape[1] < 2:
        return None
    terms = crossed_terms(arms, weights)
    if terms is None:  # one seed an arm: items are the only source of chance
        return 0.0 if float(np.var(sum(w * a.mean(0) for w, a in zip(weights, arms)), ddof=1)) > 0 else None
    seeds = sum(t - e for t, _, _, e in terms[1:])
    total = terms[0][0] + seeds
    return seeds / total if total > 0 else None


# ----------------------------------------------------------------------------------------------
# a bounded paired difference against a value other than 0
# ----------------------------------------------------------------------------------------------


def _null_variance(d: np.ndarray, delta0: float, scale: float) -> float:
    """Var(d) under the constrained maximum likelihood with mean ``delta0``, over the observed values of d plus the
    most extreme value the outcome allows on the side of ``delta0`` (-scale below the observed mean, +scale above):
    with most items tied, the observed spread says little about how large a loss could hide among items not drawn,
    while the worst value, weighted as the constraint needs, does. For pass/fail items this is Tango's (1998) restricted
    MLE; with no extreme value needed it is the empirical-likelihood solution."""
    from scipy.optimize import brentq

    values, counts = np.unique(d, return_counts=True)
    n = float(counts.sum())
    u = values - delta0
    extreme = -scale if delta0 < d.mean() else scale
    u_e = extreme - delta0
    if not np.any(np.isclose(values, extreme)):
        p = (counts / n) * u_e / (u_e - u)  # the extreme point carries 1 - sum(p)
        if p.sum() <= 1 + 1e-12:
            return float((p * u * u).sum() + (1 - p.sum()) * u_e * u_e)
    # the observed values can meet the constraint: p_i = n_i / (n + lam * u_i) with sum(p u) = 0
    if u.min() >= 0 or u.max() <= 0:
        return float((counts / n * u * u).sum())
    lo, hi = -n / u.max(), -n / u.min()
    eps = 1e-12 * (hi - lo)
    lam = brentq(lambda x: float((counts * u / (n + x * u)).sum()), lo + eps, hi - eps)
    p = counts / (n + lam * u)
    return float((p * u * u).sum() / p.sum())


def score_z(d: Any, delta0: float, scale: float) -> float:
    """The score statistic of H0: mean(d) = ``delta0`` for a bounded paired difference (|d| <= ``scale``)."""
    d = np.asarray(d, dtype=float)
    if np.any(np.abs(d) > scale + 1e-9):
        raise ValueError(f"a difference exceeds the outcome's range {scale:g}")
    if not -scale < delta0 < scale:
        raise ValueError(f"the null value {delta0:g} must lie strictly inside (-{scale:g}, {scale:g})")
    v = _null_variance(d, delta0, scale)
    return float((d.mean() - delta0) / math.sqrt(v / len(d))) if v > 0 else math.copysign(math.inf, d.mean() - delta0)


def score_test(d: Any, delta0: float, scale: float) -> float:
    """One-sided p of mean(d) > ``delta0`` (e.g. ``-margin`` for non-inferiority) by the score test."""
    from scipy.stats import norm

    return float(norm.sf(score_z(d, delta0, scale)))


def score_interval(d: Any, scale: float, level: float = 0.95) -> tuple[float, float]:
    """The mean difference's interval: every value the two-sided score test at ``level`` does not reject."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    d = np.asarray(d, dtype=float)
    z = float(norm.ppf(0.5 + level / 2))
    mean, edge = float(d.mean()), scale * (1 - 1e-9)
    lo = -edge if score_z(d, -edge, scale) <= z or mean <= -edge else brentq(
        lambda x: score_z(d, x, scale) - z, -edge, mean - 1e-12 * scale)
    hi = edge if score_z(d, edge, scale) >= -z or mean >= edge else brentq(
        lambda x: score_z(d, x, scale) + z, mean + 1e-12 * scale, edge)
    return float(lo), float(hi)


# ----------------------------------------------------------------------------------------------
# what tables report
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Paired:
    """B - A on the same items: mean difference, 95% interval, one-sided p of B > A."""

    diff: float
    low: float
    high: float
    p: float
    n: int


def paired(a: Any, b: Any, *, seed: int = 0) -> Paired:
    """Mean difference B - A over paired items (arrays (items,) or (seeds, items)), its crossed-bootstrap interval and
    the sign-flip p on the seed means: the same numbers :func:`rlhf_nb.evidence.claims.superiority` starts from."""
    A, B = arm(a), arm(b)
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"paired arms need the same items ({A.shape[1]} vs {B.shape[1]})")
    d = B.mean(0) - A.mean(0)
    lo, hi = interval(crossed_bootstrap_means([A, B], [-1.0, 1.0], seed=seed), n=A.shape[1])
    return Paired(float(d.mean()), lo, hi, sign_flip_p(d, seed=seed), A.shape[1])


def bootstrap_ci(values: Sequence[float], statistic: Callable[[np.ndarray], float] = np.mean,
                 level: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> Estimate:
    """Percentile bootstrap interval of ``statistic`` over ``values`` (scipy.stats.bootstrap)."""
    from scipy.stats import bootstrap

    x = np.asarray(values, dtype=float)
    if len(x) < 2 or np.all(x == x[0]):
        v = float(statistic(x)) if len(x) else float("nan")
        return Estimate(v, v, v, len(x))
    res = bootstrap((x,), statistic, confidence_level=level, n_resamples=n_resamples, method="percentile",
                    random_state=np.random.default_rng(seed))
    ci = res.confidence_interval
    return Estimate(float(statistic(x)), float(ci.low), float(ci.high), len(x))
