"""Online iterative DPO (Xiong, Dong et al. 2024, *RLHF Workflow*).

For ``iterations`` rounds: sample ``k`` responses per prompt from the current policy, score them with
a reward callable, pair the best against the worst (prompts whose responses all tie are skipped),
and run DPO from the current policy. The reference stays the *initial* policy throughout (the LoRA
adapter's weights before round 1 are pinned as trl's reference adapter), and every round continues
training the same adapter. ``evaluate(policy) -> dict`` (optional) runs after each round. The policy samples under
:func:`rlhf_nb.lm.models.reading` (on a CPU with fast bf16: bf16 matmuls, the adapter added in fp32), and each round
records its samples' mean reward, length, cut-off share and next-token entropy.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlhf_nb.lm.evaluate import sample
from rlhf_nb.lm.generation import SamplingConfig
from rlhf_nb.lm.models import reading
from rlhf_nb.tasks.data import PreferencePair
from rlhf_nb.train.common import TrainResult
from rlhf_nb.train.dpo import DPOConfig, train_dpo

RewardFn = Callable[[Sequence[Any], Sequence[str], Sequence[dict]], Sequence[float]]


@dataclass
class IterativeDPOConfig:
    iterations: int = 3  # the paper: 3
    k: int = 4  # samples per prompt (the paper: 4 at temperature 1.0)
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 128
    prompts_per_iteration: int | None = None  # None: all prompts every round
    sample_batch_size: int | None = None  # None: the sampler's automatic batch size
    dpo: DPOConfig | None = None  # None: DPOConfig() with rlhf-nb's defaults
    seed: int = 0
    evaluate_start: bool = True  # call ``evaluate`` on the starting policy too (round 0)


def best_vs_worst(prompts: Sequence[Any], samples: Sequence[Sequence[str]], scores: Sequence[Sequence[float]],
                  tag: str = "") -> list[PreferencePair]:
    """One pair per prompt: highest-scored response vs lowest; prompts whose scores all tie give none."""
    pairs = []
    for i, (prompt, texts, s) in enumerate(zip(prompts, samples, scores)):
        best = max(range(len(s)), key=lambda j: s[j])
        worst = min(range(len(s)), key=lambda j: s[j])
        if s[best] > s[worst] and texts[best] != texts[worst]:
            messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
            pairs.append(PreferencePair(f"{tag}{i}", messages, texts[best], texts[worst], "online"))
    return pairs


def length_lean(pairs: Sequence[PreferencePair]) -> tuple[int, int]:
    """(pairs whose chosen reply is the shorter, pairs whose chosen reply is the longer), in characters; pairs of equal
    length count in neither. A labeller that picks the shorter reply far more often than not favours short replies."""
    shorter = sum(len(p.chosen) < len(p.rejected) for p in pairs)
    return shorter, sum(len(p.chosen) > len(p.rejected) for p in pairs)


def iterative_dpo(loaded: Any, prompts: Sequence[Any], reward_fn: RewardFn, config: IterativeDPOConfig | None = None,
                  meta: Sequence[dict] | None = None, evaluate: Callable[[Any], dict[str, float]] | None = None) -> TrainResult:
    """Run the loop; ``history`` has one row per round (mean/max sampled reward, pairs, DPO stats, evaluation)."""
    config = config or IterativeDPOConfig()
    base_dpo = config.dpo or DPOConfig()
    tokenizer, model = loaded
    if not hasattr(model, "disable_adapter"):
        raise ValueError("iterative_dpo needs a LoRA policy so the initial policy stays available as the reference")
    from peft import get_peft_model_state_dict

    meta = list(meta) if meta is not None else [{} for _ in prompts]
    initial = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}  # the reference, always
    history: list[dict[str, float]] = []
    if evaluate is not None and config.evaluate_start:
        history.append({"iteration": 0, **evaluate(loaded)})
    for it in range(1, config.iterations + 1):
        chosen = list(range(len(prompts)))
        if config.prompts_per_iteration:  # a fresh slice of prompts each round, as the paper's data stream
            start = (it - 1) * config.prompts_per_iteration
            chosen = [(start + j) % len(prompts) for j in range(config.prompts_per_iteration)]
        batch = [prompts[i] for i in chosen]
        sampling = SamplingConfig(n=config.k, temperature=config.temperature, top_p=config.top_p,
                                  max_new_tokens=config.max_new_tokens, batch_size=config.sample_batch_size,
                                  seed=config.seed * 1000 + it, entropy=True)
        started = time.perf_counter()
        with reading(loaded):
            replies = sample(loaded, batch, sampling, label=f"round {it}: sampling")
        sampled = time.perf_counter()
        samples = replies.texts
        flat = reward_fn([p for p in batch for _ in range(config.k)], [t for per in samples for t in per],
                         [meta[i] for i in chosen for _ in range(config.k)])
        scores = [list(flat[j * config.k:(j + 1) * config.k]) for j in range(len(batch))]
        pairs = best_vs_worst(batch, samples, scores, tag=f"it{it}-")
        row: dict[str, float] = {"iteration": it, "sample_reward": sum(flat) / len(flat),
                                 "best_reward": sum(max(s) for s in scores) / len(scores), "pairs": len(pairs),
                                 "mean_length": sum(len(t) for per in samples for t in per) / len(flat),
                                 "mean_tokens": sum(n for per in replies.tokens for n in per) / len(flat),
                                 "cut_off": replies.cap_rate,
                                 "entropy": sum(h for per in replies.entropy or [] for h in per) / len(flat)}
        row["pairs/chosen_shorter"], row["pairs/chosen_longer"] = length_lean(pairs)
        if pairs:
            dpo = dataclasses.replace(base_dpo, output_dir=str(Path(base_dpo.output_dir) / f"iter{it}"),
                                      seed=config.seed + it)
            result = train_dpo(loaded, pairs, dpo, reference_adapter=initial)
            last = result.history[-2] if len(result.history) > 1 else {}
            row.update({f"dpo/{k}": v for k, v in last.items() if k.startswith(("rewards/", "loss", "kl/"))})
        trained = time.perf_counter()
        if evaluate is not None:
            row.update(evaluate(loaded))
        row.update({"seconds/sampling": sampled - started, "seconds/training": trained - sampled,
                    "seconds/evaluation": time.perf_counter() - trained, "sampling/tokens_per_s": replies.tokens_per_s})
        history.append(row)
    return TrainResult(model, history, base_dpo.output_dir, history[-1] if history else {})


def run_from_settings(settings: dict[str, Any]) -> TrainResult:
    from rlhf_nb.train.common import model_from_settings, prompts_from_spec, reward_from_settings, settings_from

    settings = dict(settings)
    loaded = model_from_settings(settings)
    prompts, meta = prompts_from_spec(settings.pop("prompts"))
    reward = reward_from_settings(settings.pop("reward"))
    dpo = settings_from(DPOConfig, settings.pop("dpo", {}))
    return iterative_dpo(loaded, prompts, reward, settings_from(IterativeDPOConfig, {**settings, "dpo": dpo}), meta=meta)


def main(argv: list[str] | None = None) -> None:
    """``python -m rlhf_nb.train.online_dpo --config it.yaml``: model, lora, prompts, reward, dpo: {...}, loop settings."""
    from rlhf_nb.train.common import script_main

    script_main("Online iterative DPO (rlhf-nb)", run_from_settings, argv)


if __name__ == "__main__":
    main()
