"""Claims of ``notebooks/03_data_scaling_rlhf.ipynb``, computed from ``results.json`` alone.

The measures they test (within-item AUCs and spreads, close items, the hacking index, held-out gold by arm) are
read from the results in ``readers.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlhf_nb.evidence import claims as C
from rlhf_nb.papers.data_scaling.readers import (
    ARM_NAMES,
    BON_REWARDS,
    REWARD_NAMES,
    arm_gold,
    bon_records,
    close_rows,
    entropy_curve,
    hacking_gaps,
    hacking_index,
    hacking_runs,
    item_rows,
    judged,
    open_gold_premises,
    prepo_data,
    records,
)

PAPER = "Shen et al. 2025"


def trivial_rules(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per item, the AUC of the cheap rankers a sceptic would try first: chance (50), the longer response first, the
    shorter first (100 minus the longer's: ties count half either way)."""
    longer = np.array([r["auc_longer"] for r in rows], dtype=float)
    return {C.CHANCE: 50.0, C.LONGER.replace("reply", "response"): longer,
            C.SHORTER.replace("reply", "response"): 100.0 - longer}


def _common(results: dict[str, Any]) -> dict[str, Any]:
    return dict(min_effect=float(results["params"]["min_effect"]), unit="AUC pts",
                min_effect_reason="the least gain in ranking right above wrong worth a reward design (a parameter)")


def _policy_off_floor(results: dict[str, Any]) -> C.Premise:
    gold = [g for r in records(results) for g in r["gold"]]
    return C.off_floor_and_ceiling("policy's responses (share right)", float(np.mean(gold)) if gold else 0.0,
                                   len(gold))


def _enough(n: int, which: str, least: int = 10, units: str = "items") -> C.Premise:
    name = f"enough {which + ' ' if which else ''}items with right and wrong responses"
    return C.Premise(name, n >= least, f"{n} {units} (need {least})")


def _auc_claim(results: dict[str, Any], cid: str, statement: str, paper: str, close_only: bool,
               against_chance: bool) -> C.Claim:
    """GenRM with GT's within-prompt AUC against GenRM without GT's (or against the strongest trivial rule), paired
    over items; close items (sampled and built) are resampled by the prompt they share."""
    which = "close code" if close_only else ""
    rows = ([r for r in close_rows(results) if r["mixed"] and r["domain"] == "code"] if close_only
            else [r for r in item_rows(results) if r["mixed"]])
    if against_chance:  # a math reference states the checker's final answer: matching it is the gold itself
        which, rows = "code", [r for r in rows if r["domain"] != "math"]
    if len(rows) < 2:
        return C.claim(cid, PAPER, statement, paper, None, our_value=f"{len(rows)} {which} mixed items",
                       premises=[_enough(len(rows), which)], **_common(results))
    b = [r["auc_genrm_gt"] for r in rows]
    clusters = [r["cluster"] for r in rows] if close_only else None
    if against_chance:
        test, rule = C.beats_trivial(b, trivial_rules(rows))
        other, a_mean = f"the strongest trivial rule ({rule})", test.detail["rule_rate"]
    else:
        test, other = C.superiority([r["auc_genrm"] for r in rows], b, clusters=clusters), "without GT"
        a_mean = test.detail["mean_a"]
    b_mean = test.detail["mean_b"] if "mean_b" in test.detail else test.detail["rate"]
    value = (f"AUC with GT {b_mean:.1f} vs {other} {a_mean:.1f} pts{' (means over prompts)' if close_only else ''}; "
             f"{C.describe(test, 'pts', digits=2, runs='sampling run(s)')}")
    if close_only:
        value += f" ({_sources(rows)}; {_by_source(rows, 'auc', 'pts')})"
    # close items share prompts (built pairs several a prompt): count what the test resamples
    premises = [_enough(len({r["cluster"] for r in rows}), which, units="prompts") if close_only
                else _enough(len(rows), which), _policy_off_floor(results)]
    if not against_chance:  # comparing two judges says something about GT only if the one with GT works at all
        premises.append(_gt_works(rows, f"the close code items ({_sources(rows)})"))
    return C.claim(cid, PAPER, statement, paper, test, our_value=value, premises=premises,
                   units="prompts" if close_only else "items", **_common(results))


