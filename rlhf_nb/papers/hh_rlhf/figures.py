"""Figures of ``notebooks/01_hh_preference_models.ipynb``, drawn from ``results.json`` alone."""

from __future__ import annotations

from typing import Any

import numpy as np

from rlhf_nb.evidence import stats
from rlhf_nb.notebook.figures import Figures, band, bars, chance
from rlhf_nb.papers.hh_rlhf.readers import SETS, matrix

FIGURES = Figures()


def _ci(x: np.ndarray) -> tuple[float, float, float]:
    """Mean of a (seeds, items) array with its crossed-bootstrap 95% interval."""
    dist = stats.crossed_bootstrap([x], lambda a: float(a[0].mean()), n_boot=600)
    return float(x.mean()), float(np.quantile(dist, 0.025)), float(np.quantile(dist, 0.975))


@FIGURES("pm_matrix")
def pm_matrix(results: dict[str, Any]):
    import matplotlib.pyplot as plt
    import seaborn as sns

    pms = ["helpful", "harmless", "mixed"]
    cells = [[_ci(matrix(results, pm, t)) for t in SETS] for pm in pms]
    acc = np.array([[c[0] for c in row] for row in cells])
    labels = np.array([[f"{c[0]:.0f}%\n[{c[1]:.0f}, {c[2]:.0f}]" for c in row] for row in cells])
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    sns.heatmap(acc, annot=labels, fmt="", vmin=30, vmax=100, cmap="RdYlGn", ax=ax, cbar_kws={"label": "accuracy %"},
                xticklabels=[f"{t} test\n(n={matrix(results, 'mixed', t).shape[1]})" for t in SETS],
                yticklabels=[f"{pm} PM" for pm in pms])
    ax.set(title=f"Preference-model accuracy (95% CI, {matrix(results, 'mixed', 'harmless').shape[0]} fits)")
    return fig


@FIGURES("pm_data_size")
def pm_data_size(results: dict[str, Any]):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator, ScalarFormatter

    rows = results["data"]["pm_data_size"]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for t in SETS:
        rs = sorted([r for r in rows if r["test"] == t], key=lambda r: r["train_pairs"])
        stats = [_ci(100 * np.array(r["outcomes"], dtype=float)) for r in rs]
        band(ax, [r["train_pairs"] for r in rs], [s[0] for s in stats], [s[1] for s in stats], [s[2] for s in stats],
             label=f"{t} test (n={len(rs[0]['outcomes'][0])})")
    chance(ax, 50)
    ax.set(xscale="log", xlabel="mixed training pairs", ylabel="accuracy % (95% band over pairs and fits)",
           title="PM accuracy vs data")
    ax.set_xticks(sorted({r["train_pairs"] for r in rows}))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())
    ax.legend(fontsize=8)
    return fig


@FIGURES("reward_vs_sqrt_kl")
def reward_vs_sqrt_kl(results: dict[str, Any]):
    """Gao et al.'s Fig. 1 for best-of-n against the train PM: what its pick scores by the PM it optimised, by the
    held-out test PM, and by the gold, beside the gold of the length rules' picks."""
    import matplotlib.pyplot as plt

    b = results["data"]["bon"]
    x = np.sqrt(b["kl"])
    fig, axes = plt.subplots(1, 3, figsize=(12.5, 3.6))
    panels = ((axes[0], [("train_pm", "train PM's pick", "tab:blue")], "train-PM reward (optimised), sd", 1),
              (axes[1], [("test_pm", "train PM's pick", "tab:blue")], "test-PM reward (held out), sd", 1),
              (axes[2], [("gold", "train PM's pick", "tab:blue"), ("gold_shorter", "shorter reply's pick", "tab:gray"),
                         ("gold_longer", "longer reply's pick", "tab:olive"),
                         ("gold_oracle", "the gold's own pick (ceiling)", "tab:green")], "gold score of the pick (pts)",
               100))
    for ax, lines, title, scale in panels:
        for key, label, color in lines:
            values = np.asarray(b[key], dtype=float)
            values = values.mean(0) if values.ndim == 3 else values  # fold draws averaged per prompt
            cis = [_ci(scale * v[None, :]) for v in values]
            band(ax, x, [c[0] for c in cis], [c[1] for c in cis], [c[2] for c in cis], color=color, label=label)
            if key == "train_pm":
                fit = np.polyfit(x, [c[0] for c in cis], 1)
                ax.plot(x, np.polyval(fit, x), "k--", lw=1, label="linear fit")
        for xi, n in zip(x, b["n"]):
            ax.axvline(xi, color="0.85", lw=0.6, zorder=0)
            ax.annotate(f"n={n}", (xi, 0.02), xycoords=("data", "axes fraction"), fontsize=7, rotation=90)
        if "test_n" in b:
            ax.axvline(np.sqrt(b["kl"][b["n"].index(b["test_n"])]), color="tab:red", lw=0.8, ls=":",
                       label=f"tested: n={b['test_n']}")
        ax.set(xlabel="sqrt(KL) of best-of-n  [sqrt(nats)]", title=title)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(f"Best-of-n against a train PM on {len(b['gold'][0][0])} held-out prompts, PMs fitted on other prompts "
                 "(95% bands over prompts)", fontsize=9)
    fig.tight_layout()
    return fig


@FIGURES("rlhf_vs_raw")
def rlhf_vs_raw(results: dict[str, Any]):
    import matplotlib.pyplot as plt

    evals = results["data"]["policies"]
    b = results["data"]["bon"]
    labels, stats, ns = [], [], []
    for arm in ("raw", "dpo", "ppo"):
        these = [e for e in evals if e["arm"] == arm]
        if these:
            stats.append(_ci(100 * np.stack([e["gold"] for e in these])))
            labels.append(f"{arm} (greedy)" + (f", {len(these)} seeds" if arm != "raw" else ""))
            ns.append(len(these[0]["gold"]))
    gold = np.asarray(b["gold"], dtype=float).mean(0)  # (levels, prompts), the fold draws averaged
    for i in (0, b["n"].index(b["test_n"])):
        stats.append(_ci(100 * gold[i][None, :]))
        labels.append(f"sample, best of {b['n'][i]}")
        ns.append(gold.shape[1])
    fig, ax = plt.subplots(figsize=(7, 3.6))
    bars(ax, labels, [s[0] / 100 for s in stats], [s[1] / 100 for s in stats], [s[2] / 100 for s in stats], ns,
         color="tab:blue")
    ax.set(ylim=(0, 1.1), ylabel="gold score (95% CI)", title="RLHF against the train PM, judged by the gold")
    ax.tick_params(axis="x", labelsize=7)
    return fig
