"""The per-token log-prob head of training (forward and backward), side by side in one process: trl's kernel as it runs
on a CPU, rlhf-nb's CPU head as it was at ``--then`` (its module read from git), and the CPU head as it is now.

Shapes are what matters (weights are random): the head of Qwen2.5-Coder-0.5B (151,936 x 896, 02's RFT) and of
SmolLM2-135M (49,152 x 576, 04's and 05's DPO), over ``--rows`` labelled positions (an RFT step of 4 records has
~600-800), under bf16 autocast on frozen fp32 weights as ``mixed`` training runs. The outputs are what trl's SFT
trainer asks for (log-probs, entropy, top-1); the objective is what training differentiates, the log-probs alone
(``--entropy-grad`` adds 0.1 x the entropy, a branch no trainer of this project takes). trl's kernel gets the
labelled rows only, as the CPU head does (the tile arithmetic differs, not the rows). Variants alternate, ``--reps``
rounds; the table shows the best of each and the ratios. The head is ~1.5 s of an ~11 s RFT step of 02
(``docs/benchmarks.md``), so a gain here is worth about a seventh of it on a step.

    python benchmarks/head_bench.py [--rows 770] [--reps 3] [--heads qwen,smollm2] [--then e04ea19]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADS = {"qwen": (151936, 896), "smollm2": (49152, 576), "tiny": (512, 32)}
OUTPUTS = ("log_probs", "entropy", "is_top1")


def module_at(rev: str):
    """``rlhf_nb.train.cpu_head`` as it was at git revision ``rev``, imported under another name."""
    try:
        source = subprocess.run(["git", "show", f"{rev}:rlhf_nb/train/cpu_head.py"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        sys.exit(f"--then {rev}: cannot read rlhf_nb/train/cpu_head.py at that revision from git ({err})")
    path = Path(tempfile.mkdtemp()) / "cpu_head_then.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("cpu_head_then", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=770)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--heads", default="qwen,smollm2")
    parser.add_argument("--then", default="e04ea19", help="git revision of the CPU head to compare with")
    parser.add_argument("--entropy-grad", action="store_true", help="differentiate 0.1 x the entropy as well")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch
    from trl.kernels import ChunkedLogProbFunction

    from rlhf_nb.lm.device import freed_memory_kept, machine_probe
    from rlhf_nb.train import cpu_head

    torch.set_num_threads(args.threads)
    functions = {"trl kernel": ChunkedLogProbFunction, f"cpu head at {args.then}": module_at(args.then).HeadLogProbs,
                 "cpu head now": cpu_head.HeadLogProbs}

    def run(fn, hidden0, weight, targets) -> float:
        hidden = hidden0.clone().requires_grad_()
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            log_probs, entropy, *_ = fn.apply(hidden, weight, None, targets, 1.0, 32768, None, 1.0, OUTPUTS)
        objective = -log_probs.sum() + (0.1 * entropy.sum() if args.entropy_grad else 0.0)
        objective.backward()
        return time.perf_counter() - start

    print(f"probe before: {machine_probe()}")
    print(f"objective: {'log-probs + 0.1 entropy' if args.entropy_grad else 'log-probs'}\n")
    names = list(functions)
    print(f"| head | rows | {' s | '.join(names)} s | now / trl | now / then |")
    print("|---|---|" + "---|" * (len(names) + 2))
    for name in args.heads.split(","):
        vocab, width = HEADS[name]
        torch.manual_seed(0)
        weight = torch.randn(vocab, width) * 0.02  # frozen, fp32 (mixed training keeps fp32 weights)
        hidden, targets = torch.randn(args.rows, width), torch.randint(0, vocab, (args.rows,))
        best = dict.fromkeys(names, float("inf"))
        with freed_memory_kept():
            for _ in range(args.reps):
                for kind, fn in functions.items():
                    best[kind] = min(best[kind], run(fn, hidden, weight, targets))
        trl_s, then_s, now_s = (best[k] for k in names)
        print(f"| {name} {vocab}x{width} | {args.rows} | {trl_s:.3f} | {then_s:.3f} | {now_s:.3f} | "
              f"{trl_s / now_s:.2f}x | {then_s / now_s:.2f}x |")
    print(f"\nprobe after: {machine_probe()}")


if __name__ == "__main__":
    main()
