"""The per-token log-prob head of training (forward and backward), side by side in one process: trl's kernel as it runs
on a CPU, rlhf-nb's CPU head casting the frozen head weight on every call, and the CPU head as it runs (the cast kept
from call to call, :func:`rlhf_nb.train.cpu_head.cast_weight`).

Shapes are what matters (weights are random): the head of Qwen2.5-Coder-0.5B (151,936 x 896, 02's RFT) and of
SmolLM2-135M (49,152 x 576, 04's and 05's DPO), over ``--rows`` labelled positions (an RFT step of 4 records has
~600-800), under bf16 autocast on fp32 weights as ``mixed`` training runs; outputs log-probs, entropy and top-1 as trl's
SFT trainer asks. Each variant runs ``--reps`` times, alternated; the table shows the best and the ratios. trl's
kernel scores every position it is given; here it gets the labelled rows only, as the CPU head does (it is the tile
arithmetic that differs, not the rows).

    python benchmarks/head_bench.py [--rows 770] [--reps 3] [--heads qwen,smollm2]
"""

from __future__ import annotations

import argparse
import time

HEADS = {"qwen": (151936, 896), "smollm2": (49152, 576), "tiny": (512, 32)}
OUTPUTS = ("log_probs", "entropy", "is_top1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=770)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--heads", default="qwen,smollm2")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch
    from trl.kernels import ChunkedLogProbFunction

    from rlhf_nb.lm.device import freed_memory_kept, machine_probe
    from rlhf_nb.train import cpu_head

    torch.set_num_threads(args.threads)
    cached = cpu_head.cast_weight

    def each_call(weight, dtype):
        return weight.to(dtype)

    def run(kind: str, hidden0, weight, targets) -> float:
        cpu_head.cast_weight = each_call if kind == "cpu head, cast each call" else cached
        hidden = hidden0.clone().requires_grad_()
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fn = ChunkedLogProbFunction if kind == "trl kernel" else cpu_head.HeadLogProbs
            log_probs, entropy, *_ = fn.apply(hidden, weight, None, targets, 1.0, 32768, None, 1.0, OUTPUTS)
        (0.1 * entropy.sum() - log_probs.sum()).backward()
        return time.perf_counter() - start

    print(f"probe before: {machine_probe()}")
    print("\n| head | rows | trl kernel s | cast each call s | cast kept s | kept / trl | kept / each call |")
    print("|---|---|---|---|---|---|---|")
    kinds = ("trl kernel", "cpu head, cast each call", "cpu head")
    try:
        for name in args.heads.split(","):
            vocab, width = HEADS[name]
            torch.manual_seed(0)
            weight = torch.randn(vocab, width) * 0.02  # frozen, fp32 (mixed training keeps fp32 weights)
            hidden, targets = torch.randn(args.rows, width), torch.randint(0, vocab, (args.rows,))
            best = {k: float("inf") for k in kinds}
            with freed_memory_kept():
                for _ in range(args.reps):
                    for kind in kinds:
                        best[kind] = min(best[kind], run(kind, hidden, weight, targets))
            trl_s, each_s, kept_s = (best[k] for k in kinds)
            print(f"| {name} {vocab}x{width} | {args.rows} | {trl_s:.3f} | {each_s:.3f} | {kept_s:.3f} | "
                  f"{trl_s / kept_s:.2f}x | {each_s / kept_s:.2f}x |")
    finally:
        cpu_head.cast_weight = cached
    print(f"\nprobe after: {machine_probe()}")


if __name__ == "__main__":
    main()
