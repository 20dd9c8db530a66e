"""Paper notebooks: smoke runs through papermill, and their claim logic on synthetic results."""

from __future__ import annotations

import json

import pytest

from conftest import SHARED_DATA
from rlhf_nb import claims as C
from rlhf_nb import runner
from rlhf_nb.data import Prompt
from rlhf_nb.notebooks import hh
from rlhf_nb.notebooks import online_dpo as od
from rlhf_nb.notebooks import passk as pk
from rlhf_nb.schemas import HHParams, OnlineDPOParams, PasskParams


def test_passk_notebook_smoke(project):
    overrides = {}
    if (SHARED_DATA / "HumanEvalPlus.jsonl.gz").is_file():  # exercise the HumanEval+ path where the file exists
        overrides["humaneval_plus"] = str(SHARED_DATA / "HumanEvalPlus.jsonl.gz")
    outcome = runner.run("02_passk_model_size", "smoke", overrides, progress=False)
    assert outcome.status == "ok", outcome.error
    results = json.loads((outcome.out_dir / "results.json").read_text())
    split = results["data"]["split"]
    assert split["eval"] and split["train"] and not set(split["eval"]) & set(split["train"])
    assert [r["label"] for r in results["data"]["runs"]] == ["base", "tuned"]
    assert {c["id"] for c in results["claims"]} == {"P1", "P2", "P3", "P4"}
    assert all(c["verdict"] in (C.REPRODUCED, C.DIRECTION, C.NOT_REPRODUCED, C.NOT_TESTED) for c in results["claims"])
    assert len(results["figures"]) == 4 and all((outcome.out_dir / f"{n}.png").is_file() for n in results["figures"])
    assert (outcome.out_dir / "samples_tiny_base_high.jsonl").is_file()
    if overrides:
        assert all(r["passed_plus"] is not None for r in results["data"]["runs"][0]["high"])


def _run(model, label, n_params, rates_high, rates_low=None, n=4, diversity=10.0, pairs=5, plus_drop=0.0):
    tasks = [f"T/{i}" for i in range(len(rates_high))]

    def rows(rates, n_):
        out = []
        for t, rate in zip(tasks, rates):
            k = round(rate * n_)
            kp = max(0, round((rate - plus_drop) * n_))
            out += [{"task_id": t, "passed": j < k, "passed_plus": j < min(k, kp)} for j in range(n_)]
        return out

    return {"model": model, "label": label, "n_params": n_params, "tasks": tasks, "high": rows(rates_high, n),
            "low": rows(rates_low or rates_high, n), "diversity": {t: diversity for t in tasks}, "t_low": 0.2,
            "t_high": 0.8, "tuning": {"pairs": pairs}}


P = PasskParams.model_construct(models=["small", "mid", "big"])


def test_claims_on_a_clean_scaling_picture():
    small = [0.0, 0.25, 0.5, 0.25, 0.0, 0.25]
    runs = [_run("small", "base", 1e8, small, diversity=30, plus_drop=0.25),
            _run("mid", "base", 5e8, [r + 0.25 for r in small], plus_drop=0.25),
            _run("big", "base", 1.5e9, [r + 0.5 for r in small], plus_drop=0.25),
            _run("small", "tuned", 1e8, [0.5, 0.5, 0.5, 0.5, 0.0, 0.0], rates_low=[1.0] * 6, diversity=10)]
    verdicts = {c["id"]: c["verdict"] for c in pk.claim_rows(runs, P)}
    assert verdicts["P1"] == C.REPRODUCED  # monotone, and 6/6 tasks better: sign-flip p = 1/64
    assert verdicts["P2"] == C.REPRODUCED
    assert verdicts["P3"] == C.REPRODUCED
    assert verdicts["P4"] == C.DIRECTION  # k=1 gain larger than k=4 gain, and less diverse


