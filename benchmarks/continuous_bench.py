"""The sampler before and after continuous batching over a shared-prompt cache, side by side in one run, on two
notebooks' real workloads.

Paths (the same prompts and seed on each):

* ``before``: the sampler as it was before this benchmark: batch after batch (a batch runs until its last row
  ends), each row caching its prompt and reply (a prompt sampled n times had its cache copied n times), a top-k
  over the whole vocabulary and a log-sum-exp over a full-size copy of the logits each step, an fp32 copy of the
  head's product (``SamplingConfig(continuous=False)`` with the old top-k, log-sum-exp and fp32 logits patched back
  in; one random stream a call where there was one a batch);
* ``now``: :func:`rlhf_nb.lm.generation.decode` as it runs by default: each prompt's keys cached once
  (:mod:`rlhf_nb.lm.shared_prefix`), finished rows refilled with waiting ones, the top-k found by block maxima
  (:func:`~rlhf_nb.lm.generation.top_candidates`), the log-sum-exp a few rows at a time from each row's maximum, the
  head's bf16 product read as it is (:func:`~rlhf_nb.lm.mixed_read.bf16_logits`), the cache in bf16 under the mixed read;
* ``fp32 unmerged`` (workload 05 only): a trained policy read in fp32 with its adapter unmerged, sampled by the
  ``before`` sampler: how notebooks read trained policies when issue 40 was filed (72-82 tok/s in its notes).

Workloads:

* ``02``: notebook 02's sampling (``params/02_passk_model_size.yaml``, ``--profile``, default ``cpu``): its untuned
  model read as 02 reads every arm (``models.reading``), ``--tasks`` held-out HumanEval tasks x its ``n`` samples at
  its temperature, cap, stops and batch size;
* ``05``: a trained policy as notebooks 04 and 05 read one: SmolLM2-135M with a LoRA adapter (r 16, all linear
  layers, random B of SD 2e-3) read mixed (``models.reading``), verifiable-instruction prompts
  (``rlhf_nb.tasks.gold``): ``--prompts`` x k = 4 samples at T = 1, top-p 0.9, cap 128 (05's online rounds), and a
  greedy held-out snapshot of ``--held-out`` other prompts at cap ``--greedy-cap`` (05's evaluation), the automatic
  batch size.

02's prompts are also decoded greedily (n = 1: no prompt is shared), on each path. Reported: tokens/s (generated
tokens over the whole call, prefill included) and ratios; and how many greedy replies are identical under ``before`` and ``now`` (the maths per row is the same up to summation order; under a mixed read
the prefill's bf16 attention also depends on which prompts are prefilled together, so near-ties can differ).

    python benchmarks/continuous_bench.py [--workloads 02,05] [--tasks 48] [--prompts 96]
"""

from __future__ import annotations

import argparse
import contextlib
import time


