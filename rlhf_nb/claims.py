"""Claims as evidence: one record per paper finding, one rule for its verdict.

A claim is tested by one of five kinds of test, each a function here that takes per-item data and
returns a :class:`Test` (effect, 95% interval, one-sided p, n, seeds, minimal detectable effect):

* :func:`superiority` - arm B is better than arm A (paired over items);
* :func:`non_inferiority` - B is not worse than A by more than ``margin``;
* :func:`equivalence` - B and A differ by less than ``margin`` either way (two one-sided tests);
* :func:`trend` - an outcome changes monotonically along an ordered factor (model size, data size,
  round), tested over *all* levels by the slope against the level's position or value;
* :func:`association` - a slope or correlation between two measured quantities (and :func:`linearity`:
  whether a mean curve is linear in a variable, r above a threshold);
* :func:`proportion` - a rate against a fixed value (e.g. accuracy against chance), with a Wilson interval.

Conventions every test follows:

* ``effect`` is signed so that **positive supports the paper**; ``ci`` is its 95% interval; ``p`` is
  one-sided in the paper's direction; :func:`finalize` adds the Holm-adjusted ``p_adj`` over a notebook's
  claims and the verdict.
* Arms are arrays of shape ``(seeds, items)``: several independent trainings evaluated on the same items
  (a baseline that is not trained has one row). Intervals come from a **crossed bootstrap** that
  resamples items and, independently per arm, seeds (Owen 2007's pigeonhole bootstrap for crossed
  random factors), so they cover both which items were drawn and how a training run happened to go.
  p-values come from exact or Monte-Carlo **sign-flip permutation tests** over items (on the seed means).
  Where an arm holds several seeds, neither sees the seed-to-seed spread well (the permutation test not at all,
  the bootstrap of three values too narrowly), so a **t test on the crossed standard error** (items and seeds,
  Satterthwaite degrees of freedom: :func:`crossed_se`) is added: the larger p-value counts and the interval is
  the envelope of the two.
* Proportions use Wilson intervals (never a bootstrap that collapses to a point) and exact binomial tests.
* ``mde`` is the minimal detectable effect at 80% power and one-sided alpha 0.05: (z_0.95 + z_0.80) x SE,
  with SE the bootstrap standard error of the effect (with several seeds: t quantiles at the crossed degrees of
  freedom, times the larger of the two standard errors).

Every claim also carries ``premises``: named checks that must hold for the test to mean anything (an
evaluator validated above chance, a baseline off the floor, replies not cut off by the token cap, enough
items for p < 0.05 to be reachable at all and, for a margin test on a pass/fail-like outcome, enough items that a
loss as large as the margin could be ruled out even if no item got worse: :func:`loss_bound_premise`). The
verdict, computed by :func:`decide` and nothing else:

1. ``not tested at this scale`` - a premise fails (the verdict says which);
2. ``reproduced`` - p_adj < 0.05 and ci[0] > 0;
3. ``not reproduced`` - ci[1] < min_effect: the data exclude an effect as large as the paper's finding;
4. ``inconclusive`` - anything else; ``our_value`` then states the MDE and the n that would be needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np

Kind = Literal["superiority", "non-inferiority", "equivalence", "trend", "association", "proportion"]
KINDS: tuple[str, ...] = ("superiority", "non-inferiority", "equivalence", "trend", "association", "proportion")
REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
NOT_TESTED = "not tested at this scale"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTED)
ALPHA = 0.05
POWER = 0.80
_Z = 1.6448536269514722 + 0.8416212335729143  # z_{1-alpha} (one-sided) + z_{power}
N_BOOT = 4000
N_PERM = 20000


@dataclass(frozen=True)
class Premise:
    name: str
    holds: bool
    detail: str = ""

    def __post_init__(self) -> None:  # numpy comparisons give numpy bools, which JSON cannot write
        object.__setattr__(self, "holds", bool(self.holds))


@dataclass(frozen=True)
class Test:
    """What a test of one kind measured; positive ``effect`` supports the paper."""

    kind: str
    effect: float
    ci: tuple[float, float]
    p: float
    n: int  # items (or units) the test ran over
    seeds: int  # independent trainings per trained arm (1 when nothing was trained)
    mde: float
    premises: tuple[Premise, ...] = ()
    detail: dict[str, float] = field(default_factory=dict)


@dataclass
class Claim:
    """One finding of a paper, tested here; see the module docstring for the rule that gives ``verdict``."""

    id: str
    paper: str
    statement: str
    kind: str
    paper_value: str
    our_value: str  # one readable sentence with the numbers
    effect: float | None
    ci: tuple[float, float] | None
    p: float | None
    p_adj: float | None
    n: int
    seeds: int
    mde: float | None
    min_effect: float
    min_effect_reason: str
    unit: str = ""  # how to read effect, ci, mde and min_effect ("pts of pass@1", "accuracy", ...)
    premises: list[Premise] = field(default_factory=list)
    verdict: str = ""
    reason: str = ""  # why the verdict is what it is, in a few words

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ci"] = list(self.ci) if self.ci is not None else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Claim:
        data = dict(data)
        data["premises"] = [Premise(**p) for p in data.get("premises", [])]
        data["ci"] = tuple(data["ci"]) if data.get("ci") is not None else None
        return cls(**data)


# ----------------------------------------------------------------------------------------------
# the rule
# ----------------------------------------------------------------------------------------------


def decide(claim: Claim) -> tuple[str, str]:
    """(verdict, reason) from the record alone, checked in the documented order."""
    failed = [p for p in claim.premises if not p.holds]
    if failed:
        return NOT_TESTED, "premise failed: " + "; ".join(f"{p.name} ({p.detail})" if p.detail else p.name
                                                           for p in failed)
    if claim.effect is None or claim.ci is None or claim.p is None:
        return NOT_TESTED, "not measured"
    p_adj = claim.p_adj if claim.p_adj is not None else claim.p
    if p_adj < ALPHA and claim.ci[0] > 0:
        return REPRODUCED, f"p_adj {p_adj:.3g} < {ALPHA} and the interval excludes 0"
    if claim.ci[1] < claim.min_effect:
        return NOT_REPRODUCED, f"the interval's top {claim.ci[1]:.3g} is below the paper's minimum effect {claim.min_effect:.3g}"
    return INCONCLUSIVE, "the interval holds both 0 (or p_adj >= 0.05) and the paper's minimum effect"


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (None entries are skipped and stay None)."""
    present = [(p, i) for i, p in enumerate(p_values) if p is not None and math.isfinite(p)]
    m = len(present)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def finalize(claims: list[Claim]) -> list[Claim]:
    """Holm-adjust the p-values of claims whose premises hold, then compute every verdict (new objects)."""
    testable = [not any(not p.holds for p in c.premises) and c.p is not None for c in claims]
    adjusted = holm([c.p if ok else None for c, ok in zip(claims, testable)])
    out = []
    for claim, p_adj in zip(claims, adjusted):
        claim = replace(claim, p_adj=p_adj)
        verdict, reason = decide(claim)
        claim = replace(claim, verdict=verdict, reason=reason)
        if verdict == INCONCLUSIVE:
            claim = replace(claim, our_value=claim.our_value + " " + needed_sentence(claim))
        out.append(claim)
    return out


