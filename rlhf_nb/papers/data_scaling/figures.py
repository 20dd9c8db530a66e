"""Figures of ``notebooks/03_data_scaling_rlhf.ipynb``, drawn from ``results.json`` alone."""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import claims as C
from ...figures import Figures
from .claims import REWARDS, bins, item_rows

FIGURES = Figures()


def _mean_ci(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        v = float(values[0]) if values else float("nan")
        return v, v, v
    dist = C.crossed_bootstrap([np.asarray(values, dtype=float)[None, :]], lambda x: float(x[0].mean()), n_boot=1000)
    return float(np.mean(values)), float(np.quantile(dist, 0.025)), float(np.quantile(dist, 0.975))


def _by_bin(results: dict[str, Any], metric: str, keys: list[str], mixed_only: bool, ylabel: str, title: str):
    import matplotlib.pyplot as plt

    rows = item_rows(results)
    fig, ax = plt.subplots(figsize=(6.8, 3.4))
    if not rows:
        return fig
    labels = bins([r["max_edit"] for r in rows], results["params"]["bins"])
    order = list(dict.fromkeys(sorted(labels, key=lambda s: float(s.split("-")[0]))))
    width = 0.8 / len(keys)
    for j, k in enumerate(keys):
        stats, ns = [], []
        for label in order:
            vals = [r[f"{metric}_{k}"] for r, b in zip(rows, labels) if b == label and (r["mixed"] or not mixed_only)]
            stats.append(_mean_ci(vals))
            ns.append(len(vals))
        x = np.arange(len(order)) + (j - (len(keys) - 1) / 2) * width
        m = np.array([s[0] for s in stats])
        err = np.array([[s[0] - s[1] for s in stats], [s[2] - s[0] for s in stats]])
        ax.bar(x, np.nan_to_num(m), width, yerr=np.nan_to_num(err), capsize=3, color=f"C{j}", label=REWARDS[k])
        for xi, mi, n in zip(x, m, ns):
            ax.annotate(f"n={n}", (xi, 0 if np.isnan(mi) else mi), textcoords="offset points", xytext=(0, 3),
                        ha="center", fontsize=6)
    ax.set_xticks(range(len(order)), order, fontsize=8)
    ax.set(xlabel="max normalised edit distance among a prompt's responses (equal-count bins)", ylabel=ylabel,
           title=title)
    ax.legend(fontsize=7)
    return fig


@FIGURES("auc_by_bin")
def auc_by_bin(results: dict[str, Any]):
    """Fig. 10 analog: within-prompt AUC against the gold per edit-distance bin (mixed prompts; 95% CI)."""
    fig = _by_bin(results, "auc", ["genrm_gt", "genrm"], True, "AUC vs the gold (pts; 50 = chance)",
                  "Ranking right above wrong, by how close the responses are")
    fig.axes[0].axhline(50, color="k", ls=":", lw=1)
    return fig


@FIGURES("spread_by_bin")
def spread_by_bin(results: dict[str, Any]):
    """Fig. 11 analog: within-prompt spread of each reward (z-scored) per edit-distance bin (95% CI)."""
    return _by_bin(results, "spread", ["genrm_gt", "genrm", "gold"], False, "max - min of z-scored reward",
                   "Score differences within a prompt")


@FIGURES("hacking")
def hacking(results: dict[str, Any]):
    """Fig. 7 analog: held-out gold and the arm's own reward (z from step 0) per GRPO step, per reward; the band is
    the range over seeds."""
    import matplotlib.pyplot as plt

    from .hacking import REWARD_NAMES, mean_curve

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    runs = results["data"].get("hacking") or []
    if not runs:
        axes[0].text(0.5, 0.5, "part 2 not run in this profile", ha="center", transform=axes[0].transAxes)
        return fig
    for j, (reward, name) in enumerate(REWARD_NAMES.items()):
        steps, gold = mean_curve(runs, reward, "gold")
        if not steps:
            continue
        _, proxy = mean_curve(runs, reward, "proxy")
        first = [r for r in runs if r["reward"] == reward][0]["snapshots"][0]
        z = (proxy - float(np.mean(first["proxy"]))) / (float(np.std(first["proxy"])) or 1.0)
        for ax, values in ((axes[0], 100 * gold), (axes[1], z)):
            ax.plot(steps, values.mean(0), color=f"C{j}", marker="o", ms=3, label=f"{name} (n={len(values)} seeds)")
            ax.fill_between(steps, values.min(0), values.max(0), color=f"C{j}", alpha=0.15)
    n = len(runs[0]["snapshots"][0]["gold"])
    axes[0].set(xlabel="GRPO step", ylabel="held-out gold (% right)", title=f"The gold ({n} held-out problems)")
    axes[1].set(xlabel="GRPO step", ylabel="own reward, SD from step 0", title="The reward trained on")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


@FIGURES("entropy")
def entropy(results: dict[str, Any]):
    """Fig. 12 analog: trl's mean token entropy of the training samples per GRPO step, one line per run."""
    import matplotlib.pyplot as plt

    from .claims import entropy_curve
    from .hacking import REWARD_NAMES

    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    runs = results["data"].get("hacking") or []
    if not runs:
        ax.text(0.5, 0.5, "part 2 not run in this profile", ha="center", transform=ax.transAxes)
        return fig
    for j, (reward, name) in enumerate(REWARD_NAMES.items()):
        mine = [r for r in runs if r["reward"] == reward]
        for k, r in enumerate(mine):
            steps, values = entropy_curve(r)
            ax.plot(steps, values, color=f"C{j}", alpha=0.8, lw=1,
                    label=f"{name} ({len(mine)} seeds)" if k == 0 else None)
    ax.set(xlabel="GRPO step", ylabel="mean token entropy of samples (nats)", title="Entropy during training")
    ax.legend(fontsize=7)
    return fig