def _by_source(rows: list[dict[str, Any]], metric: str, unit: str) -> str:
    """The same comparison on the sampled and on the built close items alone (each resampled by prompt)."""
    parts = []
    for source in ("sampled", "constructed"):
        mine = [r for r in rows if r["source"] == source]
        if len(mine) >= 2:
            t = C.superiority([r[f"{metric}_genrm"] for r in mine], [r[f"{metric}_genrm_gt"] for r in mine],
                              clusters=[r["cluster"] for r in mine])
            parts.append(f"{'built pairs' if source == 'constructed' else 'sampled'} alone {t.effect:+.2f} "
                         f"[{t.ci[0]:+.2f}, {t.ci[1]:+.2f}] {unit}")
    return "; ".join(parts)


def _sources(rows: list[dict[str, Any]]) -> str:
    built = sum(r["source"] == "constructed" for r in rows)
    return (f"{len(rows) - built} sampled close items and {built} pairs built by a one-token edit, over "
            f"{len({r['cluster'] for r in rows})} prompts")


def _gt_works(rows: list[dict[str, Any]], where: str) -> C.Premise:
    """The reference-guided GenRM ranks right above wrong better than the strongest trivial rule on the mixed items a
    claim reads (the bottom of the 95% interval above 0, resampled by prompt): a claim about what GT adds, or about
    how a GenRM with GT behaves under selection, presupposes a GenRM with GT that works on those items."""
    rows = [r for r in rows if r["mixed"]]
    name = f"GenRM with GT beats the strongest trivial rule on {where}"
    if len(rows) < 2:
        return C.Premise(name, False, f"{len(rows)} mixed items")
    clusters = [r.get("cluster", f"{r['domain']}/{r['id']}") for r in rows]
    test, rule = C.beats_trivial([r["auc_genrm_gt"] for r in rows], trivial_rules(rows), clusters=clusters)
    return C.Premise(name, test.ci[0] > 0,
                     f"AUC {test.detail['rate']:.1f} vs {test.detail['rule_rate']:.1f} for {rule}: "
                     f"{test.effect:+.1f} [{test.ci[0]:+.1f}, {test.ci[1]:+.1f}] pts on {len(rows)} mixed items"
                     f" ({len(set(clusters))} prompts)")


def gt_separates_close(results: dict[str, Any]) -> C.Claim:
    return _auc_claim(results, "D1", "on close code items (sampled responses with a small max edit distance, and right "
                      "programs beside a one-token mutant the tests reject), GenRM with ground truth ranks right "
                      "responses above wrong ones more often than GenRM without",
                      "Figs. 10-11: GenRM with GT is more sensitive to fine-grained differences", True, False)


def gt_beats_chance(results: dict[str, Any]) -> C.Claim:
    return _auc_claim(results, "D2", "GenRM with ground truth ranks right responses above wrong ones better than "
                      "the strongest trivial rule (chance, longer or shorter first) on code items, where the reference "
                      "does not state the checker's answer",
                      "GenRM with GT is the reward for prompts without a verifier (Sec. 3)",
                      False, True)


def gt_spreads_close(results: dict[str, Any]) -> C.Claim:
    statement = ("on close code items (sampled and built by a one-token mutation), GenRM with ground truth spreads the "
                 "responses' rewards further apart than without")
    paper = "Fig. 11: larger score differences at small edit distances with GT"
    rows = [r for r in close_rows(results) if r["domain"] == "code"]
    common = dict(min_effect=float(results["params"]["min_spread"]), unit="SD",
                  min_effect_reason="the least gain in within-prompt spread worth a reward design (a parameter)")
    if len(rows) < 2:
        return C.claim("D3", PAPER, statement, paper, None, our_value=f"{len(rows)} close items",
                       premises=[_enough(len(rows), "close")], **common)
    a, b = [r["spread_genrm"] for r in rows], [r["spread_genrm_gt"] for r in rows]
    test = C.superiority(a, b, clusters=[r["cluster"] for r in rows])
    value = (f"spread with GT {test.detail['mean_b']:.2f} vs without {test.detail['mean_a']:.2f} SD (means over "
             f"prompts); {C.describe(test, 'SD', digits=2, runs='sampling run(s)')} ({_sources(rows)}; "
             f"{_by_source(rows, 'spread', 'SD')})")
    return C.claim("D3", PAPER, statement, paper, test, our_value=value,
                   premises=[C.Premise("enough close code items", len({r["cluster"] for r in rows}) >= 10,
                                       f"{len({r['cluster'] for r in rows})} prompts (need 10)"),
                             _gt_works(rows, f"the close code items ({_sources(rows)})")], units="prompts", **common)


