"""Claims as evidence: one record per paper finding, one rule for its verdict.

A claim is tested by one of six kinds of test, each a function here that takes per-item data and returns a
:class:`Test` (effect, 95% interval, one-sided p, n, seeds, minimal detectable effect):

* :func:`superiority` - arm B is better than arm A (paired over items); :func:`beats_trivial` is superiority of a
  learned scorer over the strongest trivial rule on the same items (chance, prefer the longer or shorter reply);
* :func:`non_inferiority` - B is not worse than A by more than ``margin``;
* :func:`equivalence` - B and A differ by less than ``margin`` either way (two one-sided tests);
* :func:`trend` - an outcome changes monotonically along an ordered factor (model size, data size, round), tested
  over *all* levels by the slope against the level's position or value;
* :func:`association` - a slope or correlation between two measured quantities (and :func:`linearity`: whether a
  mean curve is linear in a variable, r above a threshold);
* :func:`proportion` - a rate against a fixed value, with an exact (Clopper-Pearson) interval and binomial test.

Conventions every test follows (the statistics themselves live in :mod:`rlhf_nb.evidence.stats`):

* ``effect`` is signed so that **positive supports the paper**; ``ci`` is its 95% interval; ``p`` is one-sided in
  the paper's direction; :func:`finalize` adds the Holm-adjusted ``p_adj`` over a notebook's claims and the verdict.
* Arms are arrays of shape ``(seeds, items)``: several independent trainings (or independent data draws) evaluated
  on the same items (a baseline that is not trained has one row). Items that share a prompt are not independent:
  every test takes ``clusters`` (one label per item) and then works on cluster means, so resampling and sign flips
  move whole prompts. Intervals come from a **crossed bootstrap** that resamples items and, independently per arm,
  seeds; p-values from exact or Monte-Carlo **sign-flip tests** over items (on the seed means). Where an arm holds
  several seeds, a **t test on the crossed standard error** (:func:`rlhf_nb.evidence.stats.crossed_se`) joins them: the
  larger p counts and the interval is the envelope of the two.
* A margin test (non-inferiority, equivalence) on a **bounded, discrete outcome** (pass/fail, 0-100 points with
  many ties: give ``scale``, the outcome's range) uses the **score test** whose null sits at the margin, with the
  variance under that null (:func:`rlhf_nb.evidence.stats.score_test`, Tango 1998 generalised), and the interval that
  inverts it: a sign flip of d + margin would count every tied item as evidence.
* ``mde`` is the minimal detectable effect at 80% power and one-sided alpha 0.05: (z_0.95 + z_0.80) x SE (with
  several seeds: t quantiles at the crossed degrees of freedom, times the larger standard error).

Every claim also carries ``premises``: named checks that must hold for the test to mean anything (an evaluator
that beats the strongest trivial rule, a baseline off the floor, arms cut off alike, training that moved the policy
it compares with its start, enough items for p < 0.05 to be reachable at all). The verdict, computed by
:func:`decide` and nothing else:

1. ``not tested at this scale`` - a premise fails (the verdict says which);
2. ``not reproduced`` - ci[1] < min_effect: the data exclude an effect as large as the paper's minimum, whatever
   the sign of the effect (when it is positive the reason says the effect is smaller than the paper's);
3. ``reproduced`` - p_adj < 0.05 and ci[0] > 0 (and, by 2, an interval that reaches ``min_effect``);
4. ``inconclusive`` - anything else; ``our_value`` then states the MDE and the n that would be needed, and, where the
   claim carries the run's :class:`Cost`, the cheapest design (seeds x items) that would detect ``min_effect`` and
   what it would take at this run's pace.

The Holm family is fixed in advance: every claim of a notebook, an untested one counting as p = 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np

from rlhf_nb.evidence.stats import (
    ALPHA,
    N_BOOT,
    N_PERM,
    POWER,
    arm,
    by_cluster,
    crossed_bootstrap_means,
    crossed_se,
    crossed_terms,
    exact_interval,
    interval,
    min_sign_flip_p,
    rng,
    satterthwaite,
    score_interval,
    score_test,
    seed_share,
    sign_flip_p,
)
from rlhf_nb.evidence.stats import Z_POWER as _Z

Kind = Literal["superiority", "non-inferiority", "equivalence", "trend", "association", "linearity", "proportion"]
KINDS: tuple[str, ...] = ("superiority", "non-inferiority", "equivalence", "trend", "association", "linearity",
                          "proportion")
REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
NOT_TESTED = "not tested at this scale"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTED)



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
    variance: dict[str, Any] | None = None  # what the MDE is made of (_variance), to project it onto other designs


@dataclass(frozen=True)
class Cost:
    """How a run's wall time grows with its design, measured on the run itself, to price the design that would decide
    a claim: ``seconds(seeds, items) = fixed_s + seeds * per_seed_s + items * (per_item_s + seeds * per_item_seed_s)``.

    ``per_seed_s`` is one seed's work that does not grow with the evaluation items (its training, its own sampling);
    ``per_item_seed_s`` what one more evaluation item costs one seed (every read of it the design makes);
    ``per_item_s`` what it costs the arms read once (a start that is not trained); ``fixed_s`` what the run timed
    that grows with neither (loading and data preparation are not timed by every run, so not priced: a price is a
    floor, and the notebook's cached claims and the report's recomputed ones agree). ``max_items`` bounds the items (``pool`` names them: "HumanEval's 164
    tasks"); ``note`` names a lever the price leaves out."""

    fixed_s: float
    per_seed_s: float
    per_item_s: float
    per_item_seed_s: float
    max_items: int | None = None
    pool: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        parts = (self.fixed_s, self.per_seed_s, self.per_item_s, self.per_item_seed_s)
        if not all(math.isfinite(x) and x >= 0 for x in parts):
            raise ValueError(f"a cost's parts must be finite seconds >= 0, got {parts}")
        if self.max_items is not None and self.max_items < 1:
            raise ValueError(f"max_items must be positive, got {self.max_items}")

    def seconds(self, seeds: int, items: int) -> float:
        return self.fixed_s + seeds * self.per_seed_s + items * (self.per_item_s + seeds * self.per_item_seed_s)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    seed_share: float | None = None  # share of the test's variance from the seeds' spread (stats.seed_share)
    units: str = "items"  # what n counts: the independent units resampled ("prompts" where items share one)
    cost: dict[str, Any] | None = None  # how the run's time grows with seeds and items (Cost.to_dict)
    variance: dict[str, Any] | None = None  # the test's variance terms (Test.variance), to project its MDE

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
    if claim.ci[1] < claim.min_effect:
        top = f"the interval's top {claim.ci[1]:.3g} is below the paper's minimum effect {claim.min_effect:.3g}"
        if claim.ci[0] > 0:
            return NOT_REPRODUCED, f"the effect is smaller than the paper's: {top}, though above 0"
        return NOT_REPRODUCED, top
    if p_adj < ALPHA and claim.ci[0] > 0:
        if claim.effect < claim.min_effect:
            return REPRODUCED, (f"p_adj {p_adj:.3g} < {ALPHA} and the interval excludes 0; the estimate "
                                f"{claim.effect:.3g} is below the paper's minimum effect {claim.min_effect:.3g}, which "
                                "the interval still reaches: possibly smaller than the paper's")
        if claim.ci[0] < claim.min_effect:
            return REPRODUCED, (f"p_adj {p_adj:.3g} < {ALPHA}, the interval excludes 0 and reaches the minimum effect; "
                                f"its bottom {claim.ci[0]:.3g} is below the minimum {claim.min_effect:.3g}, so an effect "
                                "smaller than the paper's is not excluded")
        return REPRODUCED, f"p_adj {p_adj:.3g} < {ALPHA}, the interval excludes 0 and the minimum effect"
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


def tested(claim: Claim) -> bool:
    """Whether a claim was measured and all its premises hold."""
    return claim.p is not None and all(p.holds for p in claim.premises)


def finalize(claims: list[Claim]) -> list[Claim]:
    """Holm-adjust over the whole, fixed family of a notebook's claims (an untested claim counts as p = 1, so the family
    is the same whichever claims pass their premises; in Holm's step-down a claim that passes with a small p still
    moves the others' ranks, lowering their multipliers by one), then compute every verdict (new objects)."""
    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise ValueError(f"claim ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}")
    adjusted = holm([c.p if tested(c) else 1.0 for c in claims])
    out = []
    for claim, p_adj in zip(claims, adjusted):
        claim = replace(claim, p_adj=p_adj if tested(claim) else None)
        verdict, reason = decide(claim)
        claim = replace(claim, verdict=verdict, reason=reason)
        if verdict == INCONCLUSIVE:
            claim = replace(claim, our_value=claim.our_value + " " + needed_sentence(claim))
        out.append(claim)
    return out


def needed_sentence(claim: Claim) -> str:
    """For an inconclusive claim: the MDE of this design and roughly what would detect min_effect, by
    :func:`projected_mde` (the test's own variance terms and t quantiles, carried to more items and seeds): the items
    at this design's seeds, or, where items alone cannot, the seeds and items with the fewest item-seed reads; and,
    with the run's :class:`Cost`, the cheapest such run (:func:`price_sentence`). Claims without the terms (an association,
    a proportion, a record from an older run) split the variance by :attr:`Claim.seed_share` instead."""
    if claim.mde is None or claim.min_effect <= 0 or not claim.n:
        return f"(MDE {claim.mde:.3g} {claim.unit})." if claim.mde is not None else ""
    head = f"(this design detects {claim.mde:.3g} {claim.unit} at 80% power; "
    if claim.variance is None:
        return head + _needed_by_share(claim) + ")."
    seeds0 = max(claim.seeds, 1)
    items = _fewest_items(claim, seeds0)
    pool = (claim.cost or {}).get("max_items")
    beyond = lambda n: f" (beyond the pool's {pool})" if pool and n > pool else ""  # noqa: E731
    if items is not None:
        text = (f"~{items} {claim.units}{beyond(items)} at {claim.seeds} seed(s) would detect the minimum effect "
                f"{claim.min_effect:.3g}")
    else:  # (only seed terms can keep the MDE above min_effect at any number of items)
        floor = projected_mde(claim, seeds0, math.inf)
        text = (f"more {claim.units} alone cannot: at {claim.seeds} seeds the seeds' spread alone sets an MDE of "
                f"{floor:.3g}")
        designs = [(s, n) for s in range(seeds0 + 1, MAX_SEEDS_PRICED + 1) if (n := _fewest_items(claim, s)) is not None]
        more = min(designs, key=lambda d: d[0] * d[1]) if designs else None  # the fewest item-seed reads
        cap = " (the seed cap)" if more and more[0] == MAX_SEEDS_PRICED else ""
        text += (f"; ~{more[0]} seeds{cap} with ~{more[1]} {claim.units}{beyond(more[1])} would detect the minimum "
                 f"effect {claim.min_effect:.3g}" if more else
                 f", and {MAX_SEEDS_PRICED} seeds would not detect the minimum "
                 f"effect {claim.min_effect:.3g}")
    return head + text + price_sentence(claim) + ")."


def _needed_by_share(claim: Claim) -> str:
    """The older projection, for claims without variance terms: the items' and seeds' shares of the variance, normal
    quantiles (half the allowed variance to each part where seeds are needed; the counts lean high)."""
    shrink = (claim.mde / claim.min_effect) ** 2  # the variance must fall by this factor
    share = claim.seed_share or 0.0
    if share * shrink < 0.9:  # items alone can do it
        need = math.ceil(claim.n * (1 - share) / (1 / shrink - share))
        return f"~{need} {claim.units} at {claim.seeds} seed(s) would detect the minimum effect {claim.min_effect:.3g}"
    seeds, items = math.ceil(claim.seeds * 2 * share * shrink), math.ceil(claim.n * 2 * (1 - share) * shrink)
    return (f"more {claim.units} alone cannot: the seeds' spread alone sets an MDE of "
            f"{claim.mde * math.sqrt(share):.3g}; ~{seeds} seeds with ~{max(items, claim.n)} {claim.units} would "
            f"detect the minimum effect {claim.min_effect:.3g}")


MAX_SEEDS_PRICED = 64  # the most seeds a projected design may ask for
MAX_ITEMS_PRICED = 10 ** 7  # the most items a projected design may ask for


def projected_mde(claim: Claim, seeds: int, items: float) -> float:
    """The MDE the claim's test would have on ``items`` items with ``seeds`` seeds in every trained arm, from its own
    variance terms (:attr:`Claim.variance`): each term splits into its own spread (the items', which scales with
    n / items; an arm's seeds', which scales with seeds / the new count) and the item-by-seed noise in it, which
    scales with both; their degrees of freedom follow (items - 1, seeds - 1) and the t quantiles with them, as
    :func:`_with_seeds` reads them; where the bootstrap's standard error exceeded the terms' it keeps that ratio. At
    the claim's own design it is the claim's MDE. It assumes what the terms do: seeds independent of one another (a
    shared data draw's variance is in neither term) and items independent."""
    if claim.variance is None:
        raise ValueError(f"{claim.id}: no variance terms to project (an older record, or a test without them)")
    v, seeds0 = claim.variance, max(claim.seeds, 1)
    noise = v.get("items_noise", 0.0)  # the item-by-seed noise in the items' term shrinks with seeds as well
    item_var = (v["items"] - noise) * claim.n / items + noise * claim.n * seeds0 / (items * seeds)
    if not v["seeds"]:  # one seed an arm: items are the only source of chance, normal quantiles
        return _Z * math.sqrt(item_var) * v["ratio"]
    from scipy.stats import t

    shrink = claim.n * seeds0 / (items * seeds)  # what the item-by-seed noise in a seed term keeps
    terms = [(item_var, items - 1)] + [((var - noise) * seeds0 / seeds + noise * shrink, arm_seeds * seeds / seeds0 - 1)
                                       for var, arm_seeds, noise in v["seeds"]]
    se, df = satterthwaite(terms) or (0.0, 1.0)
    return float(t.ppf(1 - ALPHA, df) + t.ppf(POWER, df)) * se * v["ratio"]


def _fewest_items(claim: Claim, seeds: int, most: int = MAX_ITEMS_PRICED) -> int | None:
    """The fewest items (never fewer than the claim's) whose projected MDE at ``seeds`` reaches min_effect, up to
    ``most``; None beyond (the projected MDE falls as items grow, so a bisection finds it)."""
    low, high = claim.n, most
    if high < low or projected_mde(claim, seeds, high) > claim.min_effect:
        return None
    if projected_mde(claim, seeds, low) <= claim.min_effect:
        return low
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if projected_mde(claim, seeds, mid) <= claim.min_effect else (mid, high)
    return high


def _priceable(claim: Claim) -> bool:
    return (claim.cost is not None and claim.variance is not None and claim.mde is not None and claim.min_effect > 0
            and bool(claim.n))


def cheapest_design(claim: Claim) -> tuple[int, int, float] | None:
    """(seeds, items, seconds) of the cheapest run, at the claim's :class:`Cost`, whose projected MDE
    (:func:`projected_mde`) reaches ``min_effect``: never fewer seeds or items than this design, never more items
    than the pool holds, at most ``MAX_SEEDS_PRICED`` seeds; a design with one seed an arm (its spread unmeasured)
    adds only items. ``None`` when no such run exists, or the claim has no cost or variance terms."""
    if not _priceable(claim):
        return None
    cost = Cost(**claim.cost)
    seeds0 = max(claim.seeds, 1)
    best = None
    for seeds in range(seeds0, (MAX_SEEDS_PRICED if claim.variance["seeds"] else seeds0) + 1):
        items = _fewest_items(claim, seeds, cost.max_items or MAX_ITEMS_PRICED)
        if items is None:
            continue
        seconds = cost.seconds(seeds, items)
        if best is None or seconds < best[2]:
            best = (seeds, items, seconds)
    return best


def _duration(seconds: float) -> str:
    return f"~{seconds / 60:.0f} min" if seconds < 120 * 60 else f"~{seconds / 3600:.1f} h"


def price_sentence(claim: Claim) -> str:
    """What deciding the claim would take at this run's pace (its :class:`Cost`): the cheapest run of the notebook as
    designed (every arm and read it makes, not only this claim's), or that none within the pool and
    ``MAX_SEEDS_PRICED`` seeds would; '' without a cost."""
    if not _priceable(claim):
        return ""
    cost = Cost(**claim.cost)
    now = f"its priced parts {_duration(cost.seconds(max(claim.seeds, 1), claim.n))}"
    note = f"; {cost.note}" if cost.note else ""
    unmeasured = "" if claim.variance["seeds"] or claim.seeds > 1 or not cost.per_seed_s else \
        " (one seed: its spread is not measured)"
    best = cheapest_design(claim)
    if best is None:
        within = f"within {cost.pool or f'{cost.max_items} {claim.units}'} and " if cost.max_items else "of up to "
        return f"; no run of this notebook {within}{MAX_SEEDS_PRICED} seeds would ({now}){unmeasured}{note}"
    seeds, items, seconds = best
    leans = " (the projection leans low as seeds grow)" if seeds > claim.seeds else ""
    return (f"; the cheapest run of this notebook that would, at this run's pace: {items} {claim.units} x {seeds} "
            f"seeds, {_duration(seconds)}{leans} ({now}){unmeasured}{note}")


def claim(id: str, paper: str, statement: str, paper_value: str, test: Test | None, *, min_effect: float,
          min_effect_reason: str, unit: str, our_value: str, premises: Sequence[Premise] = (),
          kind: str | None = None, units: str = "items", cost: Cost | None = None) -> Claim:
    """A claim record from a :class:`Test` (``None``: not measured in this run, e.g. a gpu-only experiment); ``cost``
    prices the design that would decide it, should it be inconclusive."""
    if (test.kind if test else kind) in ("non-inferiority", "equivalence") and min_effect != 0:
        raise ValueError(f"{id}: a {test.kind if test else kind} effect already holds its margin (effect > 0 is the "
                         f"paper's claim), so min_effect must be 0, not {min_effect}")
    if test is None:
        return Claim(id, paper, statement, kind or "superiority", paper_value, our_value, None, None, None, None, 0, 0,
                     None, min_effect, min_effect_reason, unit, [*premises] or [Premise("measured", False, our_value)],
                     units=units, cost=cost.to_dict() if cost else None)
    return Claim(id, paper, statement, test.kind, paper_value, our_value, test.effect, test.ci, test.p, None, test.n,
                 test.seeds, test.mde, min_effect, min_effect_reason, unit, [*test.premises, *premises],
                 seed_share=test.detail.get("seed_share"), units=units, cost=cost.to_dict() if cost else None,
                 variance=test.variance)


# ----------------------------------------------------------------------------------------------
# building blocks
# ----------------------------------------------------------------------------------------------


def _common_premises(d: np.ndarray, dist: np.ndarray | None) -> list[Premise]:
    """Enough items for p < 0.05 to be reachable; an outcome whose resamples vary (``dist`` None: not asked, as for a
    score test, whose null variance does not come from the resamples)."""
    out = []
    floor = min_sign_flip_p(d)
    out.append(Premise("enough items", floor < ALPHA,
                       f"{np.count_nonzero(d)} items differ; the smallest reachable p is {floor:.3g}"))
    if dist is not None and float(np.std(dist)) <= 1e-12 * max(1.0, float(np.abs(dist).max())):  # constant
        out.append(Premise("outcome varies", False, "every resample gives the same value: no interval can be formed"))
    return out


def _seeds(*arms: np.ndarray) -> int:
    return max(a.shape[0] for a in arms)


def _paired_arms(a: Any, b: Any, clusters: Sequence[Any] | None) -> tuple[np.ndarray, np.ndarray]:
    A, B = arm(a), arm(b)
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"paired arms need the same items ({A.shape[1]} vs {B.shape[1]})")
    return by_cluster(A, clusters), by_cluster(B, clusters)


