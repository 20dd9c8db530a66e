"""Readers of ``notebooks/03_data_scaling_rlhf.ipynb``'s ``results.json``: accessors, and the findings and tables the
notebook shows. Pure (no model); ``claims.py`` and ``figures.py`` read the results through these.

Per item (a prompt with ``n`` responses): the **max normalised edit distance** among its responses (rapidfuzz
Levenshtein divided by the longer length; Shen et al. bin raw distances but do not give the bins, and raw distances
mix short math answers with long programs); for items whose responses are **mixed** (some right, some wrong by the
gold) each reward's **within-item AUC** against the gold: the chance that a right response scores above a wrong one,
ties half, in points (x100; 50 is chance); and each reward's **spread** (max - min of its z-scored values over the
item's responses; the paper's Fig. 11 "score difference"). "Close" items have a max edit distance at or below the
``close`` quantile over the judged items (all, or by default only the mixed ones: ``params.judged``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlhf_nb.evidence import claims as C
from rlhf_nb.evidence import stats
from rlhf_nb.evidence.metrics import edit_distance_bins, pairwise_edit_distances

REWARDS = {"genrm_gt": "GenRM with GT", "genrm": "GenRM without GT", "gold": "RTV (the gold)"}

#: the rewards part 2 trains GRPO under, by key
REWARD_NAMES = {"rtv": "RTV (the gold)", "genrm_gt": "GenRM with GT", "bt": "BT RM"}
#: the domains Pre-PPO's schedule puts first (part 4)
EARLY = ("math", "code")


def records(results: dict[str, Any]) -> list[dict[str, Any]]:
    return results["data"]["records"]


def judged(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The records the GenRM scored (every record, or the mixed ones: ``params.judged``)."""
    return [r for r in records(results) if r.get("genrm_gt") is not None]


def max_edit(record: dict[str, Any]) -> float:
    return max(pairwise_edit_distances(record["responses"], normalized=True), default=0.0)


def is_mixed(record: dict[str, Any]) -> bool:
    return 0 < sum(record["gold"]) < len(record["gold"])


def auc(scores: list[float], gold: list[float]) -> float:
    """P(a right response scores above a wrong one), ties half, in points."""
    right = [s for s, g in zip(scores, gold) if g > 0.5]
    wrong = [s for s, g in zip(scores, gold) if g <= 0.5]
    if not right or not wrong:
        raise ValueError("an AUC needs right and wrong responses")
    from scipy.stats import mannwhitneyu

    return 100 * float(mannwhitneyu(right, wrong).statistic) / (len(right) * len(wrong))  # U counts ties half


def _z(results: dict[str, Any], key: str) -> dict[str, float]:
    """Mean and standard deviation of a reward over every response (for the spreads' z-scores)."""
    values = np.array([x for r in judged(results) for x in r[key]], dtype=float)
    return {"mean": float(values.mean()), "std": float(values.std()) or 1.0}


def item_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per judged item: domain, max edit distance, close, mixed, each reward's AUC (mixed only), spread."""
    recs = judged(results)
    edits = [max_edit(r) for r in recs]
    threshold = float(np.quantile(edits, results["params"]["close"])) if edits else 0.0
    stats = {k: _z(results, k) for k in REWARDS}
    rows = []
    for r, e in zip(recs, edits):
        row: dict[str, Any] = {"domain": r["domain"], "id": r["id"], "max_edit": e, "close": e <= threshold,
                               "mixed": is_mixed(r), "pass_rate": float(np.mean(r["gold"]))}
        for k in REWARDS:
            z = (np.asarray(r[k], dtype=float) - stats[k]["mean"]) / stats[k]["std"]
            row[f"spread_{k}"] = float(z.max() - z.min())
            row[f"auc_{k}"] = auc(r[k], r["gold"]) if row["mixed"] else None
        row["auc_longer"] = auc([len(t) for t in r["responses"]], r["gold"]) if row["mixed"] else None
        rows.append(row)
    return rows


def bins(values: list[float], n_bins: int) -> list[str]:
    """Equal-count bins of the max normalised edit distance, labelled by their ranges."""
    return edit_distance_bins(values, n_bins, fmt=".2f")