# ----------------------------------------------------------------------------------------------
# part 2: reward hacking by reward type (Fig. 7)
# ----------------------------------------------------------------------------------------------


def _hacking_arm(results: dict[str, Any], reward: str) -> np.ndarray | None:
    runs = hacking_runs(results, reward)
    return np.stack([hacking_index(r) for r in runs]) if runs else None


def _proxy_rise(results: dict[str, Any], reward: str) -> C.Premise:
    """The arm's own reward rose on the held-out problems (else there was no optimisation to hack)."""
    rises = []
    for r in hacking_runs(results, reward):
        first, last = np.asarray(r["snapshots"][0]["proxy"]), np.asarray(r["snapshots"][-1]["proxy"])
        rises.append(float((last.mean() - first.mean()) / (first.std() or 1.0)))
    mean = float(np.mean(rises)) if rises else 0.0
    return C.Premise(f"training raised the {REWARD_NAMES[reward]} reward on held-out problems", mean > 0,
                     f"{mean:+.2f} SD from step 0 to the last step, mean of {len(rises)} runs")


def _start(results: dict[str, Any]) -> list[C.Premise]:
    runs = results["data"].get("hacking") or []
    first = runs[0]["snapshots"][0]
    cap = float(np.mean([not f for r in runs for s in r["snapshots"] for f in s["finished"]]))
    return [C.off_floor_and_ceiling("policy on the held-out problems at step 0", float(np.mean(first["gold"])),
                                    len(first["gold"])),
            C.not_capped("held-out", cap)]


def _genrm_validated(results: dict[str, Any]) -> C.Premise:
    """Part 1's math records (part 2 trains on math): how often the reference-guided judge ranks a right response
    above a wrong one."""
    outcomes = []
    for r in (r for r in judged(results) if r["domain"] == "math"):
        right = [s for s, g in zip(r["genrm_gt"], r["gold"]) if g > 0.5]
        wrong = [s for s, g in zip(r["genrm_gt"], r["gold"]) if g <= 0.5]
        outcomes += [1.0 if a > b else 0.5 if a == b else 0.0 for a in right for b in wrong]
    if not outcomes:
        return C.Premise("GenRM with GT validated", False,
                         "no right-vs-wrong math pairs in part 1")
    return C.validated_on("GenRM with GT (part 1's right-vs-wrong math pairs)", outcomes, least=1)


def _bt_validated(results: dict[str, Any]) -> C.Premise:
    bt = results["data"].get("bt_rm") or {}
    outcomes = bt.get("test_outcomes") or []
    if not outcomes:
        return C.Premise("BT RM validated", False, f"no held-out pairs ({bt.get('train_pairs', 0)} training pairs)")
    return C.validated_on("BT RM (held-out right-vs-wrong pairs)", outcomes, least=1)


def _bt_crossfit_validated(results: dict[str, Any]) -> C.Premise:
    """The cross-fitted BT RM scores the right response of a held-out item's pair higher than every trivial rule would
    (chance, the longer, the shorter response), resampled by item: the paper's BT RM is a working reward model."""
    bt = results["data"].get("bt_bestofn") or {}
    outcomes = bt.get("test_outcomes") or []
    if not outcomes:
        return C.Premise("BT RM validated", False, "no held-out right-vs-wrong pairs")
    return C.validated_on("BT RM (pairs of items it never saw)", outcomes, least=10,
                          rules=C.trivial_rules(bt["length_outcomes"]), clusters=bt["clusters"])


def _rtv_fallible(results: dict[str, Any]) -> C.Premise:
    """On code RTV runs HumanEval's base tests and the gold HumanEval+'s too: RTV can be fooled only on items with a
    response that passes the first and fails the second. Without enough of them RTV's index is 0 by construction."""
    items = bon_records(results, "code")
    fooled = sum(any(v > 0.5 >= g for v, g in zip(r["rtv"], r["gold"])) for r in items if r.get("rtv"))
    return C.Premise("RTV can be fooled (a response passes the base tests, not the gold)", fooled >= 5,
                     f"{fooled} of {len(items)} mixed code items (need 5)")


