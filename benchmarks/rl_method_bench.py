"""Which RL step on execution feedback moves held-out pass@1 most per CPU minute: RFT or DPO, side by side.

Workload: notebook 02's own design (``params/02_passk_model_size.yaml``, ``--profile``, default ``cpu``): the untuned
model (Qwen2.5-Coder-0.5B-Instruct on ``cpu``), HumanEval split into disjoint training and evaluation tasks, the
start's ``pair_samples`` samples per training task drawn **once** and shared by both methods. Then per method and
seed (``--seeds``), from the same start:

* ``rft``: rejection-sampling fine-tuning (trl SFT with LoRA on up to ``examples_per_task`` distinct passing samples
  per training task), the step of expert iteration;
* ``dpo``: DPO (LoRA) on up to ``examples_per_task`` passing-vs-failing pairs per training task;

each trained policy and the start are read alike (``models.reading``) on the evaluation tasks (``--n`` samples each,
the notebook's temperature) and on the training tasks (``train_check_samples``). Reported per method: examples,
trainer seconds per seed, held-out pass@1 gain over the start [95% interval, crossed bootstrap over tasks and seeds],
training-task pass@1 gain, and held-out gain per trainer minute. Whatever wins here is what ``cpu`` uses.

    python benchmarks/rl_method_bench.py [--seeds 3] [--n 4] [--methods rft dpo] [-p KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n", type=int, default=4, help="samples per evaluation task and arm")
    parser.add_argument("--methods", nargs="+", default=["rft", "dpo"], choices=["rft", "dpo"])
    parser.add_argument("-p", dest="overrides", action="append", default=[], help="a parameter override, KEY=VALUE")
    args = parser.parse_args()

    import gc

    import numpy as np

    from rlhf_nb.core.overrides import parse_override
    from rlhf_nb.evidence import claims as C
    from rlhf_nb.lm import device
    from rlhf_nb.notebook.config import load_params
    from rlhf_nb.papers.passk import steps

    overrides = dict(parse_override(text) for text in args.overrides)
    base = load_params("02_passk_model_size", args.profile, overrides)[1]
    sampling = {**base.sampling.model_dump(), "n": args.n}
    P = base.model_copy(update={"sampling": type(base.sampling)(**sampling)})
    size = P.sizes[0]
    out = Path(tempfile.mkdtemp(prefix="rl_method_"))
    print(f"{size.untuned}; {P.eval_tasks} evaluation x {args.n} samples, {P.train_tasks} training tasks x "
          f"{P.pair_samples} samples, {args.seeds} seeds; {device.describe()['reason']}; probe "
          f"{device.machine_probe()}", flush=True)

    if size.tuned not in steps.TUNED_HERE or not P.train_check_samples:
        raise SystemExit(f"the profile's first size must be tuned here (tuned: {size.tuned}) and check its training "
                         f"tasks (train_check_samples: {P.train_check_samples})")
    tasks = steps.load_tasks(P, steps.split_tasks(P))
    t0 = time.perf_counter()
    start = steps.start_arm(0, tasks, P)  # the notebook's own start: evaluated, training samples, training-task check
    held_start, samples, train_start = start.run, start.samples, start.train_pass
    if not train_start:
        raise SystemExit(f"{size.untuned} is at the floor on the training tasks: nothing to tune on")
    print(f"start: held-out pass@1 {100 * np.mean([np.mean(t.passed) for t in held_start.samples]):.1f}%, training "
          f"tasks {100 * np.mean(train_start):.1f}% ({time.perf_counter() - t0:.0f} s, {held_start.tokens_per_s:.0f} "
          "tok/s)", flush=True)
    gc.collect()

    def rates(run: steps.ModelRun) -> np.ndarray:
        return 100 * np.array([np.mean(t.passed) for t in run.samples])

    rows, by_method = [], {}
    for method in args.methods:
        data, _ = (steps.execution_pairs if method == "dpo" else steps.rft_records)(samples, P)
        held, trained, seconds = [], [], []
        for s in range(args.seeds):
            seed = P.seed + s
            arm = steps.tuned_arm(0, data, tasks, P, seed, out / method, method)
            trained.append(100 * np.array(arm.train_pass))
            held.append(rates(arm.run))
            seconds.append(arm.seconds)
            print(f"{method} seed {seed}: {len(data)} examples, trained {arm.seconds:.0f} s, held-out "
                  f"{held[-1].mean():.1f}%, training tasks {trained[-1].mean():.1f}%", flush=True)
            gc.collect()
        by_method[method] = np.stack(held)
        gain = C.superiority(rates(held_start), np.stack(held))
        index = steps.check_index(P, len(tasks.train)) or range(len(train_start))
        on_train = C.superiority(100 * np.array([train_start[i] for i in index]), np.stack(trained))
        rows.append((method, len(data), float(np.mean(seconds)), gain, on_train))

    print("\n| method | examples | trainer s / seed | held-out pass@1 gain (pts) | training-task gain (pts) | "
          "held-out gain per trainer minute |\n|---|---|---|---|---|---|")
    for method, examples, secs, gain, on_train in rows:
        print(f"| {method} | {examples} | {secs:.0f} | {gain.effect:+.1f} [{gain.ci[0]:+.1f}, {gain.ci[1]:+.1f}] | "
              f"{on_train.effect:+.1f} [{on_train.ci[0]:+.1f}, {on_train.ci[1]:+.1f}] | "
              f"{gain.effect / (secs / 60):+.2f} |")
    if {"rft", "dpo"} <= set(by_method):  # paired over tasks: the two methods answer the same tasks
        d = C.superiority(by_method["dpo"], by_method["rft"])
        print(f"\nRFT - DPO held out: {d.effect:+.1f} pts [{d.ci[0]:+.1f}, {d.ci[1]:+.1f}], p={d.p:.3g}")
    print(f"\n{gain.n} evaluation tasks x {args.n} samples x {args.seeds} seeds per method; start held-out "
          f"{rates(held_start).mean():.1f}%, training tasks {100 * np.mean(train_start):.1f}%")


if __name__ == "__main__":
    main()