def needed_sentence(claim: Claim) -> str:
    """For an inconclusive claim: the MDE of this design and roughly how many items would detect min_effect."""
    if claim.mde is None or claim.min_effect <= 0 or not claim.n:
        return f"(MDE {claim.mde:.3g} {claim.unit})." if claim.mde is not None else ""
    need = math.ceil(claim.n * (claim.mde / claim.min_effect) ** 2)
    return (f"(this design detects {claim.mde:.3g} {claim.unit} at 80% power; ~{need} items at {claim.seeds} "
            f"seed(s) would detect the minimum effect {claim.min_effect:.3g}).")


def claim(id: str, paper: str, statement: str, paper_value: str, test: Test | None, *, min_effect: float,
          min_effect_reason: str, unit: str, our_value: str, premises: Sequence[Premise] = (),
          kind: str | None = None) -> Claim:
    """A claim record from a :class:`Test` (``None``: not measured in this run, e.g. a gpu-only experiment)."""
    if (test.kind if test else kind) in ("non-inferiority", "equivalence") and min_effect != 0:
        raise ValueError(f"{id}: a {test.kind if test else kind} effect already holds its margin (effect > 0 is the "
                         f"paper's claim), so min_effect must be 0, not {min_effect}")
    if test is None:
        return Claim(id, paper, statement, kind or "superiority", paper_value, our_value, None, None, None, None, 0, 0,
                     None, min_effect, min_effect_reason, unit, [*premises] or [Premise("measured", False, our_value)])
    return Claim(id, paper, statement, test.kind, paper_value, our_value, test.effect, test.ci, test.p, None, test.n,
                 test.seeds, test.mde, min_effect, min_effect_reason, unit, [*test.premises, *premises])


