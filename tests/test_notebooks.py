"""Paper notebooks: smoke runs through papermill, and their claims on constructed results."""

from __future__ import annotations

import json

import numpy as np
from conftest import assert_report_recomputes

from rlhf_nb.evidence import claims as C
from rlhf_nb.papers.passk import claims as passk
from rlhf_nb.run import runner

# --- 02 pass@k -------------------------------------------------------------------------------


def test_passk_notebook_smoke(project):
    outcome = runner.run("02_passk_model_size", "smoke", progress=False)
    assert outcome.status == "ok", outcome.error
    results = json.loads((outcome.out_dir / "results.json").read_text())
    split = results["data"]["split"]
    assert split["eval"] and split["train"] and not set(split["eval"]) & set(split["train"])
    runs = results["data"]["runs"]
    assert [(r["arm"], r["seed"]) for r in runs] == [("untuned", None), ("tuned", 0), ("tuned", 1)]  # 2 DPO seeds
    assert all(t["passed_plus"] is not None for t in runs[0]["samples"])  # HumanEval+ from the bundled copy
    assert results["data"]["plus_inputs"] > 0
    ids = {c["id"] for c in results["claims"]}
    assert {"P1", "P2"} <= ids and any(i.startswith("P3@") for i in ids)
    assert all(c["verdict"] in C.VERDICTS for c in results["claims"])
    assert set(results["figures"]) == {"tuning_loss", "passk_curves", "pass1_vs_size", "plus_gap", "diversity"}
    assert all((outcome.out_dir / f"{n}.png").is_file() for n in results["figures"])
    assert (outcome.out_dir / "samples_tiny_untuned.jsonl").is_file()
    assert {r["dtype"] for r in runs} == {"float32"}  # each arm records the precision it was sampled at
    tuning = results["data"]["tuning"][0]  # every seed sampled again on its checked training tasks, next to the start
    assert len(tuning["train_pass_start"]) == len(split["train"]) and set(tuning["train_pass"]) == {"0", "1"}
    checked = tuning["train_check_index"]  # smoke checks 3 of its 4 training tasks, the same 3 for each seed
    assert checked == [0, 1, 2] and len(split["train"]) == 4
    assert all(len(v) == len(checked) and 0 <= min(v) <= max(v) <= 1 for v in tuning["train_pass"].values())
    assert len(results["findings"]) >= 3
    # the saved verdicts, findings and tables are a cache: recomputing them from the data gives the same records
    assert_report_recomputes(results)


def test_passk_a_model_at_the_floor_is_not_tuned_and_says_why_from_its_training_samples(project):
    outcome = runner.run("02_passk_model_size", "smoke", overrides={"reference_pairs": False}, progress=False)
    assert outcome.status == "ok", outcome.error
    results = json.loads((outcome.out_dir / "results.json").read_text())
    tuning = results["data"]["tuning"][0]  # a random tiny model never passes: nothing to learn from
    assert not tuning["tuned"] and "training tasks had a passing sample" in tuning["reason"]
    assert tuning["train_pass_start"] == [] and [r["arm"] for r in results["data"]["runs"]] == ["untuned"]
    p3 = next(c for c in results["claims"] if c["id"].startswith("P3@"))
    assert p3["verdict"] == C.NOT_TESTED and "nothing to learn from" in p3["our_value"]
    assert_report_recomputes(results)


def test_passk_stopped_after_an_arm_resumes_there_with_the_same_numbers(project):
    """Each arm is a stage: a run stopped after the untuned arm and the first seed reuses both, trains the second seed
    again, gives the same numbers and writes every arm's samples file."""
    first = runner.run("02_passk_model_size", "smoke", progress=False)
    assert first.status == "ok", first.error
    before = json.loads((first.out_dir / "results.json").read_text())
    stages = first.out_dir.parent / "smoke.stages"
    for name in ("sampled-and-tuned-arms-*", "size-0-dpo-seed-1-*"):  # as if stopped while training seed 1
        for path in stages.glob(name + ".pkl"):
            path.unlink()
    again = runner.run("02_passk_model_size", "smoke", progress=False)
    assert again.status == "ok", again.error
    after = json.loads((again.out_dir / "results.json").read_text())
    log = json.loads((again.out_dir / "env.json").read_text())["stages"]
    assert log["size 0: untuned arm"]["reused"] and log["size 0: dpo seed 0"]["reused"]
    assert not log["size 0: dpo seed 1"]["reused"]
    assert [r["samples"] for r in after["data"]["runs"]] == [r["samples"] for r in before["data"]["runs"]]
    assert after["data"]["tuning"][0]["train_pass"] == before["data"]["tuning"][0]["train_pass"]
    assert len(list(again.out_dir.glob("samples_*.jsonl"))) == 3


