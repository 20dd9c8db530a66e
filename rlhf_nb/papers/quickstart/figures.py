"""Figures of ``notebooks/00_quickstart.ipynb``, drawn from ``results.json`` alone."""

from __future__ import annotations

from typing import Any

from rlhf_nb.evidence.stats import wilson
from rlhf_nb.notebook.figures import Figures, bars
from rlhf_nb.papers.quickstart.readers import per_task

FIGURES = Figures()


@FIGURES("pass_rate")
def pass_rate(results: dict[str, Any]):
    import matplotlib.pyplot as plt

    rows = per_task(results)
    fig, ax = plt.subplots(figsize=(6, 3))
    cis = [wilson(r["passed"], r["n"]) for r in rows]
    bars(ax, [r["task_id"] for r in rows], [r["pass@1"] for r in rows], [c[0] for c in cis], [c[1] for c in cis],
         [r["n"] for r in rows], color="tab:blue", counts=[(r["passed"], r["n"]) for r in rows])
    ax.set(ylim=(0, 1.1), ylabel="samples passing (95% Wilson CI)", title=f"HumanEval · {results['profile']} profile")
    return fig


@FIGURES("lengths")
def lengths(results: dict[str, Any]):
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.ticker import MaxNLocator

    from rlhf_nb.notebook.figures import token_cap

    samples = results["data"]["scored"]
    fig, ax = plt.subplots(figsize=(6, 3))
    sns.stripplot(x=[s["task_id"] for s in samples], y=[s["n_tokens"] for s in samples],
                  hue=["passed" if s["passed"] else "failed" for s in samples], ax=ax, jitter=0.2,
                  palette={"passed": "tab:green", "failed": "tab:red"})
    cap = results["params"]["sampling"]["max_new_tokens"]
    token_cap(ax, cap, sum(not s["finished"] for s in samples) / max(1, len(samples)))
    ax.set(ylabel="generated tokens", xlabel="", title="Reply length per sample", ylim=(0, cap * 1.1))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return fig
