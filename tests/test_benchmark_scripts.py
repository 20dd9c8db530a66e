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