def _task(pass_rate: float, n: int, rng, plus_drop: float = 0.0, diversity: float = 0.3) -> dict:
    passed = list(rng.random(n) < pass_rate)
    plus = [p and rng.random() >= plus_drop for p in passed]
    return {"task_id": "T", "passed": passed, "passed_plus": plus, "tokens": [50] * n, "finished": [True] * n,
            "diversity": float(diversity + rng.normal(0, 0.05))}


def _run(size, arm, seed, rates, n=10, params_b=0.5, family="f", plus_drop=0.0, diversity=0.3, seed_rng=0):
    rng = np.random.default_rng(seed_rng)
    return {"size": size, "family": family, "params_b": params_b, "model": f"m{size}", "arm": arm, "seed": seed,
            "samples": [_task(r, n, rng, plus_drop, diversity) for r in rates], "low": None, "tokens_per_s": 1.0,
            "cap_rate": 0.0, "dtype": "float32"}


def _results(runs, tuning, plus_inputs=500):
    return {"notebook": "02_passk_model_size", "params": {"sampling": {"temperature": 0.8}, "published": {}},
            "data": {"runs": runs, "tuning": tuning, "plus_inputs": plus_inputs}}


def _moved(rise: float = 0.3, tasks: int = 40, seeds: int = 3) -> dict:
    """A tuning record where RL ran here and its seeds pass their training tasks ``rise`` more often than the start."""
    rng = np.random.default_rng(9)
    start = rng.uniform(0.2, 0.5, tasks)
    return {"size": 0, "pairs": 40, "tuned": True, "train_tasks": tasks, "method": "rft",
            "train_pass_start": list(start),
            "train_pass": {str(s): list(np.clip(start + rise + rng.normal(0, 0.05, tasks), 0, 1)) for s in range(seeds)}}


def test_passk_claims_on_a_clean_picture():
    rng = np.random.default_rng(1)
    base = rng.uniform(0.2, 0.5, 120)
    runs = [_run(0, "untuned", None, base, plus_drop=0.3, diversity=0.4)]
    runs += [_run(0, "tuned", s, np.clip(base + 0.3, 0, 0.95), diversity=0.2, seed_rng=s + 1) for s in range(3)]
    out = {c.id: c for c in passk.claims(_results(runs, [_moved()]))}
    assert out["P3@0.5B"].verdict == C.REPRODUCED and out["P3@0.5B"].seeds == 3
    assert "one round of RFT on its own execution feedback over the model it started from" in out["P3@0.5B"].statement
    assert out["P2"].verdict == C.REPRODUCED  # HumanEval+ catches 30% of passing programs
    assert out["P5@0.5B"].verdict == C.REPRODUCED  # tuned samples are less diverse
    # +30 pts at k=1 and not behind at k=10: the gain shrinks (pass@k's ceiling) but the curves never cross
    assert out["P4@0.5B"].premises[-1].holds and out["P4@0.5B"].verdict != C.REPRODUCED
    assert out["P4@0.5B"].effect <= 0 and "a crossing beyond k = 10 is not tested" in out["P4@0.5B"].our_value
    assert out["P1"].verdict == C.NOT_TESTED  # one size of one family
    for run in runs:  # an instruct start is fine for RL trained here from it (Yue et al.'s comparison) ...
        run["model"] = "m0-Instruct"
    assert {c.id: c for c in passk.claims(_results(runs, [_moved()]))}["P3@0.5B"].verdict == C.REPRODUCED
    published = {"size": 0, "pairs": 0, "tuned": True, "train_tasks": 0, "reason": "published tuned checkpoint"}
    out = {c.id: c for c in passk.claims(_results(runs, [published]))}  # ... but not against a published tuned model
    assert out["P3@0.5B"].verdict == C.NOT_TESTED and "no preference tuning" in out["P3@0.5B"].reason
    assert out["P3@0.5B"].statement.startswith("preference tuning raises pass@1")
    for run in runs:
        run["model"] = "m0"
    for tuning in (_moved(rise=0.0), {k: v for k, v in _moved().items() if k != "train_pass"}):
        out = {c.id: c for c in passk.claims(_results(runs, [tuning]))}  # RL did not move, or was not checked
        assert out["P3@0.5B"].verdict == C.NOT_TESTED and "raised pass@1 on its training tasks" in out["P3@0.5B"].reason
    runs[0]["dtype"] = "bfloat16"  # the untuned arm sampled in bf16, the tuned ones in fp32: rounding differs too
    out = {c.id: c for c in passk.claims(_results(runs, [_moved()]))}
    assert out["P3@0.5B"].verdict == C.NOT_TESTED and "one precision" in out["P3@0.5B"].reason
    assert "bfloat16 vs float32" in " ".join(p.detail for p in out["P3@0.5B"].premises)
    runs[0].pop("dtype")  # a saved run from before the dtype was recorded
    out = {c.id: c for c in passk.claims(_results(runs, [_moved()]))}
    assert out["P5@0.5B"].verdict == C.NOT_TESTED and "one precision" in out["P5@0.5B"].reason