# ----------------------------------------------------------------------------------------------
# building blocks
# ----------------------------------------------------------------------------------------------


def _arm(values: Any) -> np.ndarray:
    """An arm as (seeds, items): a 1-d sequence is one seed."""
    x = np.asarray(values, dtype=float)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"an arm must be (items,) or (seeds, items) with at least one item, got shape {x.shape}")
    return x


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def crossed_bootstrap(arms: Sequence[np.ndarray], statistic: Callable[[list[np.ndarray]], float], n_boot: int = N_BOOT,
                      seed: int = 0) -> np.ndarray:
    """Bootstrap distribution of ``statistic(arms)``: items resampled once per replicate (shared by all arms:
    they are paired over items), seeds resampled independently within each arm."""
    rng = _rng(seed)
    n_items = arms[0].shape[1]
    out = np.empty(n_boot)
    for b in range(n_boot):
        items = rng.integers(0, n_items, n_items)
        resampled = [a[rng.integers(0, a.shape[0], a.shape[0])][:, items] for a in arms]
        out[b] = statistic(resampled)
    return out


def sign_flip_p(d: np.ndarray, n_perm: int = N_PERM, seed: int = 0) -> float:
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
    rng = _rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(n_perm, nonzero.size))
    means = (signs * nonzero).sum(1) / d.size
    return float((np.sum(means >= observed - 1e-12) + 1) / (n_perm + 1))


def min_sign_flip_p(d: np.ndarray) -> float:
    """The smallest p a sign-flip test on these items could give (all differences in the favoured direction)."""
    return 0.5 ** int(np.count_nonzero(np.asarray(d)))