def test_claims_say_not_reproduced_when_the_data_disagree():
    runs = [_run("small", "base", 1e8, [0.75, 0.75, 0.75, 0.75]), _run("mid", "base", 5e8, [0.0, 0.25, 0.0, 0.0]),
            _run("small", "tuned", 1e8, [0.0, 0.0, 0.25, 0.0], rates_low=[0.0, 0.0, 0.0, 0.0], diversity=50)]
    verdicts = {c["id"]: c["verdict"] for c in pk.claim_rows(runs, PasskParams.model_construct(models=["small", "mid"]))}
    assert verdicts["P1"] == C.NOT_REPRODUCED and verdicts["P3"] == C.NOT_REPRODUCED
    assert verdicts["P4"] == C.NOT_REPRODUCED


def test_claims_not_tested_without_tuning_pairs():
    runs = [_run("small", "base", 1e8, [0.5, 0.5]), _run("small", "tuned", 1e8, [0.5, 0.5], pairs=0)]
    verdicts = {c["id"]: c["verdict"] for c in pk.claim_rows(runs, PasskParams.model_construct(models=["small"]))}
    assert verdicts == {"P1": C.NOT_TESTED, "P2": C.DIRECTION, "P3": C.NOT_TESTED, "P4": C.NOT_TESTED}


def test_curve_uses_the_unbiased_estimator():
    run = _run("m", "base", 1, [0.25, 1.0], n=4)
    assert pk.curve(run) == pytest.approx([(0.25 + 1.0) / 2, (0.5 + 1.0) / 2, (0.75 + 1.0) / 2, 1.0])


def test_scaling_on_too_few_tasks_is_only_a_direction():
    runs = [_run("small", "base", 1e8, [0.0, 0.25]), _run("big", "base", 1e9, [0.25, 0.5])]
    [p1] = [c for c in pk.claim_rows(runs, PasskParams.model_construct(models=["small", "big"])) if c["id"] == "P1"]
    assert p1["verdict"] == C.DIRECTION  # right sign, but two tasks cannot make it significant


# ----------------------------------------------------------------------------------------------
# 05 online iterative DPO
# ----------------------------------------------------------------------------------------------



def test_online_dpo_notebook_smoke(project):
    overrides = {}
    if (SHARED_DATA / "hh_rlhf_harmless_base_test.jsonl.gz").is_file():  # the HH path where the file exists
        overrides = {"hh_rlhf": str(SHARED_DATA / "hh_rlhf_harmless_base_test.jsonl.gz"), "hh_pairs": 6}
    outcome = runner.run("05_online_iterative_dpo", "smoke", overrides, progress=False)
    assert outcome.status == "ok", outcome.error
    results = json.loads((outcome.out_dir / "results.json").read_text())
    split = results["data"]["split"]
    assert not set(split["reference"]) & set(split["online"]) and not set(split["online"]) & set(split["eval"])
    assert not set(split["code_pairs"]) & set(split["humaneval_eval"])
    counts = {r["source"]: r for r in results["tables"]["pairs"]}
    assert {"reference", "code"} <= set(counts) and ("hh" in counts) == bool(overrides)
    assert {r["model"] for r in results["tables"]["rm_accuracy"]} == {"BT", "pairwise"}
    history = results["data"]["online_history"]
    assert [h["iteration"] for h in history] == [0, 1, 2]
    online_pairs = sum(int(h.get("pairs", 0)) for h in history)
    assert results["data"]["offline"]["pairs"] == online_pairs > 0  # equal pair budget
    kinds = [(s["kind"], s["iteration"]) for s in results["data"]["snapshots"]]
    assert kinds == [("online", 0), ("online", 1), ("online", 2), ("offline", None)]
    assert {c["id"] for c in results["claims"]} == {"W1", "W2", "W3", "W4"}
    assert len(results["figures"]) == 3 and all((outcome.out_dir / f"{n}.png").is_file() for n in results["figures"])


def _snap(kind, iteration, reward, length, responses=None):
    n = len(reward)
    return {"kind": kind, "iteration": iteration, "reward": reward, "length": length,
            "responses": responses or [f"{kind}{iteration}-{i}" for i in range(n)], "gsm8k": [0.0], "humaneval": [1.0]}


