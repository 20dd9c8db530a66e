"""Figures of ``notebooks/03_data_scaling_rlhf.ipynb``, drawn from ``results.json`` alone."""

from __future__ import annotations

from typing import Any

import numpy as np

from rlhf_nb.evidence import stats
from rlhf_nb.notebook.figures import Figures
from rlhf_nb.papers.data_scaling.readers import REWARDS, bins, item_rows

FIGURES = Figures()


def _mean_ci(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        v = float(values[0]) if values else float("nan")
        return v, v, v
    dist = stats.crossed_bootstrap([np.asarray(values, dtype=float)[None, :]], lambda x: float(x[0].mean()),
                                   n_boot=1000)
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


def _bestofn(results: dict[str, Any], domain: str):
    from dataclasses import replace

    from rlhf_nb.notebook.figures import bestofn_figure
    from rlhf_nb.papers.data_scaling.readers import BON_REWARDS, bon_curves

    names = {**BON_REWARDS, "longer": "the longer response (trivial rule)", "gold": "gold"}
    curves = [replace(c, reward=names[k]) for k, c in bon_curves(results, domain).items()]
    if not curves:
        return None
    return bestofn_figure(curves, f"Best-of-n under each reward, {domain} items with right and wrong responses",
                          proxy_label="proxy reward of the pick (z over all responses)",
                          gold_label="gold of the pick (pts)")


@FIGURES("bestofn_math")
def bestofn_math(results: dict[str, Any]):
    """Fig. 7 without training (Gao et al.'s Fig. 1): the proxy and the gold of each reward's best-of-n pick against
    sqrt(KL), GSM8K items with right and wrong responses (RTV is the gold here); 95% CI over items."""
    return _bestofn(results, "math")


@FIGURES("bestofn_code")
def bestofn_code(results: dict[str, Any]):
    """The same on HumanEval tasks: RTV runs HumanEval's base tests, the gold HumanEval+'s too."""
    return _bestofn(results, "code")


@FIGURES("hacking")
def hacking(results: dict[str, Any]):
    """Fig. 7 analog: held-out gold and the arm's own reward (z from step 0) per GRPO step, per reward; the band is
    the range over seeds."""
    import matplotlib.pyplot as plt

    from rlhf_nb.papers.data_scaling.readers import REWARD_NAMES, mean_curve

    runs = results["data"].get("hacking") or []
    if not runs:
        return None  # part 2 not run in this profile
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
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
    """Fig. 12 analog: trl's mean token entropy of the training samples per GRPO step, one line per run: part 2's
    runs by reward and parts 3-4's runs by arm, each panel where its part ran."""
    import matplotlib.pyplot as plt

    from rlhf_nb.papers.data_scaling.readers import ARM_NAMES, REWARD_NAMES, entropy_curve

    hacking = [r for r in results["data"].get("hacking") or [] if len(entropy_curve(r)[0])]
    prepo = [r for r in (results["data"].get("prepo") or {}).get("runs") or [] if len(entropy_curve(r)[0])]
    panels = [p for p in (("by reward (part 2)", hacking), ("by prompt set (parts 3-4)", prepo)) if p[1]]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 3.4), squeeze=False)
    for ax, (title, runs) in zip(axes[0], panels):
        groups = ({name: [r for r in runs if r["reward"] == reward] for reward, name in REWARD_NAMES.items()}
                  if runs is hacking else {ARM_NAMES[a]: [r for r in runs if r["arm"] == a] for a in ARM_NAMES})
        for j, (name, mine) in enumerate((k, v) for k, v in groups.items() if v):
            for k, r in enumerate(mine):
                steps, values = entropy_curve(r)
                ax.plot(steps, values, color=f"C{j}", alpha=0.8, lw=1,
                        label=f"{name} ({len(mine)} seeds)" if k == 0 else None)
        ax.set(xlabel="GRPO step", ylabel="mean token entropy of samples (nats)", title=f"Entropy during training, "
               f"{title}")
        ax.legend(fontsize=7)
    return fig


@FIGURES("prepo_scores")
def prepo_scores(results: dict[str, Any]):
    """Fig. 3 analog: the start policy's mean reward on each new prompt (z within its domain), sorted; the prompts
    Pre-PPO adds are filled."""
    import matplotlib.pyplot as plt

    data = results["data"].get("prepo") or {}
    if not data.get("scores"):
        return None  # parts 3-4 not run in this profile
    fig, ax = plt.subplots(figsize=(6.2, 3.4))
    picked = set(data["arms"]["prepo"])
    for j, domain in enumerate(dict.fromkeys(s["domain"] for s in data["scores"])):
        mine = sorted((s for s in data["scores"] if s["domain"] == domain), key=lambda s: s["z"])
        x = 100 * (np.arange(len(mine)) + 0.5) / len(mine)
        z = np.array([s["z"] for s in mine])
        chosen = np.array([s["id"] in picked for s in mine])
        ax.plot(x, z, color=f"C{j}", lw=1, label=f"{domain} (n={len(mine)})")
        ax.scatter(x[chosen], z[chosen], color=f"C{j}", s=12)
        ax.scatter(x[~chosen], z[~chosen], facecolors="none", edgecolors=f"C{j}", s=12)
    ax.set(xlabel="new prompts, % (sorted by reward)", ylabel="start policy's reward (z within domain)",
           title="Pre-PPO keeps the lowest-reward new prompts (filled)")
    ax.legend(fontsize=7)
    return fig


