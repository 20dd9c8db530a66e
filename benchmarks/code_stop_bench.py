"""HumanEval greedy evaluation with and without ending a reply once its scored code block is closed, side by side.

``rlhf_nb.rewards.forgetting.coding`` (01's alignment tax, 04's forgetting) asks an instruct model for a function and scores
the first fenced block that defines it. A small chat model keeps talking after that block, often to the token cap;
:class:`rlhf_nb.rewards.code.CodeDone` ends the reply at the block's closing fence instead. This prints, for each
way, the seconds, generated tokens, tokens/s, pass rate, the share of replies cut off at the cap, and how many
extracted programs are identical between the two ways (in fp32 all should be; rows leaving the batch earlier change
the batch's shapes, which can move a bf16 greedy reply).

    python benchmarks/code_stop_bench.py [--model smollm2-135m-instruct] [--tasks 64] [--dtype float32]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--tasks", type=int, default=64)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--max-new-tokens", type=int, default=384)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from rlhf_nb.lm import device, models
    from rlhf_nb.lm.evaluate import greedy
    from rlhf_nb.rewards.code import check_programs, code_done, code_prompt, extract_code
    from rlhf_nb.tasks.data import load_humaneval

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    tasks = load_humaneval()[: args.tasks]
    loaded = models.load(args.model, dtype=getattr(torch, args.dtype))
    prompts = [code_prompt(t) for t in tasks]
    print(f"{args.model} {args.dtype}; {len(tasks)} HumanEval tasks, greedy, cap {args.max_new_tokens}; "
          f"threads {torch.get_num_threads()}; probe {device.machine_probe()}")
    rows, programs = [], {}
    for way, done in (("to EOS or cap", None), ("ends at the closed block", [code_done(t) for t in tasks])):
        start = time.perf_counter()
        replies = greedy(loaded, prompts, args.max_new_tokens, label=way, done=done)
        seconds = time.perf_counter() - start
        programs[way] = [extract_code(r, t) for r, t in zip(replies.first, tasks)]
        passed = [r.passed for r in check_programs(tasks, programs[way])]
        tokens = sum(t[0] for t in replies.tokens)
        rows.append((way, seconds, tokens, 100 * sum(passed) / len(tasks),
                     100 * sum(not f[0] for f in replies.finished) / len(tasks)))
    print("\n| replies | seconds | tokens | tok/s | pass@1 % | cut off at the cap % |")
    print("|---|---|---|---|---|---|")
    for way, seconds, tokens, pass1, capped in rows:
        print(f"| {way} | {seconds:.1f} | {tokens} | {tokens / seconds:.0f} | {pass1:.1f} | {capped:.1f} |")
    a, b = programs.values()
    print(f"\nwall-time ratio {rows[0][1] / rows[1][1]:.2f}x; identical programs {sum(x == y for x, y in zip(a, b))}"
          f"/{len(tasks)}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
