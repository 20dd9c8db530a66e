"""Readers of ``notebooks/02_passk_model_size.ipynb``'s ``results.json``: accessors, and the findings and tables the
notebook shows. Pure (no model); ``claims.py`` and ``figures.py`` read the results through these.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlhf_nb.evidence import claims as C
from rlhf_nb.evidence import stats
from rlhf_nb.evidence.crossing import Crossing
from rlhf_nb.evidence.metrics import pass_at_k
from rlhf_nb.tasks.data import HUMANEVAL_TASKS


def runs(results: dict[str, Any]) -> list[dict[str, Any]]:
    return results["data"]["runs"]


def per_task(run: dict[str, Any], k: int = 1, key: str = "passed", low: bool = False) -> np.ndarray:
    """Per-task pass@k (in %) of one run, in task order; pass@1 from the low-temperature samples if asked and
    present."""
    rows = run["low"] if low and run.get("low") else run["samples"]
    out = []
    for task in rows:
        values = task[key]
        if values is None:
            return np.array([])
        out.append(100 * pass_at_k(len(values), sum(values), min(k, len(values))))
    return np.array(out)


def pass1(run: dict[str, Any], key: str = "passed") -> np.ndarray:
    return per_task(run, 1, key, low=True)


def n_samples(run: dict[str, Any]) -> int:
    return min(len(t["passed"]) for t in run["samples"])


def arms(results: dict[str, Any], size: int) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(untuned run, tuned runs) of one size."""
    rs = [r for r in runs(results) if r["size"] == size]
    return next((r for r in rs if r["arm"] == "untuned"), None), [r for r in rs if r["arm"] == "tuned"]


def design_cost(results: dict[str, Any], size: int) -> C.Cost | None:
    """How this run's time at one size grows with tuned seeds and evaluation tasks
    (:class:`rlhf_nb.evidence.claims.Cost`), from its own times: a seed is one training (its ``train_seconds``); a task
    is its n samples' tokens at the arm's sampling rate, once for the start and once per tuned seed; the rest (the
    training samples, the checks, running the programs, HumanEval+, loading) is not priced, though running and
    HumanEval+ grow with the tasks too. The tasks are bounded by what HumanEval's
    164 leave beside the training tasks (all 164 where training comes from MBPP). None for runs without these
    times."""
    untuned, tuned = arms(results, size)
    tuning = next((t for t in results["data"].get("tuning", []) if t["size"] == size), {})
    trained = list((tuning.get("train_seconds") or {}).values())
    if untuned is None or not tuned or len(trained) != len(tuned):
        return None
    if not all(r.get("tokens_per_s") for r in [untuned, *tuned]):
        return None

    def read(run: dict[str, Any]) -> float:  # seconds a task's samples took, on average
        return float(np.mean([sum(t["tokens"]) for t in run["samples"]])) / run["tokens_per_s"]

    train = results["data"].get("split", {}).get("train", [])
    on_humaneval = results["params"].get("train_source", "humaneval") == "humaneval"
    pool = HUMANEVAL_TASKS - len(train) if on_humaneval else HUMANEVAL_TASKS
    return C.Cost(fixed_s=0.0, per_seed_s=float(np.mean(trained)),
                  per_item_s=read(untuned), per_item_seed_s=float(np.mean([read(r) for r in tuned])),
                  max_items=pool,
                  pool=(f"HumanEval's {pool} tasks its {len(train)} training tasks leave" if on_humaneval
                        else f"HumanEval's {pool} tasks"),
                  note="the seeds share one draw of training samples; more samples a task (not priced) "
                       "also narrow pass@k at large k")


def cap_rate(run: dict[str, Any]) -> float:
    finished = [f for t in run["samples"] for f in t["finished"]]
    return 1 - sum(finished) / max(1, len(finished))


def crossing_of(results: dict[str, Any], size: int) -> Crossing | None:
    """Where the untuned arm's mean pass@k overtakes the tuned arms' (Yue et al. 2025's crossing k), from each task's
    passing count among the first n samples of every arm (n: the fewest any arm drew), with a bootstrap interval over
    tasks and tuned seeds; None without a tuned arm."""
    from rlhf_nb.evidence.crossing import crossing

    untuned, tuned = arms(results, size)
    if untuned is None or not tuned:
        return None
    n = min(n_samples(untuned), *(n_samples(r) for r in tuned))
    counts = lambda r: [sum(t["passed"][:n]) for t in r["samples"]]  # noqa: E731
    return crossing(np.array([counts(r) for r in tuned]), np.array([counts(untuned)]), n)


def train_start(tuning: dict[str, Any]) -> list[float]:
    """The start's pass rates on the training tasks the tuned seeds were checked on (all, or ``train_check_index``)."""
    start, index = tuning.get("train_pass_start") or [], tuning.get("train_check_index")
    return [start[i] for i in index] if start and index is not None else list(start)


def train_gain(tuning: dict[str, Any]) -> C.Test | None:
    """A tuning record's seeds' pass@1 on their *training* tasks against the start's on the same tasks (per task,
    paired, in points), or None where it was not measured."""
    start, tuned = train_start(tuning), list((tuning.get("train_pass") or {}).values())
    if not start or not tuned:
        return None
    return C.superiority(100 * np.array(start), 100 * np.array(tuned))