def _bon_claim(results: dict[str, Any], cid: str, less: str, more: str, statement: str, paper: str,
               domain: str | None = None) -> C.Claim:
    """Best-of-n at the largest n over part 1's samples: the hacking index of ``more`` against that of ``less``,
    paired over the mixed items (of ``domain``; gold pts)."""
    B = results["params"].get("bestofn") or {}
    common = dict(min_effect=float(B.get("min_effect", 5.0)), unit="gold pts",
                  min_effect_reason="the least difference in gold lost to a reward's pick worth choosing a reward for "
                                    "(a parameter)")
    gaps, items = hacking_gaps(results, domain), bon_records(results, domain)
    if less not in gaps or more not in gaps:
        missing = BON_REWARDS[less if less not in gaps else more]
        why = f"no {missing} scores on {len(items)} mixed judged {domain or ''} items"
        return C.claim(cid, PAPER, statement, paper, None, our_value=why,
                       premises=[C.Premise("measured", False, why)], **common)
    test = C.superiority(gaps[less], gaps[more])
    n = len(items[0]["gold"])
    where = f"{domain} " if domain else ""
    value = (f"hacking index at best-of-{n} (gold pts the pick falls below the gold's own, per {where}item "
             f"whose responses differ in gold) {BON_REWARDS[more]} {gaps[more].mean():.1f} vs {BON_REWARDS[less]} "
             f"{gaps[less].mean():.1f}")
    if domain is None:
        value += " (" + "; ".join(f"{d}: {g[more].mean():.1f} vs {g[less].mean():.1f}"
                                  for d in ("math", "code") if (g := hacking_gaps(results, d))) + ")"
    value += f"; {C.describe(test, 'pts', digits=2, runs='sampling run(s)')}"
    if test.effect < 0:
        value += f" (the direction opposite to the paper's: {BON_REWARDS[more]} loses less gold)"
    premises = [_enough(len(items), f"judged {domain or ''}".strip()), _policy_off_floor(results)]
    if "genrm_gt" in (less, more):
        sampled = [r for r in item_rows(results) if domain in (None, r["domain"])]
        premises.append(_gt_works(sampled, f"the sampled {domain or 'math and code'} items"))
    premises += [_bt_crossfit_validated(results)] if "bt" in (less, more) else []
    premises += [_rtv_fallible(results)] if "rtv" in (less, more) else []
    return C.claim(cid, PAPER, statement, paper, test, our_value=value, premises=premises, **common)


def rtv_hacks_least(results: dict[str, Any]) -> C.Claim:
    return _bon_claim(results, "K1", "rtv", "genrm_gt", "on code, best-of-n on GenRM with GT falls further below the "
                      "gold's own pick than best-of-n on the verifier (RTV: HumanEval's tests; the gold: HumanEval+'s "
                      "too), at the largest n (on math RTV is the gold, so it cannot fall at all)",
                      "Fig. 7: RTV most resistant to reward hacking", domain="code")


def genrm_hacks_less_than_bt(results: dict[str, Any]) -> C.Claim:
    return _bon_claim(results, "K2", "genrm_gt", "bt", "best-of-n on a BT RM falls further below the gold's own pick "
                      "than best-of-n on GenRM with GT, at the largest n, on the sampled math and code items (each "
                      "scored by a BT RM fitted on other items)",
                      "Fig. 7: GenRM with GT hacks less than BT")


