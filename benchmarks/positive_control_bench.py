"""Does 06's learner beat the markup count with more feedback prompts? The positive control of B1a-f (the linear head
fitted on the exact gold of every training response, ``steps.gold_fed``) against the trivial rules, as the number of
training prompts grows, on one fixed set of held-out prompts.

06's ``cpu`` profile gives feedback on 160 of its 800 prompts (``test_fraction`` 0.8); at 3cdb040 the control ranked
62.0% (values) / 64.5% (pairs) of the similar-length held-out pairs right against 72.6% for the markup count, so no
feedback type could be judged against that rule. This script draws the pool with ``--test-fraction`` (default 0.5:
400 training and 400 held-out prompts), then fits the control on the first 100, 200, ... training prompts (whole
prompts, in the split's order) and scores each on the same held-out similar-length pairs, prompt means, against every
rule, with the interval of ``claims.beats_trivial``. One process, one pool (its sampling is most of the time).

    python benchmarks/positive_control_bench.py [--test-fraction 0.5] [--sizes 100 200 400] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--test-fraction", type=float, default=0.5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 400])
    parser.add_argument("--out", type=Path, default=None, help="also write the table (markdown) here")
    args = parser.parse_args()

    from rlhf_nb.evidence import claims as C
    from rlhf_nb.lm import models
    from rlhf_nb.notebook.config import load_params
    from rlhf_nb.papers.feedback_blender import readers, steps

    P = load_params("06_feedback_blender", args.profile, {"test_fraction": args.test_fraction})[1]
    started = time.perf_counter()
    split = steps.make_prompts(P)
    policy = models.load(P.policy)
    pool = steps.build_pool(policy, split, P)
    features = steps.featurize(policy if P.backbone == P.policy else models.load(P.backbone), split, pool, P)
    test = steps.test_set(pool, features)
    sampled = time.perf_counter() - started
    saved = {"params": P.model_dump(), "data": {"grid": steps.pair_record(test)}}
    keep = readers.matched(saved)
    units, rules = readers.claim_set(saved)
    train = sum(s == "train" for s in pool.split)
    if max(args.sizes) > train:
        sys.exit(f"--sizes up to {max(args.sizes)} training prompts, but the split has {train}")

    lines = [f"06's positive control by training prompts ({args.profile}, test_fraction {args.test_fraction}: "
             f"{train} training / {test.gold.shape[0]} held-out prompts; {int(keep.sum())} of {keep.size} held-out "
             f"pairs of similar length on {len(set(units))} prompts; pool and features {sampled:.0f} s)", "",
             "| training prompts | form | control % (prompt means) | strongest rule | rule % | control - rule, pts "
             "[95% bottom, top over the rules] |", "|---|---|---|---|---|---|"]
    for size in args.sizes:
        for form, control in steps.gold_fed(pool, features, test, P.head.l2, prompts=size).items():
            outcomes = np.asarray(control["outcomes"], dtype=float)
            result, rule = C.beats_trivial(outcomes[keep][None, :], rules, clusters=units)
            lines.append(f"| {size} | {form} ({control['targets']}) | {100 * result.detail['rate']:.1f} | {rule} | "
                         f"{100 * result.detail['rule_rate']:.1f} | {100 * result.effect:+.1f} "
                         f"[{100 * result.ci[0]:+.1f}, {100 * result.ci[1]:+.1f}] |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(json.dumps({"seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