def _with_seeds(effect: float, ci: tuple[float, float], p: float, se_boot: float, crossed: tuple[float, float] | None,
                level: float = 0.95) -> tuple[tuple[float, float], float, float]:
    """(interval, p, MDE): where seeds vary, the envelope of the item-level interval and the t interval on the crossed
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


def _summed(terms: list[tuple[float, int, int, float]] | None) -> tuple[float, float] | None:
    """:func:`rlhf_nb.evidence.stats.crossed_se` from terms already computed."""
    return None if terms is None else satterthwaite([(t, d) for t, d, _, _ in terms])


def _variance(se_boot: float, terms: list[tuple[float, int, int, float]] | None) -> dict[str, Any]:
    """What :func:`_with_seeds` made the MDE of, for :func:`projected_mde`: the items' variance term and the
    item-by-seed noise in it, each seeded arm's ``[term, seeds, the item-by-seed noise in it]`` (crossed_terms), and
    the ratio of the larger standard
    error it read to the terms' own; with one seed an arm, the bootstrap's variance as the items' term."""
    whole = _summed(terms)
    if whole is None:
        return {"items": float(se_boot ** 2), "seeds": [], "ratio": 1.0}
    return {"items": float(terms[0][0]), "items_noise": float(terms[0][3]),
            "seeds": [[float(t), int(s), float(e)] for t, _, s, e in terms[1:]],
            "ratio": float(max(whole[0], se_boot) / whole[0])}


