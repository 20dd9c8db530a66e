"""Supervised fine-tuning with trl's ``SFTTrainer``: chat template applied, loss on the completion only.

Records are prompt/completion pairs (``{"prompt": messages or text, "completion": text}``); trl's
prompt-completion format masks the prompt tokens, so the loss covers the assistant's reply alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import trl

from rlhf_nb.train.common import (
    RlhfNbArgs,
    TrainResult,
    history_callback,
    model_from_settings,
    prepare_model,
    run_trainer,
    script_main,
    settings_from,
)


@dataclass
class SFTConfig(RlhfNbArgs, trl.SFTConfig):
    """``trl.SFTConfig`` with rlhf-nb's defaults; the loss covers the completion only (``completion_only_loss``)."""

    output_dir: str = "runs/train/sft"
    learning_rate: float = 2e-5
    per_device_train_batch_size: int = 4
    max_length: int | None = 1024
    completion_only_loss: bool | None = True


def sft_dataset(records: Sequence[dict[str, Any]]):
    """Conversational prompt-completion rows for trl (a plain-text prompt becomes one user message)."""
    from datasets import Dataset

    rows = []
    for r in records:
        prompt = r["prompt"]
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        rows.append({"prompt": messages, "completion": [{"role": "assistant", "content": r["completion"]}]})
    return Dataset.from_list(rows)


def train_sft(loaded: Any, records: Sequence[dict[str, Any]], config: SFTConfig | None = None,
              callbacks: Sequence[Any] = ()) -> TrainResult:
    config = config or SFTConfig()
    tokenizer, model = loaded
    prepare_model(model, config)
    if not records:
        raise ValueError("train_sft needs at least one record")
    history: list[dict[str, float]] = []
    trainer = trl.SFTTrainer(model=model, args=config, train_dataset=sft_dataset(records), processing_class=tokenizer,
                             callbacks=[history_callback(history), *callbacks])
    return run_trainer(trainer, config, history)


def run_from_settings(settings: dict[str, Any]) -> TrainResult:
    from rlhf_nb.tasks.data import read_records, resolve_path

    settings = dict(settings)
    loaded = model_from_settings(settings)
    data = settings.pop("data")
    records = list(read_records(resolve_path(data["path"], "SFT records")))[: data.get("limit")]
    return train_sft(loaded, records, settings_from(SFTConfig, settings))


def main(argv: list[str] | None = None) -> None:
    script_main("Supervised fine-tuning on prompt/completion records (rlhf-nb)", run_from_settings, argv)


if __name__ == "__main__":
    main()
