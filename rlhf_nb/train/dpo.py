"""DPO with trl's ``DPOTrainer``: LoRA or QLoRA, no second copy of the model for the reference.

With a peft model, trl computes reference log-probabilities with a frozen copy of the LoRA adapter as
it was when training started (a few MB); for a freshly initialised adapter that is exactly the base
network with the adapter switched off. ``reference_adapter`` pins that copy to other weights, e.g. the
initial adapter across the rounds of online iterative DPO. Any loss trl offers can be chosen (``sigmoid``,
``ipo``, ``hinge``, ``robust``, ...). Besides trl's logs (chosen/rejected rewards, margins,
accuracies) each row records ``kl/chosen``: the mean log-ratio log pi/pi_ref of the chosen responses,
an estimate of the policy's drift from the reference on the data.

    result = train_dpo(models.load("smollm2-135m-instruct", lora={"r": 16}), pairs, DPOConfig(beta=0.1, num_train_epochs=2))

As a script (data-parallel under ``accelerate launch`` / ``torchrun``)::

    python -m rlhf_nb.train.dpo --config dpo.yaml --set max_steps=10
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import trl

from rlhf_nb.tasks.data import PreferencePair
from rlhf_nb.train.common import (
    RlhfNbArgs,
    TrainResult,
    history_callback,
    model_from_settings,
    pairs_from_spec,
    prepare_model,
    run_trainer,
    script_main,
    settings_from,
)


@dataclass
class DPOConfig(RlhfNbArgs, trl.DPOConfig):
    """``trl.DPOConfig`` with rlhf-nb's defaults; any trl argument works (``beta``, ``loss_type`` - several as
    ``["sigmoid", "sft"]`` -, ``num_train_epochs``, ``per_device_train_batch_size``, ...).

    Reference log-probs are computed once per data set before training (``precompute_ref_log_probs``): the
    reference is fixed, so over several epochs this saves a forward pass per step (single-process runs: for an
    in-memory data set trl caches them in a file other ranks cannot see, so data-parallel runs turn it off).
    """

    output_dir: str = "runs/train/dpo"
    learning_rate: float = 5e-6
    per_device_train_batch_size: int = 4
    max_length: int | None = 1024
    precompute_ref_log_probs: bool = True


def preference_dataset(pairs: Sequence[PreferencePair]):
    """trl's conversational preference format as a ``datasets.Dataset``."""
    from datasets import Dataset

    return Dataset.from_list([p.to_trl() for p in pairs])


def train_dpo(loaded: Any, pairs: Sequence[PreferencePair], config: DPOConfig | None = None,
              eval_pairs: Sequence[PreferencePair] | None = None, callbacks: Sequence[Any] = (),
              reference_adapter: dict[str, Any] | None = None) -> TrainResult:
    """Train ``loaded`` (from :func:`rlhf_nb.lm.models.load`, ideally with ``lora=``) on preference pairs.

    ``reference_adapter``: LoRA weights (``peft.get_peft_model_state_dict``) for the reference policy;
    by default trl copies the adapter as it is now.
    """
    config = config or DPOConfig()
    tokenizer, model = loaded
    prepare_model(model, config)
    if not pairs:
        raise ValueError("train_dpo needs at least one preference pair")
    if hasattr(model, "peft_config") and "ref" in model.peft_config:  # left by an earlier round
        model.delete_adapter("ref")
        model.set_adapter("default")
    _check_lengths(tokenizer, pairs, config.max_length)
    history: list[dict[str, float]] = []
    current = None
    if reference_adapter is not None:  # trl copies the adapter as it is at construction into "ref" (and precomputes
        from peft import get_peft_model_state_dict, set_peft_model_state_dict  # reference log-probs there):

        current = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}
        set_peft_model_state_dict(model, reference_adapter)  # so it must hold the reference weights then
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and config.precompute_ref_log_probs:
        config = replace(config, precompute_ref_log_probs=False)
    trainer = trl.DPOTrainer(
        model=model, args=config, train_dataset=preference_dataset(pairs),
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


def _check_lengths(tokenizer: Any, pairs: Sequence[PreferencePair], max_length: int | None) -> None:
    """trl cuts sequences at ``max_length`` from the end and silently drops a pair whose reply is cut away
    entirely; say how many pairs are cut, and refuse before training when nothing would be left."""
    import warnings

    if not max_length:
        return
    cut, empty = 0, 0
    for p in pairs:
        prompt = len(tokenizer(p.prompt, add_special_tokens=False)["input_ids"] if isinstance(p.prompt, str)
                     else tokenizer.apply_chat_template(p.prompt, add_generation_prompt=True, tokenize=True))
        longest = max(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in (p.chosen, p.rejected))
        cut += prompt + longest > max_length
        empty += prompt >= max_length
    if empty == len(pairs):
        raise ValueError(f"every one of the {len(pairs)} DPO pairs has a prompt of at least max_length={max_length} "
                         "tokens, so nothing of the replies would be trained on: raise max_length")
    if cut:
        warnings.warn(f"{cut} of {len(pairs)} DPO pairs exceed max_length={max_length} tokens and are truncated"
                      + (f" ({empty} lose their replies entirely and are dropped)" if empty else ""), stacklevel=3)


def run_from_settings(settings: dict[str, Any]) -> TrainResult:
    settings = dict(settings)
    loaded = model_from_settings(settings)
    pairs = pairs_from_spec(settings.pop("data"))
    return train_dpo(loaded, pairs, settings_from(DPOConfig, settings))


def main(argv: list[str] | None = None) -> None:
    script_main("DPO on preference pairs (rlhf-nb)", run_from_settings, argv)


if __name__ == "__main__":
    main()
