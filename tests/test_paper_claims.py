"""Each paper's claims() on constructed results whose right verdicts are known, claim by claim: a picture where the
paper holds, and the same picture with the effect's sign flipped. (05's gold claims, 06, 03 and 02's other claims
have theirs beside their notebooks' tests.)"""

from __future__ import annotations

import numpy as np
import pytest

from rlhf_nb.evidence import claims as C
from rlhf_nb.papers.hh_rlhf import claims as hh
from rlhf_nb.papers.rlhf_workflow import claims as wf

R, NR, NT = C.REPRODUCED, C.NOT_REPRODUCED, C.NOT_TESTED


def _outcomes(rng: np.random.Generator, accuracy: float, n: int, fits: int = 3) -> list[list[float]]:
    return (rng.random((fits, n)) < accuracy).astype(float).tolist()


def _flip(rng: np.random.Generator, x: list[list[float]], share: float) -> list[list[float]]:
    """The same outcomes with ``share`` of them flipped: a PM fitted on similar data agrees on most pairs."""
    a = np.asarray(x)
    return np.where(rng.random(a.shape) < share, 1 - a, a).tolist()


def hh_results(sign: int = 1) -> dict:
    """01's results.json where every paper finding holds (``sign`` 1) or runs the other way (``sign`` -1)."""
    rng = np.random.default_rng(0)
    n = {"helpful": 400, "harmless": 400}
    own, cross = (0.8, 0.55) if sign > 0 else (0.7, 0.85)  # flipped: the other set's PM wins
    matrix = []
    for test in ("helpful", "harmless"):
        specialist = _outcomes(rng, own, n[test])
        other = "harmless" if test == "helpful" else "helpful"
        mixed = _flip(rng, specialist, 0.03) if sign > 0 else _outcomes(rng, own - 0.25, n[test])
        longer = (rng.random(n[test]) < 0.5).astype(float).tolist()
        for pm, x in ((test, specialist), (other, _outcomes(rng, cross, n[test])), ("mixed", mixed)):
            matrix.append({"pm": pm, "test": test, "train_pairs": 300, "outcomes": x, "length_baseline": longer})
    sizes = [50, 100, 200, 400]
    data_size = [{"train_pairs": s, "test": t, "outcomes": _outcomes(rng, 0.78 + sign * 0.04 * i, n[t])}
                 for i, s in enumerate(sizes) for t in ("helpful", "harmless")]
    model_size = [{"backbone": f"m{i}", "params": p, "helpful": _outcomes(rng, 0.6 + sign * 0.05 * i, 400, 1)[0],
                   "harmless": _outcomes(rng, 0.6 + sign * 0.05 * i, 400, 1)[0]}
                  for i, p in enumerate((135e6, 360e6, 1.7e9))]
    prompts = 300
    levels = np.array([1, 2, 4, 8])
    kl = np.log(levels) - (levels - 1) / levels
    quality = rng.random(prompts)
    draws = 3
    gold = [[np.clip(np.round(4 * (quality + sign * 0.06 * np.sqrt(k) + rng.normal(0, 0.1, prompts))) / 4, 0,
                     1).tolist() for k in kl] for _ in range(draws)]
    spread = rng.normal(1, 0.3, prompts)  # a prompt's best-of-n curve is smooth (an expectation over subsets)
    train_pm = [[(2.0 * np.sqrt(k) * spread + rng.normal(0, 0.2, prompts)).tolist() for k in kl] for _ in range(draws)]
    test_pm = [[(sign * 1.0 * np.sqrt(k) + rng.normal(0, 1, prompts)).tolist() for k in kl] for _ in range(draws)]
    pairs = 3 * prompts  # held-out pairs of the best-of-n prompts, three a prompt
    right = 0.7 if sign > 0 else 0.3  # flipped: the PMs rank held-out pairs the wrong way round
    bon = {"n": levels.tolist(), "kl": kl.tolist(), "test_n": 4, "train_pm": train_pm, "gold": gold,
           "test_pm": test_pm, "test_pm_shorter": [[d[0]] * len(levels) for d in test_pm],  # length rules: no gain
           "test_pm_longer": [[d[0]] * len(levels) for d in test_pm],
           "gold_shorter": [gold[0][0]] * len(levels), "gold_longer": [gold[0][0]] * len(levels),  # length rules: no gain
           "gold_oracle": gold[0], "gold_finished": [0.4] * prompts,
           "pick_cut_off": [[0.02] * len(levels)] * draws, "cap_rate": 0.02, "tokens": [50.0] * prompts,
           "fold_pairs": [[pairs // 3] * 3] * draws,
           "validation": {"train": (rng.random((draws, pairs)) < right).astype(float).tolist(),
                          "test": (rng.random((draws, pairs)) < right).astype(float).tolist(),
                          "longer": (rng.random(pairs) < 0.5).astype(float).tolist(),
                          "finished": [True] * pairs, "prompt": [float(i // 3) for i in range(pairs)]}}
    raw_gold = (rng.random(prompts) < 0.4).astype(float)
    raw_code = (rng.random(prompts) < 0.3).astype(float)

    def policy(arm, seed, gold_, code):
        return {"arm": arm, "seed": seed, "gold": gold_.tolist(), "test_pm": [0.0] * prompts, "tokens": [50] * prompts,
                "finished": [True] * prompts, "humaneval": code.tolist(), "humaneval_cut_off": 0.05,
                "dtype": "float32", "history": []}

    policies = [policy("raw", None, raw_gold, raw_code)]
    for s in range(3):
        change = rng.random(prompts) < 0.3  # training changes 30% of held-out outcomes, towards the gold (or away)
        tuned = np.where(change, 1.0 if sign > 0 else 0.0, raw_gold)
        kept = np.where(rng.random(prompts) < (0.01 if sign > 0 else 0.6), 0.0, raw_code)  # coding skill kept / lost
        policies.append(policy("dpo", s, tuned, kept))
    helpful_test = matrix[0]["outcomes"]
    split = {"train_outcomes": {"helpful": helpful_test[0], "harmless": []},
             "test_outcomes": {"helpful": _flip(rng, helpful_test, 0.05)[0], "harmless": []}}
    return {"params": {"h2_margin": 0.05}, "data": {"pm_matrix": matrix, "pm_data_size": data_size,
                                                    "pm_model_size": model_size, "train_test_pm": split, "bon": bon,
                                                    "policies": policies}}


def test_hh_claims_follow_the_data_and_flip_with_its_sign():
    holds = {c.id: c for c in hh.claims(hh_results(+1))}
    assert {k: c.verdict for k, c in holds.items()} == {
        "H1a": R, "H1b": R, "H2a": R, "H2b": R, "H3a": R, "H3b": R, "H3c": R, "H3d": NT, "H4": NT, "H5": R, "H6": R,
        "H7": R}, {k: c.reason for k, c in holds.items() if c.verdict != R}
    flipped = {c.id: c for c in hh.claims(hh_results(-1))}
    verdicts = {k: c.verdict for k, c in flipped.items()}
    # the specialists no longer win on their own data, the mixed PM falls 25 points behind, best-of-n and DPO lower
    # the gold, PM accuracy falls with data and size, DPO costs coding skill: every one of these the data exclude
    for cid in ("H1a", "H1b", "H2a", "H2b", "H3c", "H5", "H6", "H7"):
        assert verdicts[cid] == NR, (cid, flipped[cid].reason)
    # a PM whose best-of-n pick is worse than a single sample is not reproduced (H3a); a test PM that ranks held-out
    # pairs the wrong way round is not tested (H3b); H4 needs an RL trajectory, which best-of-n is not
    assert verdicts["H3a"] == NR and verdicts["H3b"] == NT and verdicts["H4"] == NT
    assert "validated" in flipped["H3b"].reason


def test_hh_best_of_n_is_compared_with_a_length_rules_pick():
    """H3a's test is against the strongest trivial pick: if preferring the shorter reply picks replies as good by the
    gold as the PM's pick, a gold gain over one sample says nothing about preference modelling."""
    results = hh_results(+1)
    b = results["data"]["bon"]
    b["gold_shorter"] = [list(map(float, np.mean(b["gold"], axis=0)[i])) for i in range(len(b["n"]))]
    claim = {c.id: c for c in hh.claims(results)}["H3a"]
    assert claim.verdict == C.INCONCLUSIVE and "the shorter reply's pick" in claim.our_value  # top +3.0: not excluded
    assert abs(claim.effect) < 1e-9
    b["gold_shorter"] = [[x + 0.03 for x in row] for row in b["gold_shorter"]]  # the shorter pick 3 points ahead
    claim = {c.id: c for c in hh.claims(results)}["H3a"]  # a gain over the raw model that a length rule explains
    assert claim.verdict == NT and "length rule's pick does not explain" in claim.reason
    b["gold_shorter"] = [[x - 0.11 for x in row] for row in b["gold_shorter"]]  # the PM's pick 8 points ahead
    assert {c.id: c for c in hh.claims(results)}["H3a"].verdict == R
    b["test_pm_shorter"] = b["test_pm"]  # the test PM rewards the shorter reply's pick as much: H3b not tested either
    assert {c.id: c for c in hh.claims(results)}["H3b"].verdict == NT


def test_hh_specialisation_needs_both_pms_to_have_learned_their_own_data():
    """H1a compares the harmless PM with the helpful PM on harmless pairs: a helpful PM at chance on its own helpful
    pairs would be at chance there too, so its loss shows no specialisation (H1a not tested, as H1b)."""
    results = hh_results(+1)
    row = next(r for r in results["data"]["pm_matrix"] if r["pm"] == "helpful" and r["test"] == "helpful")
    row["outcomes"] = _outcomes(np.random.default_rng(9), 0.5, len(row["outcomes"][0]))
    claims = {c.id: c for c in hh.claims(results)}
    assert claims["H1a"].verdict == NT and "helpful PM on its own helpful test set" in claims["H1a"].reason
    assert claims["H1b"].verdict == NT


def test_hh_fits_on_subsets_of_one_pool_count_as_one_draw():
    """01's 'three fits' are 80% subsets of one pool: not independent draws of data, so they are averaged."""
    claim = {c.id: c for c in hh.claims(hh_results(+1))}["H1a"]
    assert claim.seeds == 1 and claim.n == 400


def _workflow(bt: float, pairwise: float, longer: float, tokens_per_round: float) -> dict:
    rng = np.random.default_rng(1)
    n, rows = 400, []
    for model, acc in (("BT", bt), ("pairwise", pairwise)):
        for source in ("if-gold", "hh-human"):
            length = (rng.random(n) < longer).astype(float)
            rows.append({"model": model, "source": source, "outcomes": (rng.random(n) < acc).astype(float).tolist(),
                         "length_baseline": length.tolist()})
    start_gold = rng.uniform(0, 1, 100).round(1)

    def snap(arm, seed, r):
        gold = np.clip(start_gold + 0.05 * r + rng.normal(0, 0.05, 100), 0, 1)
        return {"arm": arm, "seed": seed, "round": r, "gold": gold.tolist(),
                "proxy": (0.3 * r + rng.normal(0, 1, 100)).tolist(),
                "tokens": (60 + tokens_per_round * r + rng.normal(0, 5, 100)).tolist(), "finished": [True] * 100,
                "dtype": "float32"}

    online = [{"seed": s, "snapshots": [snap("online", s, r) for r in (1, 2, 3)], "history": [], "pairs": 32}
              for s in range(3)]
    start = {**snap("start", None, 0), "proxy": rng.normal(0, 1, 100).tolist()}
    runs = {"start": start, "online": online, "offline": [snap("offline", s, 1) for s in range(3)],
            "offline_pairs": [32] * 3}
    return {"params": {"iterations": 3, "eval_max_new_tokens": 128}, "data": {"rm_accuracy": rows, "runs": runs}}


def test_workflow_reward_models_against_the_length_rules_and_the_length_trend():
    good = {c.id: c for c in wf.claims(_workflow(bt=0.75, pairwise=0.8, longer=0.5, tokens_per_round=6))}
    assert [good[i].verdict for i in ("W1a", "W1b", "W1c", "W1d")] == [R] * 4
    assert good["W4"].verdict == R
    # the same accuracy where preferring the longer reply is right 75% of the time: nothing learned beyond length
    length = {c.id: c for c in wf.claims(_workflow(bt=0.75, pairwise=0.75, longer=0.75, tokens_per_round=-6))}
    assert {length[i].verdict for i in ("W1a", "W1b", "W1c", "W1d")} <= {NR, C.INCONCLUSIVE}
    assert "prefer the longer reply" in length["W1a"].our_value
    assert length["W4"].verdict == NR  # replies get shorter
    # the gold as the labeller favours short replies by construction (word and sentence caps): W4 is not tested
    gold = _workflow(bt=0.75, pairwise=0.8, longer=0.5, tokens_per_round=-6)
    gold["params"]["labeller"] = "gold"
    w4 = {c.id: c for c in wf.claims(gold)}["W4"]
    assert w4.verdict == NT and "short replies" in w4.reason and "gold as the preference oracle" in w4.statement
    # the RM that labels the online pairs no longer beats length: the gold claims rest on nothing
    assert length["W2"].verdict == NT and "validated" in length["W2"].reason
    # reward models below chance: the sign flipped
    worse = {c.id: c for c in wf.claims(_workflow(bt=0.3, pairwise=0.3, longer=0.5, tokens_per_round=0))}
    assert {worse[i].verdict for i in ("W1a", "W1b", "W1c", "W1d")} == {NR}


@pytest.mark.parametrize("labeller", ["gold", "rm"])
def test_workflow_length_premise_is_measured_on_the_run_s_own_pairs(labeller):
    """Where the run counted its online pairs' lengths, W4's premise reads them, whoever labelled: a labeller that chose
    the shorter reply in 80 of 100 pairs favours short replies (not tested); one at 52 of 100 does not (W4 decided by
    its trend, replies 6 tokens longer a round here)."""
    def with_counts(shorter, longer):
        results = _workflow(bt=0.75, pairwise=0.8, longer=0.5, tokens_per_round=6)
        results["params"]["labeller"] = labeller
        for i, run in enumerate(results["data"]["runs"]["online"]):  # 3 seeds x 3 rounds: only first rounds count
            run["history"] = [{"iteration": r + 1, "pairs/chosen_shorter": shorter if i == 0 else 99 * (r > 0),
                               "pairs/chosen_longer": longer if i == 0 else 0} for r in range(3)]
        return {c.id: c for c in wf.claims(results)}["W4"]

    biased, neutral = with_counts(80, 20), with_counts(52, 48)
    assert biased.verdict == NT and "shorter in 80% [71, 87] of 100 first-round pairs" in biased.reason
    assert neutral.verdict == R and any(p.name.startswith("the labeller does not") and p.holds and "52%" in p.detail
                                        for p in neutral.premises)


@pytest.mark.parametrize("pairwise, verdict", [(0.85, R), (0.6, NR)])
def test_workflow_pairwise_against_bt(pairwise, verdict):
    claim = {c.id: c for c in wf.claims(_workflow(bt=0.75, pairwise=pairwise, longer=0.5, tokens_per_round=0))}["W1e"]
    assert claim.verdict == verdict, claim.reason


def test_hh_a_pm_that_only_learns_length_better_with_data_is_not_a_data_trend():
    """H6's curve rises, but at the largest size the PM just prefers the longer reply: not tested, not reproduced."""
    results = hh_results(+1)
    rows = results["data"]["pm_data_size"]
    for matrix_row in results["data"]["pm_matrix"]:
        largest = next(r for r in rows if r["train_pairs"] == 400 and r["test"] == matrix_row["test"])
        matrix_row["length_baseline"] = list(np.asarray(largest["outcomes"], dtype=float)[0])  # the PM is the rule
    h6 = {c.id: c for c in hh.claims(results)}["H6"]
    assert h6.verdict == NT and "trivial rule" in h6.reason


@pytest.mark.parametrize("notebook, cid, stages, least", [
    ("05_online_iterative_dpo", "W2", ("online seed", "offline seed"), 0.75),
    ("02_passk_model_size", "P4@0.49B", ("rft seed",), 0.75),
    # 04 leaves its answers and degraders unpriced (one set whatever the seeds and prompts): 68% priced at 009aad1 on
    # an AMD EPYC, whose LLM rewriter ran at 42 tok/s
    ("04_precise_rlaif", "R1c", ("precise-all seed", "sequence seed"), 0.6)])
def test_a_shipped_run_prices_a_seed_as_its_stages_took(notebook, cid, stages, least):
    """The cost a headline claim carries is read from its run's results; a seed's priced work (its own part and its
    reads of every held-out item) matches what the run's stage log (env.json, written apart from the results) gives
    the seed's stages, within 10% (02's tuned seeds also sample training-task checks, not priced); the priced parts
    are most of the run's wall time, and an inconclusive claim states the price."""
    import gzip
    import json
    from pathlib import Path

    from rlhf_nb.notebook.registry import claims_function

    folder = Path(__file__).resolve().parent.parent / "results" / notebook / "cpu"
    results = json.loads(gzip.decompress((folder / "results.json.gz").read_bytes()))
    log = json.loads((folder / "env.json").read_text())["stages"]
    claim = {c.id: c for c in claims_function(notebook)(results)}[cid]
    cost = C.Cost(**claim.cost)
    staged = sum(v["seconds"] for k, v in log.items() if any(k.split(": ")[-1].startswith(s) for s in stages))
    priced = cost.per_seed_s + claim.n * cost.per_item_seed_s
    assert abs(priced / (staged / claim.seeds) - 1) < 0.10, (priced, staged / claim.seeds)
    # the priced parts are most of the run, never more; the notebook (before its end) prices them alike
    assert least * results["wall_s"] < cost.seconds(claim.seeds, claim.n) <= results["wall_s"]
    assert claim.n <= cost.max_items
    if claim.verdict == C.INCONCLUSIVE:
        assert "cheapest run of this notebook" in claim.our_value or "no run of this notebook" in claim.our_value
    del results["wall_s"]
    assert {c.id: c for c in claims_function(notebook)(results)}[cid] == claim


def test_workflow_trend_reads_only_the_rounds_every_run_reached():
    """W3/W4 read each online run's slope over the rounds (rows aligned by run): a round one run lacks is left out,
    not misaligned, and the runs are put in seed order whatever order the rounds list them in."""
    results = _workflow(bt=0.75, pairwise=0.8, longer=0.5, tokens_per_round=6)
    online = results["data"]["runs"]["online"]
    whole = {c.id: c for c in wf.claims(results)}["W3"]
    online.reverse()  # the runs listed in another order: the same rows, the same test
    assert {c.id: c for c in wf.claims(results)}["W3"].ci == whole.ci
    online[0]["snapshots"] = online[0]["snapshots"][:2]  # one run stopped after round 2
    cut = {c.id: c for c in wf.claims(results)}["W3"]
    assert "(round 0..2)" in cut.our_value and cut.n == whole.n
