"""Figures of ``notebooks/06_feedback_blender.ipynb``, drawn from ``results.json`` alone."""

from __future__ import annotations

from typing import Any

import numpy as np

from rlhf_nb.notebook.figures import Figures, band, bars, chance
from rlhf_nb.papers.feedback_blender.readers import accuracy_test, arms, outcomes, params

FIGURES = Figures()


def _mean_ci(x: np.ndarray) -> tuple[float, float, float]:
    """Mean pair accuracy and a normal 95% interval over held-out pairs (outcomes averaged over seeds first)."""
    items = x.mean(0)
    se = items.std(ddof=1) / np.sqrt(len(items)) if len(items) > 1 else 0.0
    return float(items.mean()), float(items.mean() - 1.96 * se), float(items.mean() + 1.96 * se)


def _curves(ax: Any, results: dict[str, Any], xs: list[float], pick) -> bool:
    """One band per arm; False (and a note on the axes) when no held-out pair differs in gold."""
    drawn = False
    for j, arm in enumerate(arms(results)):
        stats = [(_mean_ci(x) if (x := pick(arm, v)) is not None else None) for v in xs]
        keep = [(v, s) for v, s in zip(xs, stats) if s is not None]
        if keep:
            band(ax, [v for v, _ in keep], [s[0] for _, s in keep], [s[1] for _, s in keep], [s[2] for _, s in keep],
                 label=arm, color="k" if arm == "ensemble" else f"C{j}", lw=2.2 if arm == "ensemble" else 1.2)
            drawn = True
    if not drawn:
        ax.text(0.5, 0.5, "no held-out pair differs in gold: nothing to judge", transform=ax.transAxes, ha="center")
    chance(ax)
    return drawn


def _accuracy_figure(results: dict[str, Any], xs: list[float], pick, xlabel: str, title: str, log: bool = False):
    import matplotlib.pyplot as plt

    n = results["data"]["grid"]["test_pairs"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    if _curves(ax, results, xs, pick) and log:
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel=f"held-out pair accuracy (95% CI, n={n} pairs)", title=title)
    ax.legend(fontsize=7, ncol=2)
    return fig


@FIGURES("budget")
def budget(results: dict[str, Any]):
    P = params(results)
    return _accuracy_figure(results, P["budgets"], lambda arm, b: outcomes(results, arm, b, P["claim_noise"]),
                            "feedback events (per type; the ensemble splits them over the types)",
                            f"Reward model quality vs feedback budget (annotator noise {P['claim_noise']})", log=True)


@FIGURES("noise")
def noise(results: dict[str, Any]):
    P = params(results)
    return _accuracy_figure(results, P["noises"], lambda arm, z: outcomes(results, arm, P["budgets"][-1], z),
                            "annotator noise (SD on the 0-1 gold scale)",
                            f"Robustness to noise at {P['budgets'][-1]} events")


@FIGURES("ensemble")
def ensemble(results: dict[str, Any]):
    import matplotlib.pyplot as plt

    P = params(results)
    names = arms(results)
    tests = [accuracy_test(results, a, P["budgets"][-1], P["claim_noise"], only_matched=True) for a in names]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    bars(ax, names, [None if t is None else 0.5 + t.effect for t in tests],
         [None if t is None else 0.5 + t.ci[0] for t in tests], [None if t is None else 0.5 + t.ci[1] for t in tests],
         [0 if t is None else t.n for t in tests], color=["C0"] * (len(names) - 1) + ["k"])
    chance(ax)
    ax.set(ylim=(0, 1.08), ylabel="pair accuracy, length-matched held-out pairs (95% CI)",
           title=f"Each type and the ensemble at {P['budgets'][-1]} events, noise {P['claim_noise']}")
    return fig
