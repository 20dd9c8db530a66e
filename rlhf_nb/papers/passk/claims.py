"""Claims of ``notebooks/02_passk_model_size.ipynb``, computed from ``results.json`` alone.

All effects are in percentage points of pass@k, per task (pass@k from a task's n samples with the unbiased
estimator), paired over the evaluation tasks; tuned arms trained here contribute one row per training seed (the seeds share one draw of training samples,
so their spread is the trainer's: LoRA initialisation and data order).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlhf_nb.evidence import claims as C
from rlhf_nb.papers.passk.readers import (
    arms,
    cap_rate,
    crossing_of,
    design_cost,
    n_samples,
    pass1,
    per_task,
    runs,
    train_gain,
)

PAPER = "pass@k vs model size, RLHF vs independent sampling (CodeT5+ protocol)"
EVALPLUS = "EvalPlus (Liu et al. 2023)"
FLOOR = 0.05


def _tuning(results: dict[str, Any], size: int) -> dict[str, Any]:
    return next((t for t in results["data"].get("tuning", []) if t["size"] == size), {"pairs": 0, "tuned": False})


def _pct(v: float) -> str:
    return f"{v:+.1f}"


def _sentence(test: C.Test, what: str, unit: str = "pts") -> str:
    return (f"{what}: {_pct(test.effect)} {unit} [{_pct(test.ci[0])}, {_pct(test.ci[1])}], one-sided p={test.p:.3g}, "
            f"n={test.n} tasks x {test.seeds} seed(s)")


def size_trend(results: dict[str, Any]) -> C.Claim:
    """P1: untuned pass@1 rises with size within a family, over all of its sizes."""
    by_family: dict[str, list[dict[str, Any]]] = {}
    for r in runs(results):
        if r["arm"] == "untuned":
            by_family.setdefault(r["family"], []).append(r)
    family, members = max(by_family.items(), key=lambda kv: len(kv[1]))
    members = sorted(members, key=lambda r: r["params_b"])
    statement = "pass@1 rises with model size (a trend over every size of one family)"
    common = dict(min_effect=2.0, min_effect_reason="2 pts of pass@1 per doubling; Qwen2.5-Coder's report rises "
                  "~10 pts per doubling from 0.5B to 7B", unit="pts of pass@1 per doubling of parameters")
    if len({r["params_b"] for r in members}) < 3:
        sizes = ", ".join(f"{r['model']} ({r['params_b']}B)" for r in members)
        return C.claim("P1", PAPER, statement, "monotone in size", None, our_value=f"{family}: {sizes}",
                       premises=[C.Premise("three or more sizes of one family", False,
                                           f"{len(members)} size(s) of {family} in this profile")], kind="trend",
                       **common)
    test = C.trend(np.log2([r["params_b"] for r in members]), [pass1(r) for r in members])
    value = (f"{family}: " + ", ".join(f"{r['params_b']}B {np.mean(pass1(r)):.1f}%" for r in members) + "; "
             + _sentence(test, "slope per doubling"))
    return C.claim("P1", PAPER, statement, "monotone in size", test, our_value=value, **common)


def plus_drop(results: dict[str, Any]) -> C.Claim:
    """P2: HumanEval+'s extra inputs lower pass@1 (the best untuned model, paired over tasks)."""
    statement = "HumanEval+ pass@1 is lower than HumanEval pass@1 (its extra inputs catch wrong programs)"
    common = dict(min_effect=2.0, min_effect_reason="half the smallest published drop for a small code model "
                  "(Qwen2.5-Coder-0.5B-Instruct 61.6 -> 57.3)", unit="pts of pass@1")
    scored = [r for r in runs(results) if r["arm"] == "untuned" and r["samples"][0]["passed_plus"] is not None]
    extra = results["data"].get("plus_inputs", 0)
    if not scored:
        return C.claim("P2", EVALPLUS, statement, "lower on HE+", None, our_value="HumanEval+ not scored", **common)
    best = max(scored, key=lambda r: np.mean(pass1(r)))
    he, plus = pass1(best), pass1(best, "passed_plus")
    test = C.superiority(plus, he)  # effect = HE - HE+ (a drop supports the paper)
    premises = [C.Premise("HumanEval+ extra inputs used", extra > 0, f"{extra} inputs beyond the base tests"),
                C.off_floor_and_ceiling(best["model"], float(np.mean(he)) / 100, len(he), FLOOR)]
    value = (f"{best['model']}: HumanEval {np.mean(he):.1f}% vs HumanEval+ {np.mean(plus):.1f}%; "
             + _sentence(test, "drop") + f"; {int(np.sum(plus > he))} of {len(he)} tasks pass HumanEval+ more often (its "
             "verdicts compare with EvalPlus's reference outputs, not HumanEval's asserts), the rest never more")
    return C.claim("P2", EVALPLUS, statement, "lower on HE+", test, our_value=value, premises=premises, **common)