def _rm_rows(bt, pw, n=40):
    return [{"model": m, "source": "all", "n": n, "accuracy": a, "ci_low": lo, "ci_high": hi}
            for m, (a, lo, hi) in (("BT", bt), ("pairwise", pw))]


P05 = OnlineDPOParams.model_construct(seed=0)


def test_online_dpo_claims_on_a_clean_picture():
    base = [0.1 * i for i in range(12)]
    snaps = [_snap("online", t, [r + t for r in base], [20 + 10 * t + i for i in range(12)]) for t in range(4)]
    snaps.append(_snap("offline", None, [r + 0.5 for r in base], [25] * 12))
    judged = {"online_vs_offline": {"win_rate": 0.8, "ci_low": 0.6, "ci_high": 0.9, "n": 12}}
    verdicts = {c["id"]: c["verdict"] for c in od.claim_rows(_rm_rows((0.8, 0.7, 0.9), (0.75, 0.6, 0.85)), snaps, judged, P05)}
    assert verdicts == {"W1": C.REPRODUCED, "W2": C.REPRODUCED, "W3": C.REPRODUCED, "W4": C.REPRODUCED}


def test_online_dpo_claims_say_not_reproduced_when_the_data_disagree():
    base = [0.1 * i for i in range(12)]
    snaps = [_snap("online", t, [r - 0.3 * t for r in base], [40 - 5 * t] * 12) for t in range(4)]
    snaps.append(_snap("offline", None, [r + 1 for r in base], [30] * 12))
    judged = {"online_vs_offline": {"win_rate": 0.3, "ci_low": 0.1, "ci_high": 0.5, "n": 12}}
    verdicts = {c["id"]: c["verdict"] for c in od.claim_rows(_rm_rows((0.45, 0.3, 0.6), (0.55, 0.4, 0.7)), snaps, judged, P05)}
    assert verdicts == {"W1": C.NOT_REPRODUCED, "W2": C.NOT_REPRODUCED, "W3": C.NOT_REPRODUCED, "W4": C.NOT_REPRODUCED}


def test_online_dpo_claims_direction_and_not_tested():
    snaps = [_snap("online", 0, [0.0, 0.1, 0.2, 0.3], [10, 10, 10, 10]),
             _snap("online", 1, [0.2, 0.0, 0.3, 0.3], [10, 12, 10, 9])]
    verdicts = {c["id"]: c["verdict"] for c in od.claim_rows(_rm_rows((0.6, 0.4, 0.8), (0.6, 0.45, 0.75)), snaps, {}, P05)}
    assert verdicts == {"W1": C.DIRECTION, "W2": C.NOT_TESTED, "W3": C.DIRECTION, "W4": C.DIRECTION}
    only_start = od.claim_rows([], snaps[:1], {}, P05)
    assert {c["id"]: c["verdict"] for c in only_start} == {k: C.NOT_TESTED for k in ("W1", "W2", "W3", "W4")}


def test_online_dpo_length_claim_is_not_tested_when_replies_hit_the_cap():
    snaps = [{**_snap("online", t, [0.1 * i for i in range(6)], [64] * 6), "capped": [True] * 6} for t in range(3)]
    history = [{"iteration": 0}, {"iteration": 1, "mean_length": 270.0}, {"iteration": 2, "mean_length": 240.0}]
    P = OnlineDPOParams.model_construct(seed=0, eval_max_new_tokens=64)
    [w4] = [c for c in od.claim_rows([], snaps, {}, P, history) if c["id"] == "W4"]
    assert w4["verdict"] == C.NOT_TESTED
    assert "100% of replies hit the 64-token cap" in w4["our_value"] and "270 -> 240 characters" in w4["our_value"]