@contextlib.contextmanager
def before_sampler():
    """The sampler's pieces as they were: a top-k over the whole vocabulary, one log-sum-exp over all rows, fp32 logits."""
    import torch

    from rlhf_nb.lm import generation, mixed_read

    saved = generation.top_candidates, generation._logsumexp_rows, mixed_read.bf16_logits
    generation.top_candidates = lambda x, k: x.topk(k, dim=-1)
    generation._logsumexp_rows = lambda x, temperature: torch.logsumexp(x / temperature, dim=-1, keepdim=True)
    mixed_read.bf16_logits = lambda model: contextlib.nullcontext()  # the head's fp32 copy, as it was
    try:
        yield
    finally:
        generation.top_candidates, generation._logsumexp_rows, mixed_read.bf16_logits = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="02,05")
    parser.add_argument("--profile", default="cpu", help="02's params profile")
    parser.add_argument("--tasks", type=int, default=48, help="02: held-out tasks sampled")
    parser.add_argument("--prompts", type=int, default=96, help="05: verifiable-instruction prompts")
    parser.add_argument("--held-out", type=int, default=300, help="05: prompts of a greedy held-out snapshot (05's 300)")
    parser.add_argument("--greedy-cap", type=int, default=192, help="05: token cap of the greedy held-out replies")
    parser.add_argument("--policy", default="smollm2-135m-instruct", help="05: the policy given a random LoRA adapter")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from rlhf_nb.lm import device, models
    from rlhf_nb.lm.generation import GenerationStats, SamplingConfig, generate

    torch.set_num_threads(args.threads)
    print(f"{args.threads} threads; {device.describe()['reason']}; probe {device.machine_probe()}", flush=True)
    lines = []

    def timed(name: str, loaded: models.Loaded, prompts: list, config: SamplingConfig, read, **kw) -> tuple[float, list]:
        stats = GenerationStats()
        with read, before_sampler() if not config.continuous else contextlib.nullcontext():
            started = time.perf_counter()
            out = generate(loaded.model, loaded.tokenizer, prompts, config, progress=name, stats=stats, **kw)
            seconds = time.perf_counter() - started
        print(f"  {name}: {stats.tokens / seconds:.0f} tok/s ({stats.tokens} tokens, {seconds:.1f} s, cut off "
              f"{100 * stats.cap_rate:.1f}%)", flush=True)
        return stats.tokens / seconds, [s.text for per in out for s in per]

    def greedy_pair(loaded, prompts, config, read, **kw) -> tuple[dict[bool, float], str]:
        """Greedy replies under ``before`` and ``now``: tokens/s of each and how many replies are identical."""
        runs = {c: timed(f"{'now' if c else 'before'}, greedy", loaded, prompts,
                         SamplingConfig(**{**config.__dict__, "n": 1, "temperature": 0.0, "continuous": c}), read(), **kw)
                for c in (False, True)}
        same = sum(a == b for a, b in zip(runs[False][1], runs[True][1]))
        return {c: r[0] for c, r in runs.items()}, f"{same} of {len(runs[True][1])}"

    if "02" in args.workloads.split(","):
        from rlhf_nb.notebook.config import load_params
        from rlhf_nb.papers.passk import steps

        P = load_params("02_passk_model_size", args.profile, {"eval_tasks": args.tasks})[1]
        size = P.sizes[0]
        tasks = steps.load_tasks(P.model_copy(update={"humaneval_plus": None}), steps.split_tasks(P))
        loaded = models.load(size.untuned, baseline=size.tuned in steps.TUNED_HERE)
        stops, done = steps.ending_for(size.untuned_format, P.prefill_code, tasks.eval)
        prompts = steps.prompts_for(loaded, tasks.eval, size.untuned_format, P.prefill_code)
        base = SamplingConfig(**{**P.sampling.config(P.seed).__dict__, "stop": stops})
        print(f"02: {size.untuned}, {len(prompts)} tasks x {base.n} samples, T {base.temperature}, cap "
              f"{base.max_new_tokens}, batch {base.batch_size}", flush=True)
        speed = {c: timed("now" if c else "before", loaded, prompts, SamplingConfig(**{**base.__dict__, "continuous": c}),
                          models.reading(loaded), done=done)[0] for c in (False, True)}
        greedy, same = greedy_pair(loaded, prompts, base, lambda: models.reading(loaded), done=done)
        lines.append(f"| 02: {size.untuned} read mixed, {len(prompts)} tasks x {base.n}, batch {base.batch_size} | | "
                     f"{speed[False]:.0f} | {speed[True]:.0f} | {speed[True] / speed[False]:.2f}x | | |")
        lines.append(f"| 02: the same, greedy (n 1) | | {greedy[False]:.0f} | {greedy[True]:.0f} | "
                     f"{greedy[True] / greedy[False]:.2f}x | | {same} |")
        del loaded

    if "05" in args.workloads.split(","):
        from rlhf_nb.tasks import gold

        prompts = [p.messages() for p in gold.synthetic_prompts(args.prompts, seed=7,
                                                                system="Reply in at most three short sentences.")]
        policy = models.load(args.policy, lora={"r": 16})
        generator = torch.Generator().manual_seed(0)
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.data = torch.randn(p.shape, generator=generator) * 2e-3
        base = SamplingConfig(n=4, temperature=1.0, top_p=0.9, max_new_tokens=128, seed=1)
        print(f"05: {args.policy} + random LoRA r 16, {len(prompts)} prompts x {base.n}, cap "
              f"{base.max_new_tokens}, automatic batch", flush=True)
        fp32, _ = timed("fp32 unmerged", policy, prompts, SamplingConfig(**{**base.__dict__, "continuous": False}),
                        contextlib.nullcontext())
        speed = {c: timed("now" if c else "before", policy, prompts, SamplingConfig(**{**base.__dict__, "continuous": c}),
                          models.reading(policy))[0] for c in (False, True)}
        held_out = SamplingConfig(n=1, temperature=0.0, max_new_tokens=args.greedy_cap)
        snapshot = [p.messages() for p in gold.synthetic_prompts(args.held_out, seed=8,
                                                                 system="Reply in at most three short sentences.")]
        fp32_greedy, _ = timed("fp32 unmerged, greedy", policy, snapshot, held_out, contextlib.nullcontext())
        greedy, same = greedy_pair(policy, snapshot, held_out, lambda: models.reading(policy))
        lines.append(f"| 05: {args.policy} + LoRA read mixed, {len(prompts)} prompts x {base.n} | {fp32:.0f} | "
                     f"{speed[False]:.0f} | {speed[True]:.0f} | {speed[True] / speed[False]:.2f}x | "
                     f"{speed[True] / fp32:.2f}x | |")
        lines.append(f"| 05: greedy held-out replies, {len(snapshot)} prompts, cap {args.greedy_cap} | {fp32_greedy:.0f} | "
                     f"{greedy[False]:.0f} | {greedy[True]:.0f} | {greedy[True] / greedy[False]:.2f}x | "
                     f"{greedy[True] / fp32_greedy:.2f}x | {same} |")

    print("\n| workload | fp32 unmerged tok/s | before tok/s | now tok/s | now / before | now / fp32 unmerged | "
          "identical greedy replies |\n|---|---|---|---|---|---|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
