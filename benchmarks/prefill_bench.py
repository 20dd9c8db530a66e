"""Greedy evaluation with the prefill in one padded pass vs in groups of similar length, side by side in one run.

A left-padded batch is as wide as its longest prompt, so a single prefill pass costs rows x longest prompt. The
workloads are the evaluations notebooks 01, 04 and 05 repeat for every arm: greedy replies to held-out testbed
prompts (45-306 tokens) and to HumanEval requests (``rlhf_nb.rewards.forgetting.code_prompt``), at the precision an arm is
read in (fp32: trained policies and their baselines on CPU; bf16: frozen models). ``one pass`` sets
``PREFILL_GROUP_SHARE = 0`` (the loop as it was); ``groups`` is the default (:func:`rlhf_nb.lm.generation._prefill`).
Each cell alternates the two, ``--reps`` times, and prints the median seconds and the generated tokens/s (in bf16
the two ways can round differently and so write replies of other lengths: compare tokens/s), their ratio, the
padded prompt tokens each prefill computes, and how many replies are identical.

    python benchmarks/prefill_bench.py [--model smollm2-135m-instruct] [--prompts 64] [--reps 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--workloads", default="held-out,HumanEval")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from rlhf_nb.lm import device, generation, models
    from rlhf_nb.lm.evaluate import greedy
    from rlhf_nb.rewards.forgetting import code_prompt
    from rlhf_nb.tasks import gold
    from rlhf_nb.tasks.data import load_humaneval

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    workloads = {
        "held-out (cap 160)": ([p.messages() for p in gold.synthetic_prompts(
            args.prompts, seed=1, system="Reply in at most three short sentences.")], 160),
        "HumanEval (cap 384)": ([code_prompt(t) for t in load_humaneval()[: args.prompts]], 384),
    }
    print(f"{args.model}; {args.prompts} prompts a workload; threads {torch.get_num_threads()}; "
          f"probe at start {device.machine_probe()}")
    print("\n| workload | weights | one pass s | groups s | tok/s ratio | "
          "padded prefill tokens (one pass / groups / real) | same replies |")
    print("|---|---|---|---|---|---|---|")
    for dtype_name in args.dtypes.split(","):
        loaded = models.load(args.model, dtype=getattr(torch, dtype_name))
        tok = loaded.tokenizer
        for name, (prompts, cap) in workloads.items():
            if not any(name.startswith(w) for w in args.workloads.split(",")):
                continue
            lengths = sorted((len(tok(generation.render_prompt(tok, p), add_special_tokens=False).input_ids)
                              for p in prompts), reverse=True)
            groups = generation.prefill_groups(lengths)
            padded = (len(lengths) * lengths[0], sum(len(g) * lengths[g[0]] for g in groups), sum(lengths))
            times: dict[float, list[float]] = {0.0: [], generation.PREFILL_GROUP_SHARE: []}
            replies, tokens = {}, {}
            default = generation.PREFILL_GROUP_SHARE
            for _ in range(args.reps):
                for share in (0.0, default):
                    generation.PREFILL_GROUP_SHARE = share
                    start = time.perf_counter()
                    got = greedy(loaded, prompts, cap, label=f"{name} {dtype_name} share {share}")
                    replies[share], tokens[share] = got.first, sum(t[0] for t in got.tokens)
                    times[share].append(time.perf_counter() - start)
            generation.PREFILL_GROUP_SHARE = default
            one, grouped = statistics.median(times[0.0]), statistics.median(times[default])
            same = sum(a == b for a, b in zip(replies[0.0], replies[default]))
            rate = (tokens[0.0] / one, tokens[default] / grouped)
            print(f"| {name} | {dtype_name} | {one:.1f} ({rate[0]:.0f} tok/s) | {grouped:.1f} ({rate[1]:.0f} tok/s) | "
                  f"{rate[1] / rate[0]:.2f}x | "
                  f"{padded[0]} / {padded[1]} / {padded[2]} | {same}/{len(prompts)} |", flush=True)
    print(f"\nprobe at end {device.machine_probe()}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
