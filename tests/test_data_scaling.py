"""Notebook 03 (data scaling in RLHF, part 1): the within-prompt measures, the claims on constructed records, the
item selection, and a smoke run through papermill."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import assert_report_recomputes

from rlhf_nb.lm.models import load
from rlhf_nb.notebook.config import load_params
from rlhf_nb.papers.data_scaling import claims, hacking, readers, selection, steps
from rlhf_nb.run import runner


def test_auc_counts_right_above_wrong_with_ties_half():
    assert readers.auc([0.9, 0.1, 0.5], [1, 0, 0]) == 100.0
    assert readers.auc([0.1, 0.9], [1, 0]) == 0.0
    assert readers.auc([0.5, 0.5, 0.7], [1, 0, 0]) == 25.0  # one tie (half), one loss
    with pytest.raises(ValueError, match="right and wrong"):
        readers.auc([0.1, 0.2], [1, 1])


def test_bins_are_equal_count_and_ordered():
    labels = readers.bins([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], 2)
    assert labels[:4] == [labels[0]] * 4 and labels[4:] == [labels[-1]] * 4 and labels[0] != labels[-1]
    assert readers.bins([0.3, 0.3], 4) == ["0.30", "0.30"]


def _results(n_items: int, gt_knows: bool, seed: int = 0, plain_knows: bool = False) -> dict:
    """Constructed records: five responses per item, two right; the GenRM with GT sees which (or not); the GenRM
    without GT is noise (or sees it as well as the one with GT). Half the items have near-identical responses."""
    rng = random.Random(seed)
    records = []
    for i in range(n_items):
        if i % 2:  # close: the same program but for trailing spaces
            responses = ["x = compute(a, b); return x" + " " * k for k in rng.sample(range(5), 5)]
        else:  # far apart: unrelated texts
            responses = [" ".join(rng.choice(["alpha", "beta", "gamma", "delta", "pi"]) for _ in range(8))
                         for _ in range(5)]
        gold = [1.0, 1.0, 0.0, 0.0, 0.0]
        noise = [0.5 + 0.3 * g + 0.4 * rng.random() if plain_knows else rng.random() for g in gold]
        gt = [0.5 + 0.3 * g + 0.4 * rng.random() if gt_knows else rng.random() for g in gold]
        records.append({"domain": "code" if i % 3 else "math", "id": f"t{i}", "responses": responses,
                        "tokens": [10] * 5, "finished": [True] * 5, "gold": gold, "genrm_gt": gt, "genrm": noise})
    return {"params": {"close": 0.5, "bins": 2, "min_effect": 5.0, "min_spread": 0.2}, "data": {"records": records}}


def test_claims_follow_the_records():
    verdicts = {c.id: c.verdict for c in claims.claims(_results(40, gt_knows=True))}
    assert verdicts["D1"] == "reproduced" and verdicts["D2"] == "reproduced"
    blind = {c.id: c for c in claims.claims(_results(40, gt_knows=False))}
    assert blind["D2"].verdict != "reproduced" and blind["D1"].n == 13  # the close half, code items only
    # a GenRM with GT at chance: comparing it with another judge says nothing about what GT adds
    assert blind["D1"].verdict == blind["D3"].verdict == "not tested at this scale"
    assert "GenRM with GT beats the strongest trivial rule" in blind["D1"].reason
    both = {c.id: c for c in claims.claims(_results(40, gt_knows=True, plain_knows=True))}
    assert both["D1"].verdict in ("not reproduced", "inconclusive") and both["D2"].verdict == "reproduced"
    few = {c.id: c.verdict for c in claims.claims(_results(6, gt_knows=True))}
    assert set(few.values()) == {"not tested at this scale"}
    assert set(few) == {"D1", "D2", "D3", "K1", "K2", "E1", "P1", "P2", "M1"}


def test_rows_and_tables_from_records_alone():
    results = _results(12, gt_knows=True)
    rows = readers.item_rows(results)
    assert len(rows) == 12 and all(r["mixed"] for r in rows) and sum(r["close"] for r in rows) == 6
    assert all(r["spread_gold"] > 0 for r in rows)
    table = readers.bin_rows(results)
    assert sum(r["items"] for r in table) == 12 and table[0]["AUC GenRM with GT"] > 60


def test_items_are_seeded_and_sized_and_a_bad_size_is_named():
    P = load_params("03_data_scaling_rlhf", "smoke", {"items.humaneval_plus": None}, check_inputs=False)[1]
    a, b = steps.make_items(P), steps.make_items(P)
    assert [i.id for i in a.items] == [i.id for i in b.items]
    assert [i.domain for i in a.items] == ["math"] * 3 + ["code"] * 2
    assert all(i.reference for i in a.items) and "####" in a.items[0].reference
    P = load_params("03_data_scaling_rlhf", "smoke", {"items.code": 999}, check_inputs=False)[1]
    with pytest.raises(ValueError, match="999 HumanEval items"):
        steps.make_items(P)


class _Judge:
    def reference_scores(self, q, responses, refs):
        return [float(r == ref) for r, ref in zip(responses, refs)]

    def scores(self, q, responses):
        return [0.5 for _ in responses]


def test_score_returns_new_records_with_both_rewards():
    items = steps.Items([steps.Item("math", "m1", "2+2?", "4", []), steps.Item("math", "m2", "3+3?", "6", []),
                         steps.Item("math", "m3", "1+1?", "2", [])], {}, {}, None)
    records = [steps.Record("math", "m1", ["4", "5"], [1, 1], [True, True], [1.0, 0.0]),
               steps.Record("math", "m2", ["7", "6", "6"], [1, 1, 1], [True] * 3, [0.0, 1.0, 1.0]),
               steps.Record("math", "m3", ["2"], [1], [True], [1.0])]
    out = steps.score(_Judge(), items, records, chunk=2)
    assert [r.genrm_gt for r in out] == [[1.0, 0.0], [0.0, 1.0, 1.0], [1.0]]
    assert [r.genrm for r in out] == [[0.5, 0.5], [0.5] * 3, [0.5]] and records[0].genrm_gt is None
    mixed_only = steps.score(_Judge(), items, records, chunk=1, judged="mixed")
    assert [r.genrm_gt for r in mixed_only] == [[1.0, 0.0], [0.0, 1.0, 1.0], None]  # m3 has no wrong response
    assert mixed_only[2].genrm is None and mixed_only[2].gold == [1.0]


def test_unjudged_items_stay_out_of_the_measures():
    results = _results(12, gt_knows=True)
    extra = {"domain": "math", "id": "all-right", "responses": ["a", "b"], "tokens": [1, 1], "finished": [True] * 2,
             "gold": [1.0, 1.0], "genrm_gt": None, "genrm": None}
    with_extra = {**results, "data": {"records": results["data"]["records"] + [extra]}}
    assert readers.item_rows(with_extra) == readers.item_rows(results)
    numbers = lambda res: [(c.effect, c.ci, c.n) for c in claims.claims(res)]  # noqa: E731 (premises see all)
    assert numbers(with_extra) == numbers(results)
    assert readers.finding_judge(with_extra).startswith("The GenRM scored 12 items (60 responses")


def test_data_scaling_notebook_smoke(project):
    outcome = runner.run("03_data_scaling_rlhf", "smoke", progress=False)
    assert outcome.status == "ok", outcome.error
    results = json.loads((outcome.out_dir / "results.json").read_text())
    records = results["data"]["records"]
    assert len(records) == 5 and all(len(r["responses"]) == len(r["gold"]) == len(r["genrm_gt"]) == 3
                                     for r in records)
    parts34 = {"P1", "P2", "M1", "T1-math", "T1-code", "T1-instruction", "T1-open"}
    assert {c["id"] for c in results["claims"]} == {"D1", "D2", "D3", "K1", "K2", "K1-rl", "K2-rl", "E1"} | parts34
    assert set(results["figures"]) == {"auc_by_bin", "spread_by_bin", "hacking", "entropy", "prepo_scores", "arms",
                                       "schedule", "gold_curve"}
    prepo = results["data"]["prepo"]
    trained = [r for r in prepo["runs"] if r["arm"] != "start"]  # smoke: 2 steps, the gold scored after step 1 too
    assert all([c["step"] for c in r["curve"]] == [1] and len(r["curve"][0]["gold"]) == 8 for r in trained)
    assert [e["domain"] for e in prepo["eval"]] == ["math"] * 2 + ["code"] * 2 + ["instruction"] * 2 + ["open"] * 2
    assert sorted({(r["arm"], r["seed"]) for r in prepo["runs"]}) == sorted(
        [("start", -1)] + [(a, s) for a in ("base", "all", "random", "prepo", "early") for s in (0, 1)])
    assert all(len(r["gold"]) == 8 for r in prepo["runs"]) and len(prepo["scores"]) == 16
    assert len(prepo["arms"]["all"]) == 24 and len(prepo["arms"]["prepo"]) == len(prepo["arms"]["random"]) == 16
    assert all(0 <= r["gold"][i] <= 1 for r in prepo["runs"] for i in (6, 7))  # the gold judge's P(beats reference)
    assert prepo["gold_judge"]["model"] == "tiny" and len(prepo["gold_judge"]["validation"]) == 12
    t1_open = next(c for c in results["claims"] if c["id"] == "T1-open")  # smoke: the gold judge is the judge
    assert any(p["name"] == "open-ended gold is not the training judge" and not p["holds"] for p in t1_open["premises"])
    runs = results["data"]["hacking"]  # smoke: a random model is never right, so no BT RM and no BT arm
    assert sorted((r["reward"], r["seed"]) for r in runs) == [("genrm_gt", 0), ("genrm_gt", 1), ("rtv", 0), ("rtv", 1)]
    assert all([s["step"] for s in r["snapshots"]] == [0, 1, 2] and len(r["snapshots"][0]["gold"]) == 4 for r in runs)
    assert all(any("reward" in row for row in r["history"]) for r in runs)  # trl's per-step training reward
    k1 = next(c for c in results["claims"] if c["id"] == "K1-rl")
    assert k1["n"] == 4 and k1["seeds"] == 2  # measured (its verdict follows from the numbers, whatever they are)
    assert_report_recomputes(results)


# --- part 2: reward hacking by reward type ---------------------------------------------------------


def _snap(reward, seed, step, proxy, gold):
    return {"reward": reward, "seed": seed, "step": step, "proxy": proxy, "gold": gold, "tokens": [5] * len(gold),
            "finished": [True] * len(gold)}


def _hacking_results(n_items=40, seeds=3, drift=None, steps=(0, 5, 10)):
    """Runs where the gold stays put and each reward's held-out value rises by ``drift[reward]`` SD per 10 steps
    (plus noise): the RTV arm's proxy *is* the gold."""
    drift = drift or {"genrm_gt": 0.5, "bt": 1.5}
    rng = random.Random(1)
    gold0 = [float(i % 2) for i in range(n_items)]
    runs = []
    for reward in ("rtv", "genrm_gt", "bt"):
        for seed in range(seeds):
            snaps = []
            for t in steps:
                gold = list(gold0)
                if reward == "rtv":
                    proxy = gold
                else:
                    proxy = [g + drift[reward] * 0.5 * t / 10 + rng.gauss(0, 0.05) for g in gold0]
                snaps.append(_snap(reward, seed, t, proxy, gold))
            history = [{"step": t, "entropy": 1.0 - 0.01 * t + rng.gauss(0, 0.002), "reward": 0.5}
                       for t in range(1, 11)]
            runs.append({"reward": reward, "seed": seed, "snapshots": snaps, "history": history + [{"step": 10}]})
    results = _results(40, gt_knows=True)
    results["params"]["hacking"] = {"steps": steps[-1], "min_effect": 0.25}
    results["data"]["hacking"] = runs
    results["data"]["bt_rm"] = {"train_pairs": 50, "test_outcomes": [1.0] * 30 + [0.0] * 5,
                                "length_outcomes": [0.5] * 35, "fitted": True}
    return results


