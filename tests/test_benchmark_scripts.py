"""Benchmark scripts run end to end on the tiny model (their figures are measured elsewhere, not asserted here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cap_hits_prints_one_row_per_setting():
    args = ["--model", "tiny", "--prompts", "2", "--samples", "2", "--caps", "8", "16", "--top-ps", "1.0", "0.9",
            "--systems", "", "Be brief."]
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cap_hits.py"), *args], capture_output=True,
                         text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    table = [line for line in out.stdout.splitlines() if line.startswith("| 1.0 |")]
    assert [row.split(" | ")[1:3] for row in table] == [["1.0", "(none)"], ["1.0", "Be brief."], ["0.9", "(none)"],
                                                         ["0.9", "Be brief."]]
    header = next(line for line in out.stdout.splitlines() if line.startswith("| T |"))
    assert "past 16" in header and "gold pairs at 8" in header
    for row in table:  # shares are percentages, pair counts cannot exceed the prompts
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert 0 <= float(cells[3].rstrip("%")) <= 100 and 0 <= int(cells[4]) <= 2


def test_throughput_bench_puts_speed_memory_and_the_end_metric_of_each_variant_side_by_side():
    args = ["--models", "tiny", "--routines", "dpo,ppo", "--reps", "2", "--steps", "2"]
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "throughput_bench.py"), *args], capture_output=True,
                         text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {line.split(" | ")[1]: [c.strip() for c in line.strip("|").split("|")]
            for line in out.stdout.splitlines() if line.startswith("| tiny |")}
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
