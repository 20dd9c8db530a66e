"""What one GRPO step costs on this machine: the numbers that decide whether notebook 03's training parts fit a profile.

Runs ``rlhf_nb.train.grpo.train_grpo`` (trl's GRPOTrainer, LoRA) on GSM8K train problems with the math checker as
the reward, as notebook 03's part 2 does, for a few steps, and prints per step the wall time, the completion length
and the share of the time spent generating (trl's own timers where it has them), then the projection for a
profile: steps x seeds x rewards, plus one greedy evaluation of the held-out problems per snapshot.

    python benchmarks/grpo_bench.py [--model qwen2.5-coder-0.5b-instruct] [--steps 2] [--batch 8] [--generations 4]
        [--tokens 320]
"""

from __future__ import annotations

import argparse
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8, help="completions per step (per_device_train_batch_size)")
    ap.add_argument("--generations", type=int, default=4, help="completions per prompt (num_generations)")
    ap.add_argument("--tokens", type=int, default=320, help="max_completion_length")
    ap.add_argument("--eval-items", type=int, default=16, help="held-out problems answered greedily once")
    args = ap.parse_args()

    from rlhf_nb.lm.device import describe
    from rlhf_nb.lm.evaluate import greedy
    from rlhf_nb.lm.models import load
    from rlhf_nb.rewards.math import math_prompt, math_reward
    from rlhf_nb.tasks.data import load_gsm8k
    from rlhf_nb.train.grpo import GRPOConfig, train_grpo

    tasks = load_gsm8k("bundled", "train")[: args.batch * args.steps]
    prompts = [math_prompt(t.question) for t in tasks]
    meta = [{"answer": t.answer} for t in tasks]
    print(f"model {args.model}; precision {describe()}")
    t0 = time.perf_counter()
    policy = load(args.model, lora={"r": 16, "alpha": 32, "dropout": 0.0})
    print(f"load: {time.perf_counter() - t0:.1f} s")
    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(output_dir=out, max_steps=args.steps, per_device_train_batch_size=args.batch,
                            num_generations=args.generations, max_completion_length=args.tokens, temperature=0.8)
        t0 = time.perf_counter()
        result = train_grpo(policy, prompts, math_reward, config, meta=meta)
        total = time.perf_counter() - t0
    rows = [h for h in result.history if "step_time" in h]
    print(f"\n{'step':>4} {'s/step':>8} {'mean completion tokens':>23} {'reward':>7} {'entropy':>8}")
    for h in rows:
        print(f"{h['step']:>4.0f} {h['step_time']:>8.1f} {h.get('completions/mean_length', float('nan')):>23.0f} "
              f"{h.get('reward', float('nan')):>7.2f} {h.get('entropy', float('nan')):>8.2f}")
    per_step = total / args.steps
    print(f"train_grpo wall: {total:.1f} s for {args.steps} steps = {per_step:.1f} s/step (trainer set-up included)")

    evals = load_gsm8k("bundled", "test")[: args.eval_items]
    t0 = time.perf_counter()
    replies = greedy(policy, [math_prompt(t.question) for t in evals], args.tokens, label="held-out")
    per_item = (time.perf_counter() - t0) / args.eval_items
    print(f"greedy held-out answers: {per_item:.1f} s/problem ({replies.tokens_per_s:.0f} tok/s, "
          f"{100 * replies.cap_rate:.0f}% at the cap)")
    for steps, seeds, arms, items, every in ((20, 3, 3, 64, 5), (40, 3, 3, 200, 10)):
        snaps = steps // every + 1
        minutes = (steps * per_step + snaps * items * per_item) * seeds * arms / 60
        print(f"projection: {arms} rewards x {seeds} seeds x {steps} steps, {snaps} snapshots of {items} problems: "
              f"{minutes:.0f} min")


if __name__ == "__main__":
    main()