def bin_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per edit-distance bin (over the judged items): items, mixed items, and each reward's mean AUC and spread."""
    rows = item_rows(results)
    if not rows:
        return []
    labels = bins([r["max_edit"] for r in rows], results["params"]["bins"])
    out = []
    for label in dict.fromkeys(sorted(labels, key=lambda s: float(s.split("-")[0]))):
        members = [r for r, b in zip(rows, labels) if b == label]
        mixed = [r for r in members if r["mixed"]]
        row: dict[str, Any] = {"max edit distance": label, "items": len(members), "mixed": len(mixed)}
        for k, name in REWARDS.items():
            if k != "gold":
                row[f"AUC {name}"] = round(float(np.mean([r[f"auc_{k}"] for r in mixed])), 1) if mixed else None
            row[f"spread {name}"] = round(float(np.mean([r[f"spread_{k}"] for r in members])), 2)
        out.append(row)
    return out


def finding_samples(results: dict[str, Any]) -> str:
    recs = records(results)
    parts = []
    for domain in ("math", "code"):
        mine = [r for r in recs if r["domain"] == domain]
        if mine:
            gold = [g for r in mine for g in r["gold"]]
            cut = 1 - np.mean([f for r in mine for f in r["finished"]])
            lo, hi = stats.wilson(sum(gold), len(gold))
            parts.append(f"{domain}: {100 * np.mean(gold):.0f}% of {len(gold)} responses right [{100 * lo:.0f}, "
                         f"{100 * hi:.0f}], {sum(is_mixed(r) for r in mine)} of {len(mine)} items mixed, "
                         f"{100 * cut:.0f}% cut off at the token cap")
    return "Samples scored by the gold: " + "; ".join(parts) + "."


def finding_judge(results: dict[str, Any]) -> str:
    rows = item_rows(results)
    if not rows:
        return "The GenRM scored no items (none has both right and wrong responses)."
    mixed = [r for r in rows if r["mixed"]]
    close = [r for r in mixed if r["close"]]
    text = (f"The GenRM scored {len(rows)} items ({sum(len(r['responses']) for r in judged(results))} responses; "
            f"{results['params'].get('judged', 'all')} items)")
    if not mixed:
        return text + "; none is mixed, so no AUC."
    mean = {k: np.mean([r[f"auc_{k}"] for r in mixed]) for k in ("genrm_gt", "genrm")}
    return (text + f". Over the {len(mixed)} mixed items the AUC against the gold is {mean['genrm_gt']:.1f} pts with "
            f"the reference and {mean['genrm']:.1f} without (50 = chance); {len(close)} of them are close.")


# ----------------------------------------------------------------------------------------------
# close items: sampled ones, and pairs built on purpose (one token changed)
# ----------------------------------------------------------------------------------------------