def _interval(dist: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    lo, hi = np.quantile(dist, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def _common_premises(d: np.ndarray, dist: np.ndarray) -> list[Premise]:
    out = []
    floor = min_sign_flip_p(d)
    out.append(Premise("enough items", floor < ALPHA,
                       f"{np.count_nonzero(d)} items differ; the smallest reachable p is {floor:.3g}"))
    if float(np.std(dist)) <= 1e-12 * max(1.0, float(np.abs(dist).max())):  # constant up to rounding
        out.append(Premise("outcome varies", False, "every resample gives the same value: no interval can be formed"))
    return out


def loss_bound_premise(n: int, margin: float, scale: float) -> Premise:
    """Can ``n`` items rule out a loss of ``margin`` at all? Even when no item is worse, a share up to
    1 - 0.05^(1/n) of items could be (the one-sided 95% Clopper-Pearson bound for 0 of n), each losing up to
    ``scale`` (the outcome's range): a non-inferiority or equivalence test needs that worst case below its margin.
    A bootstrap over items cannot see this: with no item worse, every resample says 'no loss'."""
    unseen = scale * (1 - ALPHA ** (1 / n))
    need = math.ceil(math.log(ALPHA) / math.log(1 - margin / scale)) if margin < scale else 1
    return Premise("enough items to bound a loss", unseen < margin,
                   f"with none of {n} items worse, a loss of up to {unseen:.3g} is still possible at 95%; "
                   f"the margin {margin:g} needs at least {need} items")


def _loss_bound(n: int, margin: float, scale: float | None) -> list[Premise]:
    return [] if scale is None else [loss_bound_premise(n, margin, scale)]


def _seeds(*arms: np.ndarray) -> int:
    return max(a.shape[0] for a in arms)


def crossed_se(arms: Sequence[np.ndarray], weights: Sequence[float]) -> tuple[float, float] | None:
    """Standard error and Satterthwaite degrees of freedom of ``sum(w * mean(arm))`` when an arm holds several
    seeds; ``None`` when every arm has one (then items are the only source of chance, and the sign-flip test and
    the bootstrap see all of it).

    Each arm is a seeds x items table, seeds random (independent trainings, not paired across arms) and items
    random and shared by the arms. Its variance is estimated term by term (a two-way random-effects
    decomposition): the item term is the variance over items of the weighted per-item combination, over n; each
    arm's seed term is (MS_seed - MS_error) / (n * S) from its two-way table, taken only where positive. With three
    seeds the seed term has two degrees of freedom, and so does the t distribution the test reads: that is what
    three trainings can say. The bootstrap over seeds cannot: resampling three values understates their spread,
    and the sign-flip test over items does not see it at all (``benchmarks/verdict_calibration.py``: with seeds
    spread as widely as items, a null effect read 'reproduced' in 8.7% of simulated data sets and a true minimum
    effect 'not reproduced' in 10.0% without this term; 2.3% and 4.3% with it)."""
    if all(a.shape[0] < 2 for a in arms) or arms[0].shape[1] < 2:
        return None
    n = arms[0].shape[1]
    combined = sum(w * a.mean(0) for w, a in zip(weights, arms))
    terms = [(float(np.var(combined, ddof=1)) / n, n - 1)]  # (variance term, its degrees of freedom)
    for w, a in zip(weights, arms):
        s = a.shape[0]
        if s < 2 or w == 0:
            continue
        ms_seed = n * float(np.var(a.mean(1), ddof=1))
        residual = a - a.mean(1, keepdims=True) - a.mean(0, keepdims=True) + a.mean()
        ms_error = float((residual ** 2).sum()) / ((s - 1) * (n - 1))
        if ms_seed > ms_error:
            scale = w * w / (n * s)
            terms += [(scale * ms_seed, s - 1), (-scale * ms_error, (s - 1) * (n - 1))]
    variance = sum(t for t, _ in terms)
    if variance <= 0:
        return None
    df = variance ** 2 / sum(t * t / d for t, d in terms)
    return math.sqrt(variance), df


def _with_seeds(effect: float, ci: tuple[float, float], p: float, se_boot: float, crossed: tuple[float, float] | None,
                level: float = 0.95) -> tuple[tuple[float, float], float, float]:
    """(interval, p, MDE): where seeds vary, the envelope of the bootstrap interval and the t interval on the crossed
    standard error, the larger of the two p-values, and the MDE from t quantiles on the larger standard error."""
    if crossed is None:
        return ci, p, _Z * se_boot
    from scipy.stats import t

    se, df = crossed
    half = float(t.ppf(1 - (1 - level) / 2, df)) * se
    ci = (min(ci[0], effect - half), max(ci[1], effect + half))
    p = max(p, float(t.sf(effect / se, df)))
    mde = float(t.ppf(1 - ALPHA, df) + t.ppf(POWER, df)) * max(se, se_boot)
    return ci, p, mde


# ----------------------------------------------------------------------------------------------
# the kinds
# ----------------------------------------------------------------------------------------------


def superiority(a: Any, b: Any, *, seed: int = 0) -> Test:
    """B better than A on the same items: effect = mean(B) - mean(A)."""
    A, B = _arm(a), _arm(b)
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"paired arms need the same items ({A.shape[1]} vs {B.shape[1]})")
    d = B.mean(0) - A.mean(0)
    dist = crossed_bootstrap([A, B], lambda x: float(x[1].mean() - x[0].mean()), seed=seed)
    ci, p, mde = _with_seeds(float(d.mean()), _interval(dist), sign_flip_p(d, seed=seed), float(np.std(dist)),
                             crossed_se([A, B], [-1.0, 1.0]))
    return Test("superiority", float(d.mean()), ci, p, A.shape[1], _seeds(A, B), mde, tuple(_common_premises(d, dist)),
                {"mean_a": float(A.mean()), "mean_b": float(B.mean())})


def non_inferiority(a: Any, b: Any, margin: float, *, scale: float | None, seed: int = 0) -> Test:
    """B not worse than A by more than ``margin``: effect = mean(B) - mean(A) + margin (> 0 means non-inferior).

    ``scale`` is the most one item can lose (the outcome's range: 1 for pass/fail rates, 100 for points) when the
    outcome is discrete, so that most items tie and a loss can hide in items not drawn (adds
    :func:`loss_bound_premise`); ``None`` for a continuous score whose item differences the bootstrap sees
    (sentence BLEU)."""
    if margin <= 0:
        raise ValueError("a non-inferiority margin must be positive")
    if scale is not None and scale < margin:
        raise ValueError(f"the outcome's range ({scale:g}) must be at least the margin ({margin:g})")
    A, B = _arm(a), _arm(b)
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"paired arms need the same items ({A.shape[1]} vs {B.shape[1]})")
    d = B.mean(0) - A.mean(0) + margin
    dist = crossed_bootstrap([A, B], lambda x: float(x[1].mean() - x[0].mean()) + margin, seed=seed)
    ci, p, mde = _with_seeds(float(d.mean()), _interval(dist), sign_flip_p(d, seed=seed), float(np.std(dist)),
                             crossed_se([A, B], [-1.0, 1.0]))
    return Test("non-inferiority", float(d.mean()), ci, p, A.shape[1], _seeds(A, B), mde,
                (*_common_premises(d, dist), *_loss_bound(A.shape[1], margin, scale)),
                {"mean_a": float(A.mean()), "mean_b": float(B.mean()), "margin": margin,
                 "difference": float(d.mean()) - margin})


