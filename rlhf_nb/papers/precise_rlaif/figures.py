"""Figures of ``notebooks/04_precise_rlaif.ipynb``, drawn from ``results.json`` alone."""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np

from rlhf_nb.notebook.figures import Figures, bars
from rlhf_nb.papers.precise_rlaif.readers import (
    GOLD_STAGE,
    JUDGE_STAGE,
    STAGES,
    TASKS,
    arms,
    main_arm,
    table1_rows,
    trained,
)

FIGURES = Figures()


@FIGURES("yields")
def yields(results: dict[str, Any]):
    """How many candidate degradations pass each filter, per principle."""
    import matplotlib.pyplot as plt

    degraded = results["data"]["degraded"]
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    width = 0.8 / max(1, len(degraded))
    applied = {r["stage"] for d in degraded.values() for r in d["yields"]}
    stages = [s for s in (*STAGES[:-1], GOLD_STAGE, JUDGE_STAGE) if s in applied]
    for j, (principle, d) in enumerate(degraded.items()):
        counts = {r["stage"]: r["count"] for r in d["yields"]}  # only the stages this degrader has
        x = np.array([stages.index(s) for s in counts]) + (j - (len(degraded) - 1) / 2) * width
        label = "programmatic (gold.break_sentence)" if principle == "programmatic" else f"LLM rewriter ({principle})"
        ax.bar(x, list(counts.values()), width=width, color=f"C{j}", label=label)
        for xi, v in zip(x, counts.values()):
            ax.text(xi, v, str(v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(stages)), [textwrap.fill(s, 11) for s in stages], fontsize=8)
    ax.set(ylabel="candidate degradations", title="Sentence-level degradation: what survives each filter")
    if not stages:
        ax.text(0.5, 0.5, "no degradations in this run", ha="center", transform=ax.transAxes)
    ax.legend(fontsize=7)
    return fig


@FIGURES("win_rates")
def win_rates(results: dict[str, Any]):
    """Table 1 analog: win rate of every policy over the DPO-stage start, judged by the gold (ties half)."""
    import matplotlib.pyplot as plt

    rows = [r for r in table1_rows(results) if not r["policy"].startswith("start")]
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    if rows:
        bars(ax, [r["policy"] for r in rows], [r["win rate vs start %"] / 100 for r in rows],
             [r["95% CI"][0] / 100 for r in rows], [r["95% CI"][1] / 100 for r in rows],
             [f"{len(results['data']['arms']['start']['gold'])}x{r['seeds']}" for r in rows])
    ax.axhline(0.5, color="k", ls=":", lw=1)
    ax.set(ylim=(0, 1.05), ylabel="win rate vs the DPO-stage start\n(gold, ties half; 95% CI)",
           title="Held-out instruction following")
    return fig


@FIGURES("forgetting")
def forgetting(results: dict[str, Any]):
    """Per-example score change on each unrelated task (Precise seeds' mean minus start): the paper's Fig. 4."""
    import matplotlib.pyplot as plt

    start = arms(results)["start"]["forgetting"]
    after = trained(results, main_arm(results))
    tasks = [t for t in ("humaneval", "gsm8k", "bleu") if t in start]
    fig, axes = plt.subplots(1, max(1, len(tasks)), figsize=(4 * max(1, len(tasks)), 3.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        scored = [p["forgetting"][task] for p in after if task in p["forgetting"]]
        if not scored:
            ax.text(0.5, 0.5, "start at the floor:\ntrained policies not scored", ha="center", va="center",
                    transform=ax.transAxes, fontsize=9)
            ax.set(title=TASKS[task], xticks=[], yticks=[])
            continue
        delta = np.mean(scored, axis=0) - np.asarray(start[task], dtype=float)
        ax.hist(delta, bins=21, color="C0", alpha=0.8)
        ax.axvline(0, color="k", lw=1)
        ax.axvline(delta.mean(), color="C3", ls="--", lw=1.2, label=f"mean {delta.mean():+.2f}")
        ax.set(title=f"{TASKS[task]} (n={delta.size})", xlabel="after - before, per item", ylabel="items")
        ax.legend(fontsize=7)
    fig.suptitle("Forgetting: per-example change after Precise DPO", fontsize=10)
    fig.tight_layout()
    return fig
