"""Benchmark scripts run end to end on the tiny model (their figures are measured elsewhere, not asserted here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_bench(script: str, args: list[str], rows: tuple[str, ...] = (), timeout: int = 600,
              env: dict[str, str] | None = None) -> tuple[str, list[list[str]]]:
    """Run ``benchmarks/<script>`` (it must succeed) and return its stdout and the cells of its table rows starting
    with ``rows`` (none if ``rows`` is empty); ``env``: variables added to this process's environment."""
    import os

    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True,
                         timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout, [[c.strip() for c in line.strip("|").split("|")] for line in out.stdout.splitlines()
                        if rows and line.startswith(rows)]


def test_cap_hits_prints_one_row_per_setting():
    args = ["--model", "tiny", "--prompts", "2", "--samples", "2", "--caps", "8", "16", "--top-ps", "1.0", "0.9",
            "--systems", "", "Be brief."]
    stdout, _ = run_bench("cap_hits.py", args, timeout=300)
    table = [line for line in stdout.splitlines() if line.startswith("| 1.0 |")]
    assert [row.split(" | ")[1:3] for row in table] == [["1.0", "(none)"], ["1.0", "Be brief."], ["0.9", "(none)"],
                                                         ["0.9", "Be brief."]]
    header = next(line for line in stdout.splitlines() if line.startswith("| T |"))
    assert "past 16" in header and "gold pairs at 8" in header
    for row in table:  # shares are percentages, pair counts cannot exceed the prompts
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert 0 <= float(cells[3].rstrip("%")) <= 100 and 0 <= int(cells[4]) <= 2


@pytest.mark.slow  # 160-527 s on 2 cores, and it checks only the table's format: the slow tier (`make test-slow`)
def test_throughput_bench_puts_speed_memory_and_the_end_metric_of_each_variant_side_by_side():
    args = ["--models", "tiny", "--routines", "dpo,ppo", "--reps", "2", "--steps", "2"]
    stdout, _ = run_bench("throughput_bench.py", args)
    rows = {line.split(" | ")[1]: [c.strip() for c in line.strip("|").split("|")]
            for line in stdout.splitlines() if line.startswith("| tiny |")}
    assert set(rows) == {"dpo", "ppo"}
    dpo, ppo = rows["dpo"], rows["ppo"]
    speeds = dpo[2].split(" / ")  # before, now, bf16 train, trl
    assert len(speeds) == 4 and all(float(x) > 0 for x in speeds)
    assert all(cell.endswith("x") for cell in dpo[3:6]) and ppo[5] == "-"  # trl has no PPO to compare with
    ends = [part.strip().split("/") for part in dpo[7].split(";")]
    assert len(ends) == 4 and all(len(e) == 2 for e in ends)  # one end loss per seed, per variant
    assert all(0 < float(v) < 2 for e in ends for v in e)  # DPO loss starts at log 2 = 0.69
    ppo_ends = [part.strip().split("/") for part in ppo[7].split(";")]
    assert ppo_ends[0][0] != ppo_ends[0][1]  # the two repetitions are two seeds (other rollouts): their spread is noise
    probe = next(line for line in stdout.splitlines() if line.startswith("machine speed"))
    assert "of the 14 measurements" in probe  # dpo: 4 variants, ppo: 3, two repetitions each
    spans = re.findall(r"(fp32|bf16|GB/s\)) ([\d.]+)-([\d.]+)", probe)
    assert [name for name, _, _ in spans] == ["fp32", "bf16", "GB/s)"]
    assert all(0 < float(lo) <= float(hi) for _, lo, hi in spans)


@pytest.mark.slow  # two processes that each train and sample: the slow tier (`make test-slow`)
def test_trained_read_bench_times_the_filing_days_path_and_todays_side_by_side():
    args = ["--model", "tiny", "--pairs", "8", "--workloads", "3x6,5x8"]
    stdout, rows = run_bench("trained_read_bench.py", args, ("| 3x6 |", "| 5x8 |"), timeout=900)
    assert [(r[0], r[1]) for r in rows] == [("3x6", "then"), ("3x6", "now"), ("5x8", "then"), ("5x8", "now")]
    assert all(float(r[3]) > 0 and 0 <= float(r[4]) <= 8 for r in rows)  # tok/s, tokens a reply within the cap
    assert {r[2] for r in rows if r[1] == "now"} == {"False"}  # today's trained policy has its own forward back
    assert re.search(r"3x6: now / then [\d.]+x; gold now - then [+-][\d.]+ pts .* over 3 prompts", stdout)
    assert not any("then" in line for line in subprocess.run(["git", "worktree", "list"], capture_output=True,
                                                             text=True, cwd=ROOT).stdout.splitlines()[1:])


