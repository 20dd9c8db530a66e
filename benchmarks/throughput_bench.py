"""Throughput of training and sampling: today's fp32 path vs the precision policy, and vs plain trl, side by side.

Every measurement runs in its own fresh process (so peak RSS is that measurement's alone), the variants
alternate, and each is repeated ``--reps`` times; the table shows medians and the ratios between them.

Variants
* ``fp32 (before)``: the path notebooks took before this work: fp32 weights, trl's own per-token log-prob
  head, no precomputed reference log-probs, and sampling through ``model.generate`` at batch 16 (kept
  here as :func:`hf_generate_fp32`, the former helper's loop). PPO's rollout already uses the new decoding
  loop in this variant, so its ratio shows precision alone.
* ``rlhf-nb``: the routines as they run now (``precision="auto"``: on CPUs with AVX512-BF16/AMX, bf16 weights
  for models that only sample; models that train keep fp32 weights and train in ``mixed`` precision, bf16
  autocast with fp32 LoRA sums, except PPO's own loop, which trains in fp32; the CPU log-prob head of
  :mod:`rlhf_nb.train.cpu_head`; precomputed DPO reference log-probs; the own decoding loop at the
  automatic batch size).
* ``bf16 train``: the same with ``precision="bf16"``, i.e. training in bf16 weights with bf16 autocast too, as
  ``auto`` did before it was found to round small LoRA updates away (see :mod:`rlhf_nb.lm.device`): its speed is
  what that costs, and its end metric against fp32's is why.
* ``plain trl``: the same model (loaded the same way) trained by trl directly with the same settings, as a
  user would write it without rlhf-nb: the wrapper must cost nothing.

The speed of these shared 2-core machines drifts (on 2026-11-29 sampling from the same model ran at 74 tok/s in one
hour and 159 in the next), so before each measurement the parent times a 1024x1024 matmul in fp32 and in bf16 and a
256 MB copy (:func:`rlhf_nb.lm.device.machine_probe`), and the script prints the range those probes spanned: a ratio is only as steady
as they were.

Train tokens/s counts every sequence token the trainer processes per epoch (DPO: prompt + chosen and
prompt + rejected), times epochs, over the wall time of the whole call (data preparation included).

    python benchmarks/throughput_bench.py [--models smollm2-135m-instruct,qwen2.5-coder-0.5b-instruct] [--reps 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROUTINES = ("sft", "reward", "dpo", "ppo", "sampling")
VARIANTS = ("fp32 (before)", "rlhf-nb", "bf16 train", "plain trl")


def _pairs(n: int):
    from rlhf_nb.tasks.data import PreferencePair

    topics = ["rivers", "prime numbers", "bread", "volcanoes", "chess", "rain", "bees", "maps"]
    out = []
    for i in range(n):
        t = topics[i % len(topics)]
        prompt = [{"role": "user", "content": f"Question {i}: explain {t} to a curious ten-year-old in a few sentences."}]
        good = (f"{t.capitalize()} are a great thing to wonder about. " * 6).strip()
        bad = f"I do not know anything about {t}. Ask someone else. " * 3
        out.append(PreferencePair(str(i), prompt, good, bad.strip()))
    return out


def hf_generate_fp32(model, tok, prompts, max_new_tokens: int, batch_size: int = 16) -> int:
    """The former sampling helper: ``model.generate`` per batch of 16 (multinomial, top-p 0.95); returns tokens."""
    import torch

    from rlhf_nb.lm.generation import render_prompt

    texts = [render_prompt(tok, p) for p in prompts]
    tok.padding_side = "left"
    n = 0
    for start in range(0, len(texts), batch_size):
        enc = tok(texts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(start)
        with torch.no_grad():
            seq = model.generate(**enc, do_sample=True, temperature=1.0, top_p=0.95, top_k=0,
                                 max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                                 eos_token_id=tok.eos_token_id)
        new = seq[:, enc["input_ids"].shape[1]:]
        ended = (new == tok.eos_token_id).int().cumsum(1)
        n += int((ended == 0).sum())
    return n


def _seq_tokens(tok, pairs) -> int:
    """Tokens of prompt + chosen and prompt + rejected over all pairs (chat template applied)."""
    total = 0
    for p in pairs:
        for reply in (p.chosen, p.rejected):
            text = tok.apply_chat_template(p.prompt + [{"role": "assistant", "content": reply}], tokenize=False)
            total += len(tok(text, add_special_tokens=False)["input_ids"])
    return total


def worker(model_name: str, routine: str, variant: str, steps: int, seed: int = 0) -> dict:
    """One measurement in this (fresh) process; returns tokens/s, peak RSS and the end metric.

    ``seed`` (the repetition) sets the LoRA initialisation and the trainer's seed, so the spread of the end metric
    across repetitions of one variant is the seed noise that bf16 must stay within."""
    import resource

    import torch

    from rlhf_nb.lm import device, models

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    torch.manual_seed(seed)
    before = variant == "fp32 (before)"
    device.set_precision({"fp32 (before)": "fp32", "bf16 train": "bf16"}.get(variant, "auto"))
    if before:  # trl's own per-token log-prob head, as before the CPU fast path
        from rlhf_nb.train import cpu_head

        cpu_head.install = lambda: None
    out = tempfile.mkdtemp()
    batch, epochs = 4, 2
    pairs = _pairs(batch * steps // epochs)
    lora = {"r": 16, "alpha": 32, "dropout": 0.0}
    result: dict = {"model": model_name, "routine": routine, "variant": variant,
                    "precision": device.resolve().name}
    if routine == "sampling":
        from rlhf_nb.lm.generation import GenerationStats, SamplingConfig, generate

        tok, model = models.load(model_name)
        prompts = [p.prompt for p in _pairs(64)]
        start = time.perf_counter()
        if before:
            n = hf_generate_fp32(model, tok, prompts, 64)
            seconds = time.perf_counter() - start
        else:
            stats = GenerationStats()
            generate(model, tok, prompts, SamplingConfig(temperature=1.0, top_p=0.95, max_new_tokens=64), progress=False,
                     stats=stats)
            n, seconds = stats.tokens, stats.seconds
        result.update(tokens=n, seconds=seconds)
    elif routine == "ppo":
        if variant == "plain trl":
            return {**result, "skip": "trl has no PPO since 1.13"}
        from rlhf_nb.train.ppo import PPOConfig, train_ppo

        loaded = models.load(model_name, lora=lora)
        prompts = [p.prompt for p in _pairs(8)]
        config = PPOConfig(steps=max(2, steps // 2), batch_size=8, minibatch_size=4, max_new_tokens=48, progress=False,
                           seed=seed)
        start = time.perf_counter()
        run = train_ppo(loaded, prompts, lambda p, c, m: [len(x) / 100 for x in c], config)
        seconds = time.perf_counter() - start
        # tokens through the policy per step: rollout (sampled) + 1 scoring pass + ref pass + epochs x update
        length = sum(r["response_length"] for r in run.history) / len(run.history)
        per_step = 8 * (length + 40) * (3 + config.ppo_epochs)
        result.update(tokens=per_step * config.steps, seconds=seconds, metric=run.history[-1]["reward"])
    else:
        from rlhf_nb.train.dpo import DPOConfig, preference_dataset, train_dpo
        from rlhf_nb.train.reward import RewardConfig, train_reward_model
        from rlhf_nb.train.sft import SFTConfig, sft_dataset, train_sft

        head = "reward" if routine == "reward" else "causal-lm"
        loaded = models.load(model_name, head=head, lora=lora)
        tok = loaded.tokenizer
        base = dict(output_dir=out, per_device_train_batch_size=batch, num_train_epochs=epochs, max_length=256,
                    disable_tqdm=True, logging_steps=1, seed=seed)
        sft_records = [{"prompt": p.prompt, "completion": p.chosen} for p in pairs]
        config = {"dpo": lambda: DPOConfig(**base, precompute_ref_log_probs=not before), "reward": lambda: RewardConfig(**base),
                  "sft": lambda: SFTConfig(**base)}[routine]()
        tokens = _seq_tokens(tok, pairs) * epochs
        if routine == "sft":
            tokens //= 2  # one sequence per record
        start = time.perf_counter()
        if variant == "plain trl":  # trl's own config class and trainer, the same arguments
            import trl

            # rlhf-nb's own defaults that trl's differ from (learning rate: trl's DPO default is 1e-6) are passed
            same = dict(**base, learning_rate=config.learning_rate, bf16=config.bf16, use_cpu=config.use_cpu,
                        report_to="none", save_strategy="no")
            if routine == "dpo":
                args = trl.DPOConfig(**same, beta=config.beta, precompute_ref_log_probs=True)
                trainer = trl.DPOTrainer(model=loaded.model, args=args, train_dataset=preference_dataset(pairs),
                                         processing_class=tok)
            elif routine == "reward":
                args = trl.RewardConfig(**same)
                trainer = trl.RewardTrainer(model=loaded.model, args=args, train_dataset=preference_dataset(pairs),
                                            processing_class=tok)
            else:
                args = trl.SFTConfig(**same, completion_only_loss=True)
                trainer = trl.SFTTrainer(model=loaded.model, args=args, train_dataset=sft_dataset(sft_records),
                                         processing_class=tok)
            trainer.train()
            losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
        else:
            run = {"dpo": lambda: train_dpo(loaded, pairs, config),
                   "reward": lambda: train_reward_model(loaded, pairs, config),
                   "sft": lambda: train_sft(loaded, sft_records, config)}[routine]()
            losses = run.series("loss")
        # the metric compared across precisions: mean training loss over the last quarter of the logged steps
        tail = losses[-max(1, len(losses) // 4):]
        result.update(tokens=tokens, seconds=time.perf_counter() - start, metric=sum(tail) / len(tail))
    result["tokens_per_s"] = result["tokens"] / result["seconds"]
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="smollm2-135m-instruct,qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--routines", default=",".join(ROUTINES))
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per training measurement")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=3, metavar=("MODEL", "ROUTINE", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(*args.worker, steps=args.steps, seed=args.seed)), flush=True)
        return
    from rlhf_nb.lm import device

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    print(f"cores {os.cpu_count()} · threads {env.get('OMP_NUM_THREADS', '2')} · precision policy: "
          f"{device.describe()} · python {sys.version.split()[0]}")
    rows: dict[tuple[str, str, str], list[dict]] = {}
    for model in args.models.split(","):
        for routine in args.routines.split(","):
            for rep in range(args.reps):
                for variant in VARIANTS:  # alternate variants, so drift in machine speed hits all alike
                    if routine in ("sampling", "ppo") and variant == "plain trl":
                        continue  # trl has no PPO trainer and no sampler of its own
                    if routine == "sampling" and variant == "bf16 train":
                        continue  # sampling from a pretrained model is bf16 under auto already
                    command = [sys.executable, __file__, "--steps", str(args.steps), "--seed", str(rep),
                               "--worker", model, routine, variant]
                    probe = device.machine_probe()  # in this parent, so its buffers never count in a worker's RSS
                    done = subprocess.run(command, capture_output=True, text=True, env=env)
                    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
                    if line is None:
                        print(f"{model} {routine} {variant}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                        continue
                    rows.setdefault((model, routine, variant), []).append({**json.loads(line[7:]), "probe": probe})
    short = {"fp32 (before)": "before", "rlhf-nb": "now", "bf16 train": "bf16 train", "plain trl": "trl"}
    names = " / ".join(short[v] for v in VARIANTS)
    print(f"\n| model | routine | tok/s {names} | now vs before | bf16 train vs before | now vs trl | "
          f"peak RSS MB {names} | end metric {names} |")
    print("|---|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        for routine in args.routines.split(","):
            med, rss, metric = {}, {}, {}
            for variant in VARIANTS:
                got = rows.get((model, routine, variant), [])
                if got:
                    med[variant] = statistics.median(r["tokens_per_s"] for r in got)
                    rss[variant] = max(r["peak_rss_mb"] for r in got)
                    if "metric" in got[0]:  # every repetition's value: the spread within a variant is the noise
                        metric[variant] = "/".join(f"{r['metric']:.3f}" for r in got)
            if "rlhf-nb" not in med:
                continue
            speeds = " / ".join(f"{med[v]:.0f}" if v in med else "-" for v in VARIANTS)
            ratio = lambda a, b: f"{med[a] / med[b]:.2f}x" if a in med and b in med else "-"  # noqa: E731
            mem = " / ".join(f"{rss[v]:.0f}" if v in rss else "-" for v in VARIANTS)
            ends = " ; ".join(metric.get(v, "-") for v in VARIANTS)
            print(f"| {model} | {routine} | {speeds} | {ratio('rlhf-nb', 'fp32 (before)')} | "
                  f"{ratio('bf16 train', 'fp32 (before)')} | {ratio('rlhf-nb', 'plain trl')} | {mem} | {ends} |")
    probes = [r["probe"] for got in rows.values() for r in got]
    if probes:
        span = {k: (min(p[k] for p in probes), max(p[k] for p in probes))
                for k in ("fp32_gflop_s", "bf16_gflop_s", "copy_gb_s")}
        print(f"\nmachine speed at the start of the {len(probes)} measurements (1024x1024 matmul, GFLOP/s): fp32 "
              f"{span['fp32_gflop_s'][0]:.0f}-{span['fp32_gflop_s'][1]:.0f}, bf16 {span['bf16_gflop_s'][0]:.0f}-"
              f"{span['bf16_gflop_s'][1]:.0f}; memory (copying 256 MB, GB/s) {span['copy_gb_s'][0]:.1f}-"
              f"{span['copy_gb_s'][1]:.1f}; where a range is wide, "
              "the ratios above carry the drift")
    print("\ntargets (issue #12): DPO and reward >= 1.8x before on SmolLM2-135M, >= 2.5x on Qwen2.5-Coder-0.5B; "
          "sampling >= 1.5x; peak RSS no higher; vs plain trl ~1.0x; metrics within noise of fp32")
    print("end metric: mean training loss over the last quarter of steps (PPO: the last step's mean reward), one value "
          "per repetition (seeds 0, 1, ...): the spread within a variant is seed noise")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
