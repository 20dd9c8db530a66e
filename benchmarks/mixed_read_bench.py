"""Reading a trained LoRA policy: speed of each path side by side, and whether the fast path changes the gold.

Workload (05's): held-out verifiable-instruction prompts (``rlhf_nb.tasks.gold``) with 05's system line, greedy
replies under a token cap, and k = 4 samples per prompt at T = 1, top-p 0.9. The policy is SmolLM2-135M with a LoRA
adapter (r 16, all linear layers): ``--adapter DIR`` (a saved peft adapter, e.g. one of 05's online rounds under
``runs/05_online_iterative_dpo/cpu/online_seed0/iter3``) or, by default, one with random B of SD ``--b-sd``. Paths,
one after the other on the same prompts:

* ``fp32 unmerged``: fp32 weights, the adapter unmerged (how the notebooks read trained policies when the issue
  was filed: 72-82 tok/s there);
* ``fp32 merged``: the adapter merged for the read (``models.merged_while``: the path before ``models.reading``);
* ``mixed read``: ``models.reading`` on a CPU with fast bf16 (``rlhf_nb.lm.mixed_read``: bf16 matmuls against a bf16
  copy of the frozen weights, the adapter added in fp32);
* ``bf16 frozen``: the base model alone in bf16 weights (the frozen fast path, for reference; no adapter).

Checks: an adapter of zeros read mixed gives the base's replies read mixed (identical texts); the trained adapter's
held-out gold read mixed against fp32 merged (paired over prompts, 95% bootstrap interval); tokens/s ratios.

    python benchmarks/mixed_read_bench.py [--prompts 160] [--max-new-tokens 128] [--adapter DIR] [--greedy-only]
"""

from __future__ import annotations

import argparse
import contextlib
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=160)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--adapter", default=None, help="a saved peft adapter folder (default: random B)")
    parser.add_argument("--b-sd", type=float, default=2e-3, help="SD of the random adapter's B (without --adapter)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--greedy-only", action="store_true",
                        help="skip the k = 4 sampled workload (the gold check reads the greedy replies alone)")
    args = parser.parse_args()

    import numpy as np
    import torch

    from rlhf_nb.lm import device, models
    from rlhf_nb.lm.evaluate import greedy, sample
    from rlhf_nb.lm.generation import SamplingConfig
    from rlhf_nb.tasks import gold

    torch.set_num_threads(args.threads)
    system = "Reply in at most three short sentences."
    prompts = gold.synthetic_prompts(args.prompts, seed=7, system=system)
    messages = [p.messages() for p in prompts]
    policy = models.load(args.model, lora={"r": 16})
    if args.adapter:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(policy.model, load_file(f"{args.adapter}/adapter_model.safetensors"))
        what = f"adapter {args.adapter}"
    else:
        gen = torch.Generator().manual_seed(0)
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.data = torch.randn(p.shape, generator=gen) * args.b_sd
        what = f"random adapter (B ~ N(0, {args.b_sd:g}))"
    print(f"{args.model} + {what}; {args.prompts} prompts; greedy cap {args.max_new_tokens}; {args.threads} threads; "
          f"{device.describe()['reason']}; probe {device.machine_probe()}", flush=True)

    def run(name: str, ctx, loaded, workload: str):
        with ctx:
            started = time.perf_counter()
            if workload == "greedy":
                replies = greedy(loaded, messages, args.max_new_tokens, label=name)
            else:
                replies = sample(loaded, messages[: args.prompts // 3],
                                 SamplingConfig(n=4, temperature=1.0, top_p=0.9, max_new_tokens=args.max_new_tokens,
                                                seed=1), label=name)
            seconds = time.perf_counter() - started
        tokens = sum(n for row in replies.tokens for n in row)
        print(f"{name} [{workload}]: {tokens / seconds:.0f} tok/s ({tokens} tokens, {seconds:.1f} s, "
              f"cut off {100 * replies.cap_rate:.0f}%)", flush=True)
        return replies, tokens / seconds

    # first, on fresh models: an adapter of zeros read mixed gives the base's replies read mixed (later, a merge and
    # unmerge of the trained adapter moves some fp32 weights by a unit in the last place)
    zeroed = models.load(args.model, lora={"r": 16})
    with models.reading(zeroed):
        zero = greedy(zeroed, messages[:32], args.max_new_tokens, label="zero adapter").first
    plain = models.load(args.model, baseline=True)
    with models.reading(plain):
        base = greedy(plain, messages[:32], args.max_new_tokens, label="base").first
    del zeroed, plain

    rows, texts = [], {}
    base16 = models.load(args.model)  # the frozen fast path: bf16 weights where the CPU has fast bf16
    for workload in ("greedy",) if args.greedy_only else ("greedy", "sampled"):
        speeds = {}
        for name, ctx, loaded in (
                ("fp32 unmerged", contextlib.nullcontext(), policy),
                ("fp32 merged", models.merged_while(policy), policy),
                ("mixed read", models.reading(policy), policy),
                ("bf16 frozen (no adapter)", contextlib.nullcontext(), base16)):
            replies, speeds[name] = run(name, ctx, loaded, workload)
            if workload == "greedy":
                texts[name] = replies
        rows.append((workload, speeds))

    fp32 = np.array(gold.if_scores(prompts, texts["fp32 merged"].first))
    mixed = np.array(gold.if_scores(prompts, texts["mixed read"].first))
    rng = np.random.default_rng(0)
    diffs = mixed - fp32
    boots = [diffs[rng.integers(0, len(diffs), len(diffs))].mean() for _ in range(4000)]
    same = np.mean([a == b for a, b in zip(texts["fp32 merged"].first, texts["mixed read"].first)])

    print("\n| workload | path | tokens/s | vs fp32 unmerged | vs fp32 merged |\n|---|---|---|---|---|")
    for workload, speeds in rows:
        for name, speed in speeds.items():
            print(f"| {workload} | {name} | {speed:.0f} | {speed / speeds['fp32 unmerged']:.2f}x | "
                  f"{speed / speeds['fp32 merged']:.2f}x |")
    print(f"\nheld-out gold, greedy: fp32 merged {100 * fp32.mean():.1f}, mixed read {100 * mixed.mean():.1f} pts; "
          f"mixed - fp32 {100 * diffs.mean():+.1f} [{100 * np.quantile(boots, 0.025):+.1f}, "
          f"{100 * np.quantile(boots, 0.975):+.1f}] over {len(diffs)} prompts; identical replies {100 * same:.0f}%, "
          f"identical gold {100 * np.mean(diffs == 0):.0f}%")
    print(f"zero adapter read mixed == base read mixed on {sum(a == b for a, b in zip(zero, base))} of {len(base)} "
          "greedy replies")


if __name__ == "__main__":
    main()