def test_hacking_index_is_zero_on_the_gold_and_the_fitted_drift_otherwise():
    results = _hacking_results()
    rtv = readers.hacking_runs(results, "rtv")[0]
    assert not readers.hacking_index(rtv).any()
    bt = readers.hacking_index(readers.hacking_runs(results, "bt")[0])  # proxy sd at step 0 is 0.5: +1.5 SD/10 steps
    assert bt.shape == (40,) and abs(bt.mean() - 1.5) < 0.1


def test_hacking_claims_order_the_rewards_from_the_runs():
    by_id = {c.id: c for c in claims.claims(_hacking_results())}
    assert by_id["K1-rl"].verdict == "reproduced" and by_id["K2-rl"].verdict == "reproduced"
    assert by_id["K2-rl"].effect == pytest.approx(1.0, abs=0.1) and by_id["K2-rl"].seeds == 3 and by_id["K2-rl"].n == 40
    same = {c.id: c for c in claims.claims(_hacking_results(drift={"genrm_gt": 1.0, "bt": 1.0}))}
    assert same["K2-rl"].verdict == "not reproduced"  # no difference, tightly measured
    bad_bt = _hacking_results()
    bad_bt["data"]["bt_rm"]["test_outcomes"] = [1.0, 0.0] * 10
    assert {c.id: c.verdict for c in claims.claims(bad_bt)}["K2-rl"] == "not tested at this scale"
    off = _results(12, gt_knows=True)
    off["params"]["hacking"] = {"steps": 0}
    assert "K1-rl" not in {c.id for c in claims.claims(off)}  # GRPO's claims exist where GRPO runs
    assert "BT RM fitted on 50" in readers.finding_bt(_hacking_results())
    e1 = by_id["E1"]  # entropy falls 0.01 nats a step: 0.09 over steps 1-10, over 9 runs
    assert e1.verdict == "reproduced" and e1.effect == pytest.approx(0.09, abs=0.01) and e1.n == 9
    assert {c.id: c.verdict for c in claims.claims(off)}["E1"] == "not tested at this scale"
    assert readers.finding_hacking(_hacking_results()).startswith("After 10 GRPO steps, on 40 held-out problems")


