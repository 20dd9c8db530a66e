"""Training benchmarks, measured side by side in one run; prints markdown tables.

A. each rlhf-nb routine vs plain trl on the same model, data and settings: step time and peak memory,
   and their ratio (target <= 1.05: the wrappers must add no cost);
B. batched vs one-at-a-time sampling throughput (tokens/s) with rlhf-nb's generation helper;
C. on a GPU only: QLoRA DPO (4-bit NF4 base + LoRA) on a 7B-shaped model at sequence length 1024:
   peak memory (target <= 20 GB) and tokens/s. Timing and memory depend on shapes, not on weight
   values, so the 7B model is built from Qwen2.5-7B's configuration with random weights (no download).

    python benchmarks/train_bench.py [--model tiny|smollm2-135m-instruct] [--steps 8] [--skip-7b]
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import threading
import time
from pathlib import Path

import psutil
import torch

from rlhf_nb.lm import models
from rlhf_nb.lm.generation import SamplingConfig, generate
from rlhf_nb.tasks.data import PreferencePair
from rlhf_nb.train import ppo
from rlhf_nb.train.dpo import DPOConfig, preference_dataset, train_dpo
from rlhf_nb.train.reward import RewardConfig, train_reward_model
from rlhf_nb.train.sft import SFTConfig, sft_dataset, train_sft

CUDA = torch.cuda.is_available()


class PeakMemory:
    """Peak GPU memory allocated (CUDA) or peak process RSS sampled every 10 ms (CPU), in MB."""

    def __enter__(self):
        if CUDA:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            self.proc, self.peak, self.stop = psutil.Process(), 0, False
            self.thread = threading.Thread(target=self._poll, daemon=True)
            self.thread.start()
        return self

    def _poll(self):
        while not self.stop:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)

    def __exit__(self, *exc):
        if CUDA:
            torch.cuda.synchronize()
            self.mb = torch.cuda.max_memory_allocated() / 2**20
        else:
            self.stop = True
            self.thread.join()
            self.mb = self.peak / 2**20


def pairs(n: int, words: int) -> list[PreferencePair]:
    filler = " ".join(["the quick brown fox jumps over the lazy dog"] * (words // 9 + 1)).split()[:words]
    return [PreferencePair(str(i), [{"role": "user", "content": f"Question {i}: " + " ".join(filler)}],
                           "A helpful answer: " + " ".join(filler), "No. " + " ".join(filler[::-1])) for i in range(n)]


def fresh(name: str, head: str = "causal-lm", **kw):
    gc.collect()
    if CUDA:
        torch.cuda.empty_cache()
    torch.manual_seed(0)
    return models.load(name, head=head, lora={"r": 16, "alpha": 32, "dropout": 0.0}, **kw)


def timed(fn) -> tuple[float, float]:
    with PeakMemory() as mem:
        start = time.perf_counter()
        fn()
        if CUDA:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    return elapsed, mem.mb


def plain_trl(kind: str, loaded, data, config, out: str):
    """The same training through trl directly, as a user would write it without rlhf-nb."""
    import trl

    tok, model = loaded
    same = dict(output_dir=out, disable_tqdm=True, per_device_train_batch_size=config.per_device_train_batch_size,
                max_steps=config.max_steps, max_length=config.max_length, logging_steps=config.logging_steps,
                bf16=config.bf16, use_cpu=config.use_cpu, report_to="none", save_strategy="no")
    if kind == "dpo":
        args = trl.DPOConfig(**same, beta=config.beta, precompute_ref_log_probs=config.precompute_ref_log_probs)
        trainer = trl.DPOTrainer(model=model, args=args, train_dataset=preference_dataset(data), processing_class=tok)
    elif kind == "reward":
        args = trl.RewardConfig(**same)
        trainer = trl.RewardTrainer(model=model, args=args, train_dataset=preference_dataset(data), processing_class=tok)
    else:
        args = trl.SFTConfig(**same, completion_only_loss=True)
        trainer = trl.SFTTrainer(model=model, args=args, train_dataset=sft_dataset(data), processing_class=tok)
    trainer.train()
    trainer.save_model(out)


def section_a(model_name: str, steps: int, out: Path) -> None:
    print(f"\n## A. rlhf-nb routines vs plain trl ({model_name}, {steps} steps, batch 4, "
          f"{'cuda' if CUDA else 'cpu'}; s/step = whole call including dataset preparation / steps)\n")
    print("| routine | rlhf-nb s/step | trl s/step | time ratio | rlhf-nb peak MB | trl peak MB | memory ratio |")
    print("|---|---|---|---|---|---|---|")
    data = pairs(4 * steps, 40)
    sft_data = [{"prompt": p.prompt, "completion": p.chosen} for p in data]
    base = dict(per_device_train_batch_size=4, max_steps=steps, max_length=256, disable_tqdm=True, logging_steps=steps)
    cases = [
        ("dpo", "causal-lm", lambda L, o: train_dpo(L, data, DPOConfig(output_dir=o, **base)), data,
         DPOConfig(**base)),
        ("reward", "reward", lambda L, o: train_reward_model(L, data, RewardConfig(output_dir=o, **base)), data,
         RewardConfig(**base)),
        ("sft", "causal-lm", lambda L, o: train_sft(L, sft_data, SFTConfig(output_dir=o, **base)), sft_data,
         SFTConfig(**base)),
    ]
    for kind, head, ours, records, config in cases:
        results = {}
        for label in ("trl", "ours", "trl ", "ours "):  # alternate, keep the second of each (warm caches)
            loaded = fresh(model_name, head)
            target = str(out / f"{kind}-{label.strip()}")
            fn = (lambda: ours(loaded, target)) if label.startswith("ours") else (
                lambda: plain_trl(kind, loaded, records, config, target))
            results[label.strip()] = timed(fn)
            del loaded
        (t_ours, m_ours), (t_trl, m_trl) = results["ours"], results["trl"]
        print(f"| {kind} | {t_ours / steps:.3f} | {t_trl / steps:.3f} | {t_ours / t_trl:.2f} | {m_ours:.0f} | "
              f"{m_trl:.0f} | {m_ours / m_trl:.2f} |")
    loaded = fresh(model_name)
    prompts = [p.prompt for p in data[:8]]
    config = ppo.PPOConfig(steps=steps, batch_size=8, minibatch_size=4, max_new_tokens=32, progress=False)
    t, m = timed(lambda: ppo.train_ppo(loaded, prompts, lambda p, c, meta: [len(x) / 100 for x in c], config))
    print(f"| ppo (no trl counterpart since trl 1.13) | {t / steps:.3f} | - | - | {m:.0f} | - | - |")


def section_b(model_name: str) -> None:
    tok, model = models.load(model_name)
    prompts = [[{"role": "user", "content": f"Write a short poem about the number {i}."}] for i in range(8)]
    print(f"\n## B. sampling throughput ({model_name}, 8 prompts x 2 samples, 48 new tokens, "
          f"{'cuda' if CUDA else 'cpu'})\n")
    print("| mode | generated tokens | seconds | tokens/s |\n|---|---|---|---|")
    rates = {}
    for label, batch in (("one at a time", 1), ("batched (16)", 16)):
        cfg = SamplingConfig(n=2, temperature=1.0, max_new_tokens=48, batch_size=batch, seed=0)
        generate(model, tok, prompts[:1], SamplingConfig(n=1, max_new_tokens=4), progress=False)  # warm-up
        start = time.perf_counter()
        out = generate(model, tok, prompts, cfg, progress=False)
        elapsed = time.perf_counter() - start
        n_tokens = sum(s.n_tokens for per in out for s in per)
        rates[label] = n_tokens / elapsed
        print(f"| {label} | {n_tokens} | {elapsed:.2f} | {rates[label]:.1f} |")
    print(f"\nbatched / one-at-a-time throughput: {rates['batched (16)'] / rates['one at a time']:.1f}x")


def section_c(out: Path, steps: int = 4) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    print("\n## C. QLoRA DPO on a 7B-shaped model (Qwen2.5-7B configuration, random weights), seq len 1024\n")
    folder = out / "qwen7b-shaped"
    config = AutoConfig.for_model(
        "qwen2", vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
        num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768, rope_theta=1e6,
        tie_word_embeddings=False, torch_dtype="bfloat16")
    start = time.perf_counter()
    with torch.device("cuda"):
        big = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    big.save_pretrained(folder)
    tok_dir = models.prepare("tiny")  # any tokenizer works for shapes; its ids are mapped into the big vocab
    AutoTokenizer.from_pretrained(tok_dir).save_pretrained(folder)
    del big
    gc.collect()
    torch.cuda.empty_cache()
    print(f"(built and saved in {time.perf_counter() - start:.0f} s)")
    loaded = models.load(str(folder), load_in_4bit=True, lora={"r": 16, "alpha": 32, "dropout": 0.0})
    data = pairs(steps * 2, 490)  # about 1000 tokens per prompt + response with the byte-level tokenizer
    tok = loaded.tokenizer
    lengths = [min(1024, len(tok(tok.apply_chat_template(p.prompt + [{"role": "assistant", "content": answer}],
                                                          tokenize=False))["input_ids"]))
               for p in data for answer in (p.chosen, p.rejected)]
    cfg = DPOConfig(output_dir=str(out / "qlora-dpo"), per_device_train_batch_size=1, gradient_accumulation_steps=2,
                    max_steps=steps, max_length=1024, gradient_checkpointing=True, disable_tqdm=True, logging_steps=1)
    t, mb = timed(lambda: train_dpo(loaded, data, cfg))
    tokens = sum(lengths)  # every pair is seen once: chosen + rejected sequences
    print("| model | mean seq len | peak GPU memory GB | target | s/step (2 pairs) | tokens/s |")
    print("|---|---|---|---|---|---|")
    print(f"| 7.6B (Qwen2.5-7B shape), NF4 + LoRA r=16, grad checkpointing | {tokens / len(lengths):.0f} | "
          f"{mb / 1024:.1f} | <= 20 | {t / steps:.2f} | {tokens / t:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--gen-model", default=None, help="model for section B (default: --model)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--skip-7b", action="store_true")
    parser.add_argument("--sections", default="abc", help="which sections to run (a, b, c)")
    args = parser.parse_args()
    print(f"device: {torch.cuda.get_device_name(0) if CUDA else 'cpu'} · torch {torch.__version__} · "
          f"threads {torch.get_num_threads()} · cores {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        if "a" in args.sections:
            section_a(args.model, args.steps, Path(tmp))
        if "b" in args.sections:
            section_b(args.gen_model or args.model)
        if "c" in args.sections and CUDA and not args.skip_7b:
            section_c(Path(tmp))
        elif "c" in args.sections:
            print("\n## C. QLoRA DPO 7B: skipped (needs a CUDA GPU)")


if __name__ == "__main__":
    main()