def _check_scale(margin: float, scale: float | None) -> None:
    if margin <= 0:
        raise ValueError("a margin must be positive")
    if scale is not None and scale <= margin:
        raise ValueError(f"the outcome's range ({scale:g}) must exceed the margin ({margin:g})")


# ----------------------------------------------------------------------------------------------
# the kinds
# ----------------------------------------------------------------------------------------------


def superiority(a: Any, b: Any, *, clusters: Sequence[Any] | None = None, seed: int = 0, level: float = 0.95) -> Test:
    """B better than A on the same items: effect = mean(B) - mean(A) (over cluster means with ``clusters``); ``ci`` at
    ``level`` (95% unless a caller corrects for several comparisons)."""
    A, B = _paired_arms(a, b, clusters)
    d = B.mean(0) - A.mean(0)
    dist = crossed_bootstrap_means([A, B], [-1.0, 1.0], seed=seed)
    terms = crossed_terms([A, B], [-1.0, 1.0])
    ci, p, mde = _with_seeds(float(d.mean()), interval(dist, level, n=len(d)), sign_flip_p(d, seed=seed),
                             float(np.std(dist)), _summed(terms), level=level)
    return Test("superiority", float(d.mean()), ci, p, A.shape[1], _seeds(A, B), mde, tuple(_common_premises(d, dist)),
                {"mean_a": float(A.mean()), "mean_b": float(B.mean()), "seed_share": seed_share([A, B], [-1.0, 1.0])},
                _variance(float(np.std(dist)), terms))


