"""DPO with trl's ``DPOTrainer``: LoRA or QLoRA, no second copy of the model for the reference.

With a peft model, trl computes reference log-probabilities with a frozen copy of the LoRA adapter as
it was when training started (a few MB); for a freshly initialised adapter that is exactly the base
network with the adapter switched off. ``reference_adapter`` pins that copy to other weights, e.g. the
initial adapter across the rounds of online iterative DPO. Any loss trl offers can be chosen (``sigmoid``,
``ipo``, ``hinge``, ``robust``, ...). Besides trl's logs (chosen/rejected rewards, margins,
accuracies) each row records ``kl/chosen``: the mean log-ratio log pi/pi_ref of the chosen responses,
an estimate of the policy's drift from the reference on the data.

    result = train_dpo(models.load("smollm2-135m-instruct", lora={"r": 16}), pairs, DPOConfig(beta=0.1))

As a script (data-parallel under ``accelerate launch`` / ``torchrun``)::

    python -m rlhf_nb.train.dpo --config dpo.yaml --set max_steps=10
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..data import PreferencePair
from .common import (TrainConfig, TrainResult, history_callback, prepare_model, model_from_settings, pairs_from_spec, run_trainer,
                     script_main, settings_from, trainer_kwargs)


@dataclass
class DPOConfig(TrainConfig):
    learning_rate: float = 5e-6
    beta: float = 0.1
    loss_type: str = "sigmoid"  # or "ipo", "hinge", "robust", ... (several: "sigmoid,sft")
    label_smoothing: float = 0.0
    # reference log-probs once per data set, before training (trl's precompute_ref_log_probs): the reference is
    # fixed, so over several epochs this saves a forward pass per step. Single-process runs only: trl caches
    # them in an arrow file that another rank cannot see for an in-memory data set
    precompute_ref: bool = True


def preference_dataset(pairs: Sequence[PreferencePair]):
    """trl's conversational preference format as a ``datasets.Dataset``."""
    from datasets import Dataset

    return Dataset.from_list([p.to_trl() for p in pairs])


def train_dpo(loaded: Any, pairs: Sequence[PreferencePair], config: DPOConfig = DPOConfig(),
              eval_pairs: Sequence[PreferencePair] | None = None, callbacks: Sequence[Any] = (),
              reference_adapter: dict[str, Any] | None = None) -> TrainResult:
    """Train ``loaded`` (from :func:`rlhf_nb.models.load`, ideally with ``lora=``) on preference pairs.

    ``reference_adapter``: LoRA weights (``peft.get_peft_model_state_dict``) for the reference policy;
    by default trl copies the adapter as it is now.
    """
    import trl

    tokenizer, model = loaded
    prepare_model(model)
    if not pairs:
        raise ValueError("train_dpo needs at least one preference pair")
    if hasattr(model, "peft_config") and "ref" in model.peft_config:  # left by an earlier round
        model.delete_adapter("ref")
        model.set_adapter("default")
    history: list[dict[str, float]] = []
    current = None
    if reference_adapter is not None:  # trl copies the adapter as it is at construction into "ref" (and precomputes
        from peft import get_peft_model_state_dict, set_peft_model_state_dict  # reference log-probs there):

        current = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}
        set_peft_model_state_dict(model, reference_adapter)  # so it must hold the reference weights then
    args = trl.DPOConfig(
        **trainer_kwargs(config), beta=config.beta, loss_type=config.loss_type.split(","),
        label_smoothing=config.label_smoothing, max_length=config.max_length,
        precompute_ref_log_probs=config.precompute_ref and int(os.environ.get("WORLD_SIZE", "1")) == 1,
    )
    trainer = trl.DPOTrainer(
        model=model, args=args, train_dataset=preference_dataset(pairs),
        eval_dataset=preference_dataset(eval_pairs) if eval_pairs else None, processing_class=tokenizer,
        callbacks=[history_callback(history), *callbacks],
    )
    if current is not None:  # back to the weights being trained
        set_peft_model_state_dict(model, current)
    result = run_trainer(trainer, config, history)
    for row in result.history:
        if "rewards/chosen" in row:
            row["kl/chosen"] = row["rewards/chosen"] / config.beta
    return result


def run_from_settings(settings: dict[str, Any]) -> TrainResult:
    settings = dict(settings)
    loaded = model_from_settings(settings)
    pairs = pairs_from_spec(settings.pop("data"))
    return train_dpo(loaded, pairs, settings_from(DPOConfig, settings))


def main(argv: list[str] | None = None) -> None:
    script_main("DPO on preference pairs (rlhf-nb)", run_from_settings, argv)


if __name__ == "__main__":
    main()