def test_rft_records_are_distinct_passing_samples_as_whole_chat_replies():
    from rlhf_nb.notebook.config import load_params
    from rlhf_nb.papers.passk import steps as passk_steps
    from rlhf_nb.tasks.data import load_humaneval

    P = load_params("02_passk_model_size", "smoke", {"examples_per_task": 2, "reference_pairs": False},
                    check_inputs=False)[1]
    a, b = load_humaneval()[:2]
    samples = [(a, "prompt-a", ["    return 1\n", "    return 2\n", "    return 3\n"], ["    return 0\n"]),
               (b, "prompt-b", [], ["    pass\n"])]
    records, with_pass = passk_steps.rft_records(samples, P)
    assert with_pass == 1 and len(records) == 2  # two of a's three passing replies, none of b's
    assert records[0]["prompt"] == passk_steps.code_prompt(a)
    assert records[0]["completion"] == passk_steps.prefill_of(a) + "    return 1\n" + "\n```"
    plumbing = P.model_copy(update={"reference_pairs": True})
    assert len(passk_steps.rft_records(samples, plumbing)[0]) == 3  # b's reference solution stands in
    pairs, _ = passk_steps.execution_pairs(samples, P)
    assert [(p.chosen, p.rejected) for p in pairs] == [("    return 1\n\n```", "    return 0\n\n```"),
                                                       ("    return 2\n\n```", "    return 0\n\n```")]


def test_passk_rft_arm_trains_and_is_evaluated(project):
    sizes = [{"family": "tiny", "params_b": 0.0001, "untuned": "tiny", "tuned": "rft"}]
    outcome = runner.run("02_passk_model_size", "smoke", overrides={"sizes": sizes, "seeds": 1}, progress=False)
    assert outcome.status == "ok", outcome.error
    results = json.loads((outcome.out_dir / "results.json").read_text())
    assert [(r["arm"], r["seed"]) for r in results["data"]["runs"]] == [("untuned", None), ("tuned", 0)]
    tuning = results["data"]["tuning"][0]
    assert tuning["method"] == "rft" and tuning["pairs"] > 0 and any("loss" in r for r in tuning["history"]["0"])
    assert "RFT (SFT on its own passing samples)" in " ".join(results["findings"])
    assert_report_recomputes(results)


def test_passk_reports_where_the_start_overtakes_a_sharpened_arm():
    """Tuning that solves the easy tasks more often and gives up the hard ones (Yue et al. 2025's picture): it leads
    at k = 1, the start overtakes it before k = n, and P4 and the finding say at which k, with an interval."""
    from rlhf_nb.papers.passk import readers

    rng = np.random.default_rng(5)
    base = rng.uniform(0.05, 0.6, 120)
    sharp = np.where(base > 0.25, np.minimum(0.95, base + 0.35), 0.0)
    runs = [_run(0, "untuned", None, base, n=16)]
    runs += [_run(0, "tuned", s, sharp, n=16, seed_rng=s + 1) for s in range(3)]
    results = _results(runs, [_moved()])
    cross = readers.crossing_of(results, 0)
    assert 1 < cross.k < 16 and cross.ci[0] <= cross.k <= cross.ci[1] and cross.tasks == 120
    assert "crossing at k =" in readers.finding_catch_up(results)
    p4 = {c.id: c for c in passk.claims(results)}["P4@0.5B"]
    assert f"crossing at k = {cross.k:.1f}" in p4.our_value
    assert p4.verdict == C.REPRODUCED and p4.effect > 2  # the start is ahead at k = 16


def test_passk_claims_not_tested_without_pairs_or_off_the_floor():
    rng = np.random.default_rng(2)
    runs = [_run(0, "untuned", None, rng.uniform(0, 0.02, 40))]  # at the floor, nothing tuned
    tuning = [{"size": 0, "pairs": 0, "tuned": False, "train_tasks": 60,
               "reason": "0 of 60 training tasks had a passing sample (< 2%): no pairs to learn from"}]
    out = {c.id: c for c in passk.claims(_results(runs, tuning))}
    assert {out[k].verdict for k in ("P3@0.5B", "P4@0.5B", "P5@0.5B", "P2")} == {C.NOT_TESTED}
    assert "no pairs" in out["P3@0.5B"].our_value


def test_passk_wrecked_tuning_is_never_a_crossing():
    rng = np.random.default_rng(3)
    base = rng.uniform(0.3, 0.6, 80)
    runs = [_run(0, "untuned", None, base)] + [_run(0, "tuned", s, base * 0.1, seed_rng=s + 5) for s in range(3)]
    out = {c.id: c for c in passk.claims(_results(runs, [_moved()]))}
    assert out["P3@0.5B"].verdict == C.NOT_REPRODUCED
    assert out["P4@0.5B"].verdict == C.NOT_TESTED  # no gain at k=1 to shrink


