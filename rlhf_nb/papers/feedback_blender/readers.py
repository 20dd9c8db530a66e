"""Readers of ``notebooks/06_feedback_blender.ipynb``'s ``results.json``: accessors, and the findings and tables the
notebook shows. Pure (no model); ``claims.py`` and ``figures.py`` read the results through these.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlhf_nb.evidence import claims as C

TYPES = ("rating", "comparison", "ranking", "correction", "demonstration", "descriptive")


def grid(results: dict[str, Any]) -> dict[str, Any]:
    return results["data"]["grid"]


def params(results: dict[str, Any]) -> dict[str, Any]:
    return results["params"]


def outcomes(results: dict[str, Any], arm: str, budget: int, noise: float) -> np.ndarray | None:
    rows = sorted((r for r in grid(results)["rows"] if r["arm"] == arm and r["budget"] == budget
                   and abs(r["noise"] - noise) < 1e-9), key=lambda r: r["seed"])
    x = np.array([r["outcomes"] for r in rows], dtype=float) if rows else None
    return None if x is None or x.size == 0 else x  # no rows, or no held-out pair differs in gold


def clusters(results: dict[str, Any]) -> list[str] | None:
    """The prompt of each held-out pair (None for a run that did not record it)."""
    return grid(results).get("pair_prompts")


FINISHED = "prefer the reply that ended on its own"


def matched(results: dict[str, Any]) -> np.ndarray | None:
    """Which held-out pairs the claims judge on: both responses of similar length (the shorter at least
    ``length_match`` of the longer, in characters), so that neither length rule can decide them. None for a run that
    did not record the pairs' lengths and endings."""
    g = grid(results)
    if any(g.get(k) is None for k in ("pair_length_ratio", "pair_finished", "pair_rules")) or clusters(results) is None:
        return None
    return np.asarray(g["pair_length_ratio"], dtype=float) >= float(params(results)["length_match"]) - 1e-12


def rule_outcomes(results: dict[str, Any]) -> dict[str, Any]:
    """Every trivial rule's outcome on each held-out pair (chance as 0.5): the longer or the shorter response, the
    response that ended on its own (a cut-off response fails the instructions it did not reach, so the ending alone
    predicts the gold), and the surface rules the run recorded (more markup, more words of the request:
    ``steps.SURFACE_RULES``)."""
    g = grid(results)
    out = C.trivial_rules(np.asarray(g["pair_longer"], dtype=float))
    out[FINISHED] = np.asarray(g["pair_finished"], dtype=float)
    out.update({name: np.asarray(x, dtype=float) for name, x in g["pair_rules"].items()})
    return out