def _grpo_hacking_claim(results: dict[str, Any], cid: str, less: str, more: str, statement: str,
                        paper: str) -> C.Claim:
    H = results["params"].get("hacking") or {}
    common = dict(min_effect=float(H.get("min_effect", 0.25)), unit="SD",
                  min_effect_reason="the least difference in drift from the gold worth choosing a reward for "
                                    "(a parameter)")
    a, b = _hacking_arm(results, less), _hacking_arm(results, more)
    if a is None or b is None:
        why = f"no {REWARD_NAMES[less if a is None else more]} runs"
        return C.claim(cid, PAPER, statement, paper, None, our_value=why, premises=[C.Premise("measured", False, why)],
                       **common)
    test = C.superiority(a, b)
    value = (f"hacking index {REWARD_NAMES[more]} {b.mean():+.2f} vs {REWARD_NAMES[less]} {a.mean():+.2f} SD; "
             f"{test.effect:+.2f} SD [{test.ci[0]:+.2f}, {test.ci[1]:+.2f}], p={test.p:.3g}, "
             f"n={test.n} held-out problems x {test.seeds} seeds")
    premises = [*_start(results), _proxy_rise(results, more)]
    premises += [_genrm_validated(results)] if "genrm_gt" in (less, more) else []
    premises += [_bt_validated(results)] if "bt" in (less, more) else []
    return C.claim(cid, PAPER, statement, paper, test, our_value=value, premises=premises, **common)


def grpo_hacking_claims(results: dict[str, Any]) -> list[C.Claim]:
    """K1 and K2 under GRPO (part 2 with training), where it runs (``hacking.steps`` > 0)."""
    if not (results["params"].get("hacking") or {}).get("steps"):
        return []
    return [_grpo_hacking_claim(results, "K1-rl", "rtv", "genrm_gt", "GRPO on GenRM with GT drifts further from the "
                                "gold on held-out problems than GRPO on the verifier (RTV)",
                                "Fig. 7: RTV most resistant to reward hacking"),
            _grpo_hacking_claim(results, "K2-rl", "genrm_gt", "bt", "GRPO on the BT RM drifts further from the gold on "
                                "held-out problems than GRPO on GenRM with GT", "Fig. 7: GenRM with GT hacks less than BT")]


def entropy_drop(run: dict[str, Any]) -> float:
    """The fitted fall of the samples' token entropy over the run (nats; > 0 means it fell)."""
    steps, values = entropy_curve(run)
    if len(steps) < 2 or np.ptp(steps) == 0:
        raise ValueError("an entropy trend needs at least two logged steps")
    return -float(np.polyfit(steps, values, 1)[0]) * float(steps[-1] - steps[0])


def entropy_falls(results: dict[str, Any]) -> C.Claim:
    statement = "the token entropy of the policy's samples falls during RL training (every reward, every seed)"
    paper = "Fig. 12: entropy declines over RLHF training (less diverse responses)"
    H = results["params"].get("hacking") or {}
    common = dict(min_effect=float(H.get("min_entropy_drop", 0.05)), unit="nats",
                  min_effect_reason="the least fall in per-token entropy over a run worth calling a loss of "
                                    "diversity (a parameter)")
    runs = [r for r in results["data"].get("hacking") or [] if len(entropy_curve(r)[0]) >= 2]
    if not runs:
        why = ("no RL in this profile (hacking.steps = 0): best-of-n leaves the policy as it is, and 05's online DPO "
               "rounds record their samples' entropy" if not H.get("steps") else "no entropy logged")
        return C.claim("E1", PAPER, statement, paper, None, our_value=why, premises=[C.Premise("measured", False, why)],
                       **common)
    drops = [entropy_drop(r) for r in runs]
    test = C.superiority([0.0] * len(drops), drops)
    start = np.mean([entropy_curve(r)[1][0] for r in runs])
    value = (f"entropy {start:.2f} nats/token at the first step; fitted fall over the run {test.effect:+.3f} nats "
             f"[{test.ci[0]:+.3f}, {test.ci[1]:+.3f}], p={test.p:.3g}, n={len(runs)} runs (rewards x seeds)")
    return C.claim("E1", PAPER, statement, paper, test, our_value=value, **common)


# ----------------------------------------------------------------------------------------------
# parts 3-4: which prompts, in which order (Figs. 2-4, 6, 8; Tables 1, 3)
# ----------------------------------------------------------------------------------------------


def _prepo_premises(results: dict[str, Any], arms: tuple[str, ...], domain: str | None) -> list[C.Premise]:
    start = arm_gold(results, "start", domain)
    runs = [r for r in prepo_data(results)["runs"] if r["arm"] in arms]
    cap = float(np.mean([not f for r in runs for f in r["finished"]])) if runs else 0.0
    return [C.off_floor_and_ceiling(f"start policy on held-out {domain or 'prompts'}", float(start.mean()) / 100,
                                    start.shape[1]),
            C.not_capped(f"held-out ({'/'.join(arms)})", cap)]