def equivalence(a: Any, b: Any, margin: float, *, scale: float | None, seed: int = 0) -> Test:
    """|mean(B) - mean(A)| < ``margin`` by two one-sided tests.

    effect = margin - |diff|; its interval is read off the 90% interval [lo, hi] of diff (TOST at alpha
    0.05 each side): [margin - max(|lo|, |hi|), margin - (0 if lo <= 0 <= hi else min(|lo|, |hi|))], so
    ci[0] > 0 exactly when both one-sided tests reject; p = max of the two one-sided p-values. ``scale`` as for
    :func:`non_inferiority`.
    """
    if margin <= 0:
        raise ValueError("an equivalence margin must be positive")
    if scale is not None and scale < margin:
        raise ValueError(f"the outcome's range ({scale:g}) must be at least the margin ({margin:g})")
    A, B = _arm(a), _arm(b)
    diff_items = B.mean(0) - A.mean(0)
    dist = crossed_bootstrap([A, B], lambda x: float(x[1].mean() - x[0].mean()), seed=seed)
    diff = float(diff_items.mean())
    crossed = crossed_se([A, B], [-1.0, 1.0])
    # each one-sided test: difference above -margin, and below +margin (its p from the same machinery)
    (lo, hi), _, mde = _with_seeds(diff, _interval(dist, 0.90), 1.0, float(np.std(dist)), crossed, level=0.90)
    _, p_low, _ = _with_seeds(diff + margin, (lo, hi), sign_flip_p(diff_items + margin, seed=seed), 0.0, crossed)
    _, p_high, _ = _with_seeds(margin - diff, (lo, hi), sign_flip_p(margin - diff_items, seed=seed), 0.0, crossed)
    ci = (margin - max(abs(lo), abs(hi)), margin - (0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi))))
    premises = [*_common_premises(diff_items + margin, dist), *_loss_bound(A.shape[1], margin, scale)]
    return Test("equivalence", margin - abs(diff), ci, max(p_low, p_high), A.shape[1], _seeds(A, B), mde,
                tuple(premises), {"difference": diff, "margin": margin})


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    xc = x - x.mean()
    return float((xc * (y - y.mean())).sum() / (xc * xc).sum())


