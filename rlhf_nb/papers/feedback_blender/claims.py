"""Claims of ``notebooks/06_feedback_blender.ipynb``, computed from ``results.json`` alone.

The outcome of a reward model on a held-out pair (two responses to one prompt with different gold scores) is 1
if it scores the better one higher, 0.5 on a tie, 0 otherwise; a condition's outcomes are (seeds, pairs), the
seeds being independent draws of the simulated annotator's feedback (and refits), the pairs shared by every
condition (paired designs). The pairs of one prompt are not independent, so every test runs over prompts (a
prompt's pairs averaged), and a reward model is compared with the strongest trivial rule on the same pairs
(chance, preferring the longer or the shorter response), not with chance alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlhf_nb.evidence import claims as C
from rlhf_nb.papers.feedback_blender.readers import clusters, grid, outcomes, params, rules

PAPER = "RLHF-Blender (Metz et al. 2023) and Reward Learning from Multiple Feedback Types (Metz et al. 2025)"


def recorded(results: dict[str, Any]) -> list[C.Premise]:
    """A run from before the pairs' prompts and lengths were saved cannot be tested by prompt or against length; and
    responses cut off at the token cap make the held-out pairs a test of truncation (a cut-off response fails its
    instructions, so 'prefer the shorter' wins), not of what a reward model learned from feedback."""
    ok = clusters(results) is not None and grid(results).get("pair_longer") is not None
    out = [] if ok else [C.Premise("pairs' prompts and lengths recorded", False, "an older run: rerun 06")]
    return [*out, C.not_capped("response pool", float(results["data"]["pool"]["cap_rate"]))]


def _missing(results: dict[str, Any], arm: str) -> str:
    """Why an arm has no outcomes."""
    if not any(r["arm"] == arm for r in grid(results)["rows"]):
        return f"{arm} not run"
    return "no held-out pair of responses differs in gold"


def validated(results: dict[str, Any], name: str, x: np.ndarray) -> C.Premise:
    return C.validated_on(name, x, least=1, rules=rules(results), clusters=clusters(results))


def type_above_chance(results: dict[str, Any], kind: str, cid: str) -> C.Claim:
    P = params(results)
    budget, noise = P["budgets"][-1], P["claim_noise"]
    x = outcomes(results, kind, budget, noise)
    statement = (f"a reward model learned from {budget} {kind} events (annotator noise {noise}) ranks held-out "
                 "responses better than the strongest trivial rule (chance, the longer or the shorter response)")
    common = dict(min_effect=0.05, min_effect_reason="5 points of pair accuracy above the strongest trivial rule: the "
                  "least that ranking responses needs", unit="accuracy - the rule's")
    paper = "every feedback type can train a reward model (RLHF-Blender's premise, tested with simulated feedback)"
    if x is None:
        return C.claim(cid, PAPER, statement, paper, None, our_value=_missing(results, kind), kind="superiority",
                       **common)
    test, rule = C.beats_trivial(x, rules(results), clusters=clusters(results))
    value = (f"{100 * test.detail['rate']:.1f}% vs {100 * test.detail['rule_rate']:.1f}% for {rule} on the same pairs: "
             f"{C.describe(test, 'pts', scale=100, runs='feedback draw(s)')} (n counts prompts)")
    return C.claim(cid, PAPER, statement, paper, test, our_value=value, premises=recorded(results), **common)


def ensemble_non_inferior(results: dict[str, Any]) -> C.Claim:
    P = params(results)
    budget, noise, margin = P["budgets"][-1], P["claim_noise"], P["b2_margin"]
    singles = {t: outcomes(results, t, budget, noise) for t in P["types"]}
    singles = {t: x for t, x in singles.items() if x is not None}
    ens = outcomes(results, "ensemble", budget, noise)
    statement = (f"the ensemble of per-type reward models, with the same {budget} events split over the types, is "
                 f"not worse than the best single type by more than {100 * margin:.0f} points of pair accuracy")
    paper = "combining feedback types is at least as good as the best single type (Metz et al. 2025)"
    common = dict(min_effect=0.0,
                  min_effect_reason=f"non-inferiority: the {100 * margin:.0f}-point margin is the claim",
                  unit="accuracy difference + margin")
    if ens is None or not singles:
        return C.claim("B2", PAPER, statement, paper, None, our_value=_missing(results, "ensemble"),
                       kind="non-inferiority", **common)
    # the best single type is picked on the pairs of every other held-out prompt and compared on the rest, so that
    # picking the luckiest type on the comparison's own data does not tilt the test against the ensemble
    units = clusters(results) or list(range(ens.shape[1]))
    order = {u: i for i, u in enumerate(dict.fromkeys(units))}
    pick = np.array([order[u] % 2 == 0 for u in units])
    judge = ~pick
    if not judge.any():
        return C.claim("B2", PAPER, statement, paper, None, kind="non-inferiority", **common,
                       our_value=f"held-out pairs from {len(order)} prompt(s): none left to judge the picked type on",
                       premises=[C.Premise("two or more held-out prompts with pairs", False,
                                           f"{len(order)} prompt(s)")])
    best = max(singles, key=lambda t: singles[t][:, pick].mean())
    groups = [u for u, j in zip(units, judge) if j]
    test = C.non_inferiority(singles[best][:, judge], ens[:, judge], margin, scale=1.0, clusters=groups)
    value = (f"ensemble {100 * ens[:, judge].mean():.1f}% vs the best single type ({best}, picked on the other half "
             f"of the prompts) {100 * singles[best][:, judge].mean():.1f}%: "
             f"{C.describe(test, 'pts', scale=100, runs='feedback draw(s)')} (n counts prompts)")
    top = singles[best][:, judge]
    longer = grid(results).get("pair_longer")
    premises = [*recorded(results),
                C.Premise("several types in the ensemble", len(singles) >= 2, f"{len(singles)} type(s)"),
                C.validated_on(f"best single type ({best})", top, least=1, clusters=groups,
                               rules=C.trivial_rules(None if longer is None else np.asarray(longer)[judge]))]
    return C.claim("B2", PAPER, statement, paper, test, our_value=value, premises=premises, **common)


def comparative_robust(results: dict[str, Any]) -> C.Claim:
    P = params(results)
    budget, low, high = P["budgets"][-1], P["noises"][0], P["noises"][-1]
    statement = (f"from noise {low} to {high}, pair accuracy drops less with comparisons than with ratings "
                 f"({budget} events each)")
    paper = "comparative feedback is more robust to annotator noise than ratings (the hypothesis tested here)"
    common = dict(min_effect=0.02,
                  min_effect_reason="2 points of pair accuracy: a difference worth choosing a type for",
                  unit="accuracy drop (rating - comparison)")
    x = {(t, z): outcomes(results, t, budget, z) for t in ("rating", "comparison") for z in (low, high)}
    if any(v is None for v in x.values()):
        return C.claim("B3", PAPER, statement, paper, None, kind="superiority", **common,
                       our_value="; ".join(dict.fromkeys(_missing(results, t) for t in ("rating", "comparison"))))
    drop_cmp = x["comparison", low] - x["comparison", high]
    drop_rate = x["rating", low] - x["rating", high]
    test = C.superiority(drop_cmp, drop_rate, clusters=clusters(results))
    premises = recorded(results)
    for t in ("rating", "comparison"):
        premises.append(validated(results, f"{t} at noise {low}", x[t, low]))
    value = (f"drop with ratings {100 * drop_rate.mean():+.1f} pts, with comparisons {100 * drop_cmp.mean():+.1f} pts: "
             f"difference {100 * test.effect:+.1f} [{100 * test.ci[0]:+.1f}, {100 * test.ci[1]:+.1f}]")
    return C.claim("B3", PAPER, statement, paper, test, our_value=value, premises=premises, **common)


def claims(results: dict[str, Any]) -> list[C.Claim]:
    out = [type_above_chance(results, t, f"B1{chr(ord('a') + i)}") for i, t in enumerate(params(results)["types"])]
    out += [ensemble_non_inferior(results), comparative_robust(results)]
    return C.finalize(out)
