"""Figures of ``notebooks/02_passk_model_size.ipynb``, drawn from ``results.json`` alone."""

from __future__ import annotations

from typing import Any

import numpy as np

from rlhf_nb.evidence import stats
from rlhf_nb.notebook.figures import Figures, band, bars
from rlhf_nb.papers.passk.readers import (
    arms,
    crossing_of,
    n_samples,
    pass1,
    per_task,
    runs,
    train_start,
    tuning_words,
)

FIGURES = Figures()


def _label(run: dict[str, Any]) -> str:
    return f"{run['model'].split('/')[-1]} ({run['arm']})"


def _curve(untuned_or_tuned: list[dict[str, Any]], k_max: int, key: str = "passed") -> tuple[list, list, list]:
    """Mean pass@k over tasks (and seeds) with a crossed-bootstrap 95% band, k = 1..k_max."""
    means, lows, highs = [], [], []
    for k in range(1, k_max + 1):
        stack = np.stack([per_task(r, k, key) for r in untuned_or_tuned])
        dist = stats.crossed_bootstrap([stack], lambda x: float(x[0].mean()), n_boot=600)
        means.append(float(stack.mean()))
        lo, hi = np.quantile(dist, [0.025, 0.975])
        lows.append(lo)
        highs.append(hi)
    return means, lows, highs


@FIGURES("passk_curves")
def passk_curves(results: dict[str, Any]):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator, ScalarFormatter

    sizes = sorted({r["size"] for r in runs(results)})
    keys = [("passed", "HumanEval")] + ([("passed_plus", "HumanEval+")]
                                       if runs(results)[0]["samples"][0]["passed_plus"] is not None else [])
    fig, axes = plt.subplots(1, len(keys), figsize=(5.2 * len(keys), 3.8), sharey=True, squeeze=False)
    for ax, (key, title) in zip(axes[0], keys):
        for i, size in enumerate(sizes):
            untuned, tuned = arms(results, size)
            colour = f"C{i}"
            k_max = n_samples(untuned)
            m, lo, hi = _curve([untuned], k_max, key)
            band(ax, list(range(1, k_max + 1)), m, lo, hi, label=f"{_label(untuned)}", color=colour)
            if tuned:
                m, lo, hi = _curve(tuned, k_max, key)
                band(ax, list(range(1, k_max + 1)), m, lo, hi, label=f"tuned ({len(tuned)} seed(s))", color=colour,
                     ls="--")
                c = crossing_of(results, size) if key == "passed" else None
                if c is not None and np.isfinite(c.k):  # the crossing k and its interval (capped at n)
                    ax.axvline(c.k, color=colour, ls=":", lw=1)
                    ax.axvspan(max(1.0, c.ci[0]), min(float(k_max), c.ci[1]), color=colour, alpha=0.08)
        n_tasks = len(runs(results)[0]["samples"])
        temperature = results["params"]["sampling"]["temperature"]
        ax.set(xscale="log", xlabel="k", title=f"{title} ({n_tasks} tasks, T={temperature})", ylim=(0, 100))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks([k for k in (1, 2, 3, 5, 10, 20, 50, 100, 200) if k <= max(n_samples(r) for r in runs(results))])
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("pass@k, % (95% band over tasks and seeds)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


@FIGURES("pass1_vs_size")
def pass1_vs_size(results: dict[str, Any]):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for arm, marker in (("untuned", "o"), ("tuned", "s")):
        by_size: dict[int, list[dict[str, Any]]] = {}
        for r in runs(results):
            if r["arm"] == arm:
                by_size.setdefault(r["size"], []).append(r)
        xs, means, los, his = [], [], [], []
        for size, rs in sorted(by_size.items()):
            stack = np.stack([pass1(r) for r in rs])
            dist = stats.crossed_bootstrap([stack], lambda x: float(x[0].mean()), n_boot=600)
            xs.append(rs[0]["params_b"])
            means.append(stack.mean())
            los.append(np.quantile(dist, 0.025))
            his.append(np.quantile(dist, 0.975))
        if xs:
            ax.errorbar(xs, means, yerr=[np.array(means) - los, np.array(his) - means], marker=marker, capsize=3,
                        label=arm)
    ax.set(xscale="log", xlabel="parameters (billions)", ylabel="pass@1, % (95% CI)", ylim=(0, 100),
           title="pass@1 vs model size, tuned vs untuned")
    ax.legend(fontsize=8)
    return fig


@FIGURES("plus_gap")
def plus_gap(results: dict[str, Any]):
    import matplotlib.pyplot as plt

    scored = [r for r in runs(results) if r["samples"][0]["passed_plus"] is not None]
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(scored)), 3.6))
    if not scored:
        ax.text(0.5, 0.5, "HumanEval+ not scored in this profile", ha="center", transform=ax.transAxes)
        return fig
    for j, (key, name) in enumerate((("passed", "HumanEval"), ("passed_plus", "HumanEval+"))):
        values, lows, highs, ns = [], [], [], []
        for r in scored:
            x = pass1(r, key) / 100
            dist = stats.crossed_bootstrap([x[None, :]], lambda a: float(a[0].mean()), n_boot=600)
            values.append(x.mean())
            lows.append(np.quantile(dist, 0.025))
            highs.append(np.quantile(dist, 0.975))
            ns.append(len(x))
        bars(ax, [_label(r) for r in scored], values, lows, highs, ns, color=f"C{j}", width=0.38,
             offset=(j - 0.5) * 0.38, label=name)
    ax.set(ylabel="pass@1 (95% CI over tasks)", ylim=(0, 1.1), title="HumanEval vs HumanEval+ (extra inputs)")
    ax.legend(fontsize=8)
    return fig