def test_bt_pairs_are_right_vs_wrong_of_one_item_split_by_item():
    P = load_params("03_data_scaling_rlhf", "smoke", {}, check_inputs=False)[1]
    records = [{"domain": "math", "id": f"m{i}", "responses": ["a", "b", "b", "c"], "gold": [1.0, 0.0, 0.0, 1.0]}
               for i in range(10)]
    records += [{"domain": "math", "id": "all-right", "responses": ["x", "y"], "gold": [1.0, 1.0]},
                {"domain": "code", "id": "c1", "responses": ["x", "y"], "gold": [1.0, 0.0]}]
    train, test = hacking.bt_pairs(records, {r["id"]: "q" for r in records}, P)
    assert len(train) + len(test) == 10 * 2  # {a, c} x {b}: duplicates of a text count once
    assert {p.chosen for p in train + test} == {"a", "c"} and {p.rejected for p in train + test} == {"b"}
    items = lambda pairs: {p.id.rsplit("-", 1)[0] for p in pairs}  # noqa: E731
    assert len(items(test)) == 3 and not items(train) & items(test)
    tok, model = load("tiny")
    fitted = hacking.fit_bt(model, tok, train, test, P)
    assert fitted.train_pairs == 14 and len(fitted.test_outcomes) == 6 and fitted.length_outcomes == [0.5] * 6
    assert hacking.fit_bt(model, tok, [], [], P).bt is None


