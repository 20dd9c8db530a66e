"""What training under bf16 costs the adapter: DPO under fp32, bf16 and mixed, each adapter read back in fp32.

Each variant trains a LoRA adapter with DPO (``--steps`` optimizer steps, batch 4, lr 5e-5, beta 0.1) on the same
pairs, in a fresh process, under one precision (:mod:`rlhf_nb.lm.device`): ``fp32`` (what ``auto`` trains in on a
CPU), ``bf16`` (bf16 frozen weights, bf16 autocast) and ``mixed`` (bf16 autocast on fp32 weights, LoRA sums in
fp32). It prints the training seconds and tokens/s, the last logged DPO margin (what the trainer saw), and the
implied DPO margin of the trained adapter on the training pairs read by a fresh fp32 model and under bf16 autocast.
Reading every adapter the same way separates what training learned from how its forward pass was rounded.

    python benchmarks/train_precision.py [--model smollm2-135m-instruct] [--steps 8] [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = ("fp32", "bf16", "mixed")
LORA = {"r": 16, "alpha": 32, "dropout": 0.0}
BETA = 0.1


def worker(model_name: str, variant: str, steps: int, seed: int) -> dict:
    import torch
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    from throughput_bench import _pairs, _seq_tokens  # benchmarks/ is on sys.path

    from rlhf_nb.lm import device, models
    from rlhf_nb.train.dpo import DPOConfig, train_dpo

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    torch.manual_seed(seed)
    device.set_precision(variant)
    loaded = models.load(model_name, lora=LORA)
    pairs = _pairs(4 * steps // 2)
    config = DPOConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=4, num_train_epochs=2, max_length=256,
                       disable_tqdm=True, logging_steps=1, seed=seed, learning_rate=5e-5, beta=BETA)
    start = time.perf_counter()
    run = train_dpo(loaded, pairs, config)
    seconds = time.perf_counter() - start
    adapter = {k: v.detach().float().clone() for k, v in get_peft_model_state_dict(run.model).items()}
    device.set_precision("fp32")  # every adapter is read back the same way: a fresh fp32 model
    tok, model = models.load(model_name, lora=LORA)
    set_peft_model_state_dict(model, adapter)
    reads = {"fp32": _margin(tok, model, pairs, contextlib.nullcontext),
             "bf16": _margin(tok, model, pairs, lambda: torch.autocast("cpu", dtype=torch.bfloat16))}
    return {"variant": variant, "seed": seed, "seconds": seconds, "tokens_per_s": 2 * _seq_tokens(tok, pairs) / seconds,
            "logged": run.series("rewards/margins")[-1], "read_fp32": reads["fp32"], "read_bf16": reads["bf16"]}


def _margin(tok, model, pairs, context) -> float:
    """Mean implied DPO margin beta * (log-ratio chosen - log-ratio rejected) against the adapter switched off."""
    import torch

    margins = []
    for p in pairs:
        prompt = tok.apply_chat_template(p.prompt, add_generation_prompt=True, tokenize=False)
        start = len(tok(prompt, add_special_tokens=False).input_ids)
        ratio = {}
        for side in ("chosen", "rejected"):
            ids = tok(prompt + getattr(p, side), return_tensors="pt", add_special_tokens=False).input_ids
            logps = []
            for adapter in (True, False):
                with torch.no_grad(), context(), (contextlib.nullcontext() if adapter else model.disable_adapter()):
                    logits = model(input_ids=ids).logits.float()[0, :-1]
                token_logps = torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None])[:, 0]
                logps.append(float(token_logps[start - 1:].sum()))
            ratio[side] = logps[0] - logps[1]
        margins.append(BETA * (ratio["chosen"] - ratio["rejected"]))
    return sum(margins) / len(margins)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--worker", nargs=2, metavar=("VARIANT", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(args.model, args.worker[0], args.steps, int(args.worker[1]))), flush=True)
        return
    from rlhf_nb.lm import device

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    print(f"{args.model}, DPO {args.steps} steps; cores {os.cpu_count()}; this CPU under auto: {device.describe()}")
    rows: dict[str, list[dict]] = {}
    for seed in args.seeds:
        for variant in VARIANTS:  # alternate, so drift in machine speed hits all alike
            done = subprocess.run([sys.executable, __file__, "--model", args.model, "--steps", str(args.steps),
                                   "--worker", variant, str(seed)], capture_output=True, text=True, env=env)
            line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                print(f"{variant} seed {seed}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            rows.setdefault(variant, []).append(json.loads(line[7:]))
    print("\n| training precision | train tokens/s (median) | vs fp32 | margin the trainer logged | "
          "adapter's margin read in fp32 | read under bf16 autocast |")
    print("|---|---|---|---|---|---|")
    base = statistics.median(r["tokens_per_s"] for r in rows.get("fp32", [{"tokens_per_s": float("nan")}]))
    for variant in VARIANTS:
        got = rows.get(variant, [])
        if not got:
            continue
        speed = statistics.median(r["tokens_per_s"] for r in got)
        each = lambda key: " / ".join(f"{r[key]:.3f}" for r in got)  # noqa: E731 - one value per seed
        print(f"| {variant} | {speed:.0f} | {speed / base:.2f}x | {each('logged')} | {each('read_fp32')} | "
              f"{each('read_bf16')} |")
    print(f"\none value per seed ({', '.join(map(str, args.seeds))}): their spread is the seed noise")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
