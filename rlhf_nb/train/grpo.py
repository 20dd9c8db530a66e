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

import trl

from rlhf_nb.train.common import RlhfNbArgs, TrainResult, history_callback, prepare_model, run_trainer

RewardFn = Callable[[Sequence[Any], Sequence[str], Sequence[dict]], Sequence[float]]

_GROUP_DEFAULTS = dict(learning_rate=1e-5, num_generations=4, max_completion_length=64, beta=0.0)


@dataclass
class GRPOConfig(RlhfNbArgs, trl.GRPOConfig):
    """``trl.GRPOConfig`` with rlhf-nb's defaults; meta columns reach the reward (``remove_unused_columns=False``)."""

    output_dir: str = "runs/train/grpo"
    learning_rate: float = _GROUP_DEFAULTS["learning_rate"]
    per_device_train_batch_size: int = 4
    num_generations: int | None = _GROUP_DEFAULTS["num_generations"]
    max_completion_length: int | None = _GROUP_DEFAULTS["max_completion_length"]
    beta: float = _GROUP_DEFAULTS["beta"]  # KL coefficient towards the reference (0: no reference needed)
    remove_unused_columns: bool | None = False


@dataclass
class RLOOConfig(RlhfNbArgs, trl.RLOOConfig):
    """``trl.RLOOConfig`` with the same rlhf-nb defaults as :class:`GRPOConfig`."""

    output_dir: str = "runs/train/rloo"
    learning_rate: float = _GROUP_DEFAULTS["learning_rate"]
    per_device_train_batch_size: int = 4
    num_generations: int | None = _GROUP_DEFAULTS["num_generations"]
    max_completion_length: int | None = _GROUP_DEFAULTS["max_completion_length"]
    beta: float = _GROUP_DEFAULTS["beta"]
    remove_unused_columns: bool | None = False


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


def every_steps(every: int, fn: Callable[[Any, int], None], at_last: bool = True) -> Any:
    """A TrainerCallback that calls ``fn(model, step)`` with the model in eval mode every ``every`` steps (0: never),
    and at the last step only if ``at_last``; training mode is restored after."""
    from transformers import TrainerCallback

    class _EverySteps(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            step, last = state.global_step, state.global_step == state.max_steps
            due = step % every == 0 or last if every else False
            if due and (at_last or not last):
                was_training = model.training
                model.eval()
                fn(model, step)
                model.train(was_training)

    return _EverySteps()


def _dataset(prompts: Sequence[Any], meta: Sequence[dict] | None):
    from datasets import Dataset

    # every row carries every meta key (None where a row lacks it): Dataset.from_list takes the columns from the
    # first row only, so a math row's "answer" would vanish if the first prompt were a code one
    keys = list(dict.fromkeys(k for m in meta for k in m)) if meta else []
    rows = []
    for i, p in enumerate(prompts):
        messages = [{"role": "user", "content": p}] if isinstance(p, str) else list(p)
        rows.append({"prompt": messages, **{k: meta[i].get(k) for k in keys}})
    return Dataset.from_list(rows)


def _train_group(loaded: Any, prompts: Sequence[Any], reward_fn: RewardFn, config: GRPOConfig | RLOOConfig,
                 meta: Sequence[dict] | None, callbacks: Sequence[Any] = ()) -> TrainResult:
    trainer_cls = trl.GRPOTrainer if isinstance(config, trl.GRPOConfig) else trl.RLOOTrainer
    tokenizer, model = loaded
    prepare_model(model, config)
    history: list[dict[str, float]] = []
    trainer = trainer_cls(model=model, reward_funcs=[trl_reward(reward_fn)], args=config,
                          train_dataset=_dataset(prompts, meta), processing_class=tokenizer,
                          callbacks=[history_callback(history), *callbacks])
    return run_trainer(trainer, config, history)


def train_grpo(loaded: Any, prompts: Sequence[Any], reward_fn: RewardFn, config: GRPOConfig | None = None,
               meta: Sequence[dict] | None = None, callbacks: Sequence[Any] = ()) -> TrainResult:
    """GRPO: group-normalised rewards as advantages (trl ``GRPOTrainer``); ``callbacks`` are transformers
    ``TrainerCallback``s (e.g. an evaluation every few steps)."""
    return _train_group(loaded, prompts, reward_fn, config or GRPOConfig(), meta, callbacks)


def train_rloo(loaded: Any, prompts: Sequence[Any], reward_fn: RewardFn, config: RLOOConfig | None = None,
               meta: Sequence[dict] | None = None) -> TrainResult:
    """RLOO: leave-one-out baseline within each group (trl ``RLOOTrainer``)."""
    return _train_group(loaded, prompts, reward_fn, config or RLOOConfig(), meta)


def run_from_settings(settings: dict[str, Any], kind: str = "grpo") -> TrainResult:
    from rlhf_nb.train.common import model_from_settings, prompts_from_spec, reward_from_settings, settings_from

    settings = dict(settings)
    kind = settings.pop("algorithm", kind)
    loaded = model_from_settings(settings)
    prompts, meta = prompts_from_spec(settings.pop("prompts"))
    reward = reward_from_settings(settings.pop("reward"))
    config = settings_from(GRPOConfig if kind == "grpo" else RLOOConfig, settings)
    return _train_group(loaded, prompts, reward, config, meta)


def main(argv: list[str] | None = None) -> None:
    """``python -m rlhf_nb.train.grpo --config g.yaml`` (``algorithm: grpo`` or ``rloo``)."""
    from rlhf_nb.train.common import script_main

    script_main("GRPO / RLOO through trl with rlhf-nb reward callables", run_from_settings, argv)


if __name__ == "__main__":
    main()