def claim_set(results: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The prompts of the length-matched pairs the claims judge, and every trivial rule on those pairs."""
    keep = matched(results)
    if keep is None:
        raise ValueError("this run did not record the pairs' lengths and endings: rerun 06")
    rules_on = {name: x if np.ndim(x) == 0 else x[keep] for name, x in rule_outcomes(results).items()}
    return [u for u, k in zip(clusters(results), keep) if k], rules_on


def arms(results: dict[str, Any]) -> list[str]:
    return [t for t in params(results)["types"]] + ["ensemble"]


def accuracy_test(results: dict[str, Any], arm: str, budget: int, noise: float,
                  only_matched: bool = False) -> C.Test | None:
    """Pair accuracy against chance, over prompts (for tables and figures); ``only_matched``: on the length-matched
    pairs the claims judge (every pair for a run that did not record lengths)."""
    x = outcomes(results, arm, budget, noise)
    keep = matched(results) if only_matched else None
    if x is None or (keep is not None and not keep.any()):
        return None
    if keep is None:
        return C.proportion(x, 0.5, clusters=clusters(results))
    return C.proportion(x[:, keep], 0.5, clusters=claim_set(results)[0])


def _pct(test: C.Test) -> str:
    return (f"{100 * (0.5 + test.effect):.1f}% [{100 * (0.5 + test.ci[0]):.0f}, {100 * (0.5 + test.ci[1]):.0f}] on "
            f"{test.n} held-out prompts x {test.seeds} feedback draw(s)")


# ----------------------------------------------------------------------------------------------
# findings and tables for the notebook
# ----------------------------------------------------------------------------------------------


def finding_pool(results: dict[str, Any]) -> str:
    s = results["data"]["pool"]
    return (f"{s['responses']} responses to {s['prompts']} prompts ({s['train_prompts']} for feedback); mean gold "
            f"{s['gold_mean']:.2f} over levels {s['gold_levels']}; {100 * s['cap_rate']:.0f}% cut off at the token "
            f"cap; {100 * s['correctable']:.0f}% of feedback responses have a verified one-instruction correction; "
            f"demonstrations score {s['demonstration_gold']:.2f} on average.")


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per arm at the full budget: pair accuracy at each noise level (every held-out pair), and at claim_noise the
    accuracy on the length-matched pairs the claims judge, Spearman and best-of-n gold; last, the trivial rules.
    Accuracies here are means over pairs; the claims average each prompt's pairs first."""
    P = params(results)
    budget = P["budgets"][-1]
    rows = []
    for arm in arms(results):
        row: dict[str, Any] = {"arm": arm}
        for z in P["noises"]:
            x = outcomes(results, arm, budget, z)
            row[f"acc@noise {z}"] = None if x is None else round(100 * float(x.mean()), 1)
        cell = [r for r in grid(results)["rows"] if r["arm"] == arm and r["budget"] == budget
                and abs(r["noise"] - P["claim_noise"]) < 1e-9]
        x = outcomes(results, arm, budget, P["claim_noise"])
        keep = matched(results)
        row["acc matched (pair mean)"] = (None if x is None or keep is None or not keep.any()
                              else round(100 * float(x[:, keep].mean()), 1))
        row["spearman"] = round(float(np.mean([r["spearman"] for r in cell])), 3) if cell else None
        row["best-of-n gold"] = round(float(np.mean([r["bon_gold"] for r in cell])), 3) if cell else None
        row["targets/draw"] = round(float(np.mean([r["targets"] for r in cell])), 0) if cell else None
        rows.append(row)
    keep = matched(results)
    if keep is not None and keep.any():
        for name, x in rule_outcomes(results).items():
            every = round(100 * float(np.mean(x)), 1)
            rows.append({"arm": f"rule: {name}", **{f"acc@noise {z}": every for z in P["noises"]},
                         "acc matched (pair mean)": round(100 * float(np.mean(x if np.ndim(x) == 0 else x[keep])), 1)})
    return rows


def finding_grid(results: dict[str, Any]) -> str:
    P = params(results)
    g = grid(results)
    budget, noise = P["budgets"][-1], P["claim_noise"]
    tests = {a: accuracy_test(results, a, budget, noise) for a in arms(results)}
    if all(t is None for t in tests.values()):
        return (f"No held-out pair of responses differs in gold score ({g['test_prompts']} prompts): nothing to judge "
                "the reward models on.")
    best = max((a for a in tests if tests[a] is not None), key=lambda a: tests[a].effect)
    t = tests[best]
    keep = matched(results)
    shorter = 100 * (1 - float(np.mean(g["pair_longer"]))) if g.get("pair_longer") is not None else None
    rule = "" if shorter is None else f" (preferring the shorter response: {shorter:.1f}%)"
    share = "" if keep is None else (f" {int(keep.sum())} of the {keep.size} held-out pairs are of similar length "
                                     f"(the shorter at least {100 * params(results)['length_match']:.0f}% of "
                                     "the longer): the claims judge on those.")
    control = g.get("gold_fed")
    if control and keep is not None and keep.any():  # on the pairs and scale the B1 claims judge (prompt means)
        units, rules_on = claim_set(results)
        fed = {form: C.beats_trivial(np.asarray(v["outcomes"], dtype=float)[keep][None, :], rules_on, clusters=units)
               for form, v in control.items()}
        rule_test, strongest = fed["values"]
        rate = {form: 100 * test.detail["rate"] for form, (test, _) in fed.items()}
        share += (f" The positive control, the same head fitted on the exact gold of every training response, ranks "
                  f"{rate['values']:.1f}% (as values) / {rate['pairs']:.1f}% (as pairs) of those pairs right, "
                  f"against {100 * rule_test.detail['rule_rate']:.1f}% for the strongest rule, {strongest!r} "
                  "(means over prompts).")
    return (f"At {budget} events and noise {noise}, the best arm over every held-out pair is {best}: {_pct(t)}{rule}."
            f"{share} Best-of-n by the learned "
            f"reward can lift the held-out gold from {g['test_gold_mean']:.2f} (random pick) towards "
            f"{g['test_gold_best']:.2f} (the best response).")


def findings(results: dict[str, Any]) -> list[str]:
    """The notebook's findings, in its order (``rlhf-nb report`` recomputes them from the saved results)."""
    return [finding_pool(results), finding_grid(results)]


def tables(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The notebook's tables, by name."""
    return {"summary": summary_rows(results)}
