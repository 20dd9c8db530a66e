"""Figures registered by name, and drawing helpers that show evidence rather than bare means.

A paper's ``figures.py`` builds ``FIGURES = Figures()`` and decorates each drawing function with
``@FIGURES("name")``; results record only the name, so moving or renaming a function never breaks redrawing
saved runs. Helpers put an interval and its n on every mean, shade interval bands where an axis zooms into
noise, draw a token cap where it binds, and say "0 of n" where all values are zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Figure = Callable[[dict[str, Any]], Any]


class Figures(dict):
    """name -> drawing function ``fn(results) -> matplotlib Figure``."""

    def __call__(self, name: str) -> Callable[[Figure], Figure]:
        def register(fn: Figure) -> Figure:
            if name in self:
                raise ValueError(f"figure {name!r} registered twice")
            self[name] = fn
            return fn

        return register


def bars(ax: Any, labels: Sequence[str], values: Sequence[float | None], lows: Sequence[float | None],
         highs: Sequence[float | None], ns: Sequence[int], color: Any = None, width: float = 0.7, offset: float = 0.0,
         label: str | None = None, percent: bool = True, counts: Sequence[tuple[float, int]] | None = None) -> None:
    """Bars of means with their 95% intervals, each annotated with n; a bar at zero says "0 of n"."""
    import numpy as np

    x = np.arange(len(labels)) + offset
    vals = np.array([np.nan if v is None else v for v in values], dtype=float)
    lo = np.array([np.nan if v is None else v for v in lows], dtype=float)
    hi = np.array([np.nan if v is None else v for v in highs], dtype=float)
    err = np.vstack([np.clip(vals - lo, 0, None), np.clip(hi - vals, 0, None)])
    ax.bar(x, np.nan_to_num(vals), width, yerr=np.nan_to_num(err), capsize=3, color=color, label=label)
    scale = 100 if percent else 1
    for i, (xi, v, n) in enumerate(zip(x, vals, ns)):
        if np.isnan(v):
            text = "not run"
        elif v == 0:
            text = f"0 of {n}" if counts is None else f"{counts[i][0]:.0f} of {counts[i][1]}"
        else:
            text = f"n={n}"
        top = np.nanmax([v, hi[i]]) if not np.isnan(v) else 0
        ax.annotate(text, (xi, top if not np.isnan(top) else 0), textcoords="offset points", xytext=(0, 3),
                    ha="center", fontsize=7)
    ax.set_xticks(np.arange(len(labels)), labels, fontsize=8)
    if percent:
        from matplotlib.ticker import PercentFormatter

        ax.yaxis.set_major_formatter(PercentFormatter(1.0 if scale == 100 else 100))


def band(ax: Any, x: Sequence[float], mean: Sequence[float], low: Sequence[float], high: Sequence[float],
         label: str | None = None, **kw: Any) -> None:
    """A line of means with its shaded 95% band."""
    line, = ax.plot(x, mean, marker="o", label=label, **kw)
    ax.fill_between(x, low, high, alpha=0.18, color=line.get_color())


def chance(ax: Any, level: float = 0.5, text: str = "chance") -> None:
    ax.axhline(level, color="grey", ls=":", lw=1)
    ax.annotate(text, (ax.get_xlim()[1], level), fontsize=7, color="grey", ha="right", va="bottom")


def token_cap(ax: Any, cap: int, binding_share: float) -> None:
    """Draw the token cap on a length axis where it binds (some replies were cut off there)."""
    if binding_share > 0:
        ax.axhline(cap, color="tab:red", ls="--", lw=1)
        ax.annotate(f"token cap {cap} ({100 * binding_share:.0f}% cut off)", (ax.get_xlim()[0], cap), fontsize=7,
                    color="tab:red", va="bottom")


def bestofn_figure(curves: Sequence[Any], title: str, proxy_label: str = "proxy reward of the pick (its own scale)",
                   gold_label: str = "gold of the pick") -> Any:
    """Gao et al.'s Fig. 1 from :mod:`rlhf_nb.evidence.bestofn` curves: the proxy (left) and the gold (right) of each
    reward's best-of-n pick against sqrt(KL), one line per reward, each mean with its 95% interval over prompts."""
    import matplotlib.pyplot as plt
    import numpy as np

    from rlhf_nb.evidence.stats import crossed_bootstrap_means, interval

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for c in curves:
        x = np.sqrt(np.asarray(c.kl))
        for ax, values in ((axes[0], c.proxy), (axes[1], c.gold)):
            if c.reward == "gold" and ax is axes[0]:
                continue  # the gold's own pick has no proxy of its own
            values = np.asarray(values, dtype=float)
            ci = [interval(crossed_bootstrap_means([row[None, :]], [1.0], n_boot=600), n=len(row)) for row in values]
            band(ax, x, values.mean(1), [lo for lo, _ in ci], [hi for _, hi in ci], label=c.reward)
    n_prompts = np.asarray(curves[0].gold).shape[1] if curves else 0
    for ax, label in ((axes[0], proxy_label), (axes[1], gold_label)):
        ax.set_xlabel("sqrt(KL from the sampling policy), best-of-n: KL = log n - (n-1)/n")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    fig.suptitle(f"{title} ({n_prompts} prompts)")
    fig.tight_layout()
    return fig