def test_passk_size_trend_over_three_sizes_of_one_family():
    rng = np.random.default_rng(4)
    runs = [_run(i, "untuned", None, np.clip(rng.uniform(0.1, 0.3, 100) + 0.15 * i, 0, 1), params_b=b,
                 seed_rng=i) for i, b in enumerate((0.5, 1.5, 3.0))]
    out = {c.id: c for c in passk.claims(_results(runs, []))}
    assert out["P1"].kind == "trend" and out["P1"].verdict == C.REPRODUCED


# --- 05 online iterative DPO -------------------------------------------------------------------


def test_online_dpo_notebook_smoke(project):
    outcome = runner.run("05_online_iterative_dpo", "smoke", progress=False)
    assert outcome.status == "ok", outcome.error
    results = json.loads((outcome.out_dir / "results.json").read_text())
    ids = results["data"]["prompt_ids"]
    assert not set(ids["rm"]) & set(ids["online"]) and not set(ids["online"]) & set(ids["eval"])
    runs = results["data"]["runs"]
    assert len(runs["online"]) == 2 and len(runs["offline"]) == 2  # seeds
    assert [s["round"] for s in runs["online"][0]["snapshots"]] == [1, 2]
    read = {s["dtype"] for s in [runs["start"], *runs["offline"], *runs["online"][0]["snapshots"]]}
    assert read in ({"mixed"}, {"float32"})  # every arm, the start included, read alike (models.reading)
    assert all({"entropy", "mean_tokens", "cut_off", "pairs"} <= set(h) for h in runs["online"][0]["history"][1:])
    assert runs["offline_pairs"] == [min(r["pairs"], runs["offline_pairs"][i]) for i, r in enumerate(runs["online"])]
    assert {r["source"] for r in results["data"]["rm_accuracy"]} >= {"hh-human"}
    assert any('system line "Be brief."' in f for f in results["findings"])  # smoke's system line, said once
    assert {c["id"] for c in results["claims"]} == {"W1a", "W1b", "W1c", "W1d", "W1e", "W2", "W3", "W4"}
    assert set(results["figures"]) == {"rm_accuracy", "iterations", "proxy_vs_gold"}
    assert_report_recomputes(results)


def test_online_dpo_notebook_with_the_gold_as_labeller(project):
    """The cpu profile's path on tiny: no reward models, the gold (with rater noise) picks the pairs of both arms."""
    outcome = runner.run("05_online_iterative_dpo", "smoke", {"labeller": "gold", "label_noise": 0.05,
                                                             "reward_models": False, "prompts": {"rm": 0}},
                         progress=False)
    assert outcome.status == "ok", outcome.error
    results = json.loads((outcome.out_dir / "results.json").read_text())
    runs = results["data"]["runs"]
    assert "rm_accuracy" not in results["data"] and runs["start"]["proxy"] == []
    assert all(run["pairs"] > 0 for run in runs["online"])  # noise breaks the ties of a random model's replies
    claims = {c["id"]: c for c in results["claims"]}
    assert "gold as the preference oracle (rater noise SD 0.05)" in claims["W2"]["statement"]
    assert claims["W1a"]["verdict"] == "not tested at this scale"
    assert "No reward models in this run" in results["findings"][1]
    assert_report_recomputes(results)


def test_online_dpo_stopped_after_an_arm_resumes_there_with_the_same_numbers(project):
    """Each arm is a stage: a run stopped while training seed 1 reuses the start, the offline samples and seed 0's
    arms, trains seed 1's again and gives the same numbers."""
    overrides = {"labeller": "gold", "label_noise": 0.05, "reward_models": False, "prompts": {"rm": 0}}
    first = runner.run("05_online_iterative_dpo", "smoke", overrides, progress=False)
    assert first.status == "ok", first.error
    before = json.loads((first.out_dir / "results.json").read_text())["data"]["runs"]
    stages = first.out_dir.parent / "smoke.stages"
    for name in ("online-seed-1-*", "offline-seed-1-*"):  # as if stopped while training seed 1
        assert list(stages.glob(name + ".pkl")), name
        for path in stages.glob(name + ".pkl"):
            path.unlink()
    again = runner.run("05_online_iterative_dpo", "smoke", overrides, progress=False)
    assert again.status == "ok", again.error
    log = json.loads((again.out_dir / "env.json").read_text())["stages"]
    assert all(log[s]["reused"] for s in ("start snapshot", "offline samples", "online seed 0", "offline seed 0"))
    assert not log["online seed 1"]["reused"] and not log["offline seed 1"]["reused"]
    after = json.loads((again.out_dir / "results.json").read_text())["data"]["runs"]
    for key in ("start", "online", "offline", "offline_pairs", "offline_samples"):
        assert _without_seconds(after[key]) == _without_seconds(before[key]), key