# --- parts 3-4: Pre-PPO and math and code first ------------------------------------------------------


def _pool(n_new=8):
    mk = lambda d, i: selection.Prompt(d, f"{d}{i}", [], {"domain": d, "id": f"{d}{i}"})  # noqa: E731
    new = [mk(d, i) for d in ("math", "instruction") for i in range(n_new)]
    return selection.Pool([mk("math", "b"), mk("instruction", "b")], new, [], {}, {}, {}, None)


def test_prepo_adds_the_lowest_reward_prompts_random_as_many_and_early_orders_math_and_code_first():
    P = load_params("03_data_scaling_rlhf", "smoke", {"prepo.fraction": 0.25}, check_inputs=False)[1]
    pool = _pool()
    scores = [{"domain": p.domain, "id": p.id, "reward": float(i), "z": float(i % 8)} for i, p in enumerate(pool.new)]
    arms = selection.arm_prompts(pool, scores, P)
    added = lambda arm: {p.id for p in arms[arm]} - {"mathb", "instructionb"}  # noqa: E731
    assert added("prepo") == {"math0", "instruction0", "math1", "instruction1"}  # z 0 and 1 in each domain
    assert len(added("random")) == 4 and len(arms["all"]) == 18 and arms["early"] == arms["prepo"]
    early = selection.ordered("early", arms["early"], seed=3)
    assert [p.domain for p in early] == ["math"] * 3 + ["instruction"] * 3
    assert selection.ordered("prepo", arms["prepo"], 3) == selection.ordered("prepo", arms["prepo"], 3)
    assert selection.ordered("prepo", arms["prepo"], 3) != selection.ordered("prepo", arms["prepo"], 4)


def _prepo_results(gain=None, seeds=3, n=30):
    """Final held-out gold per arm: 0/1 per item and seed; ``gain`` shifts an arm's success rate (pts), and each
    training seed shifts it by a draw of sd 2 pts (how that run went)."""
    gain = gain or {"base": 0, "all": 0, "random": 0, "prepo": 15, "early": 30}
    rng = np.random.default_rng(0)
    domains = ["math", "instruction"]
    eval_ = [{"domain": domains[i % 2], "id": f"e{i}"} for i in range(2 * n)]
    difficulty = rng.random(2 * n)
    runs = [{"arm": "start", "seed": -1, "gold": (difficulty < 0.4).astype(float).tolist(), "finished": [True] * 2 * n}]
    for arm, g in gain.items():
        for s in range(seeds):
            ok = difficulty < 0.4 + g / 100 + rng.normal(0, 0.02)
            runs.append({"arm": arm, "seed": s, "gold": ok.astype(float).tolist(), "finished": [True] * 2 * n})
    scores = [{"domain": "math", "id": f"n{i}", "reward": float(i), "z": float(i) - 4} for i in range(8)]
    results = _results(12, gt_knows=True)
    results["params"]["prepo"] = {"steps": 5, "margin": 10.0, "min_effect": 3.0, "domains": domains}
    results["data"]["prepo"] = {"scores": scores, "eval": eval_, "runs": runs,
                                "arms": {"prepo": ["n0", "n1"], "random": ["n3", "n6"]}}
    return results


