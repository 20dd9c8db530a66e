"""Figures of ``notebooks/05_online_iterative_dpo.ipynb``, drawn from ``results.json`` alone."""

from __future__ import annotations

from typing import Any

import numpy as np

from rlhf_nb.evidence import claims as C
from rlhf_nb.evidence import stats
from rlhf_nb.notebook.figures import Figures, band, bars, chance, token_cap
from rlhf_nb.papers.rlhf_workflow.readers import cap_rate, histories, labeller_words, rm_rows, snapshots, stack

FIGURES = Figures()


def _note(text: str):
    """A figure that says why there is nothing to draw."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, wrap=True)
    return fig


@FIGURES("rm_accuracy")
def rm_accuracy(results: dict[str, Any]):
    import matplotlib.pyplot as plt

    rows = rm_rows(results)
    if not rows:
        return _note("No reward models in this run (reward_models: false).")
    sources = list(dict.fromkeys(r["source"] for r in rows))
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for j, model in enumerate(("BT", "pairwise")):
        tests = [C.proportion(next(r for r in rows if r["model"] == model and r["source"] == s)["outcomes"], 0.5)
                 for s in sources]
        bars(ax, [f"{s}" for s in sources], [0.5 + t.effect for t in tests], [0.5 + t.ci[0] for t in tests],
             [0.5 + t.ci[1] for t in tests], [t.n for t in tests], color=f"C{j}", width=0.38, offset=(j - 0.5) * 0.38,
             label=f"{model} head")
    for i, s in enumerate(sources):
        length = np.mean(next(r for r in rows if r["source"] == s)["length_baseline"])
        ax.plot([i - 0.4, i + 0.4], [length, length], color="k", ls="--", lw=1,
                label="longer reply preferred" if i == 0 else None)
    chance(ax)
    ax.set(ylim=(0, 1.08), ylabel="held-out accuracy (95% Wilson CI)",
           title="Reward models on held-out pairs, per source")
    ax.legend(fontsize=7, loc="lower right")
    return fig


@FIGURES("iterations")
def iterations(results: dict[str, Any]):
    import matplotlib.pyplot as plt

    rounds = list(range(results["params"]["iterations"] + 1))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    _entropy(axes[1], results)
    for ax, (key, scale, title) in zip(axes[::2], (("gold", 100, "gold score (held-out, pts)"),
                                                   ("tokens", 1.0, "reply length (held-out, tokens)"))):
        means, lows, highs = [], [], []
        for r in rounds:
            snaps = snapshots(results, "start") if r == 0 else snapshots(results, "online", r)
            x = stack(snaps, key, scale)
            dist = stats.crossed_bootstrap([x], lambda a: float(a[0].mean()), n_boot=600)
            means.append(x.mean())
            lows.append(np.quantile(dist, 0.025))
            highs.append(np.quantile(dist, 0.975))
        band(ax, rounds, means, lows, highs, label=f"online ({len(results['data']['runs']['online'])} seeds)")
        off = snapshots(results, "offline")
        if off:
            x = stack(off, key, scale)
            dist = stats.crossed_bootstrap([x], lambda a: float(a[0].mean()), n_boot=600)
            ax.axhline(x.mean(), color="tab:red", ls="--", label="offline DPO (same prompts, as many pairs)")
            ax.axhspan(np.quantile(dist, 0.025), np.quantile(dist, 0.975), color="tab:red", alpha=0.1)
        if key == "tokens":
            allsnaps = snapshots(results, "start") + snapshots(results, "online") + off
            token_cap(ax, results["params"]["eval_max_new_tokens"], cap_rate(allsnaps))
        ax.set(title=title, xlabel="round", xticks=rounds)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Online iterative DPO by round, {labeller_words(results)}", fontsize=9)
    fig.tight_layout()
    return fig


def _entropy(ax: Any, results: dict[str, Any]) -> None:
    """Mean next-token entropy of each round's own samples (drawn before that round trains): round r's samples come
    from the policy after r - 1 rounds."""
    runs = histories(results)
    rounds = sorted({h["iteration"] for run in runs for h in run if "entropy" in h})
    if not rounds:
        ax.text(0.5, 0.5, "entropy not recorded by this run", ha="center", transform=ax.transAxes)
        return
    for run in runs:
        ax.plot(rounds, [next(h["entropy"] for h in run if h["iteration"] == r) for r in rounds], color="C0",
                alpha=0.35, marker="o", ms=3)
    ax.plot(rounds, [np.mean([h["entropy"] for run in runs for h in run if h["iteration"] == r]) for r in rounds],
            color="C0", lw=2, label="mean over seeds")
    ax.set(title="samples' next-token entropy (nats)", xlabel="round (samples drawn before its training)",
           xticks=rounds)
    ax.grid(alpha=0.3)


@FIGURES("proxy_vs_gold")
def proxy_vs_gold(results: dict[str, Any]):
    """Per held-out prompt and policy: the BT reward against the gold; a proxy the policy learned to please
    shows as reward rising without gold."""
    import matplotlib.pyplot as plt

    if not all(s["proxy"] for s in snapshots(results, "start")):
        return _note("No BT reward model in this run (reward_models: false): no proxy to set against the gold.")
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    groups = [("start", snapshots(results, "start"))]
    last = results["params"]["iterations"]
    groups += [(f"online round {last}", snapshots(results, "online", last)), ("offline", snapshots(results, "offline"))]
    for name, snaps in groups:
        if snaps:
            proxy = stack(snaps, "proxy").ravel()
            gold = stack(snaps, "gold").ravel()
            jitter = np.random.default_rng(0).normal(0, 0.02, len(gold))
            ax.scatter(proxy, gold + jitter, s=8, alpha=0.5, label=f"{name} (r={np.corrcoef(proxy, gold)[0, 1]:.2f})"
                       if np.std(proxy) > 0 and np.std(gold) > 0 else name)
    ax.set(xlabel="BT reward (proxy)", ylabel="gold score (jittered)", title="Proxy vs gold on held-out prompts")
    ax.legend(fontsize=7)
    return fig
