"""Sampling throughput on a notebook's real workload, side by side in one run: the KV cache and the batch size.

Workload: verifiable-instruction prompts (``rlhf_nb.tasks.gold``), ``--n`` samples each at T = 1.0 with a token cap,
the way notebooks 01, 05 and 06 sample their pairs. Variants, all on the same model and prompts:

* ``hf generate b16``: ``model.generate`` per batch of 16 (the helper every notebook used before the own loop);
* ``dynamic cache bB``: the own decoding loop with transformers' ``DynamicCache`` (concatenates every step) and
  finished rows leaving the batch at once (the loop as it was before the buffer cache);
* ``buffer cache bB``: the loop as it runs now (:func:`rlhf_nb.lm.generation._buffer_cache`: keys and values written
  in place; finished rows leave together once a quarter of the batch has finished).

Tokens/s counts generated tokens over the whole call (prefill included). Ratios are against ``hf generate b16``
and against the dynamic cache at the same batch size.

    python benchmarks/sampling_bench.py [--model smollm2-135m-instruct] [--prompts 48] [--n 4] [--max-new-tokens 160]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=48)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--batches", default="32,64,128")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch
    from throughput_bench import hf_generate_fp32
    from transformers import DynamicCache

    from rlhf_nb.lm import device, generation, models
    from rlhf_nb.tasks import gold

    torch.set_num_threads(args.threads)
    loaded = models.load(args.model)
    prompts = [p.messages() for p in gold.synthetic_prompts(args.prompts, seed=0)]
    print(f"{args.model}, {args.prompts} prompts x {args.n} samples, cap {args.max_new_tokens} tokens, "
          f"{args.threads} threads, precision {device.describe()['resolved']} ({device.describe()['reason']})")
    buffer_cache, compact = generation._buffer_cache, generation.COMPACT_FRACTION

    def own(batch: int, cache: str) -> tuple[int, float]:
        if cache == "dynamic":
            generation._buffer_cache = lambda model, capacity: DynamicCache(config=model.config)
            generation.COMPACT_FRACTION = 0.0
        try:
            stats = generation.GenerationStats()
            generation.generate(loaded.model, loaded.tokenizer, prompts,
                                generation.SamplingConfig(n=args.n, temperature=1.0, max_new_tokens=args.max_new_tokens,
                                                          batch_size=batch, seed=0), progress=False, stats=stats)
            return stats.tokens, stats.cap_rate
        finally:
            generation._buffer_cache, generation.COMPACT_FRACTION = buffer_cache, compact

    rows: list[tuple[str, float, str]] = []
    started = time.perf_counter()
    tokens = hf_generate_fp32(loaded.model, loaded.tokenizer, [p for p in prompts for _ in range(args.n)],
                              args.max_new_tokens)
    hf = tokens / (time.perf_counter() - started)
    rows.append(("hf generate b16", hf, ""))
    print(f"hf generate b16: {hf:.0f} tok/s", flush=True)
    for batch in [int(b) for b in args.batches.split(",")]:
        speeds = {}
        for cache in ("dynamic", "buffer"):
            started = time.perf_counter()
            tokens, cap = own(batch, cache)
            speeds[cache] = tokens / (time.perf_counter() - started)
            rows.append((f"{cache} cache b{batch}", speeds[cache], f"cap-hit {100 * cap:.0f}%"))
            print(f"{cache} cache b{batch}: {speeds[cache]:.0f} tok/s", flush=True)
        rows[-1] = (*rows[-1][:2], rows[-1][2] + f"; {speeds['buffer'] / speeds['dynamic']:.2f}x the dynamic cache")
    print("\n| variant | tokens/s | vs hf generate b16 | note |\n|---|---|---|---|")
    for name, speed, note in rows:
        print(f"| {name} | {speed:.0f} | {speed / hf:.2f}x | {note} |")


if __name__ == "__main__":
    main()