def test_prepo_claims_follow_the_final_gold():
    # Holm runs over all twelve of 03's claims (untested ones at p = 1), so equivalence within the margin needs more
    # than three seeds that land 2 pts apart: five seeds on 90 items
    by_id = {c.id: c for c in claims.claims(_prepo_results(n=90, seeds=5))}
    assert by_id["P1"].kind == "equivalence" and by_id["P1"].verdict == "reproduced"  # all == base, tightly
    assert by_id["P2"].verdict == "reproduced" and by_id["M1"].verdict == "reproduced"
    assert by_id["T1-math"].n == 90 and by_id["T1-math"].verdict == "reproduced"
    assert {c.id: c for c in claims.claims(_prepo_results())}["P1"].verdict == "inconclusive"  # 3 seeds x 60
    no_gain = {"base": 0, "all": 20, "random": 0, "prepo": 0, "early": 0}
    flat = {c.id: c.verdict for c in claims.claims(_prepo_results(no_gain, seeds=10, n=150))}
    assert flat["P1"] != "reproduced" and flat["P2"] == "not reproduced" and flat["M1"] != "reproduced"
    # three seeds an arm, landing ~2 pts apart, cannot rule out Pre-PPO's 3-pt gain: the seed spread counts
    assert {c.id: c.verdict for c in claims.claims(_prepo_results(no_gain))}["P2"] == "inconclusive"
    backwards = _prepo_results()
    backwards["data"]["prepo"]["arms"] = {"prepo": ["n6", "n7"], "random": ["n0", "n1"]}
    assert {c.id: c.verdict for c in claims.claims(backwards)}["P2"] == "not tested at this scale"
    assert "Held-out gold over 60 prompts" in readers.finding_prepo(_prepo_results())


def test_open_prompt_claims_need_a_validated_gold_judge_other_than_the_training_judge():
    def with_gold(probs, model="big-judge"):
        results = _prepo_results(n=90, seeds=5)  # enough that T1 decides with the seed spread taken whole
        data = results["data"]["prepo"]
        data["eval"] = [{**e, "domain": "open" if e["domain"] == "instruction" else e["domain"]} for e in data["eval"]]
        results["params"]["prepo"]["domains"] = ["math", "open"]
        results["params"]["judge"] = "small-judge"  # the runs' training judge
        data["gold_judge"] = {"model": model, "validation": probs}
        return {c.id: c for c in claims.claims(results)}

    good = with_gold([0.8] * 80 + [0.3] * 20)  # agrees with the human label on 80 of 100 pairs
    assert good["T1-open"].verdict == "reproduced" and good["T1-math"].verdict == "reproduced"
    chance = with_gold([0.8] * 50 + [0.3] * 50)
    assert chance["T1-open"].verdict == "not tested at this scale" and chance["T1-math"].verdict == "reproduced"
    assert chance["P2"].verdict == "not tested at this scale"  # pooled over every held-out prompt, open ones too
    same = with_gold([0.8] * 80 + [0.3] * 20, model="small-judge")
    assert same["T1-open"].verdict == "not tested at this scale"


def test_code_can_train_on_mbpp_and_hold_out_humaneval(tmp_path):
    rows = [{"task_id": 900 + i, "text": f"Write a function that adds {i}.",
             "code": f"def add{i}(x):\n    return x + {i}", "test_setup_code": "",
             "test_list": [f"assert add{i}(1) == {1 + i}"], "challenge_test_list": []}
            for i in range(6)]
    path = tmp_path / "mbpp.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    P = load_params("03_data_scaling_rlhf", "smoke", {"prepo.domains": ["code"], "prepo.code_train": "mbpp",
                                                      "prepo.mbpp": str(path)}, check_inputs=False)[1]
    pool = selection.make_pool(P)
    assert [len(pool.base), len(pool.new), len(pool.eval)] == [2, 4, 2]
    assert all(p.id.startswith("MBPP/") for p in pool.base + pool.new)
    assert all(p.id.startswith("HumanEval/") for p in pool.eval)
    reward = selection.hybrid_reward(pool, judge=SimpleNamespace(genrm_reward=None))  # code only: never asked
    task = pool.tasks[pool.base[0].id]
    right, wrong = task.prompt + task.canonical_solution, "def nothing():\n    pass"
    assert reward([p.messages for p in pool.base[:1] * 2], [right, wrong], [pool.base[0].meta] * 2) == [1.0, 0.0]
    with pytest.raises(ValueError, match="MBPP's train split has 374"):
        load_params("03_data_scaling_rlhf", "gpu", {"prepo.code_train": "mbpp", "prepo.new": 400}, check_inputs=False)


def test_sizes_the_published_sets_cannot_meet_fail_before_any_model_loads():
    with pytest.raises(ValueError, match="HumanEval has 164"):
        load_params("03_data_scaling_rlhf", "gpu", {"prepo.base": 100, "prepo.code_train": "humaneval"},
                    check_inputs=False)
    with pytest.raises(ValueError, match="AlpacaEval has 805"):
        load_params("03_data_scaling_rlhf", "gpu", {"prepo.domains": ["open"], "prepo.new": 800}, check_inputs=False)
    with pytest.raises(ValueError, match="set prepo.open_gold"):
        load_params("03_data_scaling_rlhf", "gpu", {"prepo.open_gold": None}, check_inputs=False)
    with pytest.raises(ValueError, match="GSM8K has 1319"):
        load_params("03_data_scaling_rlhf", "gpu", {"hacking.eval_items": 1000}, check_inputs=False)
    with pytest.raises(ValueError, match="multiple of"):
        load_params("03_data_scaling_rlhf", "gpu", {"prepo.grpo.num_generations": 5}, check_inputs=False)


