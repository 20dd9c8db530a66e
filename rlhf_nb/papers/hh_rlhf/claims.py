"""Claims of ``notebooks/01_hh_preference_models.ipynb``, computed from ``results.json`` alone.

Accuracies are per held-out pair (1 right, 0 wrong, 0.5 tie), reported in points. A PM type's several fits are on
random 80% subsets of one training pool: they are not independent draws of data, so their outcomes are averaged into
one row (one data draw), and the held-out pairs are the only source of chance a test reads. A learned PM is validated
against the strongest trivial rule on the same pairs (chance, the longer or the shorter reply). Gold scores are the
share of a prompt's verifiable instructions followed, in points.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlhf_nb.evidence import claims as C
from rlhf_nb.papers.hh_rlhf.readers import SETS, bon, data, matrix, rules

PAPER = "Bai et al. 2022 (arXiv 2204.05862)"


def _acc(x: np.ndarray) -> str:
    return f"{x.mean():.1f}%"


def _describe(test: C.Test, unit: str = "pts") -> str:
    return C.describe(test, unit, runs="seed(s) or data draw(s)")


def validated_pm(results: dict[str, Any], pm: str, test: str) -> C.Premise:
    return C.validated_on(f"{pm} PM on its own {test} test set", matrix(results, pm, test) / 100, least=1,
                          rules=rules(results, test))


def specialisation(results: dict[str, Any], own: str) -> C.Claim:
    """H1: on ``own`` test pairs, the PM trained on ``own`` beats the PM trained on the other set. Both PMs must have
    learned their own data (each beats the strongest trivial rule on its own test set): a PM that learned nothing is
    near chance everywhere, so its loss off its own data would show no specialisation."""
    other = "harmless" if own == "helpful" else "helpful"
    cid = "H1a" if own == "harmless" else "H1b"
    test = C.superiority(matrix(results, other, own), matrix(results, own, own))
    value = (f"on {own} pairs: {own}-trained {_acc(matrix(results, own, own))} vs {other}-trained "
             f"{_acc(matrix(results, other, own))}; {_describe(test)}")
    return C.claim(cid, PAPER, f"a PM trained on {other} data is worse on {own} pairs than one trained on {own} data",
                   f"{other}-only PMs near or below chance on {own} comparisons", test, our_value=value,
                   premises=[validated_pm(results, own, own), validated_pm(results, other, other)], min_effect=5.0,
                   min_effect_reason="Bai et al.'s specialised PMs differ by 10-20 points off their own data; a "
                                     "quarter of that", unit="pts of accuracy")


def mixed_non_inferior(results: dict[str, Any], test_set: str) -> C.Claim:
    """H2: the mixed PM is within ``h2_margin`` of the specialist on its own set."""
    cid = "H2a" if test_set == "harmless" else "H2b"
    margin = 100 * results["params"]["h2_margin"]
    test = C.non_inferiority(matrix(results, test_set, test_set), matrix(results, "mixed", test_set), margin,
                          scale=100.0)
    value = (f"on {test_set} pairs: mixed {_acc(matrix(results, 'mixed', test_set))} vs {test_set}-only "
             f"{_acc(matrix(results, test_set, test_set))} (margin {margin:.0f} pts); {_describe(test)}")
    return C.claim(cid, PAPER,
                   f"the mixed PM is within {margin:.0f} points of the {test_set}-only PM on {test_set} pairs",
                   "a PM trained on both does well on both", test, our_value=value,
                   premises=[validated_pm(results, test_set, test_set)], min_effect=0.0,
                   min_effect_reason="non-inferiority: the margin itself is the paper's 'does well'",
                   unit="pts (margin)")


def _split_pm_validated(results: dict[str, Any], which: str) -> C.Premise:
    """The train or test PM (disjoint halves of the helpful data) beats chance on held-out helpful pairs."""
    x = np.array(data(results)["train_test_pm"][f"{which}_outcomes"]["helpful"], dtype=float)
    if not len(x):
        return C.Premise(f"{which} PM validated on helpful pairs", False, "no held-out helpful pairs")
    return C.validated_on(f"{which} PM on held-out helpful pairs", x, least=1, rules=rules(results, "helpful"))


def moved(results: dict[str, Any], tuned: list[dict[str, Any]], raw: dict[str, Any]) -> C.Premise:
    """The trained policies moved away from the raw model on the held-out gold they were trained towards."""
    return C.moved("the trained policy", np.array(raw["gold"]), np.stack([e["gold"] for e in tuned]))


def train_pm_validated(results: dict[str, Any]) -> C.Premise:
    return _split_pm_validated(results, "train")


def bon_pm_validated(results: dict[str, Any], which: str) -> C.Premise:
    """The best-of-n train or test PM ranks the held-out pairs of the prompts it scores (pairs of two replies that
    ended on their own; a prompt's pairs are one cluster, each fold draw a row) better than chance and than preferring
    the longer or the shorter reply: a PM that is a length rule would make best-of-n a length rule."""
    v = bon(results)["validation"]
    keep = np.asarray(v["finished"], dtype=bool)
    outcomes = np.asarray(v[which], dtype=float)[:, keep]
    return C.validated_on(f"best-of-n {which} PM on held-out pairs of finished replies", outcomes, least=10,
                          rules=C.trivial_rules(np.asarray(v["longer"], dtype=float)[keep]),
                          clusters=np.asarray(v["prompt"])[keep])


def _test_level(b: dict[str, Any]) -> int:
    return b["n"].index(b["test_n"])


def bon_beats_length(results: dict[str, Any]) -> C.Premise:
    """H3b's premise: the PM's best-of-n pick is more than a length rule's by the held-out test PM: at the tested n,
    the pick's test-PM reward beats that of the picks of "prefer the shorter reply" and of "prefer the longer reply",
    prompt by prompt, both rules beaten (:func:`rlhf_nb.evidence.claims.beats_trivial`; the length rules' rewards
    averaged over the fold draws). A test PM may reward shortness as the gold does on these prompts. Added after the
    confirmation run (seed 1), by a referee (it can only remove a verdict). H3a, judged by the gold, makes the same
    comparison part of its test (:func:`bon_gold`)."""
    b = bon(results)
    i = _test_level(b)
    picks = np.array(b["test_pm"])[:, i]
    rules = {f"the {side} reply's pick": np.asarray(b[f"test_pm_{side}"], dtype=float).reshape(
        -1, len(b["n"]), picks.shape[-1]).mean(0)[i] for side in ("shorter", "longer")}
    test, rule = C.beats_trivial(picks, rules)
    return C.Premise(f"best-of-{b['n'][i]} by the train PM more than a length rule, by the test pm",
                     test.ci[0] > 0,
                     f"its pick {picks.mean():.2f} vs {test.detail['rule_rate']:.2f} for the stronger length rule "
                     f"({rule}): {test.effect:+.2f} sd [{test.ci[0]:+.3f}, {test.ci[1]:+.2f}] on {test.n} prompts")


def _per_n(values: np.ndarray, ns: list[int], fmt: str) -> str:
    """'n=1 x -> n=2 y -> ...' of (draws, levels, prompts) or (levels, prompts) values, averaged."""
    means = values.reshape(-1, values.shape[-2], values.shape[-1]).mean(axis=(0, 2))
    return " -> ".join(f"{n}: {fmt.format(v)}" for n, v in zip(ns, means))


GOLD_MIN_EFFECT = 2.0  # points of gold score: H3a's and H3c/H3d's minimum effect, and H3a's length check's
RAW_PICK = "the raw model's one sample"


def _length_explains(test: C.Test, raw: str, min_effect: float) -> C.Premise:
    """H3a's test (``beats_trivial`` over the raw model's sample ``raw`` and the length rules' picks) asks the PM's
    pick to beat them all; where it beats the raw model by the minimum effect but the data exclude it beating a
    length rule's pick by as much, the gain is a length rule's, and "not reproduced" would misread the paper's claim
    (RLHF beats the raw model): not tested. Both tops are the test's own, at its Bonferroni level over the picks."""
    per_rule = test.detail["rule_tests"]
    rule = min((name for name in per_rule if name != raw), key=lambda name: per_rule[name][2])
    (length_effect, length_low, length_top), (raw_effect, raw_low, raw_top) = per_rule[rule], per_rule[raw]
    explained = length_top < min_effect <= raw_top
    return C.Premise("a length rule's pick does not explain the gain", not explained,
                     f"the PM's pick over {rule} {length_effect:+.1f} pts [{length_low:+.1f}, {length_top:+.1f}], "
                     f"over the raw model's sample {raw_effect:+.1f} [{raw_low:+.1f}, {raw_top:+.1f}] (fails when "
                     f"the first excludes the minimum effect, {min_effect:g}, and the second does not)")


def bon_gold(results: dict[str, Any]) -> C.Claim:
    """H3a: best-of-n against the train PM beats a single sample *and the picks of the length rules*, judged by the
    gold, at the n fixed in advance; the fold draws are the seeds (each refits every PM on other prompts).

    The PM is a learned scorer, so its pick is compared with the strongest trivial pick on the same prompts
    (:func:`rlhf_nb.evidence.claims.beats_trivial` over the raw model's one sample and the shorter and the longer
    reply's picks): on these prompts shorter replies follow more instructions, so a length rule alone raises the gold.
    Until a referee's review of 508b92e's run the claim compared the pick with the raw model only and gated the length
    rules as a premise at their interval's bottom (+2.25 [+0.016, +4.84]: a pass that other bootstrap seeds turned
    into a fail); as a test the same gain must also reach the minimum effect under Holm."""
    b = bon(results)
    i = _test_level(b)
    g = 100 * np.array(b["gold"])  # (draws, levels, prompts)
    rule_picks = {RAW_PICK: g[:, 0].mean(0),
                  **{f"the {side} reply's pick": 100 * np.asarray(b[f"gold_{side}"], dtype=float)[i]
                     for side in ("shorter", "longer")}}
    test, rule = C.beats_trivial(g[:, i], rule_picks)
    premises = [_length_explains(test, RAW_PICK, GOLD_MIN_EFFECT)]
    finished = [x for x in b["gold_finished"] if x is not None]
    start, shorter, oracle = g[:, 0].mean(), 100 * np.mean(b["gold_shorter"][i]), 100 * np.mean(b["gold_oracle"][i])
    value = (f"gold by n: {_per_n(g, b['n'], '{:.1f}')} pts; at best of {b['n'][i]} (KL {b['kl'][i]:.2f} nats) "
             f"preferring the shorter reply gains {shorter - start:+.1f} and the PM {g[:, i].mean() - shorter:+.1f} "
             f"beyond it, {100 * (g[:, i].mean() - start) / max(oracle - start, 1e-9):.0f}% of the "
             f"{oracle - start:.1f} the gold's own pick gains (the longer reply's pick "
             f"{100 * np.mean(b['gold_longer'][i]):.1f}, a random finished reply {100 * np.mean(finished):.1f}); "
             f"the PM's pick {g[:, i].mean():.1f} vs {test.detail['rule_rate']:.1f} for the strongest trivial pick "
             f"({rule}): {C.describe(test, 'pts', runs='fold draw(s)')}")
    cut = [float(np.mean([d[0] for d in b["pick_cut_off"]])), float(np.mean([d[i] for d in b["pick_cut_off"]]))]
    return C.claim("H3a", PAPER, f"RLHF against a PM (best-of-{b['n'][i]}; the PM fitted on other prompts' gold-labelled "
                   "pairs) beats the raw model and the picks of a length rule, judged by the gold",
                   "RLHF policies preferred to the raw model", test, our_value=value,
                   premises=[*premises, C.caps_alike(f"raw samples and best-of-{b['n'][i]} picks", cut)],
                   units="prompts",
                   min_effect=GOLD_MIN_EFFECT,
                   min_effect_reason="ours, not the paper's (it reports no gold points): 2 points of "
                                     "instructions followed", unit="pts of gold score")


def bon_test_pm(results: dict[str, Any]) -> C.Claim:
    """H3b: the same picks, scored by the held-out test PM (Bai et al.'s evaluation), in test-PM within-prompt
    standard deviations."""
    b = bon(results)
    i = _test_level(b)
    t = np.array(b["test_pm"])
    test = C.superiority(t[:, 0], t[:, i])
    value = (f"test-PM reward by n: {_per_n(t, b['n'], '{:+.2f}')} sd (best of {b['n'][i]}; the shorter reply's pick "
             f"{np.mean(np.array(b['test_pm_shorter'])[:, i]):+.2f}, the longer's "
             f"{np.mean(np.array(b['test_pm_longer'])[:, i]):+.2f}); {C.describe(test, 'sd', runs='fold draw(s)')}")
    return C.claim("H3b", PAPER, f"best-of-{b['n'][i]} against the train PM also raises the held-out test PM's reward",
                   "test PM rises with train-PM optimisation (small KL)", test, our_value=value,
                   premises=[bon_beats_length(results), bon_pm_validated(results, "test")],
                   min_effect=0.1,
                   min_effect_reason="ours: a tenth of the test PM's spread over a prompt's replies",
                   unit="test-PM sd")


def trained_arm(results: dict[str, Any], arm: str, cid: str) -> C.Claim:
    """H3c/H3d: a policy trained against the train PM beats the raw model's greedy replies, judged by the gold."""
    evals = data(results)["policies"]
    raw = next((e for e in evals if e["arm"] == "raw"), None)
    tuned = [e for e in evals if e["arm"] == arm]
    statement = f"the {arm.upper()} policy trained against the PM beats the raw model, judged by the gold"
    common = dict(min_effect=GOLD_MIN_EFFECT, min_effect_reason="2 points of instructions followed",
                  unit="pts of gold score")
    if raw is None or not tuned:
        return C.claim(cid, PAPER, statement, "RLHF policies preferred to the raw model", None,
                       our_value=f"no {arm} arm in this profile", **common)
    a, b = 100 * np.array(raw["gold"]), 100 * np.stack([e["gold"] for e in tuned])
    test = C.superiority(a, b)
    finished = [f for e in [raw, *tuned] for f in e["finished"]]
    value = f"gold {a.mean():.1f} (raw, greedy) vs {b.mean():.1f} pts ({arm}); {_describe(test)}"
    return C.claim(cid, PAPER, statement, "RLHF policies preferred to the raw model", test, our_value=value,
                   premises=[train_pm_validated(results), moved(results, tuned, raw),
                             C.not_capped("held-out", 1 - np.mean(finished)),
                             C.one_precision("raw and trained replies", [raw, *tuned])], **common)


def reward_vs_sqrt_kl(results: dict[str, Any]) -> C.Claim:
    """H4: the PM reward of an RL policy grows linearly in sqrt(KL). Best-of-n cannot test it: its reward against
    sqrt(KL) is the order statistics of the PM's score distribution, near-linear for any roughly normal score whatever
    the PM learned (curvature +0.02 for a normal score over n = 1..16), so the claim needs a policy trained by RL; the
    best-of-n curve's curvature is reported for what it is."""
    b = bon(results)
    curves = np.array(b["train_pm"]).mean(0).T  # (prompts, levels), the fold draws averaged
    bend = C.curvature(np.sqrt(b["kl"]), curves.mean(0))
    value = (f"best-of-n (not RL) for n = {b['n']}: train-PM reward " + ", ".join(f"{v:+.2f}" for v in curves.mean(0))
             + " sd at sqrt(KL) = " + ", ".join(f"{np.sqrt(k):.2f}" for k in b["kl"])
             + f" (the slope changes by {100 * bend:+.0f}% from the lower to the upper half)")
    return C.claim("H4", PAPER, "the PM reward of RL grows roughly linearly in sqrt(KL(policy || initial))",
                   "reward roughly linear in sqrt(KL)", None, our_value=value, min_effect=0.0,
                   min_effect_reason="'roughly linear' read as a slope that changes by less than 25% across the "
                                     "measured KL range (claims.linearity)",
                   unit="tolerance - |curvature|", kind="linearity",
                   premises=[C.Premise("an RL policy's reward-KL trajectory", False,
                                       "only best-of-n here, whose reward vs sqrt(KL) is fixed by the score "
                                       "distribution's order statistics (normal: curvature +0.02), not by optimisation")])


def alignment_tax(results: dict[str, Any]) -> C.Claim:
    """H5: RLHF training does not lower HumanEval pass@1 by more than 5 points (non-inferiority)."""
    evals = data(results)["policies"]
    raw = next((e for e in evals if e["arm"] == "raw"), None)
    tuned = [e for e in evals if e["arm"] != "raw" and e.get("humaneval") is not None]
    statement = "HH training does not cost coding skill: HumanEval pass@1 within 5 points of the raw model"
    common = dict(min_effect=0.0, min_effect_reason="non-inferiority: the 5-point margin is the claim",
                  unit="pts (margin)")
    if raw is None or raw.get("humaneval") is None:
        return C.claim("H5", PAPER, statement, "no cost for larger models", None, our_value="no HumanEval evaluation",
                       kind="non-inferiority", **common)
    base = 100 * np.array(raw["humaneval"])
    floor = C.off_floor_and_ceiling("raw model on HumanEval", base.mean() / 100, len(base))
    if not tuned:
        return C.claim("H5", PAPER, statement, "no cost for larger models", None,
                       our_value=f"raw pass@1 {base.mean():.1f}% on {len(base)} tasks; trained policies not scored "
                                 "(nothing to lose at the floor)" if not floor.holds else "no trained policy scored",
                       premises=[floor], kind="non-inferiority", **common)
    test = C.non_inferiority(base, 100 * np.stack([e["humaneval"] for e in tuned]), 5.0, scale=100.0)
    # a policy that talks longer loses tasks to the token cap; the comparison is about skill only if both arms
    # were cut off about equally often (a run that did not record it fails the premise)
    cut = [raw.get("humaneval_cut_off"), _mean_or_none([e.get("humaneval_cut_off") for e in tuned])]
    caps = C.caps_alike("raw and trained HumanEval replies", cut)
    cut_text = (f"; cut off at the cap: raw {100 * cut[0]:.0f}%, trained {100 * cut[1]:.0f}%" if None not in cut
                else "")
    value = (f"raw {base.mean():.1f}% vs trained {np.mean([np.mean(e['humaneval']) for e in tuned]) * 100:.1f}%; "
             f"{_describe(test)}{cut_text}")
    return C.claim("H5", PAPER, statement, "no cost for larger models", test, our_value=value,
                   premises=[floor, moved(results, tuned, raw), caps,
                             C.one_precision("raw and trained replies", [raw, *tuned])], **common)


def _mean_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known and len(known) == len(values) else None


def data_trend(results: dict[str, Any]) -> C.Claim:
    """H6: mixed PM accuracy rises log-linearly with training data (trend over every size, both test sets pooled)."""
    rows = data(results)["pm_data_size"]
    sizes = sorted({r["train_pairs"] for r in rows})
    statement = "PM accuracy rises with the amount of preference data (log-linear)"
    common = dict(min_effect=1.0, min_effect_reason="1 point per doubling; Bai et al.'s curves rise several",
                  unit="pts of accuracy per doubling")
    if len(sizes) < 3:
        return C.claim("H6", PAPER, statement, "log-linear in data", None, our_value=f"{len(sizes)} sizes",
                       kind="trend", **common)
    # at each size the fits are random subsets of a pool several times larger: near-independent draws of training
    # data, so they count as seeds (their spread is what another draw of data would do to the curve)
    arms = [100 * np.concatenate([np.asarray(r["outcomes"], dtype=float) for r in rows if r["train_pairs"] == s],
                                 axis=1)
            for s in sizes]
    test = C.trend(np.log2(sizes), arms)
    value = (" -> ".join(f"{s}: {a.mean():.1f}%" for s, a in zip(sizes, arms))
             + f"; slope {_describe(test, 'pts/doubling')}")
    # a PM that only learns to prefer the shorter reply better with more data would also 'rise': at the largest size
    # the PM must beat the strongest trivial rule on the same pairs
    largest = [r for r in rows if r["train_pairs"] == sizes[-1]]
    outcomes = np.concatenate([np.asarray(r["outcomes"], dtype=float) for r in largest], axis=1)
    lengths = [rules(results, r["test"]).get(C.LONGER) for r in largest]
    longer = None if any(x is None for x in lengths) else np.concatenate(lengths)
    premise = C.validated_on(f"mixed PM at {sizes[-1]} pairs", outcomes, least=1, rules=C.trivial_rules(longer))
    return C.claim("H6", PAPER, statement, "log-linear in data", test, our_value=value, premises=[premise], **common)


def size_trend(results: dict[str, Any]) -> C.Claim:
    """H7: PM accuracy rises with backbone size (a trend over the sizes of one family)."""
    rows = data(results).get("pm_model_size", [])
    statement = "PM accuracy rises with model size"
    common = dict(min_effect=1.0, min_effect_reason="1 point per doubling of parameters", unit="pts per doubling")
    if len(rows) < 3:
        return C.claim("H7", PAPER, statement, "log-linear in size", None,
                       our_value=", ".join(f"{r['backbone']} ({r['params'] / 1e6:.0f}M)" for r in rows),
                       premises=[C.Premise("three or more backbone sizes", False, f"{len(rows)} backbone(s) here")],
                       kind="trend", **common)
    rows = sorted(rows, key=lambda r: r["params"])
    arms = [100 * np.concatenate([np.array(r[t], dtype=float) for t in SETS]) for r in rows]
    test = C.trend(np.log2([r["params"] for r in rows]), arms)
    value = " -> ".join(f"{r['params'] / 1e6:.0f}M: {a.mean():.1f}%" for r, a in zip(rows, arms))
    return C.claim("H7", PAPER, statement, "log-linear in size", test, our_value=value + f"; {_describe(test)}",
                   **common)


def claims(results: dict[str, Any]) -> list[C.Claim]:
    out = [specialisation(results, "harmless"), specialisation(results, "helpful"),
           mixed_non_inferior(results, "harmless"), mixed_non_inferior(results, "helpful"),
           bon_gold(results), bon_test_pm(results), trained_arm(results, "dpo", "H3c"),
           trained_arm(results, "ppo", "H3d"), reward_vs_sqrt_kl(results), alignment_tax(results),
           data_trend(results), size_trend(results)]
    return C.finalize(out)