def test_judge_snapshots_compares_each_snapshot_with_the_start():
    data = od.Data(reference=[], online=[], eval=[Prompt(str(i), f"q{i}") for i in range(3)], math_train=[],
                   code_train=[], gsm8k_eval=[], humaneval_eval=[])
    snaps = [_snap("online", 0, [0, 0, 0], [1, 1, 1], ["a", "a", "a"]),
             _snap("online", 1, [0, 0, 0], [1, 1, 1], ["long", "long", "a"]),
             _snap("offline", None, [0, 0, 0], [1, 1, 1], ["a", "a", "a"])]

    class LengthJudge:  # prefers the longer reply; an order-symmetric (prompt, a, b) -> P(a better)
        def __call__(self, prompt, a, b):
            return 0.5 if len(a) == len(b) else float(len(a) > len(b))

    judged = od.judge_snapshots(snaps, data, LengthJudge())
    assert [s["win_outcomes"] for s in snaps] == [[0.5] * 3, [1.0, 1.0, 0.5], [0.5] * 3]
    assert judged["online_vs_offline"]["win_rate"] == pytest.approx(2.5 / 3)


# ----------------------------------------------------------------------------------------------
# 01 HH preference models
# ----------------------------------------------------------------------------------------------


def test_hh_notebook_smoke(project):
    outcome = runner.run("01_hh_preference_models", "smoke", {"pm_sizes": ["tiny"]}, progress=False)
    assert outcome.status == "ok", outcome.error
    results = json.loads((outcome.out_dir / "results.json").read_text())
    split = results["data"]["split"]
    for s in ("helpful", "harmless"):
        assert split[f"{s}_train"] and split[f"{s}_test"] and not set(split[f"{s}_train"]) & set(split[f"{s}_test"])
    assert not set(split["code_pairs"]) & set(split["humaneval_eval"])
    matrix = results["tables"]["pm_matrix"]
    assert {(r["pm"], r["test"]) for r in matrix} == {(pm, t) for pm in ("helpful", "harmless", "mixed")
                                                       for t in ("helpful", "harmless")}
    assert len({r["train_pairs"] for r in matrix}) == 1  # every PM trained on the same number of pairs
    sizes = results["tables"]["pm_model_size"]  # pm_base listed again: its factory is reused, params counted
    assert [r["backbone"] for r in sizes] == ["tiny", "tiny"] and all(r["params"] > 0 for r in sizes)
    assert [r["policy"] for r in results["tables"]["policies"]] == ["raw", "ppo", "dpo", "dpo+code"]
    assert len(results["data"]["sqrt_kl_fit"]["sqrt_kl"]) == len(results["data"]["ppo_history"]) == 3
    assert {c["id"] for c in results["claims"]} == {"H1", "H2", "H3", "H3b", "H4", "H5", "H6"}
    assert len(results["figures"]) == 5 and all((outcome.out_dir / f"{n}.png").is_file() for n in results["figures"])


def _cell(pm, test, outcomes):
    return {"pm": pm, "test": test, "train_pairs": 8, "n": len(outcomes), "accuracy": sum(outcomes) / len(outcomes),
            "ci_low": 0.0, "ci_high": 1.0, "outcomes": outcomes}


def _policy(name, pm_score, humaneval, win=None):
    pol = {"policy": name, "pm_score": pm_score, "humaneval": humaneval, "length": [10] * len(pm_score),
           "responses": ["x"] * len(pm_score)}
    if win is not None:
        pol["win_vs_raw"] = {"win_rate": win[0], "ci_low": win[1], "ci_high": win[2], "n": len(pm_score)}
    return pol


def _sizes(acc_by_size, n=12):
    return [{"train_pairs": s, "test": t, "accuracy": a, "outcomes": [1.0] * round(a * n) + [0.0] * (n - round(a * n))}
            for s, a in acc_by_size.items() for t in ("helpful", "harmless")]


PHH = HHParams.model_construct(seed=0, h2_margin=0.05)


