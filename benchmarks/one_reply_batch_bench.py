"""One greedy reply a prompt: every prompt in one batch against batches of 128, side by side in one process.

A batch decodes until its longest reply ends, so a call split into batches of 128 spends most of its steps on the few
rows still running at each batch's end. Since f2d3a56 the sampler decodes a call that samples each prompt once in as
few batches as a KV-cache budget allows (``rlhf_nb.lm.generation.one_reply_batch_size``). This benchmark reads a LoRA
policy (05's ``cpu`` adapter shape: r 16, alpha 32; ``--adapter DIR`` a saved peft adapter, e.g. one of 05's online
rounds, or by default a random B of SD 0.01) on 05's held-out prompts, greedy, through the mixed read
(``models.reading``), alternating the batch sizes named in ``--batches`` (``auto``: the sampler's own choice) for
``--reps`` rounds. Reported per call: seconds, tokens, tokens/s and a hash of the replies (batch shapes move bf16
near-ties, so replies may differ); then each path's summed seconds against the first path's.

    python benchmarks/one_reply_batch_bench.py [--prompts 300] [--cap 192] [--batches auto,128] [--adapter DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--adapter", default=None, help="a saved peft adapter folder (default: random B, SD 0.01)")
    parser.add_argument("--prompts", type=int, default=300, help="05's held-out prompts, the first this many")
    parser.add_argument("--cap", type=int, default=192)
    parser.add_argument("--batches", default="auto,128", help="comma-separated batch sizes; auto: the sampler's choice")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from rlhf_nb.lm import device, models
    from rlhf_nb.lm.evaluate import greedy
    from rlhf_nb.notebook.config import load_params
    from rlhf_nb.papers.rlhf_workflow.steps import make_prompts

    torch.set_num_threads(args.threads)
    params = load_params("05_online_iterative_dpo", "cpu", check_inputs=False)[1]
    messages = [p.messages() for p in make_prompts(params).eval][: args.prompts]
    policy = models.load(args.model, lora={"r": 16, "alpha": 32, "dropout": 0.0})
    if args.adapter:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(policy.model, load_file(f"{args.adapter}/adapter_model.safetensors"))
    else:
        gen = torch.Generator().manual_seed(0)
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.data = torch.randn(p.shape, generator=gen) * 0.01
    sizes = [None if b == "auto" else int(b) for b in args.batches.split(",")]
    print(f"{args.model} + {args.adapter or 'random adapter'}; {len(messages)} prompts, cap {args.cap}; "
          f"{args.threads} threads; probe {device.machine_probe()}", flush=True)
    print("\n| batch | round | seconds | tokens | tok/s | replies |\n|---|---|---|---|---|---|")
    totals = {b: 0.0 for b in sizes}
    for rep in range(args.reps):
        for b in sizes:
            started = time.perf_counter()
            with models.reading(policy):
                replies = greedy(policy, messages, args.cap, label=f"batch {b or 'auto'}", batch_size=b)
            seconds = time.perf_counter() - started
            totals[b] += seconds
            tokens = sum(row[0] for row in replies.tokens)
            digest = hashlib.sha256("\x00".join(replies.first).encode()).hexdigest()[:12]
            print(f"| {b or 'auto'} | {rep + 1} | {seconds:.1f} | {tokens} | {tokens / seconds:.0f} | {digest} |",
                  flush=True)
    first = sizes[0]
    print("\n" + "; ".join(f"batch {b or 'auto'}: {totals[b]:.1f} s in all, {totals[b] / totals[first]:.2f}x the "
                           f"time of batch {first or 'auto'}" for b in sizes))


if __name__ == "__main__":
    main()
