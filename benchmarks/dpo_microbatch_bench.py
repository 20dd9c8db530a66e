"""One DPO step of 8 pairs, split into forward passes of 4, 2 or 1 pairs: time against padding, side by side.

A DPO forward pass pads every chosen and rejected reply of its pairs to the longest of them, so the pairs per pass
decide how many padded tokens the model computes (the batch a step averages over is the passes times the pairs a
pass, and the trainer's shuffled order of pairs is the same whatever the split, so the loss is the same up to
summation order). Fewer pairs a pass: fewer padded tokens but smaller matrix products and more passes. This times
each split on the same pairs, one epoch, in one process, and reports the padded and real tokens each split computes
(the forward passes of training and of the reference log-probs alike), the trainer's wall time and the loss history's
largest difference from the first split's.

    python benchmarks/dpo_microbatch_bench.py [--model smollm2-135m-instruct] [--pairs 64] [--splits 4x2,2x4,1x8]
"""

from __future__ import annotations

import argparse
import tempfile
import time


def padded_tokens(lengths: list[tuple[int, int]], order: list[int], per_pass: int) -> int:
    """Tokens the forward passes compute: each pass pads its pairs' chosen and rejected sequences to the longest."""
    total = 0
    for start in range(0, len(order), per_pass):
        group = [lengths[i] for i in order[start:start + per_pass]]
        total += 2 * len(group) * max(max(pair) for pair in group)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--pairs", type=int, default=64, help="bundled HH-RLHF pairs")
    parser.add_argument("--splits", default="4x2,2x4,1x8", help="pairs a pass x passes a step, comma-separated")
    parser.add_argument("--max-length", type=int, default=512)
    args = parser.parse_args()

    import torch

    from rlhf_nb.lm import device, models
    from rlhf_nb.tasks.data import load_hh_rlhf
    from rlhf_nb.train import dpo

    torch.set_num_threads(2)
    pairs = load_hh_rlhf("bundled", limit=args.pairs, seed=0)
    tokenizer = models.load(args.model).tokenizer

    def length(prompt, reply: str) -> int:
        n = len(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True))
        return min(args.max_length, n + len(tokenizer(reply, add_special_tokens=False)["input_ids"]))

    lengths = [(length(p.prompt, p.chosen), length(p.prompt, p.rejected)) for p in pairs]
    real = sum(a + b for a, b in lengths)
    splits = [tuple(int(x) for x in s.split("x")) for s in args.splits.split(",")]
    print(f"{args.model}; {len(pairs)} pairs ({real} real tokens a pass over them); DPO lr 5e-4, beta 0.1, max length "
          f"{args.max_length}, one epoch, LoRA r 16; {device.describe()['reason']}; probe {device.machine_probe()}",
          flush=True)
    rows, first = [], None
    for per_pass, passes in splits:
        dpo._REFERENCE_LOGPS.clear()  # every split computes its own reference log-probs
        torch.manual_seed(0)
        policy = models.load(args.model, lora={"r": 16, "alpha": 32, "dropout": 0.0})
        with tempfile.TemporaryDirectory() as out:
            config = dpo.DPOConfig(output_dir=out, seed=0, learning_rate=5e-4, beta=0.1, num_train_epochs=1,
                                   max_length=args.max_length, per_device_train_batch_size=per_pass,
                                   gradient_accumulation_steps=passes, disable_tqdm=True)
            started = time.perf_counter()
            result = dpo.train_dpo(policy, pairs, config)
            seconds = time.perf_counter() - started
        order = list(range(len(pairs)))  # the padding of the reference pass (in order); training's shuffle is alike
        padded = padded_tokens(lengths, order, per_pass)
        losses = result.series("loss")
        first = first or losses
        drift = max(abs(a - b) for a, b in zip(losses, first))
        rows.append((f"{per_pass}x{passes}", seconds, padded, losses[-1], drift, len(losses)))
        print(f"{per_pass}x{passes}: {seconds:.1f} s", flush=True)
    print(f"probe after: {device.machine_probe()}\n")
    print("| pairs a pass x passes | trainer s | padded tokens a pass over the pairs | real share | steps | last loss "
          "| largest loss difference from the first |")
    print("|---|---|---|---|---|---|---|")
    for name, seconds, padded, last, drift, steps in rows:
        print(f"| {name} | {seconds:.1f} | {padded} | {100 * real / padded:.0f}% | {steps} | {last:.4f} | {drift:.4f} |")
    base = rows[0][1]
    print("\n" + "; ".join(f"{name}: {base / seconds:.2f}x" for name, seconds, *_ in rows[1:]) + f" against {rows[0][0]}")


if __name__ == "__main__":
    main()