def test_training_figures_draw_nothing_for_a_run_without_the_training_parts(project):
    from rlhf_nb.notebook.experiment import Experiment
    from rlhf_nb.notebook.registry import figures as registry

    results = _results(12, gt_knows=True)
    drawers = registry("03_data_scaling_rlhf")
    assert all(drawers[name](results) is None for name in ("hacking", "entropy", "prepo_scores", "arms", "schedule",
                                                                  "gold_curve"))
    assert drawers["hacking"](_hacking_results()) is not None and drawers["arms"](_prepo_results()) is not None
    prepo = _prepo_results()
    assert drawers["entropy"](prepo) is None  # no run logged entropy
    for r in prepo["data"]["prepo"]["runs"]:
        r["history"] = [{"step": t, "entropy": 1.0 - 0.01 * t} for t in (1, 2, 3)]
    assert len(drawers["entropy"](prepo).axes) == 1  # parts 3-4's panel only (part 2 did not run)
    both = {**_hacking_results(), "data": {**_hacking_results()["data"], "prepo": prepo["data"]["prepo"]}}
    assert len(drawers["entropy"](both).axes) == 2
    P = load_params("03_data_scaling_rlhf", "smoke", {}, check_inputs=False)[1]
    (project / "out").mkdir()
    exp = Experiment("03_data_scaling_rlhf", "smoke", P, project / "out", project, {})
    exp.results.update(results)
    exp.results["figures"] = []
    assert exp.figure("hacking") is None and exp.results["figures"] == []
    assert not (project / "out" / "hacking.png").exists()
    exp.figure("auc_by_bin")
    assert exp.results["figures"] == ["auc_by_bin"] and (project / "out" / "auc_by_bin.png").is_file()


# --- close pairs built on purpose; best-of-n under each reward --------------------------------------


def test_a_math_edit_changes_one_number_and_flips_the_checker():
    from rlhf_nb.papers.data_scaling import edits
    from rlhf_nb.rewards.math import is_correct

    edit = edits.break_math("She has 3 + 4 = 7 apples.\n#### 7", "7")
    assert edit.text == "She has 3 + 4 = 7 apples.\n#### 8" and edit.change == "7 -> 8"
    assert not is_correct(edit.text, "7")
    assert edits.break_math("It is 6.", "7") is None  # not right to begin with


def test_code_mutants_change_one_token_of_the_function_and_nothing_else():
    import difflib

    from rlhf_nb.papers.data_scaling import edits

    reply = ("Here:\n```python\nx = 1 < 2\ndef f(a, b):\n    \"\"\"Is a < b?\"\"\"\n    return a < b and b > 0\n```\n"
             "So 1 + 1.")
    mutants = edits.code_mutants(reply, "f", random.Random(0), 10)
    assert sorted(m.change for m in mutants) == sorted(["< -> <=", "and -> or", "> -> >=", "0 -> 1"])
    for m in mutants:  # only the return line changes, by the one token
        changed = [d for d in difflib.ndiff(reply.splitlines(), m.text.splitlines()) if d[0] in "+-"]
        assert len(changed) == 2 and changed[0].startswith("-     return a < b")
    assert len(edits.code_mutants(reply, "f", random.Random(0), 2)) == 2
    assert edits.code_mutants("no code here", "f", random.Random(0), 3) == []
    # code after the function (a mutated assert would fail the tests with the function right) and the signature stay
    nested = "```python\ndef f(a, b=0):\n    def g(x):\n        return x + 1\n    return g(a) < b\n\nassert f(1, 3)\n```"
    assert sorted(m.change for m in edits.code_mutants(nested, "f", random.Random(0), 20)) == [
        "+ -> -", "1 -> 2", "< -> <="]
    one_line = "```python\ndef f(a): return a > 0\nx = 1 + 2\n```"
    assert sorted(m.change for m in edits.code_mutants(one_line, "f", random.Random(0), 20)) == ["0 -> 1", "> -> >="]
    typed = "```python\ndef f(a: int) -> bool: return a > 0\n```"
    assert sorted(m.change for m in edits.code_mutants(typed, "f", random.Random(0), 20)) == ["0 -> 1", "> -> >="]
    commented = "```python\ndef f(a):\n    # the sign\n    return a > 0\nprint(f(1) + 1)\n```"
    assert sorted(m.change for m in edits.code_mutants(commented, "f", random.Random(0), 20)) == ["0 -> 1", "> -> >="]