def _tuned_here(results: dict[str, Any], size: int) -> bool:
    """Whether the tuned arm of ``size`` was trained here from the untuned arm (not a published checkpoint)."""
    tuning = _tuning(results, size)
    return tuning.get("reason", "") != "published tuned checkpoint"


def _method(results: dict[str, Any], size: int) -> str:
    return "RFT" if _tuning(results, size).get("method", "dpo") == "rft" else "DPO"


def _start_premise(results: dict[str, Any], size: int, untuned: dict[str, Any]) -> C.Premise:
    """What the two arms are. Trained here: the tuned arm is the untuned arm plus RL on its own execution feedback
    (Yue et al. 2025's comparison: RL against the model it started from; an instruct start is fine). A published
    tuned checkpoint is compared with the untuned checkpoint of its family, which must then have had no preference
    tuning (the CodeT5+ question: base vs RLHF-tuned)."""
    name = untuned["model"]
    if _tuned_here(results, size):
        tuning = _tuning(results, size)
        own = not tuning.get("reference_pairs", False)
        return C.Premise("the tuned arm is the untuned arm plus RL on execution feedback", own,
                         f"{name} + one round of {_method(results, size)} on its own samples of "
                         f"{tuning.get('train_tasks', 0)} training tasks (one draw, shared by every training seed)"
                         if own else "reference solutions stood in for its samples (plumbing only)")
    sizes = results["params"].get("sizes") or []
    flagged = sizes[size].get("untuned_preference_tuned") if size < len(sizes) else None
    tuned_already = flagged if flagged is not None else any(w in name.lower() for w in ("instruct", "chat"))
    return C.Premise("the untuned arm has no preference tuning", not tuned_already,
                     f"{name} is {'an instruct/chat (already preference-tuned)' if tuned_already else 'a base'} "
                     "checkpoint")


def _moved_premise(results: dict[str, Any], size: int) -> C.Premise:
    """RL measurably raised pass@1 where it trained: without that, a held-out null says nothing about RL."""
    test = train_gain(_tuning(results, size))
    name = "tuning raised pass@1 on its training tasks"
    if test is None:
        return C.Premise(name, False, "not measured (train_check_samples: 0, or a run from before it was recorded)")
    return C.Premise(name, test.ci[0] > 0, f"{test.effect:+.1f} pts [{test.ci[0]:+.1f}, {test.ci[1]:+.1f}] "
                     f"({test.n} training tasks x {test.seeds} seed(s))")


