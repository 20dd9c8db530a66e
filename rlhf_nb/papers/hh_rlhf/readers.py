"""Readers of ``notebooks/01_hh_preference_models.ipynb``'s ``results.json``: accessors, and the findings and tables the
notebook shows. Pure (no model); ``claims.py`` and ``figures.py`` read the results through these.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlhf_nb.evidence import claims as C
from rlhf_nb.tasks import gold

SETS = ("helpful", "harmless")


def data(results: dict[str, Any]) -> dict[str, Any]:
    return results["data"]


def _one_draw(outcomes: Any) -> np.ndarray:
    """Fits on subsets of one pool -> one row: their mean outcome per pair."""
    return np.asarray(outcomes, dtype=float).reshape(-1, np.shape(outcomes)[-1]).mean(0, keepdims=True)


def matrix(results: dict[str, Any], pm: str, test: str) -> np.ndarray:
    """(1, pairs) outcomes x 100 of one PM type on one test set (its fits averaged: one data draw)."""
    row = next(r for r in data(results)["pm_matrix"] if r["pm"] == pm and r["test"] == test)
    return 100 * _one_draw(row["outcomes"])


def rules(results: dict[str, Any], test: str) -> dict[str, Any]:
    """The trivial rules on a test set's held-out pairs (the same pairs, in the same order, for every PM)."""
    row = next((r for r in data(results).get("pm_matrix", []) if r["test"] == test), None)
    return C.trivial_rules(row.get("length_baseline") if row else None)


def bon(results: dict[str, Any]) -> dict[str, Any]:
    return data(results)["bon"]


# ----------------------------------------------------------------------------------------------
# findings
# ----------------------------------------------------------------------------------------------


def finding_pairs(results: dict[str, Any]) -> str:
    counts = data(results)["pair_counts"]
    text = "; ".join(f"{c['set']}: {c['train']} training / {c['test']} held-out pairs ({c['source']})" for c in counts)
    samples = data(results).get("helpful_samples")
    if samples:
        g = np.array([x for row in samples["gold"] for x in row])
        cap = 1 - np.mean([f for row in samples["finished"] for f in row])
        text += (f". The raw policy follows {100 * g.mean():.0f}% of instructions in {g.size} sampled replies "
                 f"({100 * cap:.0f}% cut off at the token cap)" + gold.system_note(results["params"].get("system")))
    return text + "."


def finding_matrix(results: dict[str, Any]) -> str:
    parts = []
    for pm in ("helpful", "harmless", "mixed"):
        accs = [f"{t} {matrix(results, pm, t).mean():.0f}%" for t in SETS]
        parts.append(f"{pm} PM: " + ", ".join(accs))
    n = {t: matrix(results, "mixed", t).shape[1] for t in SETS}
    text = "Held-out accuracy (" + ", ".join(f"{t} n={n[t]}" for t in SETS) + "): " + "; ".join(parts)
    length = {r["test"]: 100 * np.mean(r["length_baseline"]) for r in data(results)["pm_matrix"]
              if r.get("length_baseline")}  # older saved runs lack it
    if length:
        text += "; preferring the longer reply alone: " + ", ".join(f"{t} {v:.0f}%" for t, v in length.items())
    return text + "."


def finding_bon(results: dict[str, Any]) -> str:
    b = bon(results)
    g = 100 * np.array(b["gold"]).mean(axis=(0, 2))
    p = np.array(b["train_pm"]).mean(axis=(0, 2))
    v = b["validation"]
    keep = np.asarray(v["finished"], dtype=bool)
    acc = {k: 100 * np.asarray(v[k], dtype=float)[..., keep].mean() for k in ("train", "test", "longer")}
    pairs = np.mean([x for d in b["fold_pairs"] for x in d])  # a PM is fitted on one other fold's pairs
    return (f"Best-of-n on {len(b['gold'][0][0])} held-out prompts x {b['n'][-1]} replies, n = "
            + ", ".join(map(str, b["n"])) + ": train-PM reward " + " -> ".join(f"{x:+.2f}" for x in p)
            + " sd, gold " + " -> ".join(f"{x:.1f}" for x in g) + f" pts ({len(b['gold'])} fold draws). The fold "
            f"PMs were fitted on {pairs:.0f} gold-labelled pairs each (one other fold's) and rank the held-out pairs "
            f"of finished replies ({keep.sum()} of {keep.size}) {acc['train']:.0f}% (train PM) / {acc['test']:.0f}% "
            f"(test PM) right, preferring the shorter reply {100 - acc['longer']:.0f}% (ties half); "
            f"{100 * b['cap_rate']:.0f}% of the replies are cut off at the token cap.")


def code_off_floor(humaneval: list[float]) -> bool:
    """Whether the raw model's HumanEval pass@1 is off the floor and ceiling: only then is there coding skill for the
    trained policies to keep or lose (H5), so only then are they scored on it."""
    return C.off_floor_and_ceiling("raw", sum(humaneval) / len(humaneval), len(humaneval)).holds


def finding_raw_code(results: dict[str, Any]) -> str:
    scores = data(results)["policies"][0]["humaneval"]  # the raw model's, first of the policies
    return (f"Raw HumanEval pass@1 (greedy) {100 * sum(scores) / len(scores):.0f}% on {len(scores)} tasks"
            + ("; trained policies scored too." if code_off_floor(scores) else
               ": at the floor, so trained policies are not scored on it (nothing to lose)."))


def findings(results: dict[str, Any]) -> list[str]:
    """The notebook's findings, in its order (``rlhf-nb report`` recomputes them from the saved results)."""
    return [finding_pairs(results), finding_matrix(results), finding_bon(results), finding_raw_code(results)]


def tables(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The notebook's tables, by name (it shows its matrices as figures and findings)."""
    return {}