def test_dpo_seeds_bench_reuses_the_reference_log_probs_after_the_first_seed():
    args = ["--model", "tiny", "--pairs", "8", "--seeds", "2"]
    stdout, rows = run_bench("dpo_seeds_bench.py", args, ("| each |", "| shared |"))
    assert [(r[0], r[1]) for r in rows] == [("each", "0"), ("each", "1"), ("shared", "0"), ("shared", "1")]
    spent = {(r[0], r[1]): float(r[3]) for r in rows}
    assert spent["each", "1"] > 0 and spent["shared", "0"] > 0 and spent["shared", "1"] == 0
    assert all(r[4] == "True" for r in rows)  # the reused values train to the same losses
    assert re.search(r"2 seeds: each \d+ s, shared \d+ s: [\d.]+x", stdout)


def test_dpo_microbatch_bench_counts_fewer_padded_tokens_for_fewer_pairs_a_pass():
    args = ["--model", "tiny", "--pairs", "8", "--splits", "4x2,1x8"]
    stdout, rows = run_bench("dpo_microbatch_bench.py", args, ("| 4x2 |", "| 1x8 |"))
    assert [r[0] for r in rows] == ["4x2", "1x8"]
    assert int(rows[1][2]) < int(rows[0][2])  # one pair a pass pads to that pair's longer reply only
    assert all(0 < float(r[3].rstrip("%")) <= 100 and r[4] == "1" for r in rows)  # 8 pairs: one step of 8
    assert float(rows[0][6]) == 0.0 and re.search(r"1x8: [\d.]+x against 4x2", stdout)


def test_genrm_choice_scores_a_saved_runs_mixed_items_with_each_judge(tmp_path):
    import json

    from rlhf_nb.notebook.config import load_params
    from rlhf_nb.papers.data_scaling import steps

    _, P = load_params("03_data_scaling_rlhf", "smoke", None, ROOT)
    items = steps.make_items(P).items
    records = []
    for i, it in enumerate(items):  # every item but the first is mixed (right and wrong responses)
        gold = [1.0, 0.0, 1.0] if i else [0.0, 0.0, 0.0]
        responses = [f"Answer {k}: " + "step " * (3 + 2 * k + i) for k in range(3)]
        records.append({"domain": it.domain, "id": it.id, "responses": responses, "tokens": [5, 7, 9],
                        "finished": [True] * 3, "gold": gold})
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"params": P.model_dump(), "data": {"records": records}}))
    stdout, rows = run_bench("genrm_choice.py", ["--run", str(run), "--judges", "tiny"], ("| tiny |",),
                             timeout=300)
    assert [(r[1], r[2]) for r in rows] == [(d, g) for d in ("math", "code", "all") for g in ("with GT", "without GT")]
    mixed = {"math": sum(it.domain == "math" for it in items[1:]), "code": sum(it.domain == "code" for it in items[1:])}
    mixed["all"] = len(items) - 1  # the unmixed item is not scored
    assert all(int(r[3]) == mixed[r[1]] for r in rows)
    assert all(0 <= float(r[4].split()[0]) <= 100 for r in rows)
    verdicts = {"reproduced", "not reproduced", "inconclusive", "not tested at this scale"}
    lines = stdout.split("tiny: ", 1)[1].splitlines()
    assert [line.split()[0] for line in lines[1:4]] == ["D1", "D2", "D3"]
    assert all(any(v in line for v in verdicts) for line in lines[1:4])