def _tuned_premises(results: dict[str, Any], size: int, untuned: dict[str, Any],
                    tuned: list[dict[str, Any]]) -> list[C.Premise]:
    tuning = _tuning(results, size)
    base = float(np.mean(pass1(untuned))) / 100
    out = [_start_premise(results, size, untuned),
           C.off_floor_and_ceiling(f"untuned {untuned['model']}", base, len(untuned["samples"]), FLOOR),
           C.not_capped("untuned", cap_rate(untuned))]
    if tuned:
        out.append(C.not_capped("tuned", max(cap_rate(r) for r in tuned)))
        out.append(C.one_precision("arms sampled", [untuned, *tuned]))
    if _tuned_here(results, size):
        what = "passing samples" if tuning.get("method", "dpo") == "rft" else "pairs"
        out.append(C.Premise(f"enough {_method(results, size)} {what}",
                             tuning.get("pairs", 0) >= 8 and bool(tuned),
                             tuning.get("reason") or f"{tuning.get('pairs', 0)} {what} from "
                             f"{tuning.get('train_tasks', 0)} training tasks (needs 8)"))
        if tuned:
            out.append(_moved_premise(results, size))
    return out


def _draw_note(results: dict[str, Any], size: int) -> str:
    """Where the seeds are training seeds on one draw of training samples: say so next to the n (the intervals hold for
    that draw and for the start's one draw of samples; the seeds' spread is the trainer's)."""
    if not _tuned_here(results, size):
        return ""
    return " (the seeds are trainer seeds on one draw of training samples, and the start's samples are one draw)"


def _what_tuned(results: dict[str, Any], size: int) -> str:
    """The tuning in a claim's statement: RL here from the untuned arm, or a published preference-tuned model."""
    if _tuned_here(results, size):
        return f"one round of {_method(results, size)} on its own execution feedback over the model it started from"
    return "preference tuning"


def tuning_gain(results: dict[str, Any], size: int) -> C.Claim:
    """P3: the preference-tuned model's pass@1 beats the untuned model's at the same size."""
    untuned, tuned = arms(results, size)
    label = f"{untuned['params_b']}B" if untuned else f"size {size}"
    statement = f"{_what_tuned(results, size)} raises pass@1, at {label}"
    reason = ("5 pts of pass@1: the smallest gain that would make a user who samples once pick the tuned arm"
              if _tuned_here(results, size) else
              "far below the +33 pts from base to instruct of Qwen2.5-Coder-0.5B in its report")
    common = dict(min_effect=5.0, min_effect_reason=reason, unit="pts of pass@1")
    if not tuned:
        return C.claim(f"P3@{label}", PAPER, statement, "higher after tuning", None,
                       our_value=_tuning(results, size).get("reason") or "no tuned arm",
                       premises=_tuned_premises(results, size, untuned, tuned) if untuned else [], **common)
    test = C.superiority(pass1(untuned), np.stack([pass1(r) for r in tuned]))
    value = (f"{untuned['model']}: untuned {np.mean(pass1(untuned)):.1f}% vs tuned "
             f"{np.mean([np.mean(pass1(r)) for r in tuned]):.1f}%; " + _sentence(test, "gain") + _draw_note(results, size))
    return C.claim(f"P3@{label}", PAPER, statement, "higher after tuning", test, our_value=value,
                   premises=_tuned_premises(results, size, untuned, tuned), cost=design_cost(results, size),
                   units="tasks", **common)


