"""Seeds of one DPO arm on the same pairs: reference log-probs computed by every seed against computed once.

04 trains each arm with several seeds on one set of pairs (Precise and sequence-level, 3 seeds each; 05's offline
arm draws its pairs per seed, so it does not share them). trl precomputes the reference log-probs of a data set before training, a forward pass over every
pair, and its cache never serves a second seed (it keys on the whole model, the fresh adapter included, and an
in-memory data set's cache file gets a random name); ``rlhf_nb.train.dpo`` keeps them for the process, keyed on the
tokenized pairs and the reference's own weights. This times both side by side in one process:

* ``each``: every seed computes its own (the cache emptied before each seed: the path before the change);
* ``shared``: the first seed computes them, the others reuse them.

Reported per seed: the trainer's wall time, the time spent computing reference log-probs, and whether the loss
history equals the ``each`` run's of the same seed (it must: the reused values are the numbers the first seed
computed, over the same batches).

    python benchmarks/dpo_seeds_bench.py [--model smollm2-135m-instruct] [--pairs 64] [--seeds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--pairs", type=int, default=64, help="bundled HH-RLHF pairs")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()

    import torch
    import trl

    from rlhf_nb.lm import device, models
    from rlhf_nb.tasks.data import load_hh_rlhf
    from rlhf_nb.train import dpo

    torch.set_num_threads(2)
    pairs = load_hh_rlhf("bundled", limit=args.pairs, seed=0)
    spent = [0.0]
    compute = trl.DPOTrainer.compute_ref_log_probs

    def timed(self, model, batch):
        started = time.perf_counter()
        try:
            return compute(self, model, batch)
        finally:
            spent[0] += time.perf_counter() - started

    trl.DPOTrainer.compute_ref_log_probs = timed
    print(f"{args.model}; {len(pairs)} pairs; {args.seeds} seeds; 04's cpu DPO (4 pairs x 2 a step, lr 5e-4, beta 0.1,"
          f" max length 512, LoRA r 16); {device.describe()['reason']}; probe {device.machine_probe()}", flush=True)
    rows, losses = [], {}
    for path in ("each", "shared"):
        dpo._REFERENCE_LOGPS.clear()
        for seed in range(args.seeds):
            if path == "each":
                dpo._REFERENCE_LOGPS.clear()
            torch.manual_seed(seed)
            policy = models.load(args.model, lora={"r": 16, "alpha": 32, "dropout": 0.0})
            spent[0] = 0.0
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as out:
                result = dpo.train_dpo(policy, pairs, dpo.DPOConfig(
                    output_dir=out, seed=seed, learning_rate=5e-4, beta=0.1, num_train_epochs=1, max_length=512,
                    per_device_train_batch_size=4, gradient_accumulation_steps=2, disable_tqdm=True))
            seconds = time.perf_counter() - started
            losses[path, seed] = result.series("loss")
            rows.append((path, seed, seconds, spent[0]))
            print(f"{path} seed {seed}: {seconds:.1f} s, reference log-probs {spent[0]:.1f} s", flush=True)
    print(f"probe after: {device.machine_probe()}\n")
    print("| path | seed | trainer s | reference log-probs s | loss history as `each` |")
    print("|---|---|---|---|---|")
    for path, seed, seconds, ref in rows:
        print(f"| {path} | {seed} | {seconds:.1f} | {ref:.1f} | {losses[path, seed] == losses['each', seed]} |")
    total = {p: sum(s for q, _, s, _ in rows if q == p) for p in ("each", "shared")}
    print(f"\n{args.seeds} seeds: each {total['each']:.0f} s, shared {total['shared']:.0f} s: "
          f"{total['each'] / total['shared']:.2f}x")


if __name__ == "__main__":
    main()