def test_judge_choice_scores_a_saved_runs_answer_pairs_and_reads_length_against_the_gold(tmp_path):
    import json

    from rlhf_nb.notebook.config import load_params
    from rlhf_nb.papers.precise_rlaif import steps

    _, P = load_params("04_precise_rlaif", "smoke", None, ROOT)
    prompts = steps.make_prompts(P)
    texts, gold = [], []
    for i, _ in enumerate(prompts.train):  # three answers; the gold differs in two pairs per prompt but the first
        texts.append([f"Short {i}.", f"A longer answer {i}, " + "and more " * (2 + i), f"Short {i}."])
        # the shorter answer is gold-better for even prompts, the longer one for odd prompts
        gold.append([1.0, 1.0, 1.0] if i == 0 else ([1.0, 0.5, 1.0] if i % 2 == 0 else [0.5, 1.0, 0.5]))
    answers = {"prompt_ids": [p.id for p in prompts.train], "texts": texts, "gold": gold,
               "tokens": [[3, 9, 3]] * len(texts), "finished": [[True] * 3] * len(texts), "tokens_per_s": 1.0}
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"profile": "smoke", "params": P.model_dump(), "data": {
        "prompt_ids": prompts.ids(), "answers": answers}}))
    _, rows = run_bench("judge_choice.py", ["--run", str(run), "--judges", "tiny", "--questions", "instructions"],
                        ("| tiny |",), timeout=300)
    assert [r[2] for r in rows] == ["probability", "log-odds"]
    differing = 2 * (len(texts) - 1)
    even = sum(1 for i in range(1, len(texts)) if i % 2 == 0)
    for r in rows:
        assert int(r[3]) == differing and 0 <= float(r[5]) <= 100 and r[7] in ("holds", "fails")
        assert float(r[8]) == round(100 * even / (len(texts) - 1))  # gold-better is the shorter one: even prompts
        assert 0 <= float(r[9]) <= 100


def test_train_precision_reads_every_adapter_back_in_fp32():
    stdout, _ = run_bench("train_precision.py", ["--model", "tiny", "--steps", "2", "--seeds", "0"])
    rows = {r[0]: r for r in ([c.strip() for c in line.strip("|").split("|")] for line in stdout.splitlines()
                              if line.startswith("| ") and line[2:6] in ("fp32", "bf16", "mixe"))}
    assert set(rows) == {"fp32", "bf16", "mixed"} and rows["fp32"][2] == "1.00x"
    assert all(float(r[1]) > 0 and r[2].endswith("x") for r in rows.values())
    assert all(abs(float(r[4])) < 5 and abs(float(r[5])) < 5 for r in rows.values())
    assert float(rows["fp32"][4]) > 0  # DPO on these pairs raises the implied margin


def test_verdict_calibration_covers_every_kind_on_each_outcome_and_design(tmp_path):
    out_file = tmp_path / "calibration.md"
    stdout, _ = run_bench("verdict_calibration.py", ["--quick", "--out", str(out_file)], timeout=300)
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| kind ")]
    kinds = {r[0].split(" (")[0] for r in rows}
    assert kinds == {"superiority", "non-inferiority", "equivalence", "trend", "association", "linearity",
                     "proportion vs 0.5", "proportion vs 0.57", "beats_trivial"}
    for kind in ("superiority", "non-inferiority", "equivalence"):  # every outcome type on every design
        cells = {(r[1], r[2]) for r in rows if r[0] == kind}
        assert {(o, d) for o in ("pass/fail", "points (ties)", "continuous")
                for d in ("1 seed", "1 vs 3 seeds", "clustered")} <= cells
    for row in rows:  # data sets, then three rates, each with its Wilson interval, then cpu seconds
        assert int(row[4]) == 2
        assert all(re.fullmatch(r"\d+\.\d% \[\d+\.\d, \d+\.\d\]", cell) for cell in row[5:8]), row
        assert float(row[8]) >= 0
    assert out_file.read_text() == stdout


def test_mixed_read_bench_puts_every_read_path_side_by_side_and_checks_the_zero_adapter():
    args = ["--model", "tiny", "--prompts", "6", "--max-new-tokens", "6"]
    stdout, _ = run_bench("mixed_read_bench.py", args, timeout=300, env={"RLHF_NB_PRECISION": "auto"})
    rows = [line.split(" | ") for line in stdout.splitlines() if line.startswith(("| greedy |", "| sampled |"))]
    assert [r[1] for r in rows] == ["fp32 unmerged", "fp32 merged", "mixed read", "bf16 frozen (no adapter)"] * 2
    zero = re.search(r"zero adapter read mixed == base read mixed on (\d+) of (\d+)", stdout)
    assert zero and zero.group(1) == zero.group(2)  # an adapter of zeros changes nothing
    assert "held-out gold, greedy: fp32 merged" in stdout


def test_rl_method_bench_compares_the_methods_from_one_shared_start_on_smoke():
    stdout, _ = run_bench("rl_method_bench.py", ["--profile", "smoke", "--seeds", "2", "--n", "2"], timeout=300)
    rows = {line.split(" | ")[0].strip("| "): line for line in stdout.splitlines()
            if line.startswith(("| rft |", "| dpo |"))}
    assert set(rows) == {"rft", "dpo"}
    assert "RFT - DPO held out:" in stdout  # the paired difference, not two separate intervals
    assert "3 evaluation tasks x 2 samples x 2 seeds per method" in stdout  # smoke's 3 tasks, as asked


