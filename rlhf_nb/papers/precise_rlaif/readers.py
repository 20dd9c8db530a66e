"""Readers of ``notebooks/04_precise_rlaif.ipynb``'s ``results.json``: accessors, and the findings and tables the
notebook shows. Pure (no model); ``claims.py`` and ``figures.py`` read the results through these.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlhf_nb.evidence import claims as C
from rlhf_nb.evidence import stats
from rlhf_nb.papers.precise_rlaif.judging import judge_agreement
from rlhf_nb.tasks.gold import ALPACAEVAL_BASES, system_note

TABLE4 = {"bleu": (18.58, 18.92), "coding (GPT-4 score)": (1.45, 1.18), "gsm8k": (8.0, 7.0)}
TASKS = {"humaneval": "HumanEval pass@1", "gsm8k": "GSM8K accuracy", "bleu": "En->Fr BLEU"}

#: the filters a sentence-level degradation passes (steps apply them, figures draw their bars; kept here so that
#: figures need not import steps)
RULES = ("rewritten", "a sentence", "changed", "edited enough", "one sentence changed")  # rule filters, in order
JUDGE_STAGE, GOLD_STAGE = "judge prefers original", "gold lower"
STAGES = ("candidates", *RULES, JUDGE_STAGE)  # the LLM rewriter's filters under labeller 'judge'
PROGRAMMATIC_STAGES = ("candidates", GOLD_STAGE)  # (sentence, followed instruction) tried; verified broken


def _data(results: dict[str, Any]) -> dict[str, Any]:
    return results["data"]


def arms(results: dict[str, Any]) -> dict[str, Any]:
    return _data(results)["arms"]


def trained(results: dict[str, Any], arm: str) -> list[dict[str, Any]]:
    return [p for p in arms(results)["trained"] if p["arm"] == arm]


def labeller(results: dict[str, Any]) -> str:
    """Who verified the sentence-level pairs and ordered the sequence-level ones ("judge" in runs before the
    parameter existed)."""
    return results.get("params", {}).get("labeller", "judge")


def labeller_words(results: dict[str, Any]) -> str:
    return ("with the gold as the preference oracle" if labeller(results) == "gold"
            else "with the LLM judge as the AI feedback")


#: trl DPO arguments that change the loss itself (beta and the schedule only scale or pace it)
LOSS_KEYS = ("loss_type", "loss_weights", "ld_alpha", "f_divergence_type", "use_weighting", "label_smoothing")


def loss_words(results: dict[str, Any]) -> str:
    """How every arm was trained where it is not the paper's plain DPO (its Eq. 2): the run's trl loss arguments
    (``dpo`` and its ``extra``, as the trainer receives them) in words; "" for plain DPO."""
    dpo = dict(results["params"].get("dpo") or {})
    dpo.update(dpo.pop("extra", None) or {})
    loss = dpo.get("loss_type")
    types = [loss] if isinstance(loss, str) else list(loss or [])
    changed = {k: dpo[k] for k in LOSS_KEYS if k != "loss_type"  # ld_alpha 1 is plain DPO, 0 a loss of its own (the tail dropped)
               if dpo.get(k) is not None and (dpo[k] != 1 if k == "ld_alpha"
                                              else dpo[k] not in (False, 0, 0.0, "reverse_kl"))}
    if types in ([], ["sigmoid"]) and not changed:
        return ""
    if types in ([], ["sigmoid"]) and list(changed) == ["ld_alpha"]:  # LD-DPO (Liu et al. 2024), trl's ld_alpha
        return (f", every arm trained by length-desensitised DPO (trl's ld_alpha {changed['ld_alpha']:g}; "
                "not the paper's plain DPO)")
    words = ("DPO with an SFT term on the chosen reply" if sorted(types) == ["sft", "sigmoid"]
             else f"trl's loss {' + '.join(types) or 'sigmoid'}")
    extra = "".join(f", {k} {v}" for k, v in changed.items())
    return f", every arm trained by {words}{extra} (not the paper's plain DPO)"


def main_arm(results: dict[str, Any]) -> str:
    return f"precise-{results['params']['degrade']['principle']}"


def design_cost(results: dict[str, Any]) -> C.Cost | None:
    """How this run's time grows with seeds and held-out prompts (:class:`rlhf_nb.evidence.claims.Cost`), from its own
    stage times: a seed is one training of every trained arm and its reads that do not grow with the held-out prompts
    (forgetting); a held-out prompt is one read by the start and, for each seed, by every trained arm; the answers,
    the degraded and ordered pairs, the start's forgetting reads and the rest of the run are not priced (the results
    do not time them all, and the notebook's cached claims and the report's recomputed ones must agree). Held-out
    prompts are bounded by the AlpacaEval bases the training prompts leave. None for runs without these
    times."""
    start, policies = arms(results)["start"].get("seconds") or {}, arms(results)["trained"]
    items = len(_data(results).get("prompt_ids", {}).get("eval", []))
    if "held-out" not in start or not policies or not items or any("held-out" not in p.get("seconds", {})
                                                                   for p in policies):
        return None
    seeds, trained = len({p["seed"] for p in policies}), [v for p in policies for k, v in p["seconds"].items()
                                                         if k != "held-out"]
    bases = ALPACAEVAL_BASES - len(_data(results)["prompt_ids"].get("train", []))
    return C.Cost(fixed_s=0.0, per_seed_s=sum(trained) / seeds,
                  per_item_s=start["held-out"] / items,
                  per_item_seed_s=sum(p["seconds"]["held-out"] for p in policies) / seeds / items,
                  max_items=bases, pool=f"the {bases} AlpacaEval bases the training prompts leave (one "
                                        "held-out prompt a base)",
                  note="every seed trains on one set of answers and pairs")


def gold(policies: list[dict[str, Any]]) -> np.ndarray:
    """(seeds, prompts) gold scores in points."""
    return 100 * np.stack([np.asarray(p["gold"], dtype=float) for p in policies])


def finished(policies: list[dict[str, Any]]) -> np.ndarray:
    """(seeds, prompts): whether each greedy reply ended on its own (not at the token cap)."""
    return np.stack([np.asarray(p["finished"], dtype=bool) for p in policies])


def cap_rate(policies: list[dict[str, Any]]) -> float:
    flat = [f for p in policies for f in p["finished"]]
    return 1 - sum(flat) / max(1, len(flat))


def win_outcomes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per seed of ``a`` and prompt: 1 if a scores above b's mean over its seeds, 0.5 if equal, 0 below."""
    ref = b.mean(0)
    return np.where(a > ref, 1.0, np.where(a == ref, 0.5, 0.0))