def pairs(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The close pairs built on purpose: a right response and the same with one token changed, both judged."""
    return [p for p in results["data"].get("close_pairs") or [] if None not in p["genrm_gt"] + p["genrm"]]


def close_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The close items D1 and D3 read: the sampled items at or below the ``close`` quantile of max edit distance
    (``source`` "sampled") and the pairs built on purpose ("constructed"), each with both GenRMs' AUC (mixed items)
    and spread (z-scored with the sampled responses' mean and SD, so both sources share one scale), and its
    ``cluster``: the item, since pairs of one item share a prompt."""
    rows = [{**r, "source": "sampled", "cluster": f"{r['domain']}/{r['id']}"} for r in item_rows(results) if r["close"]]
    scale = {k: _z(results, k) if judged(results) else {"mean": 0.0, "std": 1.0} for k in ("genrm_gt", "genrm")}
    for p in pairs(results):
        row: dict[str, Any] = {"domain": p["domain"], "id": p["id"], "source": "constructed", "mixed": True,
                               "close": True, "cluster": f"{p['domain']}/{p['id']}", "edit": p["edit"],
                               "max_edit": max_edit(p)}
        for k in ("genrm_gt", "genrm"):
            z = (np.asarray(p[k], dtype=float) - scale[k]["mean"]) / scale[k]["std"]
            row[f"spread_{k}"] = float(abs(z[0] - z[1]))
            row[f"auc_{k}"] = auc(p[k], p["gold"])
        row["auc_longer"] = auc([len(t) for t in p["responses"]], p["gold"])
        rows.append(row)
    return rows


def close_table(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per source and domain of the close items: how many, and each GenRM's mean AUC (mixed items) and spread."""
    rows = close_rows(results)
    out = []
    for source in ("sampled", "constructed"):
        for domain in ("math", "code"):
            mine = [r for r in rows if r["source"] == source and r["domain"] == domain]
            mixed = [r for r in mine if r["mixed"]]
            if not mine:
                continue
            row: dict[str, Any] = {"source": source, "domain": domain, "items": len(mine), "mixed": len(mixed),
                                   "prompts": len({r["cluster"] for r in mine})}
            for k in ("genrm_gt", "genrm"):
                row[f"AUC {REWARDS[k]}"] = round(float(np.mean([r[f"auc_{k}"] for r in mixed])), 1) if mixed else None
                row[f"spread {REWARDS[k]}"] = round(float(np.mean([r[f"spread_{k}"] for r in mine])), 2)
            out.append(row)
    return out


def finding_pairs(results: dict[str, Any]) -> str:
    built = results["data"].get("close_pairs") or []
    if not built:
        return "No close pairs were built (no right responses, or `close_pairs.per_item` is 0)."
    parts = []
    for domain in ("math", "code"):
        mine = [p for p in built if p["domain"] == domain]
        if mine:
            base_pass = sum(p["rtv"][1] > 0.5 for p in mine)
            parts.append(f"{domain}: {len(mine)} pairs from {len({p['id'] for p in mine})} problems"
                         + (f" ({base_pass} of the broken programs still pass HumanEval's base tests)"
                            if domain == "code" else ""))
    return "Close pairs built (a right response, one token changed until the gold marks it wrong): " + "; ".join(
        parts) + "."


# ----------------------------------------------------------------------------------------------
# part 2 without training: best-of-n under each reward (Gao et al. 2022's instrument)
# ----------------------------------------------------------------------------------------------

BON_REWARDS = {"rtv": "RTV (the verifier)", "genrm_gt": "GenRM with GT", "genrm": "GenRM without GT", "bt": "BT RM"}


def bon_records(results: dict[str, Any], domain: str | None = None) -> list[dict[str, Any]]:
    """The sampled items best-of-n is measured on: judged and mixed (where the pick can change the gold; on any other
    item every reward's pick has the same gold, so its hacking index is exactly 0)."""
    return [r for r in judged(results) if is_mixed(r) and (domain is None or r["domain"] == domain)]


def bon_rewards(results: dict[str, Any], domain: str | None = None) -> dict[str, np.ndarray]:
    """(items, n) scores of every reward all of ``bon_records`` carry, and ``longer`` (the response's length): the
    trivial rule a sceptic would try first; each z-scored over all its values (so the proxies share one scale; a
    pick does not change)."""
    recs = bon_records(results, domain)
    out = {k: np.array([r[k] for r in recs], dtype=float) for k in BON_REWARDS
           if recs and all(r.get(k) is not None and len(r[k]) == len(r["gold"]) for r in recs)}
    if recs:
        out["longer"] = np.array([[len(t) for t in r["responses"]] for r in recs], dtype=float)
    return {k: (v - v.mean()) / (v.std() or 1.0) for k, v in out.items()}


def bon_curves(results: dict[str, Any], domain: str | None = None) -> dict[str, Any]:
    """Each reward's best-of-n curve over n = 1 .. the responses per item (gold in pts), and the gold's own."""
    from rlhf_nb.evidence import bestofn

    recs = bon_records(results, domain)
    if not recs:
        return {}
    gold = 100 * np.array([r["gold"] for r in recs], dtype=float)
    return bestofn.curves(bon_rewards(results, domain), gold, range(1, gold.shape[1] + 1))


def hacking_gaps(results: dict[str, Any], domain: str | None = None) -> dict[str, np.ndarray]:
    """Per reward, per item: the hacking index at the largest n (gold pts the reward's pick falls below the gold's
    own pick; :func:`rlhf_nb.evidence.bestofn.hacking_gap`)."""
    from rlhf_nb.evidence import bestofn

    curves = bon_curves(results, domain)
    return {k: bestofn.hacking_gap(c, curves["gold"])[-1] for k, c in curves.items() if k != "gold"}


def finding_bestofn(results: dict[str, Any]) -> str:
    parts = []
    for domain in ("math", "code"):
        curves = bon_curves(results, domain)
        if not curves:
            continue
        n = curves["gold"].n[-1]
        gold = {k: float(c.gold[-1].mean()) for k, c in curves.items()}
        start = float(curves["gold"].gold[0].mean())
        worse = [BON_REWARDS.get(k, "the longer response") for k, v in gold.items() if k != "gold" and v < start]
        parts.append(f"{domain} ({curves['gold'].gold.shape[1]} mixed items): gold at n = 1 {start:.1f}; best-of-{n} "
                     + ", ".join(f"{BON_REWARDS.get(k, 'the longer response' if k == 'longer' else 'the gold')} "
                                 f"{v:.1f}" for k, v in gold.items())
                     + (f" (below the random pick: {', '.join(worse)})" if worse else ""))
    if not parts:
        return "No best-of-n: no judged item has both right and wrong responses."
    return "Gold of the pick (pts): " + "; ".join(parts) + "."


def finding_bt_bestofn(results: dict[str, Any]) -> str:
    bt = results["data"].get("bt_bestofn") or {}
    test = bt.get("test_outcomes") or []
    if not test:
        return "No BT RM for best-of-n: no judged item has both right and wrong responses in another fold."
    lo, hi = stats.wilson(sum(test), len(test))
    return (f"BT RM (linear head on the policy's features, {bt['folds']}-fold cross-fitted by item; "
            f"{int(np.mean(bt['train_pairs']))} training pairs a fold): on {len(test)} pairs of items it never saw it "
            f"scores the right response higher {100 * np.mean(test):.0f}% [{100 * lo:.0f}, {100 * hi:.0f}] (the longer "
            f"response: {100 * np.mean(bt['length_outcomes']):.0f}%).")


# ----------------------------------------------------------------------------------------------
# part 2: reward hacking by reward type (Fig. 7)
# ----------------------------------------------------------------------------------------------
#
# Hacking index of a run, per held-out problem: z(proxy) - z(gold) as a function of the step, where z is the change
# since step 0 in units of that reward's spread over the problems at step 0; the index is its least-squares slope
# times the steps trained (the fitted drift over the run, in SD). Training on the gold itself (RTV) gives exactly 0;
# a reward whose held-out value rises while the gold does not gives > 0.

def hacking_runs(results: dict[str, Any], reward: str) -> list[dict[str, Any]]:
    return [r for r in results["data"].get("hacking") or [] if r["reward"] == reward]


def hacking_index(run: dict[str, Any]) -> np.ndarray:
    """Per held-out problem, the fitted drift of z(proxy) - z(gold) over the run (SD)."""
    snaps = run["snapshots"]
    steps = np.array([s["step"] for s in snaps], dtype=float)
    proxy = np.array([s["proxy"] for s in snaps], dtype=float)
    gold = np.array([s["gold"] for s in snaps], dtype=float)
    if len(steps) < 2:
        raise ValueError("a hacking index needs at least two snapshots")
    sd = lambda x: float(x.std()) or 1.0  # noqa: E731 (a constant start: changes in raw units)
    gap = (proxy - proxy[0]) / sd(proxy[0]) - (gold - gold[0]) / sd(gold[0])
    t = steps - steps.mean()
    slope = (t[:, None] * (gap - gap.mean(0))).sum(0) / (t * t).sum()
    return slope * (steps[-1] - steps[0])


def entropy_curve(run: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Steps and trl's mean token entropy of the run's training samples at each logged step."""
    rows = [h for h in run.get("history") or [] if "entropy" in h]
    return np.array([h["step"] for h in rows], dtype=float), np.array([h["entropy"] for h in rows], dtype=float)


def finding_hacking(results: dict[str, Any]) -> str:
    parts = []
    for reward, name in REWARD_NAMES.items():
        runs = hacking_runs(results, reward)
        if not runs:
            continue
        first = 100 * np.mean(runs[0]["snapshots"][0]["gold"])
        last = [100 * np.mean(r["snapshots"][-1]["gold"]) for r in runs]
        index = np.mean([hacking_index(r).mean() for r in runs])
        parts.append(f"{name}: gold {first:.1f} -> {np.mean(last):.1f}% (mean of {len(runs)} seeds), hacking index "
                     f"{index:+.2f} SD")
    if not parts:
        return "Part 2 (GRPO under each reward) is not run in this profile."
    first_run = results["data"]["hacking"][0]
    return (f"After {first_run['snapshots'][-1]['step']} GRPO steps, on {len(first_run['snapshots'][0]['gold'])} "
            "held-out problems: "
            + "; ".join(parts) + ".")


def finding_bt(results: dict[str, Any]) -> str:
    bt = results["data"].get("bt_rm") or {}
    test = bt.get("test_outcomes") or []
    if not (results["params"].get("hacking") or {}).get("steps"):
        return "No BT RM: part 2 is not run in this profile."
    if not bt.get("fitted"):
        return "No BT RM: part 1 has no math item with both right and wrong responses."
    if not test:
        return f"BT RM fitted on {bt['train_pairs']} right-vs-wrong pairs; none held out."
    lo, hi = stats.wilson(sum(test), len(test))
    length = np.mean(bt["length_outcomes"])
    return (f"BT RM fitted on {bt['train_pairs']} right-vs-wrong pairs of part 1's math samples; on {len(test)} "
            f"held-out pairs it prefers the right response {100 * np.mean(test):.0f}% [{100 * lo:.0f}, {100 * hi:.0f}] "
            f"(length alone: {100 * length:.0f}%).")


# ----------------------------------------------------------------------------------------------
# parts 3-4: which prompts, in which order (Figs. 2-4, 6, 8; Tables 1, 3)
# ----------------------------------------------------------------------------------------------

ARM_NAMES = {"start": "start policy", "base": "base prompts", "all": "+ all new prompts",
             "random": "+ random new prompts", "prepo": "+ Pre-PPO's new prompts",
             "early": "Pre-PPO + math and code first"}


def prepo_data(results: dict[str, Any]) -> dict[str, Any]:
    return results["data"].get("prepo") or {}


def arm_gold(results: dict[str, Any], arm: str, domain: str | None = None) -> np.ndarray | None:
    """(seeds, held-out items) gold of an arm's final policies (the start policy: one row)."""
    data = prepo_data(results)
    keep = [i for i, e in enumerate(data.get("eval") or []) if domain is None or e["domain"] == domain]
    rows = [[r["gold"][i] for i in keep] for r in data.get("runs") or [] if r["arm"] == arm]
    return 100 * np.array(rows, dtype=float) if rows and keep else None


def open_gold_premises(results: dict[str, Any], domain: str | None) -> list[C.Premise]:
    """Where held-out open prompts count, their gold (a judge) must be validated on human labels and must not be the
    judge the runs trained on."""
    data = prepo_data(results)
    if domain not in (None, "open") or not any(e["domain"] == "open" for e in data.get("eval") or []):
        return []
    gold = data.get("gold_judge") or {}
    validated = C.validated_on("open-ended gold judge (HH-RLHF human labels)",
                               C.preference_outcomes(gold.get("validation") or []))
    judge = results["params"].get("judge")
    return [validated, C.Premise("open-ended gold is not the training judge", gold.get("model") != judge,
                                 f"gold {gold.get('model')} vs training judge {judge}")]


def finding_prepo(results: dict[str, Any]) -> str:
    data = prepo_data(results)
    if not data.get("runs"):
        return "Parts 3-4 (Pre-PPO, math and code first) are not run in this profile."
    parts = []
    for arm in ("start", *[a for a in ARM_NAMES if a != "start"]):
        gold = arm_gold(results, arm)
        if gold is not None:
            parts.append(f"{ARM_NAMES[arm]} {gold.mean():.1f}")
    n = len(data["eval"])
    text = f"Held-out gold over {n} prompts (pts, mean over seeds): " + "; ".join(parts) + "."
    gold = data.get("gold_judge")
    if gold:
        premise = open_gold_premises(results, "open")[0]
        verdict = "validated" if premise.holds else "NOT validated, so claims on open prompts are not tested"
        text += (f" The open prompts' gold judge ({gold['model']}) on HH-RLHF harmless-base human labels: "
                 f"{premise.detail}; {verdict}.")
    return text


def findings(results: dict[str, Any]) -> list[str]:
    """The notebook's findings, in its order (``rlhf-nb report`` recomputes them from the saved results)."""
    return [finding_samples(results), finding_judge(results), finding_pairs(results), finding_bt_bestofn(results),
            finding_bestofn(results), finding_bt(results), finding_hacking(results), finding_prepo(results)]


def tables(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The notebook's tables, by name."""
    return {"by_edit_distance": bin_rows(results), "close_items": close_table(results)}


def mean_curve(runs: list[dict[str, Any]], reward: str, key: str) -> tuple[list[int], np.ndarray]:
    """Steps and (seeds, steps) means of ``key`` ("proxy" or "gold") over the held-out problems."""
    mine = [r for r in runs if r["reward"] == reward]
    steps = [s["step"] for s in mine[0]["snapshots"]] if mine else []
    return steps, np.array([[float(np.mean(s[key])) for s in r["snapshots"]] for r in mine])