def non_inferiority(a: Any, b: Any, margin: float, *, scale: float | None, clusters: Sequence[Any] | None = None,
                    seed: int = 0) -> Test:
    """B not worse than A by more than ``margin``: effect = mean(B) - mean(A) + margin (> 0 means non-inferior).

    ``scale`` is the outcome's range (1 for pass/fail or pair outcomes, 100 for points) when it is bounded and
    discrete, so that most items tie and a loss can hide in items not drawn: p is then the score test of
    H0: mean difference = -margin with the variance under that null, and the interval inverts it
    (:func:`rlhf_nb.evidence.stats.score_test`). ``None`` for a continuous score (sentence BLEU): a sign flip of
    d + margin and the bootstrap interval, which see its spread."""
    _check_scale(margin, scale)
    A, B = _paired_arms(a, b, clusters)
    d = B.mean(0) - A.mean(0)
    dist = crossed_bootstrap_means([A, B], [-1.0, 1.0], seed=seed) + margin
    if scale is None:
        ci0, p0, se = interval(dist, n=len(d)), sign_flip_p(d + margin, seed=seed), float(np.std(dist))
    else:
        lo, hi = score_interval(d, scale)
        ci0, p0, se = (lo + margin, hi + margin), score_test(d, -margin, scale), (hi - lo) / (2 * 1.959963984540054)
    effect = float(d.mean()) + margin
    ci, p, mde = _with_seeds(effect, ci0, p0, se, crossed_se([A, B], [-1.0, 1.0]))
    return Test("non-inferiority", effect, ci, p, A.shape[1], _seeds(A, B), mde,
                tuple(_common_premises(d + margin, dist if scale is None else None)),
                {"mean_a": float(A.mean()), "mean_b": float(B.mean()), "margin": margin, "difference": effect - margin,
                 "seed_share": seed_share([A, B], [-1.0, 1.0])})