def _without_seconds(value):
    """``value`` without wall times (a rerun measures its own)."""
    if isinstance(value, dict):
        return {k: _without_seconds(v) for k, v in value.items()
                if not any(w in k for w in ("second", "runtime", "tokens_per_s"))}
    if isinstance(value, list):
        return [_without_seconds(v) for v in value]
    return value


# --- 01 HH preference models ----------------------------------------------------------------


def test_hh_notebook_smoke(project):
    outcome = runner.run("01_hh_preference_models", "smoke", progress=False)
    assert outcome.status == "ok", outcome.error
    results = json.loads((outcome.out_dir / "results.json").read_text())
    ids = results["data"]["prompt_ids"]
    sets = [set(ids[k]) for k in ("helpful", "eval", "rl", "bon")]
    assert sum(map(len, sets)) == len(set().union(*sets))  # the four prompt sets are disjoint
    rows = results["data"]["pm_matrix"]
    assert len(rows) == 6 and all(len(r["outcomes"]) == 2 for r in rows)  # 3 PMs x 2 test sets, 2 fits each
    assert all(len(r["length_baseline"]) == len(r["outcomes"][0]) for r in rows)  # the same pairs, by length
    assert "preferring the longer reply alone" in results["findings"][1]
    bon = results["data"]["bon"]
    assert bon["n"] == [1, 2, 4, 8] and bon["test_n"] == 2 and np.shape(bon["gold"]) == (3, 4, 96)  # draws, n, prompts
    assert [len(x) for x in bon["validation"]["train"]] == [sum(f) for f in bon["fold_pairs"]]
    assert {c["id"]: c for c in results["claims"]}["H4"]["verdict"] == "not tested at this scale"  # no RL trajectory
    assert 'system line "Be brief."' in results["findings"][0]  # smoke's system line, said with the samples
    assert {p["arm"] for p in results["data"]["policies"]} == {"raw", "dpo", "ppo"}
    assert {p["dtype"] for p in results["data"]["policies"]} == {"float32"}  # compared arms record their precision
    assert {c["id"] for c in results["claims"]} == {"H1a", "H1b", "H2a", "H2b", "H3a", "H3b", "H3c", "H3d", "H4", "H5",
                                                    "H6", "H7"}
    assert set(results["figures"]) == {"pm_matrix", "pm_data_size", "reward_vs_sqrt_kl", "rlhf_vs_raw"}
    assert_report_recomputes(results)
    claims = {c["id"]: c for c in results["claims"]}  # H3a compares the cut-off rates of the raw replies and the picks
    assert [p for p in claims["H3a"]["premises"] if p["name"].endswith("truncated alike")]


# --- 06 diverse feedback (RLHF-Blender) -----------------------------------------------------


def test_feedback_notebook_smoke(project):
    outcome = runner.run("06_feedback_blender", "smoke", progress=False)
    assert outcome.status == "ok", outcome.error
    results = json.loads((outcome.out_dir / "results.json").read_text())
    ids = results["data"]["prompt_ids"]
    assert not set(ids["train"]) & set(ids["test"])
    rows = results["data"]["grid"]["rows"]
    arms = {"rating", "comparison", "ranking", "correction", "demonstration", "descriptive", "ensemble"}
    assert {r["arm"] for r in rows} == arms
    assert len(rows) == len(arms) * 2 * 2 * 2  # budgets x noises x seeds
    assert {c["id"] for c in results["claims"]} == {"B1a", "B1b", "B1c", "B1d", "B1e", "B1f", "B2", "B3"}
    assert set(results["figures"]) == {"budget", "noise", "ensemble"}
    assert_report_recomputes(results)
    assert not (project / "runs" / "06_feedback_blender" / "feedback-smoke.jsonl").exists()  # nobody clicked
    executed = json.loads((outcome.out_dir / "06_feedback_blender.ipynb").read_text())
    streams = "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", [])
                      if o.get("output_type") == "stream")
    assert "gemm_4bit_forward" not in streams and "Traceback" not in streams  # known noise filtered at import


def _feedback_results(acc: dict[tuple[str, float], float], pairs: int = 1000, seeds: int = 3) -> dict:
    """Constructed results: each (arm, noise) at the full budget gets pair outcomes with the given accuracy."""
    rng = np.random.default_rng(0)
    types = ["rating", "comparison", "ranking", "correction", "demonstration", "descriptive"]
    rows = []
    for (arm, noise), a in acc.items():
        for s in range(seeds):
            rows.append({"arm": arm, "budget": 300, "noise": noise, "seed": s, "targets": 300, "spearman": 0.0,
                         "bon_gold": 0.5, "outcomes": (rng.random(pairs) < a).astype(float).tolist()})
    params = {"types": types, "budgets": [10, 300], "noises": [0.0, 0.5], "claim_noise": 0.0, "b2_margin": 0.03,
              "length_match": 0.7}
    grid = {"rows": rows, "test_pairs": pairs, "test_prompts": pairs // 4, "test_gold_mean": 0.4, "test_gold_best": 0.8,
            "pair_prompts": [f"p{i // 4}" for i in range(pairs)], "pair_longer": (rng.random(pairs) < 0.5).tolist(),
            "pair_length_ratio": [0.9] * pairs, "pair_finished": [0.5] * pairs,
            "pair_rules": {"prefer the reply with more markup": [0.5] * pairs},
            "gold_fed": {form: {"outcomes": (rng.random(pairs) < 0.85).astype(float).tolist()}
                         for form in ("values", "pairs")}}
    return {"params": params, "data": {"grid": grid, "pool": {"cap_rate": 0.02}}}