def _close_items():
    from rlhf_nb.tasks.data import load_gsm8k, load_humaneval_plus
    from tests.conftest import bundled

    mt = load_gsm8k("bundled", "test")[0]
    source = str(bundled("HumanEvalPlus.jsonl.gz"))
    ct = next(t for t in load_humaneval_plus(source) if t.task_id == "HumanEval/53")
    its = [steps.Item("math", mt.id, mt.question, mt.answer, [{"role": "user", "content": mt.question}]),
           steps.Item("code", ct.task_id, ct.prompt, ct.prompt + ct.canonical_solution,
                      [{"role": "user", "content": ct.prompt}])]
    return steps.Items(its, {mt.id: mt}, {ct.task_id: ct}, source), mt, ct


def test_close_pairs_break_right_responses_until_the_gold_says_wrong():
    items, mt, ct = _close_items()
    right, other = f"The total is {mt.answer}.", f"So the answer is {mt.answer}."
    program = "```python\n" + ct.prompt + ct.canonical_solution + "```"
    records = [steps.Record("math", mt.id, [right, "It is 0.", other, right], [9] * 4, [True] * 4, [1.0, 0.0, 1.0, 1.0],
                            [1.0, 0.0, 1.0, 1.0], [0.9, 0.1, 0.8, 0.9], [0.6, 0.5, 0.6, 0.6]),
               steps.Record("code", ct.task_id, [program, program], [9, 9], [True] * 2, [1.0, 1.0], [1.0, 1.0])]
    P = load_params("03_data_scaling_rlhf", "smoke", {"close_pairs": {"per_item": 2, "tries": 4}},
                    check_inputs=False)[1]
    built = steps.close_pairs(items, records, P)
    math = [p for p in built if p.domain == "math"]
    assert sorted(p.responses[0] for p in math) == sorted([right, other])  # two distinct right texts
    assert all(p.gold == [1.0, 0.0] and p.genrm_gt[0] in (0.9, 0.8) and p.genrm_gt[1] is None for p in math)
    code_pairs = [p for p in built if p.domain == "code"]  # an all-right item: its right response is judged later
    assert len(code_pairs) == 1 and code_pairs[0].genrm_gt == [None, None] and " -> " in code_pairs[0].edit
    assert code_pairs[0].responses[1] != program
    mixed_only = load_params("03_data_scaling_rlhf", "smoke", {"close_pairs": {"all_right": False}},
                             check_inputs=False)[1]
    assert {p.domain for p in steps.close_pairs(items, records, mixed_only)} == {"math"}
    tok, model = load("tiny")
    scored = steps.score_pairs(steps.LogProbJudge(model, tok), items, built)
    assert all(None not in p.genrm_gt + p.genrm for p in scored)
    assert [p.genrm_gt[0] for p in scored if p.domain == "math"] == [p.genrm_gt[0] for p in math]  # kept


def test_bt_scores_are_cross_fitted_by_item():
    items, mt, _ = _close_items()
    many = [steps.Item("math", f"m{i}", mt.question, mt.answer, [{"role": "user", "content": f"q{i}"}])
            for i in range(6)]
    items = steps.Items(many, {}, {}, None)
    records = [steps.Record("math", f"m{i}", [f"right {i}", f"wrong {i}", f"wrong {i}!"], [3] * 3, [True] * 3,
                            [1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5] * 3, [0.5] * 3) for i in range(5)]
    records.append(steps.Record("math", "m5", ["a", "b"], [1, 1], [True] * 2, [1.0, 0.0], [1.0, 0.0]))  # unjudged
    P = load_params("03_data_scaling_rlhf", "smoke", {"bestofn": {"folds": 5}}, check_inputs=False)[1]
    out, info = steps.bt_scores(load("tiny"), items, records, P)
    assert all(len(r.bt) == 3 for r in out[:5]) and out[5].bt is None
    assert info["train_pairs"] == [8] * 5  # every fold: the other four items' 2 pairs each
    assert len(info["test_outcomes"]) == len(info["length_outcomes"]) == 10
    assert sorted(set(info["clusters"])) == [f"math/m{i}" for i in range(5)]


