"""trl's GRPO and RLOO with rlhf-nb reward callables, as alternatives to PPO.

Both sample ``num_generations`` completions per prompt and use the group's rewards as the baseline
(no value model). The reward is the same callable PPO takes, ``fn(prompts, completions, meta)``;
``meta`` values must be plain data (they travel as dataset columns). With ``beta > 0`` trl needs a
reference: pass a LoRA policy (the reference is the adapter-disabled base).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .common import TrainConfig, TrainResult, history_callback, prepare_model, run_trainer, trainer_kwargs

RewardFn = Callable[[Sequence[Any], Sequence[str], Sequence[dict]], Sequence[float]]


@dataclass
class GroupRLConfig(TrainConfig):
    learning_rate: float = 1e-5
    num_generations: int = 4  # completions per prompt (the group)
    max_completion_length: int = 64
    temperature: float = 1.0
    beta: float = 0.0  # KL coefficient towards the reference (0: no reference needed)


def trl_reward(fn: RewardFn) -> Callable[..., list[float]]:
    """Adapt ``fn(prompts, completions, meta)`` to trl's ``fn(prompts, completions, **columns)``."""

    def reward(prompts, completions, **columns):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        n = len(texts)
        keys = [k for k, v in columns.items() if isinstance(v, list) and len(v) == n and k != "completion_ids"]
        meta = [{k: columns[k][i] for k in keys} for i in range(n)]
        return [float(x) for x in fn(prompts, texts, meta)]

    reward.__name__ = getattr(fn, "__name__", "reward")
    return reward


def _dataset(prompts: Sequence[Any], meta: Sequence[dict] | None):
    from datasets import Dataset

    rows = []
    for i, p in enumerate(prompts):
        messages = [{"role": "user", "content": p}] if isinstance(p, str) else list(p)
        rows.append({"prompt": messages, **(dict(meta[i]) if meta else {})})
    return Dataset.from_list(rows)


def _group_args(config: GroupRLConfig) -> dict[str, Any]:
    kwargs = trainer_kwargs(config)
    kwargs["remove_unused_columns"] = False  # meta columns must reach the reward
    return {**kwargs, "num_generations": config.num_generations, "max_completion_length": config.max_completion_length,
            "temperature": config.temperature, "beta": config.beta}


def _train_group(kind: str, loaded: Any, prompts: Sequence[Any], reward_fn: RewardFn, config: GroupRLConfig,
                 meta: Sequence[dict] | None) -> TrainResult:
    import trl

    trainer_cls, config_cls = (trl.GRPOTrainer, trl.GRPOConfig) if kind == "grpo" else (trl.RLOOTrainer, trl.RLOOConfig)
    tokenizer, model = loaded
    prepare_model(model)
    history: list[dict[str, float]] = []
    trainer = trainer_cls(model=model, reward_funcs=[trl_reward(reward_fn)], args=config_cls(**_group_args(config)),
                          train_dataset=_dataset(prompts, meta), processing_class=tokenizer,
                          callbacks=[history_callback(history)])
    return run_trainer(trainer, config, history)


def train_grpo(loaded: Any, prompts: Sequence[Any], reward_fn: RewardFn, config: GroupRLConfig = GroupRLConfig(),
               meta: Sequence[dict] | None = None) -> TrainResult:
    """GRPO: group-normalised rewards as advantages (trl ``GRPOTrainer``)."""
    return _train_group("grpo", loaded, prompts, reward_fn, config, meta)


def train_rloo(loaded: Any, prompts: Sequence[Any], reward_fn: RewardFn, config: GroupRLConfig = GroupRLConfig(),
               meta: Sequence[dict] | None = None) -> TrainResult:
    """RLOO: leave-one-out baseline within each group (trl ``RLOOTrainer``)."""
    return _train_group("rloo", loaded, prompts, reward_fn, config, meta)


def run_from_settings(settings: dict[str, Any], kind: str = "grpo") -> TrainResult:
    from .common import model_from_settings, prompts_from_spec, reward_from_settings, settings_from

    settings = dict(settings)
    kind = settings.pop("algorithm", kind)
    loaded = model_from_settings(settings)
    prompts, meta = prompts_from_spec(settings.pop("prompts"))
    reward = reward_from_settings(settings.pop("reward"))
    return _train_group(kind, loaded, prompts, reward, settings_from(GroupRLConfig, settings), meta)


def main(argv: list[str] | None = None) -> None:
    """``python -m rlhf_nb.train.grpo --config g.yaml`` (``algorithm: grpo`` or ``rloo``)."""
    from .common import script_main

    script_main("GRPO / RLOO through trl with rlhf-nb reward callables", run_from_settings, argv)


if __name__ == "__main__":
    main()
