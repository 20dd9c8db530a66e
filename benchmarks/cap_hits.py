"""How often a policy's replies to the gold testbed's prompts run past a token cap, with and without a system line.

The gold testbed's claims need replies that end on their own (a reply cut off at the cap is judged for where it
was cut, not for what it says): notebook 05's first cpu run lost 48% of its samples to the 128-token cap, and 01's
pairs only use finished replies. Most cut-off replies of SmolLM2-135M at T = 1 have drifted into incoherent
text (14 of 20 read from 05's cpu run); nucleus sampling or a lower temperature trims that tail. This draws
``--samples`` replies per prompt for each (temperature, top_p, system line) and prints, side by side, the share
that would be cut off at each cap, the gold pairs (best vs worst finished reply, as the notebooks build them) that
each cap leaves, the mean reply length, the mean gold score and the time.

    python benchmarks/cap_hits.py [--model smollm2-135m-instruct] [--prompts 48] [--samples 4]
                                  [--temperatures 1.0] [--top-ps 1.0]
                                  [--systems "" "Reply in at most three short sentences."] [--caps 128 160]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=48)
    ap.add_argument("--seed", type=int, default=11, help="prompt seed (the notebooks use 0; 11 keeps this apart)")
    ap.add_argument("--samples", type=int, default=4, help="replies per prompt (the notebooks draw 4)")
    ap.add_argument("--temperatures", type=float, nargs="+", default=[1.0])
    ap.add_argument("--top-ps", type=float, nargs="+", default=[1.0], help="nucleus sampling masses (1.0: off)")
    ap.add_argument("--systems", nargs="+", default=["", "Reply in at most three short sentences."],
                    help="system lines to compare ('' is the model's default)")
    ap.add_argument("--caps", type=int, nargs="+", default=[128, 160])
    args = ap.parse_args()

    from rlhf_nb.lm.evaluate import sample
    from rlhf_nb.lm.generation import SamplingConfig
    from rlhf_nb.lm.models import load
    from rlhf_nb.tasks import gold

    policy = load(args.model)
    longest = max(args.caps)
    rows = []
    settings = [(t, p, s) for t in args.temperatures for p in args.top_ps for s in args.systems]
    for temperature, top_p, system in settings:
        prompts = gold.synthetic_prompts(args.prompts, seed=args.seed, system=system)
        config = SamplingConfig(n=args.samples, temperature=temperature, top_p=top_p, max_new_tokens=longest, seed=0)
        started = time.perf_counter()
        replies = sample(policy, [p.messages() for p in prompts], config, f"T={temperature} p={top_p} {system[:16]!r}")
        seconds = time.perf_counter() - started
        scored = gold.with_gold(prompts, replies)
        past, pairs = [], []
        for cap in args.caps:  # a reply finishes under a cap when it ended on its own within that many tokens
            done = [[f and n <= cap for f, n in zip(fs, ns)] for fs, ns in zip(scored.finished, scored.tokens)]
            past.append(100 - 100 * sum(map(sum, done)) / (len(prompts) * args.samples))
            pairs.append(len(gold.gold_pairs(prompts, scored.texts, scored.gold, done)))
        tokens = sum(map(sum, scored.tokens)) / (len(prompts) * args.samples)
        mean_gold = 100 * sum(map(sum, scored.gold)) / (len(prompts) * args.samples)
        rows.append((temperature, top_p, system or "(none)", past, pairs, tokens, mean_gold, seconds))
        print(f"T={temperature} top_p={top_p} system={system!r}: done in {seconds:.0f} s; "  # kept if a later one is cut
              + ", ".join(f"past {c}: {p:.0f}% ({n} gold pairs)" for c, p, n in zip(args.caps, past, pairs))
              + f"; mean {tokens:.0f} tokens, gold {mean_gold:.1f} pts", flush=True)

    caps = " | ".join(f"past {c} | gold pairs at {c}" for c in args.caps)
    print(f"\n{args.model}, {args.prompts} prompts x {args.samples} replies\n")
    print(f"| T | top_p | system line | {caps} | mean tokens | gold pts | s |")
    print("|---|---|---|" + "---|---|" * len(args.caps) + "---|---|---|")
    for temperature, top_p, system, past, pairs, tokens, mean_gold, seconds in rows:
        cells = " | ".join(f"{p:.0f}% | {n}" for p, n in zip(past, pairs))
        print(f"| {temperature} | {top_p} | {system} | {cells} | {tokens:.0f} | {mean_gold:.1f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
