"""Readers of ``notebooks/00_quickstart.ipynb``'s ``results.json``: the table, metrics and finding the notebook shows,
pure functions of the saved results (``rlhf-nb report`` recomputes them with the current code)."""

from __future__ import annotations

from typing import Any

from rlhf_nb.evidence.metrics import pass_at_k


def scored(results: dict[str, Any]) -> list[dict[str, Any]]:
    return results["data"]["scored"]


def per_task(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per task: samples, passing samples, pass@1."""
    rows: dict[str, dict[str, Any]] = {}
    for s in scored(results):
        row = rows.setdefault(s["task_id"], {"task_id": s["task_id"], "n": 0, "passed": 0})
        row["n"] += 1
        row["passed"] += int(s["passed"])
    for row in rows.values():
        row["pass@1"] = pass_at_k(row["n"], row["passed"], 1)
    return list(rows.values())


def summary(results: dict[str, Any]) -> dict[str, float]:
    """pass@1 and pass@n (n: the fewest samples of a task), samples, mean new tokens, share cut off at the cap."""
    from rlhf_nb.rewards.code import pass_at_k_table

    rows = scored(results)
    n = min(r["n"] for r in per_task(results))
    return {**pass_at_k_table(rows, sorted({1, n})), "samples": len(rows),
            "mean_new_tokens": sum(s["n_tokens"] for s in rows) / len(rows),
            "cut_off_at_token_cap": sum(not s["finished"] for s in rows) / len(rows)}


def finding_summary(results: dict[str, Any]) -> str:
    s = summary(results)
    cap = results["params"]["sampling"]["max_new_tokens"]
    return (f"{s['samples']} samples over {len(per_task(results))} tasks: pass@1 {100 * s['pass@1']:.0f}%, "
            f"{100 * s['cut_off_at_token_cap']:.0f}% cut off at the {cap}-token cap.")


def metrics(results: dict[str, Any]) -> dict[str, float]:
    """The metrics the notebook logs."""
    return summary(results)


def findings(results: dict[str, Any]) -> list[str]:
    """The notebook's findings, in its order."""
    return [finding_summary(results)]


def tables(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The notebook's tables, by name."""
    return {"per_task": per_task(results)}