def test_feedback_type_claims_need_a_learner_that_can_beat_the_rules():
    """B1's positive control: the same head fed the exact gold must beat the strongest rule, or a type's loss to
    the rules is the learner's; a run that did not measure it is not tested."""
    from rlhf_nb.papers.feedback_blender.claims import claims

    types = ["rating", "comparison", "ranking", "correction", "demonstration", "descriptive"]
    results = _feedback_results({(t, z): 0.55 for t in types + ["ensemble"] for z in (0.0, 0.5)})
    grid = results["data"]["grid"]
    grid["pair_rules"]["prefer the reply with more markup"] = [1.0] * 700 + [0.0] * 300  # right on 70% of pairs
    assert {c.id: c.verdict for c in claims(results)}["B1a"] == "not reproduced"
    grid["gold_fed"]["values"]["outcomes"] = [0.5] * 1000  # the ridge head fed the gold ties everywhere
    verdicts = {c.id: c for c in claims(results)}
    assert verdicts["B1a"].verdict == "not tested at this scale" and "positive control" in verdicts["B1a"].reason
    assert "minimum effect" in verdicts["B1a"].reason
    assert verdicts["B1f"].verdict == "not tested at this scale"  # descriptive feedback is learned as values too
    assert verdicts["B1b"].verdict == "not reproduced"  # comparisons are learned as pairs: that control holds
    grid["gold_fed"]["values"]["outcomes"] = [1.0] * 710 + [0.0] * 290  # one point above the markup rule
    assert {c.id: c for c in claims(results)}["B1a"].verdict == "not tested at this scale"  # not by the minimum
    del grid["gold_fed"]
    assert all(c.verdict == "not tested at this scale" and "rerun 06" in c.reason
               for c in claims(results) if c.id.startswith("B1"))


def test_feedback_grid_finding_names_the_shorter_rule_and_the_controls_rival():
    """The grid's finding keeps its two rules apart: the shorter response's rate beside the best arm, and the
    strongest rule the positive control is measured against (the same name once held both)."""
    from rlhf_nb.papers.feedback_blender.readers import finding_grid

    types = ["rating", "comparison", "ranking", "correction", "demonstration", "descriptive"]
    results = _feedback_results({(t, z): 0.6 for t in types + ["ensemble"] for z in (0.0, 0.5)})
    results["data"]["grid"]["pair_rules"]["prefer the reply with more markup"] = [1.0] * 700 + [0.0] * 300
    text = finding_grid(results)
    assert text.count("(preferring the shorter response: ") == 1
    assert "draw(s) (preferring the shorter response: " in text
    assert "against 70.0% for the strongest rule, 'prefer the reply with more markup' (means over prompts)" in text


def test_feedback_claims_follow_the_data():
    from rlhf_nb.papers.feedback_blender.claims import claims

    types = ["rating", "comparison", "ranking", "correction", "demonstration", "descriptive"]
    acc = {(t, 0.0): 0.75 for t in types} | {(t, 0.5): 0.7 for t in types}
    acc |= {("rating", 0.5): 0.55, ("ensemble", 0.0): 0.8, ("ensemble", 0.5): 0.7, ("descriptive", 0.0): 0.5}
    verdicts = {c.id: c.verdict for c in claims(_feedback_results(acc))}
    assert verdicts["B1a"] == "reproduced" and verdicts["B1f"] != "reproduced"  # descriptive at chance
    assert verdicts["B2"] == "reproduced"  # the ensemble matches the best type
    assert verdicts["B3"] == "reproduced"  # ratings lose 20 points, comparisons 5
    acc |= {("rating", 0.5): 0.7, ("comparison", 0.5): 0.55, ("ensemble", 0.0): 0.6, ("ranking", 0.0): 0.3}
    verdicts = {c.id: c.verdict for c in claims(_feedback_results(acc))}
    assert verdicts["B3"] == "not reproduced" and verdicts["B2"] == "not reproduced"
    assert verdicts["B1c"] == "not reproduced"  # the sign flipped: rankings rank worse than chance