def _bon_results(n_items=60, bt_noise=3.0, gt_noise=1.0, bt_valid=True, seed=0):
    """Mixed items of 6 responses: RTV is the gold (math) or the gold but for one flaw (code); GenRM with GT sees the
    gold through ``gt_noise``, the BT RM through ``bt_noise``."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n_items):
        gold = [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
        domain = "math" if i % 2 else "code"
        flawed = domain == "code" and i % 6 == 0  # one program passes the base tests only
        rtv = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0] if flawed else list(gold)
        records.append({"domain": domain, "id": f"i{i}", "responses": [f"r{i}-{j}" + " " * k
                                                                       for j, k in enumerate(rng.permutation(6))],
                        "tokens": [10] * 6, "finished": [True] * 6, "gold": gold, "rtv": rtv,
                        "genrm_gt": list(np.array(gold) + rng.normal(0, gt_noise, 6)),
                        "genrm": list(rng.normal(0, 1, 6)), "bt": list(np.array(gold) + rng.normal(0, bt_noise, 6))})
    outcomes = [1.0] * 90 + [0.0] * 10 if bt_valid else [1.0, 0.0] * 50
    return {"params": {"close": 0.5, "bins": 2, "min_effect": 5.0, "min_spread": 0.2, "bestofn": {"min_effect": 5.0}},
            "data": {"records": records, "bt_bestofn": {"folds": 5, "train_pairs": [80] * 5, "test_outcomes": outcomes,
                                                        "length_outcomes": [0.5] * 100,
                                                        "clusters": [f"i{k % 50}" for k in range(100)]}}}


def test_bestofn_hacking_index_orders_the_rewards():
    results = _bon_results(n_items=120)
    gaps = readers.hacking_gaps(results, "math")
    assert not gaps["rtv"].any() and gaps["genrm_gt"].mean() > 0  # on math RTV is the gold
    assert readers.hacking_gaps(results, "code")["rtv"].mean() > 0  # on code a base-only pass can be picked
    by_id = {c.id: c for c in claims.claims(results)}
    assert by_id["K1"].verdict == "reproduced" and by_id["K2"].verdict == "reproduced"
    assert by_id["K1"].n == 60 and "best-of-6" in by_id["K1"].our_value  # K1: the code items alone
    assert by_id["K2"].n == 120
    sound = _bon_results(n_items=120)  # RTV that no code response fools: its index is 0 by construction
    for r in sound["data"]["records"]:
        r["rtv"] = list(r["gold"])
    k1 = {c.id: c for c in claims.claims(sound)}["K1"]
    assert k1.verdict == "not tested at this scale" and "RTV can be fooled" in k1.reason
    alike = {c.id: c for c in claims.claims(_bon_results(bt_noise=1.0, n_items=200))}["K2"]
    assert alike.verdict != "reproduced" and alike.ci[0] < 0 < alike.ci[1]  # the same noise: no difference
    broken = {c.id: c for c in claims.claims(_bon_results(bt_valid=False))}
    assert broken["K2"].verdict == "not tested at this scale" and "BT RM" in broken["K2"].reason
    assert "Gold of the pick" in readers.finding_bestofn(results)


def test_close_claims_read_built_pairs_beside_sampled_items_by_prompt():
    results = _results(40, gt_knows=True)
    pairs = []
    for i in range(30):
        pairs.append({"domain": "code", "id": f"t{i % 10}", "responses": ["x = 1", "x = 2"], "gold": [1.0, 0.0],
                      "rtv": [1.0, 0.0], "tokens": [3, 3], "finished": [True, True], "edit": "1 -> 2",
                      "genrm_gt": [0.9, 0.2], "genrm": [0.5, 0.5 + 0.1 * (i % 3 - 1)]})
    results["data"]["close_pairs"] = pairs
    rows = readers.close_rows(results)
    assert sum(r["source"] == "constructed" for r in rows) == 30 and sum(r["source"] == "sampled" for r in rows) == 20
    d1 = {c.id: c for c in claims.claims(results)}["D1"]
    # D1 reads code: 13 sampled close code items and 30 pairs of 10 prompts, three of which (t1, t5, t7) are both
    assert d1.n == 20 and "13 sampled close items and 30 pairs built by a one-token edit, over 20 prompts" in d1.our_value
    assert d1.verdict == "reproduced"
    table = readers.close_table(results)
    assert [(r["source"], r["items"], r["prompts"]) for r in table if r["source"] == "constructed"] == [
        ("constructed", 30, 10)]
    assert "built pairs alone" in d1.our_value and "sampled alone" in d1.our_value
    for p in pairs:  # built math pairs are shown, not tested: the reference states the answer the edit changed
        p["domain"] = "math"
    assert {c.id: c for c in claims.claims(results)}["D1"].n == 13


def test_gt_must_work_on_the_close_items_the_claim_reads():
    """A GenRM with GT that ranks far items well and close items at random: D1 and D3 say nothing about what GT
    adds where responses are close."""
    results = _results(40, gt_knows=True)
    rng = random.Random(3)
    for r in results["data"]["records"]:
        if readers.max_edit(r) < 0.2:  # the close half
            r["genrm_gt"] = [rng.random() for _ in r["gold"]]
    by_id = {c.id: c for c in claims.claims(results)}
    assert by_id["D1"].verdict == by_id["D3"].verdict == "not tested at this scale"
    assert "the close code items" in by_id["D1"].reason and by_id["D1"].units == "prompts"
