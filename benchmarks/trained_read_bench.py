"""A trained policy's held-out replies: the path notebooks took when issue 40 was filed against the path they take
now, side by side in one run on one machine.

Issue 40 measured trained policies sampling at 72-82 tok/s in the notebooks (05's held-out snapshots of 48 replies)
and set the target at >= 3x that path. This benchmark rebuilds both paths from the code itself, not from a model of
it: the code of ``--then`` (default 10b8eca, the last commit before the fix of 836753f) checked out in a temporary git
worktree, and this checkout's code, each in a fresh process (2 threads), do the same thing:

1. load SmolLM2-135M-Instruct with a LoRA adapter (05's ``cpu`` adapter: r 16, alpha 32, no dropout) and train it
   with that version's own ``train_dpo`` on the same pairs (``--pairs`` bundled HH-RLHF pairs; lr 5e-4 and batch 8 as
   05's ``cpu`` DPO, one epoch, beta 0.1, max length 512), under that version's precision policy;
2. read it as that version's 05 read a trained policy: *then* ``models.merged_while`` (the adapter merged into fp32
   weights; after training accelerate's bf16-autocast ``forward`` stayed on the model) and that version's sampler;
   *now* ``models.reading`` (the mixed read: bf16 matmuls on fp32 weights, the adapter added in fp32) and the sampler
   as it runs today;
3. greedy replies to 05's held-out prompts on two workloads: the filing day's (the first 48 prompts, cap 128) and
   today's (300 prompts, cap 192).

Reported per path and workload: tokens/s (generated tokens over the wall time of the whole read: the merge or the
mixed read's bf16 copies, which a notebook pays once per read, and the sampling), mean tokens a reply, the
share cut off at the cap, the held-out gold of the replies (the two adapters are trained by different code, so their
gold may differ a little; it is shown to say the fast path does not read a different policy), and whether the
model carried accelerate's autocast wrapper while it was read. The ratio now / then is the issue's target; the
plain-HF reference paths (fp32 unmerged / merged, bf16 frozen) are in ``mixed_read_bench.py``.

    python benchmarks/trained_read_bench.py [--then 10b8eca] [--pairs 64] [--workloads 48x128,300x192] [--model tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SYSTEM = "Reply in at most three short sentences."  # 05's cpu system line, then and now
DPO = {"learning_rate": 5e-4, "beta": 0.1, "num_train_epochs": 1, "per_device_train_batch_size": 8, "max_length": 512}


def worker(args: argparse.Namespace) -> None:
    """One path in this process: train, then read on every workload; writes JSON to ``args.out``."""
    import torch

    code = Path(args.code).resolve()
    sys.path.insert(0, str(code))
    import rlhf_nb

    assert Path(rlhf_nb.__file__).resolve().is_relative_to(code), (rlhf_nb.__file__, code)
    from rlhf_nb.lm import models
    from rlhf_nb.lm.evaluate import greedy
    from rlhf_nb.tasks.data import PreferencePair
    from rlhf_nb.train.dpo import DPOConfig, train_dpo

    torch.set_num_threads(2)
    task = json.loads(Path(args.task).read_text())
    pairs = [PreferencePair(**p) for p in task["pairs"]]
    torch.manual_seed(0)
    policy = models.load(task["model"], lora={"r": 16, "alpha": 32, "dropout": 0.0})
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        train_dpo(policy, pairs, DPOConfig(output_dir=out, seed=0, data_seed=0, **DPO))
    trained_s = time.perf_counter() - started
    wrapped = any(hasattr(m, "_original_forward") for m in policy.model.modules())
    read = models.reading if args.path == "now" else models.merged_while
    rows = []
    for workload in task["workloads"]:
        messages = task["messages"][: workload["prompts"]]
        started = time.perf_counter()
        with read(policy):
            replies = greedy(policy, messages, workload["cap"], label=f"{args.path} {workload['name']}")
        seconds = time.perf_counter() - started
        tokens = [t[0] for t in replies.tokens]
        rows.append({"workload": workload["name"], "seconds": seconds, "tokens": tokens, "texts": replies.first,
                     "cut_off": replies.cap_rate})
    Path(args.out).write_text(json.dumps({"path": args.path, "train_s": trained_s, "autocast_wrapper": wrapped,
                                          "rows": rows}))


def run_path(path: str, code: Path, task: Path, out: Path, root: Path) -> dict:
    env = {**os.environ, "RLHF_NB_ROOT": str(root), "PYTHONPATH": str(code), "OMP_NUM_THREADS": "2"}
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--worker", "--path", path, "--code", str(code), "--task", str(task),
                    "--out", str(out)], env=env, check=True, cwd=str(code))
    print(f"{path}: done in {time.perf_counter() - started:.0f} s", flush=True)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--then", default="10b8eca", help="the commit whose code is the 'then' path")
    parser.add_argument("--model", default="smollm2-135m-instruct", help="the policy (05's cpu policy)")
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--workloads", default="48x128,300x192", help="prompts x cap, comma-separated")
    parser.add_argument("--order", default="then,now", help="which path runs first")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--code", help=argparse.SUPPRESS)
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    import numpy as np

    from rlhf_nb.evidence.stats import paired
    from rlhf_nb.lm import device
    from rlhf_nb.notebook.config import load_params
    from rlhf_nb.papers.rlhf_workflow.steps import make_prompts
    from rlhf_nb.tasks import gold
    from rlhf_nb.tasks.data import load_hh_rlhf

    workloads = [{"name": w, "prompts": int(w.split("x")[0]), "cap": int(w.split("x")[1])}
                 for w in args.workloads.split(",")]
    P = load_params("05_online_iterative_dpo", "cpu", check_inputs=False)[1]
    held_out = make_prompts(P).eval  # 05's cpu held-out prompts, its system line
    if max(w["prompts"] for w in workloads) > len(held_out) or P.system != SYSTEM:
        raise SystemExit(f"05's cpu profile has {len(held_out)} held-out prompts and system {P.system!r}")
    pairs = [vars(p) for p in load_hh_rlhf("bundled", limit=args.pairs, seed=0)]
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    dirty = bool(subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=ROOT).stdout)
    print(f"now = {head.strip()}{' (dirty)' if dirty else ''}, then = {args.then}; {args.model}; {len(pairs)} DPO pairs; "
          f"workloads {args.workloads}; {device.describe()['reason']}; probe {device.machine_probe()}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        task = tmp_path / "task.json"
        task.write_text(json.dumps({"model": args.model, "pairs": pairs, "messages": [p.messages() for p in held_out],
                                    "workloads": workloads}))
        then = tmp_path / "then"
        added = subprocess.run(["git", "worktree", "add", "--detach", str(then), args.then], cwd=ROOT,
                               capture_output=True, text=True)
        if added.returncode:
            raise SystemExit(f"cannot check out {args.then} (a shallow clone lacks it?): {added.stderr.strip()}")
        try:
            for path in args.order.split(","):
                code, root = (then, then) if path == "then" else (ROOT, ROOT)
                results[path] = run_path(path, code, task, tmp_path / f"{path}.json", root)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(then)], cwd=ROOT, capture_output=True)
    print(f"probe after: {device.machine_probe()}\n")
    print("| workload | path | autocast wrapper | tok/s | tokens a reply | cut off | held-out gold |")
    print("|---|---|---|---|---|---|---|")
    speed: dict[tuple[str, str], float] = {}
    golds: dict[tuple[str, str], list[float]] = {}
    for w in workloads:
        for path in ("then", "now"):
            row = next(r for r in results[path]["rows"] if r["workload"] == w["name"])
            speed[w["name"], path] = sum(row["tokens"]) / row["seconds"]
            golds[w["name"], path] = gold.if_scores(held_out[: w["prompts"]], row["texts"])
            print(f"| {w['name']} | {path} | {results[path]['autocast_wrapper']} | {speed[w['name'], path]:.0f} | "
                  f"{np.mean(row['tokens']):.0f} | {100 * row['cut_off']:.0f}% | "
                  f"{100 * np.mean(golds[w['name'], path]):.1f} |")
    print()
    for w in workloads:
        d = paired(100 * np.asarray(golds[w["name"], "then"]), 100 * np.asarray(golds[w["name"], "now"]))
        print(f"{w['name']}: now / then {speed[w['name'], 'now'] / speed[w['name'], 'then']:.2f}x; gold now - then "
              f"{d.diff:+.1f} pts [{d.low:+.1f}, {d.high:+.1f}] over {d.n} prompts")
    print(f"DPO training: then {results['then']['train_s']:.0f} s, now {results['now']['train_s']:.0f} s")


if __name__ == "__main__":
    main()