def test_feedback_reward_models_are_compared_with_length_and_endings_and_counted_by_prompt():
    """A reward model that just prefers the longer response, or the one that ended on its own, beats chance but not
    that rule; the pairs of one prompt count once; pairs of different length are left out of the claims; a run that
    did not record prompts, lengths and endings is not tested."""
    from rlhf_nb.papers.feedback_blender.claims import claims

    types = ["rating", "comparison", "ranking", "correction", "demonstration", "descriptive"]
    results = _feedback_results({(t, z): 0.75 for t in types + ["ensemble"] for z in (0.0, 0.5)})
    grid = results["data"]["grid"]
    rng = np.random.default_rng(9)
    longer = (rng.random(1000) < 0.7).astype(float)  # the longer response is better on 70%
    grid["pair_longer"] = longer.tolist()
    for row in grid["rows"]:
        if row["arm"] == "rating":
            row["outcomes"] = longer.tolist()  # the rating model learned length and nothing else
    verdicts = {c.id: c for c in claims(results)}
    assert verdicts["B1a"].verdict != "reproduced" and "prefer the longer" in verdicts["B1a"].our_value
    assert verdicts["B1c"].verdict == "reproduced" and verdicts["B1c"].n == 250  # prompts, not pairs
    ended = np.where(rng.random(1000) < 0.2, 0.5, (rng.random(1000) < 0.95).astype(float))  # one of two was cut off
    grid["pair_finished"] = ended.tolist()
    for row in grid["rows"]:
        if row["arm"] == "comparison":
            row["outcomes"] = ended.tolist()  # the comparison model learned to spot a cut-off reply
    verdicts = {c.id: c for c in claims(results)}
    assert verdicts["B1b"].verdict != "reproduced" and "ended on its own" in verdicts["B1b"].our_value
    grid["pair_finished"], grid["pair_longer"] = [0.5] * 1000, (rng.random(1000) < 0.5).tolist()
    # the ranking model is right only on the pairs of different length: on the length-matched ones it is at chance
    ratio = np.where(np.arange(1000) % 2 == 0, 0.9, 0.4)
    grid["pair_length_ratio"] = ratio.tolist()
    for row in grid["rows"]:
        if row["arm"] == "ranking":
            row["outcomes"] = np.where(ratio < 0.7, 1.0, 0.5).tolist()
    verdicts = {c.id: c for c in claims(results)}
    assert verdicts["B1c"].verdict != "reproduced" and verdicts["B1d"].verdict == "reproduced"
    assert "500 of 1000 held-out pairs" in verdicts["B1d"].our_value
    del grid["pair_finished"]
    assert {c.verdict for c in claims(results)} == {"not tested at this scale"}


def _snap(arm: str, seed, round_: int, gold: list[float], finished: list[bool]) -> dict:
    return {"arm": arm, "seed": seed, "round": round_, "gold": gold, "proxy": [0.0] * len(gold),
            "tokens": [60] * len(gold), "finished": finished, "dtype": "float32"}


def _workflow_results(online_gold: float, online_finished: float, proxy_rise: float = 0.3) -> dict:
    """Constructed 05 results: online rounds shift the gold by ``online_gold`` x round / 3 and the BT reward they
    optimise by ``proxy_rise`` x round (in SD of the start's)."""
    n, rng = 80, np.random.default_rng(0)
    start_gold = rng.uniform(0, 1, n).round(1).tolist()
    start_proxy = rng.normal(0, 1, n)

    def arm(arm: str, seed, r: int, shift: float, finished: float) -> dict:
        gold = np.clip(np.asarray(start_gold) + shift + rng.normal(0, 0.05, n), 0, 1).tolist()
        snap = _snap(arm, seed, r, gold, [i < finished * n for i in range(n)])
        snap["proxy"] = (start_proxy + (proxy_rise * r if arm == "online" else 0.0)).tolist()
        return snap

    online = [{"seed": s, "snapshots": [arm("online", s, r, online_gold * r / 3, online_finished) for r in (1, 2, 3)],
               "history": [], "pairs": 16} for s in range(3)]
    rm = [{"model": m, "source": "if-gold", "outcomes": [1.0] * 70 + [0.0] * 30, "length_baseline": [0.5] * 100}
          for m in ("BT", "pairwise")]
    runs = {"start": {**_snap("start", None, 0, start_gold, [True] * n), "proxy": start_proxy.tolist()},
            "online": online,
            "offline": [arm("offline", s, 3, 0.0, 1.0) for s in range(3)], "offline_pairs": [16, 16, 16]}
    return {"params": {"iterations": 3, "eval_max_new_tokens": 128}, "data": {"rm_accuracy": rm, "runs": runs}}