def start_overtakes(results: dict[str, Any], size: int) -> C.Claim:
    """P4 (Yue et al. 2025's crossing): the tuned arm leads at k = 1, and by k = n the model it started from has
    caught up and overtaken it: pass@n of the start minus pass@n of the tuned arm, paired over tasks. A shrinking gain
    alone is not the claim: pass@k's ceiling shrinks any gain as k grows, crossing or not."""
    untuned, tuned = arms(results, size)
    label = f"{untuned['params_b']}B" if untuned else f"size {size}"
    here = _tuned_here(results, size)
    n = results["params"]["sampling"].get("n", "n")
    statement = (f"{'the model it started from' if here else 'the untuned model'} catches up with and overtakes "
                 f"{'the ' + _method(results, size) + '-tuned arm' if here else 'the preference-tuned one'} by k = {n}, "
                 f"the most samples drawn (the pass@k curves cross), at {label}")
    common = dict(min_effect=2.0, min_effect_reason="2 pts of pass@n: the smallest lead at k = n that would make a "
                  "user who samples n times keep the start", unit="pts of pass@n (start minus tuned)")
    if not tuned:
        return C.claim(f"P4@{label}", PAPER, statement, "start ahead at k=n", None,
                       our_value=_tuning(results, size).get("reason") or "no tuned arm", **common)
    k = min(n_samples(untuned), *(n_samples(r) for r in tuned))
    gain1 = C.superiority(per_task(untuned, 1), np.stack([per_task(r, 1) for r in tuned]))
    test = C.superiority(np.stack([per_task(r, k) for r in tuned]), per_task(untuned, k))
    shrink = C.superiority(per_task(untuned, 1) - per_task(untuned, k),
                           np.stack([per_task(r, 1) - per_task(r, k) for r in tuned]))
    premises = [*_tuned_premises(results, size, untuned, tuned),
                C.Premise("the tuned arm leads at k=1", gain1.ci[0] > 0,
                          f"gain at k=1 {gain1.effect:+.1f} pts [{gain1.ci[0]:+.1f}, {gain1.ci[1]:+.1f}] (samples at "
                          f"T={results['params']['sampling']['temperature']})")]
    cross = crossing_of(results, size)
    value = (f"pass@{k}: start {np.mean(per_task(untuned, k)):.1f}% vs tuned "
             f"{np.mean([np.mean(per_task(r, k)) for r in tuned]):.1f}%; " + _sentence(test, f"start's lead at k={k}")
             + f"; the tuned arm's gain is {gain1.effect:+.1f} pts at k=1 and {gain1.effect - shrink.effect:+.1f} at "
             f"k={k} (change {-shrink.effect:+.1f} [{-shrink.ci[1]:+.1f}, {-shrink.ci[0]:+.1f}])"
             + (f"; {cross.describe()}" if cross is not None else "")
             + f"; a crossing beyond k = {k} is not tested" + _draw_note(results, size))
    return C.claim(f"P4@{label}", PAPER, statement, "start ahead at k=n", test, our_value=value, premises=premises,
                   cost=design_cost(results, size), units="tasks", **common)


def diversity_loss(results: dict[str, Any], size: int) -> C.Claim:
    """P5: tuned samples are less diverse (mean pairwise normalised edit distance of a task's programs)."""
    untuned, tuned = arms(results, size)
    label = f"{untuned['params_b']}B" if untuned else f"size {size}"
    statement = f"{_what_tuned(results, size)} lowers sample diversity, at {label}"
    common = dict(min_effect=2.0, min_effect_reason="2 pts of normalised edit distance: below that two sample sets "
                  "look alike", unit="pts of normalised edit distance (x100)")
    if not tuned:
        return C.claim(f"P5@{label}", PAPER, statement, "less diverse", None,
                       our_value=_tuning(results, size).get("reason") or "no tuned arm", **common)
    div = lambda r: 100 * np.array([t["diversity"] for t in r["samples"]])  # noqa: E731
    test = C.superiority(np.stack([div(r) for r in tuned]), div(untuned))  # effect = untuned - tuned
    value = (f"mean edit distance {np.mean(div(untuned)):.1f} (untuned) vs "
             f"{np.mean([np.mean(div(r)) for r in tuned]):.1f} (tuned); " + _sentence(test, "drop")
             + _draw_note(results, size))
    return C.claim(f"P5@{label}", PAPER, statement, "less diverse", test, our_value=value,
                   premises=_tuned_premises(results, size, untuned, tuned), cost=design_cost(results, size),
                   units="tasks", **common)


def claims(results: dict[str, Any]) -> list[C.Claim]:
    sizes = sorted({r["size"] for r in runs(results)})
    out = [size_trend(results), plus_drop(results)]
    for size in sizes:
        out += [tuning_gain(results, size), start_overtakes(results, size), diversity_loss(results, size)]
    return C.finalize(out)