def test_hh_claims_on_a_clean_picture():
    good, bad = [1.0] * 11 + [0.0], [1.0] * 3 + [0.0] * 9
    matrix = [_cell("helpful", "helpful", good), _cell("helpful", "harmless", bad), _cell("harmless", "helpful", bad),
              _cell("harmless", "harmless", good), _cell("mixed", "helpful", good), _cell("mixed", "harmless", good)]
    raw = _policy("raw", [0.0] * 12, [1.0, 1.0, 0.0, 0.0])
    ppo = _policy("ppo", [1.0 + 0.01 * i for i in range(12)], [1.0, 1.0, 0.0, 0.0], win=(0.8, 0.6, 0.9))
    dpo = _policy("dpo", [0.5] * 12, [1.0, 0.0, 1.0, 0.0], win=(0.7, 0.55, 0.85))
    fit = {"sqrt_kl": [0.0, 0.5, 1.0, 1.5], "reward": [0.0, 0.5, 1.0, 1.5], "slope": 1.0, "intercept": 0.0, "r2": 1.0,
           "p_value": 0.0}
    verdicts = {c["id"]: c["verdict"] for c in
                hh.claim_rows(matrix, _sizes({4: 0.5, 8: 0.7, 16: 0.9}), [raw, ppo, dpo], fit, PHH)}
    assert verdicts == {"H1": C.REPRODUCED, "H2": C.REPRODUCED, "H3": C.REPRODUCED, "H3b": C.REPRODUCED,
                        "H4": C.REPRODUCED, "H5": C.REPRODUCED, "H6": C.REPRODUCED}


def test_hh_claims_say_not_reproduced_or_not_tested_when_the_data_disagree():
    same = [1.0] * 6 + [0.0] * 6
    matrix = [_cell(pm, t, same) for pm in ("helpful", "harmless") for t in ("helpful", "harmless")]
    matrix += [_cell("mixed", "helpful", [0.0] * 12), _cell("mixed", "harmless", same)]
    raw = _policy("raw", [1.0] * 12, [0.0] * 4)
    ppo = _policy("ppo", [0.0] * 12, [0.0] * 4, win=(0.2, 0.1, 0.4))
    fit = {"sqrt_kl": [0.0, 0.5, 1.0], "reward": [1.0, 0.5, 0.0], "slope": -1.0, "intercept": 1.0, "r2": 1.0,
           "p_value": 0.0}
    verdicts = {c["id"]: c["verdict"] for c in hh.claim_rows(matrix, _sizes({4: 0.7, 8: 0.5}), [raw, ppo], fit, PHH)}
    assert verdicts == {"H1": C.NOT_REPRODUCED, "H2": C.NOT_REPRODUCED, "H3": C.NOT_REPRODUCED, "H3b": C.NOT_TESTED,
                        "H4": C.NOT_REPRODUCED, "H5": C.NOT_TESTED, "H6": C.NOT_REPRODUCED}


def test_hh_forgetting_claim_fails_on_a_real_drop():
    matrix = [_cell(pm, t, [1.0, 0.0]) for pm in ("helpful", "harmless", "mixed") for t in ("helpful", "harmless")]
    raw = _policy("raw", [0.0] * 8, [1.0] * 8)
    ppo = _policy("ppo", [0.0] * 8, [0.0] * 8, win=(0.5, 0.3, 0.7))
    fit = {"sqrt_kl": [], "reward": [], "slope": 0.0, "intercept": 0.0, "r2": 0.0, "p_value": 1.0}
    verdicts = {c["id"]: c["verdict"] for c in hh.claim_rows(matrix, _sizes({4: 0.5}), [raw, ppo], fit, PHH)}
    assert verdicts["H5"] == C.NOT_REPRODUCED and verdicts["H4"] == C.NOT_TESTED and verdicts["H6"] == C.NOT_TESTED


def test_sqrt_kl_fit_clips_negative_kl_estimates():
    fit = hh.sqrt_kl_fit([{"kl": -0.01, "reward": 0.0}, {"kl": 0.25, "reward": 1.0}, {"kl": 1.0, "reward": 2.0}])
    assert fit["sqrt_kl"] == [0.0, 0.5, 1.0] and fit["slope"] == pytest.approx(2.0) and fit["r2"] == pytest.approx(1.0)