def equivalence(a: Any, b: Any, margin: float, *, scale: float | None, clusters: Sequence[Any] | None = None,
                seed: int = 0) -> Test:
    """|mean(B) - mean(A)| < ``margin`` by two one-sided tests.

    effect = margin - |diff|; its interval is read off the 95% interval [lo, hi] of diff: [margin - max(|lo|, |hi|),
    margin - (0 if lo <= 0 <= hi else min(|lo|, |hi|))], so ci[0] > 0 exactly when both one-sided tests reject at
    2.5% each (TOST at the level of every other interval the rule reads: a 90% band would call equivalence at the
    margin 5% of the time); p = max of the two one-sided p-values. ``scale`` as for :func:`non_inferiority` (score
    tests at -margin and +margin, and the score interval)."""
    _check_scale(margin, scale)
    A, B = _paired_arms(a, b, clusters)
    d = B.mean(0) - A.mean(0)
    dist = crossed_bootstrap_means([A, B], [-1.0, 1.0], seed=seed)
    diff = float(d.mean())
    crossed = crossed_se([A, B], [-1.0, 1.0])
    if scale is None:
        band, se = interval(dist, n=len(d)), float(np.std(dist))
        p_low, p_high = sign_flip_p(d + margin, seed=seed), sign_flip_p(margin - d, seed=seed)
    else:
        band = score_interval(d, scale)
        se = (band[1] - band[0]) / (2 * 1.959963984540054)
        p_low, p_high = score_test(d, -margin, scale), score_test(-d, -margin, scale)
    (lo, hi), _, mde = _with_seeds(diff, band, 1.0, se, crossed)
    _, p_low, _ = _with_seeds(diff + margin, (lo, hi), p_low, 0.0, crossed)
    _, p_high, _ = _with_seeds(margin - diff, (lo, hi), p_high, 0.0, crossed)
    ci = (margin - max(abs(lo), abs(hi)), margin - (0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi))))
    return Test("equivalence", margin - abs(diff), ci, max(p_low, p_high), A.shape[1], _seeds(A, B), mde,
                tuple(_common_premises(d + margin, dist if scale is None else None)),
                {"difference": diff, "margin": margin})


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    xc = x - x.mean()
    return float((xc * (y - y.mean())).sum() / (xc * xc).sum())


