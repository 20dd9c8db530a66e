"""Do the sampler before and after continuous batching draw programs that pass alike? (02's start model.)

Notebook 02's start arm passed 7 held-out tasks (HumanEval/33, 50, 74, 83, 119, 138, 154) 0 of 16 times in the run of
f148fb7 (the sampler before) and 1-5 of 16 times in the run of 854414b (the sampler now). This samples those tasks
(or ``--tasks``) ``--n`` times on each path in one process, at 02's ``cpu`` settings and a sampling seed of its own,
and runs HumanEval's tests: passes per task and in total on each path, and a two-sided Fisher exact test on the
totals. ``before`` is ``SamplingConfig(continuous=False)`` with the old top-k and log-sum-exp patched back in (see
``continuous_bench.py``).

    python benchmarks/sampler_agreement.py [--n 48] [--tasks HumanEval/33,...]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

FLIPPED = "HumanEval/33,HumanEval/50,HumanEval/74,HumanEval/83,HumanEval/119,HumanEval/138,HumanEval/154"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--tasks", default=FLIPPED)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch
    from continuous_bench import before_sampler
    from scipy.stats import fisher_exact

    from rlhf_nb.lm import models
    from rlhf_nb.lm.generation import SamplingConfig, generate
    from rlhf_nb.notebook.config import load_params
    from rlhf_nb.papers.passk import steps

    torch.set_num_threads(args.threads)
    P = load_params("02_passk_model_size", args.profile, {})[1]
    size = P.sizes[0]
    tasks = steps.load_tasks(P.model_copy(update={"humaneval_plus": None}), steps.split_tasks(P))
    wanted = args.tasks.split(",")
    by_id = {t.task_id: t for t in tasks.eval + tasks.train}
    if missing := [i for i in wanted if i not in by_id]:
        raise SystemExit(f"not among 02's tasks: {missing}")
    chosen = [by_id[i] for i in wanted]
    loaded = models.load(size.untuned, baseline=size.tuned in steps.TUNED_HERE)
    fmt = size.untuned_format
    stops, done = steps.ending_for(fmt, P.prefill_code, chosen)
    prompts = steps.prompts_for(loaded, chosen, fmt, P.prefill_code)
    totals = {}
    for continuous in (False, True):
        name = "now" if continuous else "before"
        config = SamplingConfig(**{**P.sampling.config(args.seed).__dict__, "n": args.n, "stop": stops,
                                   "continuous": continuous})
        with models.reading(loaded), contextlib.nullcontext() if continuous else before_sampler():
            out = generate(loaded.model, loaded.tokenizer, prompts, config, progress=name, done=done)
        flat = [(task, s) for task, per in zip(chosen, out) for s in per]
        programs = [steps.program_of(s.text, task, fmt, P.prefill_code) for task, s in flat]
        verdicts = steps.check_programs([t for t, _ in flat], programs, steps.Limits(timeout_s=P.timeout_s),
                                        progress=False)
        per = {t.task_id: 0 for t in chosen}
        for (task, _), verdict in zip(flat, verdicts):
            per[task.task_id] += bool(verdict.passed)
        totals[name] = sum(per.values())
        print(f"{name}: " + ", ".join(f"{k.split('/')[-1]} {v}/{args.n}" for k, v in per.items())
              + f"; total {totals[name]}/{len(flat)}", flush=True)
    n = len(chosen) * args.n
    p = fisher_exact([[totals["before"], n - totals["before"]], [totals["now"], n - totals["now"]]])[1]
    print(f"{size.untuned}, {len(chosen)} tasks x {args.n} samples, seed {args.seed}: before {totals['before']}/{n}, "
          f"now {totals['now']}/{n}; Fisher exact p = {p:.3f} (two-sided)")


if __name__ == "__main__":
    main()