def test_workflow_claims_with_the_gold_as_labeller_need_no_reward_model():
    """With the gold picking the pairs, W2/W3 say so and rest on no reward-model premise; W1a-e are not tested (no
    reward models) and say why; W4 counts cut-off replies at the cap and needs most replies to finish."""
    from rlhf_nb.papers.rlhf_workflow import claims as wf

    results = _workflow_results(online_gold=0.2, online_finished=1.0, proxy_rise=-0.1)  # proxy ignored under gold
    results["params"].update(labeller="gold", label_noise=0.0)
    results["data"]["rm_accuracy"] = []
    out = {c.id: c for c in wf.claims(results)}
    assert out["W2"].verdict == C.REPRODUCED and "gold as the preference oracle" in out["W2"].statement
    assert not any("BT" in p.name for p in out["W2"].premises + out["W3"].premises)
    assert out["W1a"].verdict == C.NOT_TESTED and "reward_models: false" in out["W1a"].our_value
    results["params"]["label_noise"] = 0.1
    assert "rater noise SD 0.1" in {c.id: c for c in wf.claims(results)}["W2"].statement
    capped = _workflow_results(online_gold=0.2, online_finished=0.4)
    w4 = {c.id: c for c in wf.claims(capped)}["W4"]
    assert w4.verdict == C.NOT_TESTED and any(not p.holds and "most held-out replies finish" in p.name
                                              for p in w4.premises)


def test_workflow_gold_claims_need_arms_truncated_alike():
    from rlhf_nb.papers.rlhf_workflow import claims as wf

    alike = {c.id: c for c in wf.claims(_workflow_results(online_gold=0.2, online_finished=1.0))}
    assert alike["W2"].verdict == C.REPRODUCED and alike["W3"].verdict == C.REPRODUCED
    # online replies cut off far more often than offline ones: the gold gap may be a truncation gap
    apart = {c.id: c for c in wf.claims(_workflow_results(online_gold=0.2, online_finished=0.6))}
    assert apart["W2"].verdict == C.NOT_TESTED and apart["W3"].verdict == C.NOT_TESTED
    assert any(not p.holds and "truncated alike" in p.name for p in apart["W2"].premises)
    # no gain online: a powered negative, not a missing test
    flat = {c.id: c for c in wf.claims(_workflow_results(online_gold=0.0, online_finished=1.0))}
    assert flat["W2"].verdict in (C.NOT_REPRODUCED, C.INCONCLUSIVE)
    # the loop did not even raise the reward it optimised: nothing was tested
    idle = {c.id: c for c in wf.claims(_workflow_results(online_gold=0.2, online_finished=1.0, proxy_rise=-0.1))}
    assert idle["W2"].verdict == C.NOT_TESTED and idle["W3"].verdict == C.NOT_TESTED
    assert any(not p.holds and p.name == "online DPO raised its BT reward on held-out prompts"
               for p in idle["W3"].premises)
    # the start policy sampled in bf16, the trained rounds in fp32: the trend would carry the rounding too
    mixed = _workflow_results(online_gold=0.2, online_finished=1.0)
    mixed["data"]["runs"]["start"]["dtype"] = "bfloat16"
    verdicts = {c.id: c for c in wf.claims(mixed)}
    assert verdicts["W3"].verdict == C.NOT_TESTED and verdicts["W2"].verdict == C.REPRODUCED
    assert any(not p.holds and "one precision" in p.name for p in verdicts["W3"].premises)


def test_passk_prefilled_replies_end_after_the_function():
    from rlhf_nb.lm.generation import cut_at_stop
    from rlhf_nb.papers.passk.steps import ending_for
    from rlhf_nb.rewards.code import CodeDone
    from rlhf_nb.tasks.data import CodeTask

    task = CodeTask("t/0", "def add(a, b):\n", "add", "def check(f): assert f(1, 2) == 3\n", "    return a + b\n")
    reply = "    return a + b\n\n# Test cases\nprint(add(1, 2))  # 3\n```\nThis adds."
    stops, done = ending_for("chat", True, [task])
    body, stopped = cut_at_stop(reply, stops)
    assert stopped and body == "    return a + b\n" and done is None
    stops, done = ending_for("chat", False, [task, task])  # a free reply keeps its prose; it ends after the block
    assert stops == () and done is not None and len(done) == 2 and all(isinstance(d, CodeDone) for d in done)
    stops, done = ending_for("completion", False, [task])
    assert "```" not in stops and done is None


def test_training_task_gain_pairs_each_checked_task_with_the_start_on_that_task():
    """Seeds checked on a subset: the start's rate on task ``index[i]`` is paired with the seeds' i-th share. The start
    is high on the checked tasks and low elsewhere, so pairing with the wrong tasks would show a large gain."""
    from rlhf_nb.papers.passk import readers

    start = [0.9 if i % 2 == 0 else 0.1 for i in range(40)]
    index = list(range(0, 40, 2))
    tuned = {str(s): [0.9] * len(index) for s in range(3)}
    tuning = {"train_pass_start": start, "train_pass": tuned, "train_check_index": index}
    assert readers.train_start(tuning) == [0.9] * 20
    assert abs(readers.train_gain(tuning).effect) < 1e-9
    assert readers.train_start({**tuning, "train_check_index": None}) == start  # old records: every task