# ----------------------------------------------------------------------------------------------
# one-sentence findings for the notebook (computed, with n and intervals)
# ----------------------------------------------------------------------------------------------


def finding_sampling(results: dict[str, Any]) -> str:
    parts = []
    for r in runs(results):
        if r["arm"] != "untuned":
            continue
        x = pass1(r)
        lo, hi = stats.wilson(float(np.sum(x) / 100), len(x)) if len(x) else (0, 0)
        parts.append(f"{r['model']} passes {np.mean(x):.1f}% of samples at k=1 (~[{100 * lo:.0f}, {100 * hi:.0f}]%, "
                     f"{len(x)} tasks x {n_samples(r)} samples, {100 * cap_rate(r):.0f}% cut off at the token cap)")
    return "; ".join(parts) + "."


def tuning_words(t: dict[str, Any]) -> str:
    """What a size was tuned on, in words ("DPO on 40 execution-feedback pairs", "RFT on 52 passing samples")."""
    if t.get("method", "dpo") == "rft":
        return f"RFT (SFT on its own passing samples) on {t['pairs']} passing samples"
    return f"DPO on {t['pairs']} execution-feedback pairs"


def finding_tuning(results: dict[str, Any]) -> str:
    parts = []
    for t in results["data"].get("tuning", []):
        untuned, tuned = arms(results, t["size"])
        name = untuned["model"] if untuned else f"size {t['size']}"
        if not tuned:
            parts.append(f"{name}: not tuned ({t.get('reason') or 'no pairs'})")
            continue
        test = C.superiority(pass1(untuned), np.stack([pass1(r) for r in tuned]))
        moved = train_gain(t)
        where = ("" if moved is None else f"; on its training tasks by {moved.effect:+.1f} [{moved.ci[0]:+.1f}, "
                 f"{moved.ci[1]:+.1f}] ({moved.n} tasks x {moved.seeds} seeds)")
        parts.append(f"{name}: {tuning_words(t)} changes held-out pass@1 by {test.effect:+.1f} pts "
                     f"[{test.ci[0]:+.1f}, {test.ci[1]:+.1f}] ({test.n} tasks x {test.seeds} seeds){where}")
    return "; ".join(parts) + "."


def finding_catch_up(results: dict[str, Any]) -> str:
    parts = []
    for size in sorted({r["size"] for r in runs(results)}):
        c = crossing_of(results, size)
        untuned, _ = arms(results, size)
        if c is not None:
            parts.append(f"{untuned['model']}: {c.describe()}")
    return ("; ".join(parts) + ".") if parts else "No size has a tuned arm in this run, so there is no crossing k."


def pass_at_k_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model and arm: pass@1 and pass@n with 95% intervals, HumanEval+, cap-hit rate, published."""
    published = results["params"].get("published", {})
    out = []
    for size in sorted({r["size"] for r in runs(results)}):
        untuned, tuned = arms(results, size)
        for arm, group in (("untuned", [untuned] if untuned else []), ("tuned", tuned)):
            if not group:
                continue
            stack = np.stack([pass1(r) for r in group])
            dist = stats.crossed_bootstrap([stack], lambda x: float(x[0].mean()), n_boot=1000)
            k = n_samples(group[0])
            top = np.stack([per_task(r, k) for r in group])
            row = {"model": group[0]["model"], "arm": arm, "seeds": len(group), "params_B": group[0]["params_b"],
                   "tasks": stack.shape[1], "pass@1 %": round(float(stack.mean()), 1),
                   "pass@1 95% CI": [round(float(np.quantile(dist, 0.025)), 1),
                                     round(float(np.quantile(dist, 0.975)), 1)],
                   f"pass@{k} %": round(float(top.mean()), 1)}
            if group[0]["samples"][0]["passed_plus"] is not None:
                row["HE+ pass@1 %"] = round(float(np.mean([np.mean(pass1(r, 'passed_plus')) for r in group])), 1)
            row["cut off at cap %"] = round(100 * max(cap_rate(r) for r in group), 1)
            row["tokens/s"] = round(float(np.mean([r["tokens_per_s"] for r in group])), 1)
            if arm == "untuned":
                pub = published.get(group[0]["model"])
                row["published greedy pass@1 (HE / HE+)"] = (f"{pub['humaneval']} / {pub['humaneval_plus']}" if pub
                                                             else "-")
            out.append(row)
    return out


def finding_tasks(results: dict[str, Any]) -> str:
    split = results["data"]["split"]
    return (f"{len(split['eval'])} evaluation and {len(split['train'])} training tasks; HumanEval+ adds "
            f"{results['data']['plus_inputs']} inputs to the evaluation tasks' tests.")


def findings(results: dict[str, Any]) -> list[str]:
    """The notebook's findings, in its order (``rlhf-nb report`` recomputes them from the saved results)."""
    return [finding_tasks(results), finding_sampling(results), finding_tuning(results), finding_catch_up(results)]


def tables(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The notebook's tables, by name."""
    return {"pass_at_k": pass_at_k_rows(results)}