def _selection_premise(results: dict[str, Any]) -> C.Premise:
    """Pre-PPO's added prompts have a lower start-policy reward than the random arm's (else nothing was selected)."""
    data = prepo_data(results)
    z = {s["id"]: s["z"] for s in data["scores"]}
    picked = {a: [z[i] for i in data["arms"][a] if i in z] for a in ("prepo", "random")}
    if not picked["prepo"] or not picked["random"]:
        return C.Premise("Pre-PPO selected prompts", False, "no new prompts added")
    lo, hi = float(np.mean(picked["prepo"])), float(np.mean(picked["random"]))
    return C.Premise("Pre-PPO's prompts score lower than random ones", lo < hi,
                     f"mean z of the start policy's reward {lo:+.2f} (Pre-PPO) vs {hi:+.2f} (random)")


def _prepo_claim(results: dict[str, Any], cid: str, a: str, b: str, statement: str, paper: str,
                 domain: str | None = None, equivalence: bool = False) -> C.Claim:
    S = results["params"].get("prepo") or {}
    margin = float(S.get("margin", 3.0))
    common = dict(min_effect=0.0 if equivalence else float(S.get("min_effect", 3.0)), unit="pts",
                  min_effect_reason=(f"equivalence margin {margin:g} pts (a parameter)" if equivalence else
                                     "the least gain in held-out gold worth a data recipe (a parameter)"))
    kind = "equivalence" if equivalence else "superiority"
    A, B = arm_gold(results, a, domain), arm_gold(results, b, domain)
    if A is None or B is None:
        why = ("parts 3-4 are not run in this profile (prepo.steps = 0)" if not S.get("steps")
               else f"no {a if A is None else b} runs{' on ' + domain if domain else ''}")
        return C.claim(cid, PAPER, statement, paper, None, our_value=why, premises=[C.Premise("measured", False, why)],
                       kind=kind, **common)
    test = C.equivalence(A, B, margin, scale=100.0) if equivalence else C.superiority(A, B)
    where = f"held-out {domain}" if domain else "all held-out prompts"
    value = (f"{where}: {ARM_NAMES[b]} {B.mean():.1f} vs {ARM_NAMES[a]} {A.mean():.1f} pts gold; "
             + (f"difference {B.mean() - A.mean():+.1f} (margin {margin:g}); " if equivalence else "")
             + f"effect {test.effect:+.1f} [{test.ci[0]:+.1f}, {test.ci[1]:+.1f}], p={test.p:.3g}, "
             f"n={test.n} x {test.seeds} seeds")
    premises = _prepo_premises(results, (a, b), domain) + open_gold_premises(results, domain)
    if "prepo" in (a, b) and "random" in (a, b):
        premises.append(_selection_premise(results))
    return C.claim(cid, PAPER, statement, paper, test, our_value=value, premises=premises, **common)


def prepo_claims(results: dict[str, Any]) -> list[C.Claim]:
    out = [
        _prepo_claim(results, "P1", "base", "all", "adding every new prompt leaves the held-out gold within the margin "
                     "of training on the base prompts alone (same steps)", "Fig. 2: more prompts alone do not help",
                     equivalence=True),
        _prepo_claim(results, "P2", "random", "prepo", "adding the new prompts with the lowest start-policy reward "
                     "(Pre-PPO) beats adding as many random ones", "Table 3: Pre-PPO beats random selection"),
        _prepo_claim(results, "M1", "prepo", "early", "with the same prompts, putting math and code first raises the "
                     "held-out gold", "Figs. 4, 6: math and code first helps"),
    ]
    domains = (results["params"].get("prepo") or {}).get("domains") or []
    for d in domains:
        out.append(_prepo_claim(results, f"T1-{d}", "base", "early", f"Pre-PPO + math and code first beats the "
                                f"baseline on held-out {d} prompts", "Table 1: gains in every domain", domain=d))
    return out


def claims(results: dict[str, Any]) -> list[C.Claim]:
    return C.finalize([gt_separates_close(results), gt_beats_chance(results), gt_spreads_close(results),
                       rtv_hacks_least(results), genrm_hacks_less_than_bt(results), *grpo_hacking_claims(results),
                       entropy_falls(results),
                       *prepo_claims(results)])
