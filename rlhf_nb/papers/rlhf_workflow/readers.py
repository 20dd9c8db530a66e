"""Readers of ``notebooks/05_online_iterative_dpo.ipynb``'s ``results.json``: accessors, and the findings and tables the
notebook shows. Pure (no model); ``claims.py`` and ``figures.py`` read the results through these.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlhf_nb.evidence import claims as C
from rlhf_nb.evidence import stats
from rlhf_nb.tasks import gold


def _data(results: dict[str, Any]) -> dict[str, Any]:
    return results["data"]


def rm_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Held-out accuracy rows of the reward models (none where the run fitted none)."""
    return _data(results).get("rm_accuracy", [])


def labeller(results: dict[str, Any]) -> str:
    """Who labelled the DPO pairs: "gold" or "rm" (runs before the parameter existed used the BT RM)."""
    return results["params"].get("labeller", "rm")


def labeller_words(results: dict[str, Any]) -> str:
    """How a claim names its labeller."""
    if labeller(results) == "rm":
        return "with the BT reward model labelling the pairs"
    noise = results["params"].get("label_noise", 0.0)
    return "with the gold as the preference oracle" + (f" (rater noise SD {noise:g})" if noise else "")


def histories(results: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Per online seed, one row per round: its samples' mean label, tokens, cut-off share, entropy; pairs."""
    return [run["history"] for run in _data(results)["runs"]["online"]]


def snapshots(results: dict[str, Any], arm: str, round_: int | None = None) -> list[dict[str, Any]]:
    runs = _data(results)["runs"]
    if arm == "start":
        return [runs["start"]]
    if arm == "offline":
        return runs["offline"]
    return [s for run in runs["online"] for s in run["snapshots"] if round_ is None or s["round"] == round_]


def design_cost(results: dict[str, Any]) -> C.Cost | None:
    """How this run's time grows with seeds and held-out prompts (:class:`rlhf_nb.evidence.claims.Cost`), from its own
    stage times: a seed is an online seed's sampling and training over its rounds plus an offline seed's training; a
    held-out prompt is one read by the start and, for each seed, by every online round's snapshot and the offline
    arm's (the notebook as designed: W3's rounds are read too); the offline samples are fixed, and the rest of the run
    (loading, data) is not priced, so the notebook's cached claims and the report's recomputed ones agree. Held-out
    prompts are bounded by the AlpacaEval bases the training prompts leave: past them bases
    repeat with other instructions, and the prompts are no longer independent. None for runs without these times."""
    runs = _data(results)["runs"]
    online, offline, seconds = runs.get("online") or [], runs.get("offline") or [], runs.get("offline_seconds") or []
    try:
        ids = _data(results)["prompt_ids"]
        items, taken = len(ids["eval"]), len(ids["online"]) + len(ids.get("rm", []))
        grow = [sum(h["seconds/sampling"] + h["seconds/training"] for h in run["history"]) for run in online]
        reads = [sum(s["seconds"] for s in run["snapshots"]) for run in online]
        start = runs["start"]["seconds"]
        fixed = (runs.get("offline_samples") or {}).get("seconds", 0.0)
    except KeyError:
        return None
    if not online or len(offline) != len(online) or len(seconds) != len(online) or not items:
        return None
    seeds, bases = len(online), gold.ALPACAEVAL_BASES - taken
    return C.Cost(fixed_s=fixed, per_seed_s=(sum(grow) + sum(seconds)) / seeds,
                  per_item_s=start / items,
                  per_item_seed_s=(sum(reads) + sum(s["seconds"] for s in offline)) / seeds / items,
                  max_items=bases,
                  pool=f"the {bases} AlpacaEval bases the online prompts leave (one held-out prompt a base)",
                  note="the offline seeds share one draw of the start's samples")


def stack(snaps: list[dict[str, Any]], key: str, scale: float = 1.0) -> np.ndarray:
    return scale * np.stack([np.asarray(s[key], dtype=float) for s in snaps])


def cap_rate(snaps: list[dict[str, Any]]) -> float:
    flat = [f for s in snaps for f in s["finished"]]
    return 1 - sum(flat) / max(1, len(flat))


# ----------------------------------------------------------------------------------------------
# findings and tables
# ----------------------------------------------------------------------------------------------


def finding_rm_data(results: dict[str, Any]) -> str:
    s = _data(results)["rm_samples"]
    scores = np.array([g for row in s["gold"] for g in row])
    flat = [f for row in s["finished"] for f in row]
    return (f"The policy follows {100 * scores.mean():.0f}% of instructions on average over {scores.size} sampled "
            f"replies ({100 * np.mean(scores == 1):.0f}% follow all, {100 * np.mean(scores == 0):.0f}% none); "
            f"{100 * (1 - np.mean(flat)):.0f}% were cut off at the token cap"
            f"{gold.system_note(results['params'].get('system'))}; "
            + ", ".join(f"{c['source'].split(' ')[0]}: {c['train']} training / {c['test']} held-out pairs"
                        for c in _data(results)["rm_counts"]) + ".")


def finding_rms(results: dict[str, Any]) -> str:
    parts = []
    for r in rm_rows(results):
        t = C.proportion(r["outcomes"], 0.5)
        parts.append(f"{r['model']} on {r['source']} {100 * (0.5 + t.effect):.0f}% "
                     f"[{100 * (0.5 + t.ci[0]):.0f}, {100 * (0.5 + t.ci[1]):.0f}] (n={t.n}; length alone "
                     f"{100 * np.mean(r['length_baseline']):.0f}%)")
    return "Held-out accuracy: " + "; ".join(parts) + "."


def finding_arms(results: dict[str, Any]) -> str:
    start = stack(snapshots(results, "start"), "gold", 100).mean()
    on = snapshots(results, "online", results["params"]["iterations"])
    off = snapshots(results, "offline")
    if not on:
        return f"The start policy scores {start:.1f} pts of gold; no online run."
    t = C.superiority(stack(off, "gold", 100), stack(on, "gold", 100))
    return (f"Gold score on {t.n} held-out prompts: start {start:.1f}, offline {stack(off, 'gold', 100).mean():.1f}, "
            f"online after {results['params']['iterations']} rounds {stack(on, 'gold', 100).mean():.1f} pts; "
            f"online minus offline {C.describe(t)}.")


def iteration_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per policy and round: held-out gold (interval over prompts and seeds), length, cut-offs; for online rounds also
    what the round's own samples looked like before it trained on them (label, entropy, pairs)."""
    rows = []
    hist = histories(results)
    start_samples = _data(results)["runs"].get("offline_samples") or {}
    groups = [("start", 0, snapshots(results, "start"))]
    groups += [("online", r, snapshots(results, "online", r)) for r in range(1, results["params"]["iterations"] + 1)]
    groups += [("offline", results["params"]["iterations"], snapshots(results, "offline"))]
    for arm, r, snaps in groups:
        if not snaps:
            continue
        g = stack(snaps, "gold", 100)
        dist = stats.crossed_bootstrap([g], lambda x: float(x[0].mean()), n_boot=1000)
        row = {"policy": arm, "round": r, "seeds": len(snaps), "gold (pts)": round(float(g.mean()), 1),
               "gold 95% CI": [round(float(np.quantile(dist, 0.025)), 1), round(float(np.quantile(dist, 0.975)), 1)]}
        if all(s["proxy"] for s in snaps):
            row["BT reward"] = round(float(stack(snaps, "proxy").mean()), 3)
        row.update({"tokens": round(float(stack(snaps, "tokens").mean()), 1),
                    "cut off %": round(100 * cap_rate(snaps), 1)})
        these = [h for run in hist for h in run if h.get("iteration") == r] if arm == "online" else []
        if these:
            row.update({"round's samples: label": round(float(np.mean([h["sample_reward"] for h in these])), 3),
                        "entropy (nats/token)": round(float(np.mean([h.get("entropy", np.nan) for h in these])), 3),
                        "pairs": round(float(np.mean([h["pairs"] for h in these])), 1)})
        elif arm == "offline" and start_samples:
            row.update({"round's samples: label": round(start_samples["gold"], 3),
                        "entropy (nats/token)": round(start_samples["entropy"], 3),
                        "pairs": round(float(np.mean(_data(results)["runs"]["offline_pairs"])), 1)})
        rows.append(row)
    return rows


def finding_prompts(results: dict[str, Any]) -> str:
    """The prompt sets' sizes and the end of the first held-out prompt (saved by the run; runs before it was saved
    rebuild it by its id: :func:`rlhf_nb.tasks.gold.synthetic_prompts` is deterministic in the seed)."""
    ids, data = results["data"]["prompt_ids"], results["data"]
    example = data.get("prompt_example")
    if example is None:
        pool = gold.synthetic_prompts(sum(len(v) for v in ids.values()), seed=results["params"]["seed"])
        example = next((p.text for p in pool if p.id == ids["eval"][0]), None)
        if example is None:
            raise ValueError(f"held-out prompt {ids['eval'][0]} is not in the testbed this code builds: rerun 05")
    return (f"{len(ids['rm'])} reward-model, {len(ids['online'])} online and {len(ids['eval'])} held-out prompts; "
            f"e.g. {example[-160:]!r}")


NO_REWARD_MODELS = ("No reward models in this run (reward_models: false): the gold labels the pairs, W1a-e are not "
                    "tested.")


def rm_findings(results: dict[str, Any]) -> list[str]:
    """The reward-model section's findings: none trained, or their data and held-out accuracy."""
    if not results["params"].get("reward_models", True):
        return [NO_REWARD_MODELS]
    return [finding_rm_data(results), finding_rms(results)]


def findings(results: dict[str, Any]) -> list[str]:
    """The notebook's findings, in its order (``rlhf-nb report`` recomputes them from the saved results)."""
    return [finding_prompts(results), *rm_findings(results), finding_arms(results)]


def tables(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The notebook's tables, by name."""
    return {"iterations": iteration_rows(results)}