@FIGURES("arms")
def arms(results: dict[str, Any]):
    """Tables 1 and 3 analog: held-out gold of every arm's final policies per domain (mean over seeds and items,
    95% CI from the crossed bootstrap)."""
    import matplotlib.pyplot as plt

    from rlhf_nb.papers.data_scaling.readers import ARM_NAMES, arm_gold

    data = results["data"].get("prepo") or {}
    if not data.get("runs"):
        return None
    fig, ax = plt.subplots(figsize=(7.2, 3.4))
    domains = list(dict.fromkeys(e["domain"] for e in data["eval"]))
    present = [a for a in ARM_NAMES if arm_gold(results, a) is not None]
    width = 0.8 / len(present)
    for j, arm in enumerate(present):
        means, lows, highs = [], [], []
        for d in domains:
            g = arm_gold(results, arm, d)
            dist = stats.crossed_bootstrap([g], lambda x: float(x[0].mean()), n_boot=500)
            means.append(g.mean())
            lows.append(g.mean() - np.quantile(dist, 0.025))
            highs.append(np.quantile(dist, 0.975) - g.mean())
        x = np.arange(len(domains)) + (j - (len(present) - 1) / 2) * width
        seeds = arm_gold(results, arm).shape[0]
        ax.bar(x, means, width, yerr=[lows, highs], capsize=2, color=f"C{j}", label=f"{ARM_NAMES[arm]} ({seeds})")
    n = {d: sum(e["domain"] == d for e in data["eval"]) for d in domains}
    ax.set_xticks(range(len(domains)), [f"{d}\n(n={n[d]})" for d in domains], fontsize=8)
    ax.set(ylabel="held-out gold (pts)", title="Final policies by training prompts (seeds in brackets)")
    ax.legend(fontsize=6)
    return fig


@FIGURES("schedule")
def schedule(results: dict[str, Any]):
    """Fig. 6 analog: the share of math and code prompts in each GRPO step of the mixed (Pre-PPO) and the
    math-and-code-first arms (seed 0), from the order the prompts were fed in."""
    import matplotlib.pyplot as plt

    from rlhf_nb.papers.data_scaling.readers import ARM_NAMES, EARLY

    data = results["data"].get("prepo") or {}
    S = results["params"].get("prepo") or {}
    runs = {r["arm"]: r for r in data.get("runs") or [] if r["arm"] in ("prepo", "early") and r.get("domains")}
    if not runs:
        return None
    fig, ax = plt.subplots(figsize=(5.6, 3.2))
    grpo = S.get("grpo") or {}
    per_step = max(1, (grpo.get("per_device_train_batch_size") or 4) // (grpo.get("num_generations") or 4))
    for j, (arm, run) in enumerate(sorted(runs.items())):
        domains = run["domains"]
        share = [np.mean([domains[(s * per_step + i) % len(domains)] in EARLY for i in range(per_step)])
                 for s in range(int(S.get("steps") or 0))]
        ax.plot(np.arange(1, len(share) + 1), 100 * np.array(share), drawstyle="steps-mid", marker="o", ms=3,
                color=f"C{j}", label=ARM_NAMES[arm])
    ax.set(xlabel="GRPO step", ylabel="math + code prompts in the step (%)", ylim=(-5, 105),
           title=f"Domain mix per step ({per_step} prompts a step)")
    ax.legend(fontsize=7)
    return fig


@FIGURES("gold_curve")
def gold_curve(results: dict[str, Any]):
    """Figs. 4, 6 analog: held-out gold per domain vs GRPO step, per arm (mean over seeds; step 0 is the start
    policy, the last step the final policy). Drawn only when the runs scored the gold during training
    (``prepo.eval_every``)."""
    import matplotlib.pyplot as plt

    from rlhf_nb.papers.data_scaling.readers import ARM_NAMES

    data = results["data"].get("prepo") or {}
    runs = data.get("runs") or []
    if not any(r.get("curve") for r in runs):
        return None
    steps = int((results["params"].get("prepo") or {}).get("steps") or 0)
    domains = list(dict.fromkeys(e["domain"] for e in data["eval"]))
    index = {d: [i for i, e in enumerate(data["eval"]) if e["domain"] == d] for d in domains}
    start = next(r for r in runs if r["arm"] == "start")
    fig, axes = plt.subplots(1, len(domains), figsize=(3.4 * len(domains), 3.2), squeeze=False)
    for j, arm in enumerate(a for a in ARM_NAMES if a != "start" and any(r["arm"] == a for r in runs)):
        arm_runs = [r for r in runs if r["arm"] == arm]
        points: dict[int, list[list[float]]] = {0: [start["gold"]] * len(arm_runs)}
        for r in arm_runs:
            for c in r.get("curve") or []:
                points.setdefault(c["step"], []).append(c["gold"])
            points.setdefault(steps, []).append(r["gold"])
        xs = sorted(points)
        for ax, d in zip(axes[0], domains):
            ys = [100 * np.mean([[g[i] for i in index[d]] for g in points[x]]) for x in xs]
            ax.plot(xs, ys, marker="o", ms=3, color=f"C{j}", label=f"{ARM_NAMES[arm]} ({len(arm_runs)})")
    for ax, d in zip(axes[0], domains):
        ax.set(xlabel="GRPO step", title=f"{d} (n={len(index[d])})")
    axes[0][0].set_ylabel("held-out gold (pts)")
    axes[0][-1].legend(fontsize=6)
    fig.suptitle("Held-out gold during training (seeds in brackets)", fontsize=9)
    return fig