def test_continuous_bench_runs_both_workloads_on_tiny_models():
    stdout, _ = run_bench("continuous_bench.py", ["--profile", "smoke", "--tasks", "2", "--policy", "tiny", "--prompts",
                                                  "3", "--held-out", "4", "--greedy-cap", "8", "--threads", "1"])
    rows = [line for line in stdout.splitlines() if line.startswith("| 0")]
    assert len(rows) == 4 and all(" of " in row for row in rows if "greedy" in row)


def test_sampler_agreement_compares_both_paths_on_smoke():
    from rlhf_nb.notebook.config import load_params
    from rlhf_nb.papers.passk import steps

    _, P = load_params("02_passk_model_size", "smoke", None, ROOT)
    task = steps.split_tasks(P).eval[0]
    stdout, _ = run_bench("sampler_agreement.py", ["--profile", "smoke", "--n", "2", "--tasks", task, "--threads",
                                                   "1"])
    assert "before" in stdout and "now" in stdout and "Fisher exact p" in stdout


def test_head_bench_times_trls_kernel_the_head_at_a_revision_and_now_side_by_side():
    _, rows = run_bench("head_bench.py", ["--heads", "tiny", "--rows", "16", "--reps", "1", "--then", "HEAD"],
                        rows=("| tiny",))
    assert len(rows) == 1
    cells = rows[0]
    assert cells[1] == "16" and all(float(c) > 0 for c in cells[2:5])
    assert all(c.endswith("x") and float(c[:-1]) > 0 for c in cells[5:7])


def test_one_reply_batch_bench_alternates_the_batch_sizes_and_sums_their_time():
    args = ["--model", "tiny", "--prompts", "6", "--cap", "4", "--batches", "auto,2", "--reps", "2"]
    stdout, rows = run_bench("one_reply_batch_bench.py", args, rows=("| auto |", "| 2 |"), timeout=300)
    assert [(r[0], r[1]) for r in rows] == [("auto", "1"), ("2", "1"), ("auto", "2"), ("2", "2")]
    assert all(int(r[3]) > 0 for r in rows)
    assert "batch 2:" in stdout and "x the time of batch auto" in stdout


def test_r1c_loss_probe_rebuilds_the_shipped_pairs_and_reads_its_own_rows():
    """The probe trains on 04's pairs rebuilt from the shipped run by the notebook's code (the counts it shipped),
    calls a reply that repeats itself a loop, and ``--analyse`` reads R1c's test and premise from the committed rows."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gzip
    import json

    import numpy as np
    from r1c_loss_probe import RESULTS, loops, rebuild_pairs, run_params

    assert loops("a b c d " * 10) and not loops("one reply that says a thing once and then stops here.")
    shipped = json.loads(gzip.open(RESULTS).read())
    _, sets = rebuild_pairs(run_params(shipped), shipped["data"])
    trained = {t["arm"]: t["pairs"] for t in shipped["data"]["arms"]["trained"]}  # what each arm trained on
    assert {k: len(v) for k, v in sets.items()} == {"precise-all": trained["precise-all"],
                                                     "sequence": shipped["data"]["sequence"]["pairs"]}
    assert trained["sequence"] == shipped["data"]["sequence"]["pairs"]
    rows = ROOT / "benchmarks" / "results" / "r1c_loss_probe"
    out, _ = run_bench("r1c_loss_probe.py", ["--analyse", str(rows / "seed1.json"), str(rows / "seeds02.json")])
    runs = [r for f in ("seed1.json", "seeds02.json") for r in json.loads((rows / f).read_text())
            if r["loss"] == "sigmoid+sft"]
    seeds = sorted({r["seed"] for r in runs if r["arm"] == "precise-all"} & {r["seed"] for r in runs
                                                                             if r["arm"] == "sequence"})
    gold = {arm: np.mean([100 * r["gold"] for r in runs if r["arm"] == arm and r["seed"] in seeds])
            for arm in ("precise-all", "sequence")}
    # the effect the analysis prints is the rows' own Precise minus sequence-level mean over the seeds both arms have
    assert f"seeds {seeds}: {gold['precise-all'] - gold['sequence']:+.1f} pts" in out
    # the reading follows the rule from the printed interval: its top below the minimum effect reads not reproduced
    line = next(x for x in out.splitlines() if x.startswith("R1c:"))
    top = float(line.split("pts [")[1].split("]")[0].split(", ")[1])
    assert line.endswith("the rule would read: not reproduced") == (top < 2 and ": holds (" in line)
