"""A run stopped mid-way resumes at its last finished stage: a SIGTERM after the first stage, a rerun that reuses it,
and results equal to an uninterrupted run's; a changed parameter recomputes only the stages that read it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rlhf_nb.run import runner

NB = "06_feedback_blender"


TIMINGS = ("wall_s", "tokens_per_s", "seconds")  # how fast this machine was, not what the run found


def _results(path: Path) -> dict:
    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in TIMINGS}
        return [strip(v) for v in x] if isinstance(x, list) else x

    return strip(json.loads((path / "results.json").read_text()))


def _stages(path: Path) -> dict:
    return json.loads((path / "env.json").read_text())["stages"]


def test_a_stopped_run_resumes_at_its_last_finished_stage_with_the_same_results(project):
    stages = project / "runs" / NB / "smoke.stages"
    env = {**os.environ, "RLHF_NB_ROOT": str(project), "OMP_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "rlhf_nb.run.cli", "run", NB, "--profile", "smoke", "--quiet"]
    started = subprocess.Popen(cli, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not list(stages.glob("response-pool-*.pkl")) and started.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert started.poll() is None, "the run ended before its first stage was written: nothing to interrupt"
    started.send_signal(signal.SIGTERM)  # what a scheduler or a job's time limit sends
    output, _ = started.communicate(timeout=120)
    assert started.returncode != 0, output
    assert not (project / "runs" / NB / "smoke" / "results.json").exists()  # stopped before the end
    assert not list(stages.glob("feedback-grid-*.pkl"))

    resumed = runner.run(NB, "smoke", progress=False, root=project)
    assert resumed.status == "ok", resumed.error
    log = _stages(resumed.out_dir)
    assert log["response pool"]["reused"] and not log["feedback grid"]["reused"]
    kept = _results(resumed.out_dir)

    fresh = runner.run(NB, "smoke", progress=False, root=project, fresh=True)
    assert fresh.status == "ok", fresh.error
    assert not any(s["reused"] for s in _stages(fresh.out_dir).values())
    assert _results(fresh.out_dir) == kept  # the resumed run's numbers are the uninterrupted run's

    # a parameter only the grid reads: the pool is reused, the grid recomputed
    again = runner.run(NB, "smoke", {"head.l2": 10.0}, progress=False, root=project)
    assert again.status == "ok", again.error
    log = _stages(again.out_dir)
    assert log["response pool"]["reused"] and not log["feedback grid"]["reused"]
    # one the pool reads: both recomputed
    again = runner.run(NB, "smoke", {"sampling.temperature": 0.9}, progress=False, root=project)
    log = _stages(again.out_dir)
    assert not log["response pool"]["reused"] and not log["feedback grid"]["reused"]