def trend(levels: Sequence[float], arms: Sequence[Any], *, direction: int = 1, seed: int = 0) -> Test:
    """Outcome along an ordered factor: effect = direction x least-squares slope of the level means against
    ``levels`` (e.g. log2 of the size), over *all* levels. Items are shared by the levels (paired); p from
    permuting the level labels within each item (on seed means)."""
    x = np.asarray(levels, dtype=float)
    if len(x) < 3 or len(set(x.tolist())) < 3:
        raise ValueError("a trend needs at least three distinct levels (two points always lie on a line)")
    A = [_arm(a) for a in arms]
    if len(A) != len(x) or len({a.shape[1] for a in A}) != 1:
        raise ValueError("one arm per level, all on the same items")

    def stat(xs: list[np.ndarray]) -> float:
        return direction * _slope(x, np.array([a.mean() for a in xs]))

    dist = crossed_bootstrap(A, stat, seed=seed)
    item_means = np.stack([a.mean(0) for a in A])  # (levels, items)
    observed = direction * _slope(x, item_means.mean(1))
    rng = _rng(seed)
    n_items = item_means.shape[1]
    hits = 0
    for _ in range(N_PERM // 4):
        perm = np.argsort(rng.random((len(x), n_items)), axis=0)
        shuffled = np.take_along_axis(item_means, perm, axis=0)
        hits += direction * _slope(x, shuffled.mean(1)) >= observed - 1e-12
    p = (hits + 1) / (N_PERM // 4 + 1)
    per_item = np.array([_slope(x, item_means[:, i]) for i in range(n_items)]) * direction
    premises = _common_premises(per_item, dist)
    weights = direction * (x - x.mean()) / ((x - x.mean()) ** 2).sum()  # the slope of the level means, as weights
    ci, p, mde = _with_seeds(observed, _interval(dist), float(p), float(np.std(dist)), crossed_se(A, list(weights)))
    return Test("trend", observed, ci, p, n_items, _seeds(*A), mde,
                tuple(premises), {"levels": len(x), **{f"mean_{i}": float(a.mean()) for i, a in enumerate(A)}})


def association(x: Any, y: Any, *, measure: Literal["slope", "r"] = "slope", direction: int = 1,
                clusters: Any = None, seed: int = 0) -> Test:
    """Slope (or Pearson r) of y on x: effect = direction x measure; interval by bootstrapping units (or
    whole ``clusters``, e.g. training seeds, whose points are not independent); p by permuting y."""
    X, Y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if X.shape != Y.shape or X.ndim != 1 or len(X) < 3:
        raise ValueError("association needs two equal-length 1-d samples with at least 3 points")
    groups = np.asarray(clusters) if clusters is not None else np.arange(len(X))
    labels = np.unique(groups)

    def value(xs: np.ndarray, ys: np.ndarray) -> float:
        if np.std(xs) == 0 or np.std(ys) == 0:
            return 0.0
        return direction * (_slope(xs, ys) if measure == "slope" else float(np.corrcoef(xs, ys)[0, 1]))

    observed = value(X, Y)
    rng = _rng(seed)
    members = [np.flatnonzero(groups == g) for g in labels]
    dist = np.empty(N_BOOT)
    for b in range(N_BOOT):
        idx = np.concatenate([members[i] for i in rng.integers(0, len(labels), len(labels))])
        dist[b] = value(X[idx], Y[idx])
    perm = np.array([value(X, rng.permutation(Y)) for _ in range(N_PERM // 4)])
    p = float((np.sum(perm >= observed - 1e-12) + 1) / (len(perm) + 1))
    r = float(np.corrcoef(X, Y)[0, 1]) if np.std(X) > 0 and np.std(Y) > 0 else 0.0
    premises = [Premise("enough points", len(labels) >= 5, f"{len(labels)} independent units")]
    if float(np.std(dist)) <= 1e-12 * max(1.0, float(np.abs(dist).max())):  # constant up to rounding
        premises.append(Premise("outcome varies", False, "every resample gives the same value"))
    return Test("association", observed, _interval(dist), p, len(X), len(labels) if clusters is not None else 1,
                _Z * float(np.std(dist)), tuple(premises), {"r": r, "r2": r * r})


def linearity(x: Sequence[float], curves: Any, r_min: float = 0.9, *, seed: int = 0) -> Test:
    """Is the mean curve linear in ``x``? ``curves`` is (items, len(x)): one curve per item (e.g. per prompt, the
    reward of best-of-n at each n). effect = r - ``r_min``, with r the Pearson correlation of ``x`` and the
    mean curve; the interval resamples items; p is the share of resamples with r <= r_min (one-sided)."""
    X = np.asarray(x, dtype=float)
    Y = np.asarray(curves, dtype=float)
    if Y.ndim != 2 or Y.shape[1] != len(X) or len(X) < 3:
        raise ValueError("linearity needs curves of shape (items, levels) over at least 3 levels")

    def r_of(rows: np.ndarray) -> float:
        m = rows.mean(0)
        return float(np.corrcoef(X, m)[0, 1]) if np.std(m) > 0 else 0.0

    rng = _rng(seed)
    dist = np.array([r_of(Y[rng.integers(0, len(Y), len(Y))]) for _ in range(N_BOOT)]) - r_min
    observed = r_of(Y) - r_min
    p = float((np.sum(dist <= 0) + 1) / (len(dist) + 1))
    premises = (Premise("enough items", len(Y) >= 10, f"{len(Y)} curves"),)
    return Test("association", observed, _interval(dist), p, len(Y), 1, _Z * float(np.std(dist)), premises,
                {"r": observed + r_min, "r_min": r_min})


def wilson(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (ties counted as half a success are allowed)."""
    if n <= 0:
        return (float("nan"), float("nan"))
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def proportion(outcomes: Any, reference: float, *, seed: int = 0) -> Test:
    """A rate against a fixed ``reference`` (e.g. accuracy against chance 0.5): effect = rate - reference.

    ``outcomes`` per item are 1 (success), 0 (failure) or 0.5 (a tie, half a success), or an array
    ``(seeds, items)`` of such values: with several seeds the interval is the crossed bootstrap's, widened by the
    t interval on :func:`crossed_se`; with one it is Wilson's. p: exact binomial test of successes against failures
    (ties dropped, as a sign test drops them) on the seed-averaged outcome rounded to the nearer side (with several
    seeds, or the t test's p where that is larger).
    """
    from scipy.stats import binomtest

    X = _arm(outcomes)
    if np.any((X < 0) | (X > 1)):
        raise ValueError("outcomes must lie in [0, 1] (1 success, 0.5 tie, 0 failure)")
    items = X.mean(0)
    rate = float(items.mean())
    n = len(items)
    if X.shape[0] == 1:
        lo, hi = wilson(float(items.sum()), n)
        se = math.sqrt(max(rate * (1 - rate), 1e-12) / n)
    else:
        dist = crossed_bootstrap([X], lambda x: float(x[0].mean()), seed=seed)
        lo, hi = _interval(dist)
        se = float(np.std(dist))
    wins, losses = int(np.sum(items > reference)), int(np.sum(items < reference))
    p = float(binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue) if wins + losses else 1.0
    floor = 0.5 ** (wins + losses)
    premises = (Premise("enough items", floor < ALPHA, f"{wins + losses} decided items; smallest reachable p {floor:.3g}"),)
    ci, p, mde = _with_seeds(rate - reference, (lo - reference, hi - reference), p, se,
                             crossed_se([X], [1.0]) if X.shape[0] > 1 else None)
    return Test("proportion", rate - reference, ci, p, n, X.shape[0], mde, premises,
                {"rate": rate, "reference": reference})


# ----------------------------------------------------------------------------------------------
# premises used by several papers
# ----------------------------------------------------------------------------------------------


def validated(name: str, accuracy: float, ci_low: float, n: int, chance: float = 0.5) -> Premise:
    """The evaluator (judge, test PM, held-out RM) beats chance on labelled pairs: its interval's bottom > chance."""
    return Premise(f"{name} validated", ci_low > chance,
                   f"{100 * accuracy:.0f}% [{100 * ci_low:.0f}, ...] on {n} labelled pairs (chance {100 * chance:.0f}%)")


def preference_outcomes(p: Any) -> np.ndarray:
    """P(the labelled-better side is preferred) per pair -> 1 (preferred), 0 (not), 0.5 (a tie at 0.5)."""
    p = np.asarray(p, dtype=float)
    return np.where(np.isclose(p, 0.5), 0.5, (p > 0.5).astype(float))


def validated_on(name: str, outcomes: Any, least: int = 10) -> Premise:
    """:func:`validated` from per-pair outcomes (1 / 0.5 / 0, or an array ``(seeds, pairs)`` of them): the
    evaluator agrees with the labels above chance, on at least ``least`` labelled pairs."""
    n = int(np.asarray(outcomes, dtype=float).shape[-1]) if len(outcomes) else 0
    if n < least:
        return Premise(f"{name} validated", False, f"only {n} labelled pairs (need {least})")
    test = proportion(outcomes, 0.5)
    return validated(name, 0.5 + test.effect, 0.5 + test.ci[0], test.n)


def off_floor_and_ceiling(name: str, rate: float, n: int, low: float = 0.05, high: float = 0.95) -> Premise:
    """There is something to gain or lose: the baseline rate lies in [low, high]."""
    return Premise(f"{name} off floor and ceiling", low <= rate <= high,
                   f"baseline {100 * rate:.1f}% on {n} items (needs {100 * low:.0f}-{100 * high:.0f}%)")


def not_capped(name: str, cap_rate: float, limit: float = 0.10) -> Premise:
    """Replies end on their own: the share cut off at the token limit stays below ``limit``."""
    return Premise(f"{name} replies finish", cap_rate < limit,
                   f"{100 * cap_rate:.0f}% of replies hit the token cap (limit {100 * limit:.0f}%)")


def caps_alike(name: str, cap_rates: Sequence[float | None], limit: float = 0.10) -> Premise:
    """Compared arms are cut off at the token cap about equally often (their cap-hit rates differ by less than
    ``limit``), so a difference in a score of the replies is not a difference in how many were truncated. A rate
    of ``None`` (a saved run that did not record it) fails the premise: unchecked is not the same as true."""
    if any(c is None for c in cap_rates):
        return Premise(f"{name} truncated alike", False, "cut-off rates not recorded by this run (rerun it)")
    cap_rates = [float(c) for c in cap_rates if c is not None]
    spread = max(cap_rates) - min(cap_rates) if cap_rates else 0.0
    return Premise(f"{name} truncated alike", spread < limit,
                   "cap-hit rates " + " vs ".join(f"{100 * c:.0f}%" for c in cap_rates)
                   + f" (spread {100 * spread:.0f} pts, limit {100 * limit:.0f})")


def one_precision(name: str, arms: Sequence[dict[str, Any]]) -> Premise:
    """Compared arms ran with weights of one dtype (each arm's record holds ``dtype``, from ``Loaded.info``): bf16
    and fp32 sample differently, so arms in each would differ by rounding as well as by what the claim compares. An
    arm without it (a saved run that did not record it) fails the premise."""
    dtypes = [a.get("dtype") for a in arms]
    if any(d is None for d in dtypes):
        return Premise(f"{name} at one precision", False, "precision not recorded by this run (rerun it)")
    return Premise(f"{name} at one precision", len(set(dtypes)) == 1, " vs ".join(dict.fromkeys(map(str, dtypes))))


def describe(test: Test, unit: str = "pts", *, digits: int = 1, runs: str = "seed(s)") -> str:
    """A test in one phrase for a claim's ``our_value``: effect [95% interval], p, n x seeds. A non-inferiority
    test is stated as the difference itself (B - A) with its interval and the margin it must stay above, since its
    ``effect`` (the difference plus the margin) is not a quantity anyone measured."""
    def f(x: float) -> str:
        return f"{x:+.{digits}f}"

    lo, hi = test.ci
    if test.kind == "non-inferiority":
        m = float(test.detail["margin"])
        head = (f"difference {f(test.effect - m)} {unit} [{f(lo - m)}, {f(hi - m)}] against a margin of "
                f"-{m:g} (effect with the margin {f(test.effect)})")
    else:
        head = f"{f(test.effect)} {unit} [{f(lo)}, {f(hi)}]"
    return f"{head}, p={test.p:.3g}, n={test.n} x {test.seeds} {runs}"


def as_rows(claims: Sequence[Claim]) -> list[dict[str, Any]]:
    """Flat rows for a table (premises as one string: failed ones marked)."""
    rows = []
    for c in claims:
        rows.append({
            "id": c.id, "kind": c.kind, "statement": c.statement, "paper": c.paper_value, "ours": c.our_value,
            "effect": c.effect, "ci": None if c.ci is None else [c.ci[0], c.ci[1]], "p_adj": c.p_adj, "n": c.n,
            "seeds": c.seeds, "mde": c.mde, "min_effect": c.min_effect, "unit": c.unit,
            "premises": "; ".join(("ok " if p.holds else "FAILS ") + p.name for p in c.premises),
            "verdict": c.verdict,
        })
    return rows