def judge_outcomes(results: dict[str, Any], validation_only: bool = False) -> list[float]:
    """The judge's agreement with the gold (labeller 'judge' only: under 'gold' the sequence pairs were ordered by the
    gold itself and say nothing about a judge): on its validation pairs, else (runs before they existed, or none
    drawn; not with ``validation_only``, what the notebook's judge section sees) on the sequence-level pairs."""
    data = _data(results)
    if labeller(results) != "judge":
        return []
    if validation_only and "judge_validation" in data:
        return judge_agreement(data["judge_validation"])
    return judge_agreement(data.get("judge_validation") or data.get("sequence", {}).get("judged", []))


def main_arm_records(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The degraded records the main Precise arm trained on, per degrader (its own principle's LLM rewrites and the
    programmatic ones): those that reached the degrader's last stage. Empty for runs without the records."""
    principle = results["params"]["degrade"]["principle"]
    return {name: [r for r in d["records"] if r["stage"] == d["yields"][-1]["stage"]]
            for name, d in _data(results).get("degraded", {}).items()
            if name in (principle, "programmatic") and d["yields"]}


def pair_mix(results: dict[str, Any]) -> str:
    """What the main Precise arm trained on: kept pairs per degrader (empty for runs without the records)."""
    counts = {name: len(records) for name, records in main_arm_records(results).items()}
    if not counts:
        return ""
    return " + ".join(f"{n} {k if k == 'programmatic' else f'LLM-rewritten ({k})'}" for k, n in counts.items())


def control_prompts(results: dict[str, Any]) -> str:
    """How many of the sequence-level control's pairs share a training prompt with the main Precise arm's (the rest are
    topped up from other training prompts, :func:`steps.sequence_pairs`); empty for runs without the records."""
    precise = {r["prompt_index"] for records in main_arm_records(results).values() for r in records}
    judged = _data(results).get("sequence", {}).get("judged") or []
    if not precise or not judged:
        return ""
    same = sum(j["prompt_index"] in precise for j in judged)
    return (f"; sequence-level: {same} of its {len(judged)} pairs on the {len(precise)} prompts Precise trained on "
            "(top-ups included), the rest from other training prompts")


def forgetting_cut_off(policies: list[dict[str, Any]], task: str) -> float | None:
    """Mean share of a forgetting task's replies cut off at the token cap over ``policies`` (None: not recorded)."""
    rates = [p.get("forgetting_cut_off", {}).get(task) for p in policies if task in p["forgetting"]]
    return None if not rates or None in rates else float(np.mean(rates))


# ----------------------------------------------------------------------------------------------
# findings and tables
# ----------------------------------------------------------------------------------------------


def finding_answers(results: dict[str, Any]) -> str:
    s = _data(results)["answers"]
    flat = [f for row in s["finished"] for f in row]
    n = _data(results)["chosen"]
    return (f"{len(s['texts'])} training prompts x {len(s['texts'][0])} answers: {100 * (1 - np.mean(flat)):.0f}% cut "
            f"off at the token cap{system_note(results.get('params', {}).get('system'))}; {n} prompts have a finished answer with enough sentences to degrade (the chosen "
            "side).")


def yield_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for principle, d in _data(results)["degraded"].items():
        counts = {r["stage"]: r["count"] for r in d["yields"]}
        first = counts.get("candidates", 0) or 1
        rows.append({"principle": principle, **{k: f"{v} ({100 * v / first:.0f}%)" for k, v in counts.items()}})
    return rows


def finding_degradation(results: dict[str, Any]) -> str:
    parts = []
    for principle, d in _data(results)["degraded"].items():
        counts = {r["stage"]: r["count"] for r in d["yields"]}
        kept = d["yields"][-1]["count"] if d["yields"] else 0
        if principle == "programmatic":
            parts.append(f"programmatic: {counts.get('candidates', 0)} (sentence, followed instruction) candidates, "
                         f"{kept} broken inside one sentence and verified by the gold")
            continue
        unchanged = counts.get("rewritten", 0) - counts.get("changed", 0)
        verified = (f", {kept} of {counts.get('one sentence changed', 0)} that passed the rules lowered the gold"
                    if d.get("gold_verified") else "")
        parts.append(f"LLM rewriter, {principle}: {counts.get('candidates', 0)} candidate sentences, {unchanged} "
                     f"returned unchanged{verified}, {kept} pairs kept")
    text = "Degradation yield - " + "; ".join(parts) + "."
    rule = _data(results).get("judge_filter")
    if rule and not rule["applied"] and labeller(results) == "judge":
        why = "set to never" if rule["mode"] == "never" else f"the judge is not validated: {rule['detail']}"
        text += f" The judge filter was off ({why}), so every pair that passed the other filters was kept."
    return text


def finding_judge(results: dict[str, Any], validation_only: bool = False) -> str:
    outcomes = judge_outcomes(results, validation_only)
    if not outcomes:
        return "The judge could not be validated: no judged pair had different gold scores."
    test = C.proportion(outcomes, 0.5)
    return (f"The judge agrees with the gold on {100 * (0.5 + test.effect):.0f}% "
            f"[{100 * (0.5 + test.ci[0]):.0f}, {100 * (0.5 + test.ci[1]):.0f}] of {test.n} "
            f"{'pairs of training answers' if _data(results).get('judge_validation') else 'sequence-level pairs'} "
            "whose gold scores differ (both orders averaged; chance 50%).")


NO_JUDGE = ("No judge in this run (labeller: gold): the gold verifies every sentence-level pair and orders the "
            "sequence-level pairs.")


def finding_judge_stage(results: dict[str, Any]) -> str:
    """The judge section's finding: no judge under labeller 'gold', else its validation (:func:`finding_judge`)."""
    return NO_JUDGE if labeller(results) == "gold" else finding_judge(results, validation_only=True)


def table1_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Table 1 analog: every policy's gold score and its win rate over the DPO-stage start (ties half)."""
    start = gold([arms(results)["start"]])
    groups = [("start (DPO stage)", [arms(results)["start"]])]
    if arms(results).get("base"):
        groups.insert(0, ("base", [arms(results)["base"]]))
    for arm in dict.fromkeys(p["arm"] for p in arms(results)["trained"]):
        groups.append((arm, trained(results, arm)))
    rows = []
    for name, policies in groups:
        g = gold(policies)
        wins = win_outcomes(g, start)
        dist = stats.crossed_bootstrap([wins], lambda x: float(x[0].mean()), n_boot=1000)
        rows.append({"policy": name, "seeds": len(policies), "pairs": policies[0].get("pairs", 0),
                     "gold (pts)": round(float(g.mean()), 1),
                     "win rate vs start %": round(100 * float(wins.mean()), 1),
                     "95% CI": [round(100 * float(np.quantile(dist, 0.025)), 1),
                                round(100 * float(np.quantile(dist, 0.975)), 1)],
                     "tokens": round(float(np.mean([np.mean(p["tokens"]) for p in policies])), 1),
                     "cut off %": round(100 * cap_rate(policies), 1)})
    return rows


def finding_arms(results: dict[str, Any]) -> str:
    rows = table1_rows(results)
    text = "Held-out gold score: " + "; ".join(f"{r['policy']} {r['gold (pts)']} pts (win rate vs start "
                                               f"{r['win rate vs start %']}%)" for r in rows) + "."
    policies = [arms(results)["start"], *arms(results)["trained"]]
    spent: dict[str, float] = {}
    for p in policies:
        for stage, s in p.get("seconds", {}).items():
            spent[stage] = spent.get(stage, 0.0) + s
    if spent:  # where the notebook's time went (runs before this was recorded have none)
        text += (f" Wall time over the start policy and {len(policies) - 1} trained ones: "
                 + ", ".join(f"{stage} {s:.0f} s" for stage, s in sorted(spent.items(), key=lambda kv: -kv[1])) + ".")
    return text


def forgetting_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    from rlhf_nb.evidence.metrics import bleu

    start = arms(results)["start"]
    after = trained(results, main_arm(results))
    refs = _data(results).get("translation_refs", [])
    rows = []
    for task in ("humaneval", "gsm8k", "bleu"):
        if task not in start["forgetting"]:
            continue
        scored = [p["forgetting"][task] for p in after if task in p["forgetting"]]
        row = {"task": TASKS[task], "items": len(start["forgetting"][task]),
               "start": round(float(np.mean(start["forgetting"][task])), 2),
               "after Precise": round(float(np.mean(scored)), 2) if scored else None,
               "paper (before -> after)": "{} -> {}".format(*(TABLE4["coding (GPT-4 score)"] if task == "humaneval"
                                                            else TABLE4[task]))}
        cut = [forgetting_cut_off([start], task), forgetting_cut_off(after, task)]
        if cut[0] is not None:
            row["cut off start %"] = round(100 * cut[0], 1)
            row["cut off after %"] = round(100 * cut[1], 1) if cut[1] is not None else None
        if task == "bleu" and refs:
            row["corpus BLEU start"] = round(bleu(start["translations"], refs), 2)
            hyps = [p["translations"] for p in after if p.get("translations")]
            row["corpus BLEU after"] = round(float(np.mean([bleu(h, refs) for h in hyps])), 2) if hyps else None
        rows.append(row)
    return rows


def findings(results: dict[str, Any]) -> list[str]:
    """The notebook's findings, in its order (``rlhf-nb report`` recomputes them from the saved results)."""
    return [finding_answers(results), finding_judge_stage(results), finding_degradation(results),
            finding_arms(results)]


def tables(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The notebook's tables, by name."""
    return {"yields": yield_rows(results), "table1": table1_rows(results), "forgetting": forgetting_rows(results)}