@FIGURES("diversity")
def diversity(results: dict[str, Any]):
    import matplotlib.pyplot as plt
    import seaborn as sns

    rows = [{"model": _label(r), "diversity": 100 * t["diversity"]} for r in runs(results) for t in r["samples"]]
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    sns.boxplot(x=[r["model"] for r in rows], y=[r["diversity"] for r in rows], ax=ax)
    ax.set(ylabel="mean pairwise normalised edit\ndistance of a task's programs (x100)", title="Sample diversity")
    ax.tick_params(axis="x", labelsize=7)
    return fig


@FIGURES("tuning_loss")
def tuning_loss(results: dict[str, Any]):
    """Left: the trainer's loss per seed. Right: pass@1 on the training tasks, the start against each tuned seed (the
    premise that RL moved the model where it trained)."""
    import matplotlib.pyplot as plt

    tunings = [t for t in results["data"].get("tuning", []) if t.get("history")]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    if not tunings:
        for ax in axes:
            ax.text(0.5, 0.5, "no size was tuned here", ha="center", transform=ax.transAxes)
        return fig
    for t in tunings:
        for seed, rows in t["history"].items():
            steps = [r["step"] for r in rows if "loss" in r]
            axes[0].plot(steps, [r["loss"] for r in rows if "loss" in r], label=f"size {t['size']}, seed {seed}")
    rft = tunings[0].get("method", "dpo") == "rft"
    axes[0].set(xlabel="step", ylabel="SFT loss" if rft else "DPO loss", title=tuning_words(tunings[0]))
    axes[0].legend(fontsize=7)
    labels, means = [], []
    for t in tunings:
        if t.get("train_pass_start") and t.get("train_pass"):
            labels.append(f"size {t['size']}\nstart")
            means.append(100 * float(np.mean(train_start(t))))
            for seed, shares in t["train_pass"].items():
                labels.append(f"seed {seed}")
                means.append(100 * float(np.mean(shares)))
    if labels:
        axes[1].bar(range(len(means)), means, color=["0.6" if "start" in x else "C0" for x in labels])
        axes[1].set_xticks(range(len(means)), labels, fontsize=7)
        axes[1].set(ylabel="pass@1 on training tasks (%)", title="where it trained: start vs tuned seeds")
    else:
        axes[1].text(0.5, 0.5, "training tasks not re-sampled", ha="center", transform=axes[1].transAxes)
    fig.tight_layout()
    return fig
