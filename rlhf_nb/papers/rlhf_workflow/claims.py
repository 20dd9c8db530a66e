"""Claims of ``notebooks/05_online_iterative_dpo.ipynb``, computed from ``results.json`` alone.

The gold score of a reply is the fraction of its prompt's verifiable instructions it follows (0-1); effects on
it are reported in points (x100). Every arm is judged on its greedy replies under the same token cap, so a gold
comparison asks that the compared arms are truncated about equally often (a gap in the gold score should not be a
gap in truncation); a cut-off reply is scored as it stands. The length trend (W4) counts a cut-off reply at the cap
(a censored length, which can hide growth but not invent it) and asks that most replies finish, so that the
median length is seen. Policies trained here contribute one row per seed; the start snapshot is one.

W2 and W3 are about the training algorithm. W4 (replies lengthen) is about a reward model's length bias: its premise
:func:`_length_neutral` asks that the labeller does not favour short replies, measured on the run's own online pairs
where it counted their lengths (older runs: not under the gold, whose caps favour short replies).

With ``labeller: gold`` the gold picks each pair (the preference oracle) and the held-out gold judges the policies on
prompts no arm trained on; with ``labeller: rm`` the BT reward model picks them and its validation on held-out
gold-labelled pairs is a premise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlhf_nb.evidence import claims as C
from rlhf_nb.evidence import stats
from rlhf_nb.papers.rlhf_workflow.readers import (
    cap_rate,
    design_cost,
    histories,
    labeller,
    labeller_words,
    rm_rows,
    snapshots,
    stack,
)

PAPER = "RLHF Workflow (Xiong, Dong et al. 2024)"
NUMBERS = {"bt_rewardbench": 83.6, "pairwise_rewardbench": 85.7, "lc_alpacaeval2": 31.3, "lc_alpacaeval2_sft": 12.7}


def _rm(results: dict[str, Any], model: str, source: str) -> dict[str, Any] | None:
    return next((r for r in rm_rows(results) if r["model"] == model and r["source"] == source), None)


def rm_validated(results: dict[str, Any]) -> C.Premise:
    """The BT RM that ranks the online samples beats the strongest trivial rule (chance, the longer or the shorter
    reply) on held-out gold-labelled pairs (one pair per prompt: best vs worst of its samples)."""
    row = _rm(results, "BT", "if-gold")
    if row is None:
        return C.Premise("BT reward model (if-gold pairs) validated", False, "no held-out gold-labelled pairs")
    return C.validated_on("BT reward model (if-gold pairs)", row["outcomes"], least=1,
                          rules=C.trivial_rules(row.get("length_baseline")))


def policies_moved(results: dict[str, Any], on: list[dict[str, Any]], off: list[dict[str, Any]]) -> list[C.Premise]:
    """Each trained arm moved away from the start on the held-out gold it was trained towards (:func:`C.moved`)."""
    start = stack(snapshots(results, "start"), "gold")
    return [C.moved(name, start, stack(snaps, "gold")) for name, snaps in (("online DPO policy", on),
                                                                          ("offline DPO policy", off)) if snaps]


def labeller_premises(results: dict[str, Any]) -> list[C.Premise]:
    """What a claim about the DPO arms needs of its labeller: nothing of the gold (it is the oracle the held-out
    evaluation also uses); of the BT reward model, that it beats the trivial rules on held-out gold-labelled pairs
    and that online DPO raised it."""
    return [rm_validated(results), proxy_rose(results)] if labeller(results) == "rm" else []


def proxy_rose(results: dict[str, Any]) -> C.Premise:
    """Online DPO raised the reward it optimised (the BT RM) on the held-out prompts by the last round; if it did not,
    the loop optimised nothing, and a flat gold says nothing about online DPO."""
    start = stack(snapshots(results, "start"), "proxy")
    last = snapshots(results, "online", results["params"]["iterations"])
    if not last:
        return C.Premise("online DPO raised its BT reward on held-out prompts", False, "no last-round snapshots")
    rise = float((stack(last, "proxy").mean() - start.mean()) / (start.std() or 1.0))
    return C.Premise("online DPO raised its BT reward on held-out prompts", rise > 0,
                     f"{rise:+.2f} SD of the start's BT reward from round 0 to round {results['params']['iterations']}"
                     f", mean of {len(last)} seed(s)")


def equal_budget(results: dict[str, Any], tolerance: float = 0.1) -> C.Premise:
    """Each offline seed trained on as many pairs as its online seed formed, within ``tolerance`` (the offline pool,
    one draw of k replies per prompt from the start, can run short of an online run's count)."""
    online = [run["pairs"] for run in results["data"]["runs"]["online"]]
    offline = results["data"]["runs"]["offline_pairs"]
    worst = max((1 - f / n for n, f in zip(online, offline) if n), default=0.0)
    return C.Premise("equal pair budget per seed", len(online) == len(offline) and worst <= tolerance,
                     f"online {online} vs offline {offline} pairs (largest shortfall {100 * worst:.0f}%, limit "
                     f"{100 * tolerance:.0f}%)")


def rm_above_chance(results: dict[str, Any], model: str, source: str, cid: str) -> C.Claim:
    row = _rm(results, model, source)
    what = {"if-gold": "gold-labelled pairs of the policy's own samples", "hh-human": "human-labelled HH-RLHF pairs"}
    statement = (f"the {model} reward model prefers the better reply of held-out {what.get(source, source)} more often "
                 "than the strongest trivial rule (chance, the longer or the shorter reply)")
    paper = f"RewardBench {NUMBERS['bt_rewardbench' if model == 'BT' else 'pairwise_rewardbench']}%"
    common = dict(min_effect=0.05, min_effect_reason="5 points above the strongest trivial rule: the least that "
                  "ranking replies needs", unit="accuracy - the rule's")
    if row is None:
        why = (f"no {source} pairs in this run" if rm_rows(results) else
               "no reward models in this run (reward_models: false; the gold labels the DPO pairs)")
        return C.claim(cid, PAPER, statement, paper, None, our_value=why, kind="superiority", **common)
    test, rule = C.beats_trivial(row["outcomes"], C.trivial_rules(row["length_baseline"]))
    value = (f"{100 * test.detail['rate']:.1f}% vs {100 * test.detail['rule_rate']:.1f}% for the strongest trivial "
             f"rule ({rule}) on the same held-out pairs: {C.describe(test, 'pts', scale=100)}")
    return C.claim(cid, PAPER, statement, paper, test, our_value=value, **common)


def pairwise_vs_bt(results: dict[str, Any]) -> C.Claim:
    """The pairwise preference model is at least as accurate as the BT RM (paper: 85.7 vs 83.6 on RewardBench)."""
    a = [o for r in rm_rows(results) if r["model"] == "BT" for o in r["outcomes"]]
    b = [o for r in rm_rows(results) if r["model"] == "pairwise" for o in r["outcomes"]]
    if not a or not b:
        return C.claim("W1e", PAPER, "the pairwise preference model is more accurate than the Bradley-Terry RM",
                       "85.7 vs 83.6 (RewardBench)", None, our_value="no held-out pairs" if rm_rows(results) else
                       "no reward models in this run (reward_models: false)", min_effect=1.0,
                       min_effect_reason="the paper's gap is 2.1 points; half of it", unit="pts of accuracy")
    test = C.superiority(np.array(a) * 100, np.array(b) * 100)
    value = (f"pairwise {np.mean(b) * 100:.1f}% vs BT {np.mean(a) * 100:.1f}% on the same held-out pairs; "
             f"{C.describe(test)}")
    return C.claim("W1e", PAPER, "the pairwise preference model is more accurate than the Bradley-Terry RM",
                   "85.7 vs 83.6 (RewardBench)", test, our_value=value, min_effect=1.0,
                   min_effect_reason="the paper's gap is 2.1 points; half of it", unit="pts of accuracy")


def online_beats_offline(results: dict[str, Any]) -> C.Claim:
    on = snapshots(results, "online", results["params"]["iterations"])
    off = snapshots(results, "offline")
    statement = ("online iterative DPO beats offline DPO on the same prompts at an equal pair budget (held-out gold "
                 f"score), {labeller_words(results)}")
    if labeller(results) == "gold":
        statement += " (a noise-free labeller that also scores the held-out replies: the algorithm under a perfect oracle)"
    common = dict(min_effect=2.0, min_effect_reason="2 points of instructions followed: the smallest gain worth "
                  "the online loop's extra sampling", unit="pts of gold score")
    if not on or not off:
        return C.claim("W2", PAPER, statement, "online > offline", None, our_value="an arm did not run", **common)
    test = C.superiority(stack(off, "gold", 100), stack(on, "gold", 100))
    pairs = results["data"]["runs"]["offline_pairs"]
    start = snapshots(results, "start")
    value = (f"online {stack(on, 'gold', 100).mean():.1f} vs offline {stack(off, 'gold', 100).mean():.1f} pts "
             f"(start {stack(start, 'gold', 100).mean():.1f}; offline pairs per seed: {pairs}); {C.describe(test)}; "
             f"replies {stack(on, 'tokens').mean():.0f} vs {stack(off, 'tokens').mean():.0f} tokens (start "
             f"{stack(start, 'tokens').mean():.0f}), cut off {100 * cap_rate(on):.0f}% vs {100 * cap_rate(off):.0f}%")
    premises = [*labeller_premises(results), equal_budget(results), *policies_moved(results, on, off),
                C.caps_alike("online and offline held-out replies", [cap_rate(on), cap_rate(off)]),
                C.one_precision("online and offline held-out replies", on + off)]
    return C.claim("W2", PAPER, statement, "online > offline (RLHFlow's central claim)", test, our_value=value,
                   premises=premises, cost=design_cost(results), units="prompts", **common)


def _rounds(results: dict[str, Any], key: str, scale: float) -> tuple[list[int], list[np.ndarray], list[dict]]:
    """The start (one row, shared by every online run) and each round that every online run reached, its rows in
    the runs' order: a trend over them reads each run's slope (``same_seeds``), so a round some run lacks is left
    out rather than misaligned."""
    iterations = results["params"]["iterations"]
    levels, arms, snaps = [0], [stack(snapshots(results, "start"), key, scale)], snapshots(results, "start")
    runs = sorted({s["seed"] for s in snapshots(results, "online")})
    for r in range(1, iterations + 1):
        these = sorted(snapshots(results, "online", r), key=lambda s: s["seed"])
        if these and [s["seed"] for s in these] == runs:
            levels.append(r)
            arms.append(stack(these, key, scale))
            snaps += these
    return levels, arms, snaps


def gold_rises(results: dict[str, Any]) -> C.Claim:
    levels, arms, snaps = _rounds(results, "gold", 100)
    statement = ("the held-out gold score rises across online iterations (trend over every round), "
                 f"{labeller_words(results)}")
    common = dict(min_effect=1.0, min_effect_reason="1 point per round: three rounds would then add 3 points",
                  unit="pts of gold score per round")
    if len(levels) < 3:
        return C.claim("W3", PAPER, statement, "rises every round", None, our_value=f"{len(levels)} rounds",
                       kind="trend", **common)
    test = C.trend(levels, arms, same_seeds=True)  # each online run is seen at every round
    value = " -> ".join(f"{a.mean():.1f}" for a in arms) + f" pts (round 0..{levels[-1]}); slope {C.describe(test)}"
    if labeller(results) == "rm":
        proxy = [a.mean() for a in _rounds(results, "proxy", 1.0)[1]]
        value += "; the BT reward the policy optimised: " + " -> ".join(f"{v:+.2f}" for v in proxy)
    by_round = [cap_rate([s for s in snaps if s["round"] == r]) for r in levels]
    return C.claim("W3", PAPER, statement, "rises every round", test, our_value=value,
                   premises=[*labeller_premises(results),
                             *policies_moved(results, snapshots(results, "online", levels[-1]), []),
                             C.caps_alike("held-out replies of every round", by_round),
                             C.one_precision("held-out replies of every round", snaps)], cost=design_cost(results),
                   units="prompts", **common)


def _length_neutral(results: dict[str, Any]) -> C.Premise:
    """W4's length growth is a reward model's length bias at work: the labeller must not favour short replies. Where
    the run counted, in each seed's first online round (samples of the start policy, before training could make
    replies run on to the cap, which the gold's end checks fail), the pairs whose chosen reply is the shorter and the
    longer (``pairs/chosen_shorter``, ``pairs/chosen_longer``; ties in length left out), the premise is measured: it
    fails when the share of "chosen is the shorter" is above one half at 95% (its exact interval's bottom over 0.5).
    Runs before the counts fall back on what the labeller is: some of the gold's instructions favour short replies
    (word and sentence caps, forbidden common words, end-of-reply checks that a cut-off reply fails; others ask for
    more text: keywords, sections, a P.S.), and on 04's 171 pairs of answers whose gold differs the gold-better one
    was the shorter in 75% (docs/notebooks.md); a reward model of the ``rm`` labeller is trained on gold-labelled
    pairs here and may inherit that (W1a's length rules say how much)."""
    name = "the labeller does not favour short replies"
    rows = [row for run in histories(results) for row in run if row.get("iteration") == 1]  # the start's samples
    if rows and all("pairs/chosen_shorter" in row for row in rows):
        shorter = int(sum(row["pairs/chosen_shorter"] for row in rows))
        counted = shorter + int(sum(row["pairs/chosen_longer"] for row in rows))
        if not counted:
            return C.Premise(name, False, "no online pair differs in length: not measured")
        low, high = stats.exact_interval(shorter, counted)
        share = f"{100 * shorter / counted:.0f}% [{100 * low:.0f}, {100 * high:.0f}]"
        return C.Premise(name, low <= 0.5, f"labeller {labeller(results)}: the chosen reply was the shorter in {share} "
                         f"of {counted} first-round pairs of unequal length (fails when the interval's bottom is over "
                         "50%; seeds sample the same prompts, so the interval is narrower than it should be)")
    if labeller(results) == "gold":
        return C.Premise(name, False, "some of the gold's instructions cap words and sentences or fail cut-off replies "
                         "(the gold-better answer was the shorter in 75% of 04's 171 pairs); this run did not count "
                         "its pairs' lengths")
    return C.Premise(name, True, f"labeller {labeller(results)} (a reward model, its length bias what W4 looks for; "
                     "trained on gold-labelled pairs here, see W1a's length rules); this run did not count its pairs' "
                     "lengths")


def length_grows(results: dict[str, Any]) -> C.Claim:
    levels, arms, snaps = _rounds(results, "tokens", 1.0)
    statement = f"replies grow longer across online iterations (length bias), {labeller_words(results)}"
    common = dict(min_effect=2.0, min_effect_reason="2 tokens per round, a few words over three rounds",
                  unit="tokens per round")
    if len(levels) < 3:
        return C.claim("W4", PAPER, statement, "longer every round", None, our_value=f"{len(levels)} rounds",
                       kind="trend", **common)
    test = C.trend(levels, arms, same_seeds=True)  # each online run is seen at every round
    cap = results["params"].get("eval_max_new_tokens")
    by_round = [cap_rate([s for s in snaps if s["round"] == r]) for r in levels]
    value = (" -> ".join(f"{a.mean():.0f}" for a in arms) + f" tokens (a cut-off reply counted at the cap, {cap}; "
             "cut off " + " -> ".join(f"{100 * c:.0f}%" for c in by_round) + f"); slope {C.describe(test, 'tokens')}")
    return C.claim("W4", PAPER, statement, "longer every round", test, our_value=value,
                   premises=[_length_neutral(results),
                             C.Premise("most held-out replies finish in every round", max(by_round) < 0.5,
                                       f"at most {100 * max(by_round):.0f}% cut off at the {cap}-token cap in a round "
                                       "(limit 50%: the median length is seen)"),
                             C.one_precision("held-out replies of every round", snaps)], cost=design_cost(results),
                   units="prompts", **common)


def claims(results: dict[str, Any]) -> list[C.Claim]:
    out = [rm_above_chance(results, "BT", "if-gold", "W1a"), rm_above_chance(results, "BT", "hh-human", "W1b"),
           rm_above_chance(results, "pairwise", "if-gold", "W1c"),
           rm_above_chance(results, "pairwise", "hh-human", "W1d"), pairwise_vs_bt(results),
           online_beats_offline(results), gold_rises(results), length_grows(results)]
    return C.finalize(out)
