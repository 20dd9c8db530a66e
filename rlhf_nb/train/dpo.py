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
    in-memory data set trl caches them in a file other ranks cannot see, so data-parallel runs turn it off). Within
    a process the cache is shared by every run on the same pairs from the same reference: seeds of one arm compute
    them once (:func:`reference_fingerprint`).
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


def reference_fingerprint(model: Any) -> str:
    """What a peft model's DPO reference log-probs depend on, as a hash: its frozen weights and configuration, the
    reference adapter (trl's ``"ref"`` copy of the adapter at the start, or none) with its scaling, and whether its LoRA
    sums are kept in fp32 (:func:`rlhf_nb.lm.device.keep_adapter_sums_fp32`), leaving out the adapter being trained.

    trl keys its cache of precomputed reference log-probs on a hash of the whole model, adapters included, so two
    seeds of one arm (whose fresh adapters differ in their random A and share B = 0) miss each other's cache, though
    their references compute the same numbers: a plain LoRA layer whose B is zero adds exactly zero. So a reference
    adapter's layer enters the hash only where its B is not all zero (any other tensor of it, a DoRA magnitude say,
    always does); a fresh plain adapter's reference is the frozen model's."""
    import hashlib

    import torch

    state = model.state_dict()
    digest = hashlib.sha256(model.config.to_json_string().encode())
    referenced = False
    for name in sorted(state):
        parts = name.split(".")
        if any(p.startswith("lora_") for p in parts) and "ref" not in parts:
            continue  # the trained adapter (and any other that is not the reference)
        if "ref" in parts and "lora_A" in parts and not state[name.replace("lora_A", "lora_B")].any():
            continue
        if "ref" in parts and "lora_B" in parts and not state[name].any():
            continue
        referenced = referenced or "ref" in parts
        tensor = state[name].detach().cpu().reshape(-1)
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    layers = [m for m in model.modules() if hasattr(m, "lora_A") and hasattr(m, "scaling")]
    if referenced:  # the reference adapter's scaling (alpha, rsLoRA, patterns) and configuration
        digest.update(repr([m.scaling.get("ref") for m in layers]).encode())
        digest.update(repr(sorted(model.peft_config["ref"].to_dict().items())).encode())
    digest.update(repr(sum(bool(getattr(m, "_rlhf_nb_fp32_sum", False)) for m in layers)).encode())
    return digest.hexdigest()


#: reference log-probs computed in this process: (data and how it is batched, reference) -> (chosen, rejected), newest
#: last
_REFERENCE_LOGPS: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
_REFERENCE_KEEP = 8


class _Trainer(trl.DPOTrainer):
    """trl's DPOTrainer whose precomputed reference log-probs are kept for the process, keyed on the tokenized data
    and :func:`reference_fingerprint`, for a peft model trained without a separate reference model: the seeds of an
    arm compute them once. (trl's own cache cannot serve them: it keys on the whole model, adapters included, and an
    in-memory data set's cache file gets a random name.) The key also holds what shapes the reference pass (batch
    size, truncation, precision, attention): the values reused are the very numbers the first run computed, over the
    same batches in the same order."""

    def _precompute_ref_logps(self, dataset: Any, name: str, batch_size: int) -> Any:
        import torch
        from accelerate.utils import is_peft_model

        if (self.ref_model is not None or not is_peft_model(self.model) or int(os.environ.get("WORLD_SIZE", "1")) > 1
                or self.model.device.type != "cpu"):  # (elsewhere hashing the weights would copy them to the host)
            return super()._precompute_ref_logps(dataset, name, batch_size)
        with torch.random.fork_rng(devices=[]):  # computed or reused, the pass leaves the random state as it found it
            return self._shared_ref_logps(dataset, name, batch_size)

    def _shared_ref_logps(self, dataset: Any, name: str, batch_size: int) -> Any:
        import hashlib
        import pickle

        columns = [c for c in ("prompt_ids", "chosen_ids", "rejected_ids") if c in dataset.column_names]
        data = dataset.select_columns(columns or dataset.column_names).to_dict()  # what the collator reads
        args = self.args
        how = (batch_size, args.max_length, args.truncation_mode, args.pad_to_multiple_of, args.ld_alpha, args.bf16,
               args.fp16, getattr(args, "precision", None), self.model.config._attn_implementation)
        key = (hashlib.sha256(pickle.dumps((data, how), protocol=4)).hexdigest(),
               reference_fingerprint(self.accelerator.unwrap_model(self.model)))
        if key in _REFERENCE_LOGPS:
            chosen, rejected = _REFERENCE_LOGPS[key]
            return dataset.add_column("ref_chosen_logps", chosen).add_column("ref_rejected_logps", rejected)
        out = super()._precompute_ref_logps(dataset, name, batch_size)
        _REFERENCE_LOGPS[key] = (list(out["ref_chosen_logps"]), list(out["ref_rejected_logps"]))
        while len(_REFERENCE_LOGPS) > _REFERENCE_KEEP:
            del _REFERENCE_LOGPS[next(iter(_REFERENCE_LOGPS))]
        return out


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
    trainer = _Trainer(
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