def trend(levels: Sequence[float], arms: Sequence[Any], *, direction: int = 1, same_seeds: bool = False,
          seed: int = 0) -> Test:
    """Outcome along an ordered factor: effect = direction x least-squares slope of the level means against
    ``levels`` (e.g. log2 of the size), over *all* levels. Items are shared by the levels (paired); p from
    permuting the level labels within each item (on seed means).

    By default each level's seeds are their own trainings (a model per size). With ``same_seeds`` row s of every
    level is one run seen at several points (the rounds of one online run), so its levels are not independent: each
    run's slope over the levels (a one-row level, such as a start every run shares, counts in every run's) is one
    seeded table, and its seeds and items are resampled together, which is what a repeated-measures design asks."""
    x = np.asarray(levels, dtype=float)
    if len(x) < 3 or len(set(x.tolist())) < 3:
        raise ValueError("a trend needs at least three distinct levels (two points always lie on a line)")
    A = [arm(a) for a in arms]
    if len(A) != len(x) or len({a.shape[1] for a in A}) != 1:
        raise ValueError("one arm per level, all on the same items")

    weights = direction * (x - x.mean()) / ((x - x.mean()) ** 2).sum()  # the slope of the level means, as weights
    if same_seeds:
        runs = max(a.shape[0] for a in A)
        if any(a.shape[0] not in (1, runs) for a in A):
            raise ValueError("with same_seeds every level holds the same runs (or one row that every run shares): "
                             f"rows {[a.shape[0] for a in A]}")
        table = [sum(w * np.broadcast_to(a, (runs, a.shape[1])) for w, a in zip(weights, A))]  # a slope per run, item
        parts, part_weights = table, [1.0]
    else:
        parts, part_weights = A, list(weights)
    dist = crossed_bootstrap_means(parts, part_weights, seed=seed)
    item_means = np.stack([a.mean(0) for a in A])  # (levels, items)
    observed = direction * _slope(x, item_means.mean(1))
    gen = rng(seed)
    n_items = item_means.shape[1]
    hits = 0
    for _ in range(N_PERM // 4):  # the level labels permuted within each item: the weights land on other levels
        perm = np.argsort(gen.random((len(x), n_items)), axis=0)
        hits += float(weights @ np.take_along_axis(item_means, perm, axis=0).mean(1)) >= observed - 1e-12
    p = (hits + 1) / (N_PERM // 4 + 1)
    per_item = np.array([_slope(x, item_means[:, i]) for i in range(n_items)]) * direction
    premises = _common_premises(per_item, dist)
    terms = crossed_terms(parts, part_weights)
    ci, p, mde = _with_seeds(observed, interval(dist, n=n_items), float(p), float(np.std(dist)), _summed(terms))
    return Test("trend", observed, ci, p, n_items, _seeds(*A), mde,
                tuple(premises), {"levels": len(x), **{f"mean_{i}": float(a.mean()) for i, a in enumerate(A)},
                                  "seed_share": seed_share(parts, part_weights)},
                _variance(float(np.std(dist)), terms))


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
    gen = rng(seed)
    members = [np.flatnonzero(groups == g) for g in labels]
    dist = np.empty(N_BOOT)
    for b in range(N_BOOT):
        idx = np.concatenate([members[i] for i in gen.integers(0, len(labels), len(labels))])
        dist[b] = value(X[idx], Y[idx])
    perm = np.array([value(X, gen.permutation(Y)) for _ in range(N_PERM // 4)])
    p = float((np.sum(perm >= observed - 1e-12) + 1) / (len(perm) + 1))
    r = float(np.corrcoef(X, Y)[0, 1]) if np.std(X) > 0 and np.std(Y) > 0 else 0.0
    premises = [Premise("enough points", len(labels) >= 5, f"{len(labels)} independent units")]
    if float(np.std(dist)) <= 1e-12 * max(1.0, float(np.abs(dist).max())):  # constant up to rounding
        premises.append(Premise("outcome varies", False, "every resample gives the same value"))
    return Test("association", observed, interval(dist, n=len(labels)), p, len(X),
                len(labels) if clusters is not None else 1,
                _Z * float(np.std(dist)), tuple(premises), {"r": r, "r2": r * r})


def curvature(x: Sequence[float], y: Sequence[float]) -> float:
    """How far a rising curve bends: (slope over the upper half of ``x`` - slope over the lower half) / the slope over
    all of it, the halves sharing the middle level when the levels are odd. 0 for a line, > 0 for a curve that
    steepens, < 0 for one that flattens; infinite when the curve does not rise overall (no slope to compare with)."""
    X, Y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    mid = len(X) // 2
    whole = _slope(X, Y)
    if not whole > 0:
        return math.inf
    lower, upper = slice(0, mid + 1), slice(mid, len(X))
    return (_slope(X[upper], Y[upper]) - _slope(X[lower], Y[lower])) / whole


def linearity(x: Sequence[float], curves: Any, tolerance: float = 0.25, *, seed: int = 0) -> Test:
    """Does the mean curve grow linearly in ``x``, within ``tolerance``? ``curves`` is (items, len(x)): one curve per
    independent item (e.g. per prompt, the reward of best-of-n at each n). The lack of fit is the mean curve's
    :func:`curvature` c (the relative change of its slope between the lower and the upper half of ``x``); effect =
    ``tolerance`` - |c|, positive when the slope changes by less than the tolerance. The interval resamples items
    (expanded, :func:`rlhf_nb.evidence.stats.interval`); p is the share of resamples whose |c| reaches the tolerance.
    So *reproduced* (with ``min_effect`` 0) needs the 95% interval of |c| below the tolerance, the two one-sided
    tests of an equivalence at 2.5% a side, and *not reproduced* needs the curve bent beyond it."""
    X = np.asarray(x, dtype=float)
    Y = np.asarray(curves, dtype=float)
    if Y.ndim != 2 or Y.shape[1] != len(X) or len(X) < 3:
        raise ValueError("linearity needs curves of shape (items, levels) over at least 3 levels")
    if tolerance <= 0:
        raise ValueError("the tolerance must be positive")
    gen = rng(seed)
    observed = curvature(X, Y.mean(0))
    rows = gen.integers(0, len(Y), (N_BOOT, len(Y)))
    bent = np.array([abs(curvature(X, Y[r].mean(0))) for r in rows])
    p = float((np.sum(bent >= tolerance) + 1) / (len(bent) + 1))
    dist = tolerance - np.minimum(bent, 3 * tolerance)  # a resample that does not rise counts as bent by 3x
    slope = _slope(X, Y.mean(0))
    premises = (Premise("enough items", len(Y) >= 10, f"{len(Y)} curves"),
                Premise("the mean curve rises", slope > 0, f"slope {slope:+.3g} per unit of x"))
    effect = tolerance - min(abs(observed), 3 * tolerance)
    return Test("linearity", effect, interval(dist, n=len(Y)), p, len(Y), 1, _Z * float(np.std(dist)), premises,
                {"curvature": observed if math.isfinite(observed) else float("nan"), "tolerance": tolerance})


def proportion(outcomes: Any, reference: float, *, clusters: Sequence[Any] | None = None, seed: int = 0) -> Test:
    """A rate against a fixed ``reference`` (e.g. accuracy against chance 0.5): effect = rate - reference.

    ``outcomes`` per item are 1 (success), 0 (failure) or 0.5 (a tie, half a success), or an array ``(seeds, items)``
    of such values. With one seed and independent items: the Clopper-Pearson interval (Wilson's holds more than
    2.5% on the side away from 0.5), and the exact binomial test of the
    successes against ``reference`` (ties count half, rounded down; against 0.5 the ties are dropped instead, as a
    sign test drops them). With several seeds or with ``clusters``, the per-unit rates are no longer 0/1: the crossed
    bootstrap's interval and a sign-flip test of rate - reference (with several seeds, widened by the t test on the
    crossed standard error).
    """
    from scipy.stats import binomtest

    if not 0 < reference < 1:
        raise ValueError(f"a reference rate must lie in (0, 1), got {reference}")
    X = arm(outcomes)
    if np.any((X < 0) | (X > 1)):
        raise ValueError("outcomes must lie in [0, 1] (1 success, 0.5 tie, 0 failure)")
    X = by_cluster(X, clusters)
    items = X.mean(0)
    rate = float(items.mean())
    n = len(items)
    if X.shape[0] == 1 and clusters is None and np.all(np.isin(items, (0.0, 0.5, 1.0))):
        lo, hi = exact_interval(float(items.sum()), n)
        se = math.sqrt(max(rate * (1 - rate), 1e-12) / n)
        if reference == 0.5:  # a sign test: ties say nothing either way
            wins, losses = int(np.sum(items > 0.5)), int(np.sum(items < 0.5))
            p = float(binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue) if wins + losses else 1.0
            floor, decided = 0.5 ** (wins + losses), f"{wins + losses} decided items"
        else:
            p = float(binomtest(int(math.floor(items.sum() + 1e-9)), n, reference, alternative="greater").pvalue)
            floor, decided = reference ** n, f"{n} items"
    else:
        dist = crossed_bootstrap_means([X], [1.0], seed=seed)
        lo, hi = interval(dist, n=n)
        se = float(np.std(dist))
        p = sign_flip_p(items - reference, seed=seed)
        floor = min_sign_flip_p(items - reference)
        decided = f"{np.count_nonzero(items - reference)} units off the reference"
    premises = (Premise("enough items", floor < ALPHA, f"{decided}; smallest reachable p {floor:.3g}"),)
    ci, p, mde = _with_seeds(rate - reference, (lo - reference, hi - reference), p, se,
                             crossed_se([X], [1.0]) if X.shape[0] > 1 else None)
    return Test("proportion", rate - reference, ci, p, n, X.shape[0], mde, premises,
                {"rate": rate, "reference": reference})


# ----------------------------------------------------------------------------------------------
# a learned scorer against the strongest trivial rule
# ----------------------------------------------------------------------------------------------

CHANCE = "chance"
LONGER = "prefer the longer reply"
SHORTER = "prefer the shorter reply"


def trivial_rules(longer: Any | None) -> dict[str, np.ndarray | float]:
    """The cheap rules a sceptic would put beside a pair scorer, as per-pair outcomes (1 right, 0.5 tie, 0 wrong):
    chance, and, given ``longer`` (the outcomes of preferring the longer reply on the same pairs), preferring the
    longer and preferring the shorter reply (a length tie is 0.5 for both)."""
    rules: dict[str, np.ndarray | float] = {CHANCE: 0.5}
    if longer is not None:
        x = np.asarray(longer, dtype=float)
        rules[LONGER], rules[SHORTER] = x, 1.0 - x
    return rules


def beats_trivial(outcomes: Any, rules: Mapping[str, Any], *, clusters: Sequence[Any] | None = None,
                  seed: int = 0) -> tuple[Test, str]:
    """Does a learned scorer beat every trivial rule on the same items? Its outcomes (seeds, items) against each
    rule's, paired, with no rule picked: 'reproduced' needs every rule beaten (an intersection-union test: ``ci[0]``
    is the lowest of the per-rule 95% bottoms, ``p`` the largest per-rule p), and 'not reproduced' needs some rule
    that the scorer does not beat by the minimum effect (``ci[1]`` is the lowest per-rule top, each at a Bonferroni
    level over the rules, so that a scorer that beats every rule by the minimum effect is called 'not reproduced' at
    most 2.5% of the time). Picking the strongest rule on the compared items biased it up where rules tie (5-6% false
    'not reproduced' in benchmarks/verdict_calibration.py); picking it on other items (cross-fitting) picked a weaker
    rule by luck (7-13% false 'reproduced'). ``effect`` is the difference from the rule that scores best on these
    items; ``detail["rule_rates"]`` holds every rule's rate (over clusters where given). Returns the test and that
    rule's name."""
    X = by_cluster(arm(outcomes), clusters)
    n_items = arm(outcomes).shape[1]
    arms = {name: by_cluster(np.broadcast_to(np.asarray(x, dtype=float), (n_items,)), clusters)
            for name, x in rules.items()}
    best = max(arms, key=lambda name: float(arms[name].mean()))
    each = {name: superiority(a, X, seed=seed) for name, a in arms.items()}
    corrected = {name: superiority(a, X, seed=seed, level=1 - 0.05 / len(arms)) for name, a in arms.items()}
    top = each[best]
    ci = (min(t.ci[0] for t in each.values()), min(t.ci[1] for t in corrected.values()))
    interval = f"95% bottom, top at {100 * (1 - 0.05 / len(arms)):.1f}% over {len(arms)} rules" if len(arms) > 1 else ""
    test = replace(top, ci=ci, p=max(t.p for t in each.values()), mde=max(t.mde for t in each.values()),
                   detail={**top.detail, "rule_rate": float(arms[best].mean()), "rate": float(X.mean()),
                           "rule_rates": {name: float(a.mean()) for name, a in arms.items()},
                           # each rule's difference and interval: the 95% bottom, the top at the Bonferroni level
                           "rule_tests": {name: [each[name].effect, each[name].ci[0], corrected[name].ci[1]]
                                          for name in arms},
                           **({"interval": interval} if interval else {})})
    return test, best


# ----------------------------------------------------------------------------------------------
# premises used by several papers
# ----------------------------------------------------------------------------------------------


def validated(name: str, accuracy: float, ci_low: float, n: int, chance: float = 0.5,
              units: str = "labelled pairs") -> Premise:
    """The evaluator (judge, test PM, held-out RM) beats chance on labelled pairs: its interval's bottom > chance
    (``n`` counts ``units``: the pairs, or the prompts they were grouped by)."""
    return Premise(f"{name} validated", ci_low > chance,
                   f"{100 * accuracy:.0f}% [{100 * ci_low:.0f}, ...] on {n} {units} (chance {100 * chance:.0f}%)")


def preference_outcomes(p: Any) -> np.ndarray:
    """P(the labelled-better side is preferred) per pair -> 1 (preferred), 0 (not), 0.5 (a tie at 0.5)."""
    p = np.asarray(p, dtype=float)
    return np.where(np.isclose(p, 0.5), 0.5, (p > 0.5).astype(float))


def validated_on(name: str, outcomes: Any, least: int = 10, *, rules: Mapping[str, Any] | None = None,
                 clusters: Sequence[Any] | None = None) -> Premise:
    """The evaluator agrees with the labels of held-out pairs (outcomes 1 / 0.5 / 0, or ``(seeds, pairs)``) on at
    least ``least`` of them, better than chance and, given ``rules`` (:func:`trivial_rules`), better than the
    strongest trivial rule on the same pairs, paired: the interval of the difference lies above 0."""
    n = int(np.asarray(outcomes, dtype=float).shape[-1]) if len(outcomes) else 0
    if n < least:
        return Premise(f"{name} validated", False, f"only {n} labelled pairs (need {least})")
    if rules is None:
        test = proportion(outcomes, 0.5, clusters=clusters)
        return validated(name, 0.5 + test.effect, 0.5 + test.ci[0], test.n,
                         units="labelled pairs" if clusters is None else "prompts")
    test, rule = beats_trivial(outcomes, rules, clusters=clusters)
    return Premise(f"{name} validated", test.ci[0] > 0,
                   f"{100 * test.detail['rate']:.0f}% vs {100 * test.detail['rule_rate']:.0f}% for the strongest "
                   f"trivial rule ({rule}): {100 * test.effect:+.1f} pts "
                   f"[{100 * test.ci[0]:+.1f}, {100 * test.ci[1]:+.1f}]"
                   f"{' (' + test.detail['interval'] + ')' if test.detail.get('interval') else ''} on "
                   f"{test.n} {'prompts' if clusters is not None else 'labelled pairs'}")


def moved(name: str, start: Any, trained: Any, least: float = 0.10) -> Premise:
    """Training moved the policy: on held-out prompts of the distribution it trained on, the share of
    (seed, item) outcomes that differ from the start's (the gold it was trained towards, greedy replies) is at least
    ``least``. A claim that a trained policy kept a skill, or lost nothing, says nothing about a policy that training
    did not change: such a policy cannot fail it."""
    S, T = arm(start), arm(trained)
    if S.shape[0] != 1 or S.shape[1] != T.shape[1]:
        raise ValueError(f"one start row and trained rows on the same items, got {S.shape} and {T.shape}")
    changed = float(np.mean(~np.isclose(T, S)))
    return Premise(f"{name} moved by training", changed >= least,
                   f"{100 * changed:.1f}% of {T.shape[1]} held-out outcomes x {T.shape[0]} seed(s) differ from the "
                   f"start's (needs {100 * least:.0f}%)")


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


def truncation_not_the_effect(name: str, a: Any, b: Any, finished_a: Any, finished_b: Any, limit: float = 0.10
                              ) -> Premise:
    """A robustness check for a superiority comparison of B with A on the same items (scores and finished flags: items,
    or seeds x items) whose arms ran past the token cap at different rates.

    Cap-hit rates within ``limit`` of each other pass as they stand (:func:`caps_alike`). Where training changed how
    often a policy runs on past the cap (e.g. loops less), the comparison is repeated on the items on which *every*
    compared reply (each seed of each arm) ended on its own, and passes if it gives the same answer as all items:
    its point estimate lies inside the all-items 95% interval, and its interval excludes 0 on the same side as the
    all-items one, or both include 0. Cut-off replies are scored as they stand (a user sees them), so this checks that
    the answer survives dropping every cut-off reply; it rules nothing out. Those items are selected after training (which
    replies finish depends on the policy), requiring every seed to finish keeps fewer items as seeds are added, and
    where both answers are "no difference" the check cannot show an effect that truncation hides: read a null with
    the gain the cut-off rates alone predict beside it. At least 10 such items (and a third of all) are needed."""
    A, B = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    finished_a, finished_b = (np.atleast_2d(np.asarray(f, dtype=bool)) for f in (finished_a, finished_b))
    if finished_a.shape != A.shape or finished_b.shape != B.shape or A.shape[1] != B.shape[1]:
        raise ValueError(f"scores {A.shape} / {B.shape} and finished flags {finished_a.shape} / {finished_b.shape} "
                         "must match, over the same items")
    alike = caps_alike(name, [1 - float(finished_a.mean()), 1 - float(finished_b.mean())], limit)
    label = f"{name} truncated alike, or not a truncation effect"
    if alike.holds:
        return Premise(label, True, alike.detail)
    keep = finished_a.all(0) & finished_b.all(0)
    least = max(10, -(-keep.size // 3))
    if keep.sum() < least:
        return Premise(label, False, f"{alike.detail}; only {int(keep.sum())} of {keep.size} items on which every "
                                     f"compared reply ended on its own (need {least})")
    every, finished = superiority(A, B), superiority(A[:, keep], B[:, keep])

    def side(t: Test) -> int:
        return 1 if t.ci[0] > 0 else -1 if t.ci[1] < 0 else 0

    def show(t: Test) -> str:
        return f"{t.effect:+.1f} [{t.ci[0]:+.1f}, {t.ci[1]:+.1f}]"

    same = side(every) == side(finished) and every.ci[0] <= finished.effect <= every.ci[1]
    return Premise(label, same, f"{alike.detail}; on the {int(keep.sum())} of {keep.size} items on which every "
                                f"compared reply ended on its own {show(finished)} against {show(every)} on all items: "
                                + ("the same answer" if same else "a different answer")
                                + (" (both null: the check cannot show a hidden effect)" if same and not side(every)
                                   else ""))


def truncation_only(reference_scores: Any, reference_finished: Any, cut_a: float, cut_b: float) -> float:
    """The gain of B over A that their cut-off rates alone predict: the difference in cut-off rate times the gap between
    ``reference``'s scores on its finished and its cut-off replies (a length-only baseline for a comparison whose arms
    hit the cap at different rates; 0 where the reference has no reply of one kind)."""
    scores, done = np.asarray(reference_scores, dtype=float).ravel(), np.asarray(reference_finished, dtype=bool).ravel()
    if done.all() or not done.any():
        return 0.0
    return float((cut_a - cut_b) * (scores[done].mean() - scores[~done].mean()))


def one_precision(name: str, arms: Sequence[dict[str, Any]]) -> Premise:
    """Compared arms ran with weights of one dtype (each arm's record holds ``dtype``, from ``Loaded.info``): bf16
    and fp32 sample differently, so arms in each would differ by rounding as well as by what the claim compares. An
    arm without it (a saved run that did not record it) fails the premise."""
    dtypes = [a.get("dtype") for a in arms]
    if any(d is None for d in dtypes):
        return Premise(f"{name} at one precision", False, "precision not recorded by this run (rerun it)")
    return Premise(f"{name} at one precision", len(set(dtypes)) == 1, " vs ".join(dict.fromkeys(map(str, dtypes))))


def describe(test: Test, unit: str = "pts", *, digits: int = 1, runs: str = "seed(s)", scale: float = 1.0) -> str:
    """A test in one phrase for a claim's ``our_value``: effect [95% interval], p, n x seeds (effect and interval
    multiplied by ``scale``, e.g. 100 for points of a rate). A non-inferiority test is stated as the difference itself
    (B - A) with its interval and the margin it must stay above, since its ``effect`` (the difference plus the margin)
    is not a quantity anyone measured."""
    def f(x: float) -> str:
        return f"{scale * x:+.{digits}f}"

    lo, hi = test.ci
    if test.kind == "non-inferiority":
        m = float(test.detail["margin"])
        head = (f"difference {f(test.effect - m)} {unit} [{f(lo - m)}, {f(hi - m)}] against a margin of "
                f"-{scale * m:g} (effect with the margin {f(test.effect)})")
    else:
        head = f"{f(test.effect)} {unit} [{f(lo)}, {f(hi)}]"
    if test.detail.get("interval"):  # an interval whose ends are at different levels says so (beats_trivial)
        head += f" ({test.detail['interval']})"
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
