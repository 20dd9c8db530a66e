"""Kept freed memory in training and the row-blocked log-prob head, each against what it replaced, side by side in
one run on notebook 02's RFT step.

One epoch of 02's RFT step (trl SFT, LoRA r 16, its ``cpu`` settings: Qwen2.5-Coder-0.5B-Instruct, batch 4, grouped by
length, mixed precision) on ``--records`` training tasks, each task's prompt with its reference solution as the reply
(as long as a passing sample). Paths: glibc's allocator as it comes (``RLHF_NB_MALLOC=default``) or keeping freed
memory during training (:func:`rlhf_nb.lm.device.freed_memory_kept`, which every training run uses); the log-prob
head as plain autograd over all labelled rows at once (``old``, this package's head before: fp32 logits, their
log-softmax and its exponential kept for the backward) or :class:`rlhf_nb.train.cpu_head.HeadLogProbs` (``new``).
Reported: trainer seconds, the last logged loss and the peak resident memory of the process. Each path runs in a
fresh process of its own, one after another.

    python benchmarks/heap_bench.py [--records 32]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def _old_head(hidden, weight, bias, targets, temperature, chunk_size, softcap, logit_scale, outputs):
    """The head this package used before HeadLogProbs: plain autograd over every labelled row at once."""
    import torch
    import torch.nn.functional as F

    z = F.linear(hidden, weight, bias).float() * logit_scale
    if softcap:
        z = softcap * torch.tanh(z / softcap)
    z = z / temperature
    log_p = torch.log_softmax(z, dim=-1)
    log_probs = log_p.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    entropy = -(log_p.exp() * log_p).sum(-1) if "entropy" in outputs else None
    log_sum_sq = torch.logsumexp(2 * log_p, dim=-1) if "log_sum_sq_probs" in outputs else None
    mean_logits = z.mean(-1).detach() if "mean_logits" in outputs else None
    is_top1 = (z.argmax(-1) == targets) if "is_top1" in outputs else None
    return log_probs, entropy, log_sum_sq, mean_logits, is_top1


def one_rft(records: int, head: str) -> dict:
    import torch

    from rlhf_nb.notebook.config import load_params
    from rlhf_nb.papers.passk import steps
    from rlhf_nb.train import cpu_head
    from rlhf_nb.train.sft import train_sft

    if head == "old":
        cpu_head.HeadLogProbs.apply = staticmethod(_old_head)
    P = load_params("02_passk_model_size", "cpu", {})[1]
    tasks = steps.load_tasks(P.model_copy(update={"humaneval_plus": None}), steps.split_tasks(P))
    data = [{"prompt": steps.code_prompt(t), "completion": "```python\n" + t.prompt + t.canonical_solution + "\n```"}
            for t in tasks.train[:records]]
    config = P.rft.model_copy(update={"num_train_epochs": 1}).build(tempfile.mkdtemp(prefix="heap_rft_"), seed=0)
    torch.manual_seed(0)
    policy = steps.load(P.sizes[0].untuned, lora=P.lora.spec())
    started = time.perf_counter()
    result = train_sft(policy, data, config)
    seconds = time.perf_counter() - started
    losses = [r["loss"] for r in result.history if "loss" in r]
    return {"seconds": seconds, "loss": losses[-1], "records": len(data)}


PATHS = {
    "rft": [("as it comes", "old", "default"), ("kept", "old", "keep"), ("as it comes", "new", "default"),
            ("kept", "new", "keep")],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--what", default="rft")
    parser.add_argument("--records", type=int, default=32, help="rft: training tasks (records), one epoch")
    parser.add_argument("--one", nargs=2, metavar=("WORKLOAD", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:  # a child: one path, one JSON line
        workload, variant = args.one
        out = one_rft(args.records, variant)
        out["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        from rlhf_nb.lm import device

        out["kept"] = device.keeps_freed_memory()
        print("RESULT " + json.dumps(out), flush=True)
        return

    from rlhf_nb.lm import device

    print(f"{device.describe()['reason']}; probe {device.machine_probe()}", flush=True)
    lines = []
    for workload in args.what.split(","):
        for memory, variant, env in PATHS[workload]:
            child_env = {**os.environ, "RLHF_NB_MALLOC": env}
            proc = subprocess.run([sys.executable, __file__, "--one", workload, variant, "--records", str(args.records)],
                                  env=child_env, capture_output=True, text=True)
            found = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
            if proc.returncode or not found:
                raise SystemExit(f"{workload} {variant} {env} failed:\n{proc.stderr[-3000:]}")
            r = json.loads(found[-1][len("RESULT "):])
            row = (f"| rft, {r['records']} records, 1 epoch | memory {memory}, head {variant} | {r['seconds']:.1f} s | "
                   f"loss {r['loss']:.6f} | {r['peak_gb']:.1f} GB |")
            print(row, flush=True)
            lines.append(row)
    print("\n| workload | path | time | same arithmetic | peak memory |\n|---|---|---|---|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
