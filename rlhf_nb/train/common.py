"""What every training routine shares: precision, history, resume, the script entry point.

Where trl has the method, a routine's config *is* trl's config: ``rlhf_nb.train.dpo.DPOConfig`` subclasses
``trl.DPOConfig`` (likewise ``RewardConfig``, ``SFTConfig``, ``GRPOConfig`` / ``RLOOConfig``), changing only
defaults (:class:`RlhfNbArgs`, a learning rate) and adding two fields: ``precision`` (see
:mod:`rlhf_nb.lm.device`) and ``resume``. Every trl argument works under its trl name. Each routine has a
function ``train_*(loaded_model, records, config) -> TrainResult`` and a ``main()`` so that it also runs
as a script (``python -m rlhf_nb.train.dpo --config file.yaml``), which is what ``accelerate launch`` /
``torchrun`` need for data-parallel runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


def apply_precision(args: Any) -> None:
    """Set a trl/transformers config's ``bf16`` and ``use_cpu`` from rlhf-nb's precision policy (its ``precision``
    field: ``None`` follows the process setting, see :mod:`rlhf_nb.lm.device`). Where the policy trains in bf16 (CUDA,
    an explicit ``bf16``, or ``mixed``, which ``auto`` is on a fast-bf16 CPU) the trainer autocasts the forward pass
    while the optimizer updates fp32 parameters; on other CPUs under ``auto`` training stays fp32."""
    from rlhf_nb.lm.device import resolve

    cuda = on_cuda()
    precision = resolve(getattr(args, "precision", None), "cuda" if cuda else "cpu")
    args.bf16, args.fp16, args.use_cpu = precision.train_bf16, False, not cuda


@dataclass
class RlhfNbArgs:
    """rlhf-nb's defaults on top of trl's and its two own fields, mixed in *before* a trl config
    (``class DPOConfig(RlhfNbArgs, trl.DPOConfig)``), so every trl argument keeps its name and meaning.

    Log every step, no intermediate checkpoints unless asked, no experiment trackers, seed 0, and no gradient
    checkpointing (trl turns it on by default; it recomputes activations to save memory, which small models on
    a CPU do not need: set ``gradient_checkpointing=True`` for large ones)."""

    logging_steps: float = 1
    save_strategy: str = "no"
    report_to: str | list[str] = "none"
    seed: int = 0
    gradient_checkpointing: bool = False
    precision: str | None = None  # rlhf-nb: "auto" | "bf16" | "fp32"; None follows the process (sets bf16/use_cpu)
    resume: bool = False  # rlhf-nb: continue from the newest checkpoint in output_dir, if any

    def __post_init__(self) -> None:
        apply_precision(self)
        super().__post_init__()  # type: ignore[misc]  # the trl config's


@dataclass
class TrainResult:
    """A finished routine: the trained model, its metric history (one dict per logging step) and summary."""

    model: Any
    history: list[dict[str, float]] = field(default_factory=list)
    output_dir: str = ""
    summary: dict[str, float] = field(default_factory=dict)

    def series(self, key: str) -> list[float]:
        """Values of one metric over training (rows that logged it)."""
        return [row[key] for row in self.history if key in row]


def on_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def prepare_model(model: Any, config: Any = None) -> Any:
    """Trainable parameters in fp32 (master weights for the optimizer); frozen weights keep their dtype. Also
    routes trl's per-token log-prob head through its CPU fast path (:mod:`rlhf_nb.train.cpu_head`), and under the
    ``mixed`` precision (``config.precision`` or the process setting) keeps LoRA adapter sums in fp32."""
    from rlhf_nb.lm.device import keep_adapter_sums_fp32, resolve, upcast_trainable
    from rlhf_nb.train.cpu_head import install

    upcast_trainable(model)
    install()
    if resolve(getattr(config, "precision", None), "cuda" if on_cuda() else "cpu").fp32_adapter_sums:
        keep_adapter_sums_fp32(model)
    return model


def history_callback(history: list[dict[str, float]]):
    """A TrainerCallback that appends every logged row (with its global step) to ``history``."""
    from transformers import TrainerCallback

    class _History(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                history.append({"step": state.global_step, **{k: float(v) for k, v in logs.items()
                                                               if isinstance(v, (int, float))}})

    return _History()


def resume_from(config: Any) -> bool:
    """True when ``config.resume`` is set and ``output_dir`` holds a checkpoint to continue from."""
    return bool(getattr(config, "resume", False)) and any(Path(config.output_dir).glob("checkpoint-*"))


def unwrap_autocast(model: Any) -> None:
    """Give ``model`` back its own ``forward``. Under mixed precision accelerate replaces a trained model's ``forward``
    with one that autocasts to bf16, and leaves it there after training: a trained policy was then read (sampled,
    scored) in bf16 matmuls while the frozen start it was compared with was read in fp32. The trainer itself is done
    with the model when this runs. A model with bf16 weights (the ``bf16`` precision, whose fp32 trainable parameters
    need autocast to meet its bf16 activations) keeps the wrapper: every arm of such a run is bf16 anyway."""
    import torch
    from accelerate.utils import extract_model_from_parallel

    if all(p.dtype == torch.float32 for p in model.parameters()):
        extract_model_from_parallel(model, keep_fp32_wrapper=False)


def run_trainer(trainer: Any, config: Any, history: list[dict[str, float]]) -> TrainResult:
    """Train (resuming if asked and possible) and save the final model to ``output_dir``.

    Progress shows as transformers shows it (a table of losses in a notebook, a bar in a terminal), never as
    the raw dicts of strings its ``PrinterCallback`` prints when bars are off: the history keeps every row.
    """
    from transformers.trainer_callback import PrinterCallback

    from rlhf_nb.lm.device import freed_memory_kept

    trainer.remove_callback(PrinterCallback)
    with freed_memory_kept():  # similar tensor sizes batch after batch: reuse freed memory (1.3-1.4x on 02's RFT, CPU)
        output = trainer.train(resume_from_checkpoint=True if resume_from(config) else None)
    trainer.save_model(config.output_dir)
    unwrap_autocast(trainer.model)
    summary = {k: float(v) for k, v in output.metrics.items() if isinstance(v, (int, float))}
    return TrainResult(trainer.model, history, config.output_dir, summary)


def settings_from(cls: type, values: dict[str, Any]):
    """Build a config dataclass from a mapping, rejecting unknown keys with their names."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown setting(s) {unknown}; known: {sorted(names)}")
    return cls(**values)


def script_main(description: str, run: Callable[[dict[str, Any]], TrainResult], argv: list[str] | None = None) -> None:
    """``--config file.yaml`` [``--set key=value``...] -> ``run(settings)``; used by each routine's ``main``."""
    from rlhf_nb.core.overrides import parse_override

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", required=True, type=Path, help="YAML with model, data and training settings")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting")
    args = parser.parse_args(argv)
    settings = yaml.safe_load(args.config.read_text()) or {}
    for item in args.set:
        key, value = parse_override(item)
        settings[key] = value
    result = run(settings)
    if int(os.environ.get("RANK", "0")) == 0:
        last = dict(result.history[-1]) if result.history else {}
        print(yaml.safe_dump({"output_dir": result.output_dir, "summary": dict(result.summary), "last_log": last}))


def pairs_from_spec(spec: dict[str, Any]):
    """Preference pairs named in a script config: ``{kind: hh_rlhf, source, subset, split, limit}`` or
    ``{kind: jsonl, path, limit}`` (rows with string ``prompt``, ``chosen``, ``rejected``)."""
    from rlhf_nb.tasks.data import PreferencePair, load_hh_rlhf, read_records, resolve_path

    spec = dict(spec)
    kind = spec.pop("kind", "jsonl")
    if kind == "hh_rlhf":
        return load_hh_rlhf(**spec)
    if kind == "jsonl":
        rows = list(read_records(resolve_path(spec["path"], "preference pairs")))[: spec.get("limit")]
        return [PreferencePair(str(i), [{"role": "user", "content": r["prompt"]}], r["chosen"], r["rejected"], "jsonl")
                for i, r in enumerate(rows)]
    raise ValueError(f"unknown data kind {kind!r} (hh_rlhf or jsonl)")


def model_from_settings(settings: dict[str, Any], head: str = "causal-lm"):
    """Pop ``model``/``lora``/``load_in_4bit`` from script settings and load the model on this process's device."""
    from rlhf_nb.lm.models import load

    device = None
    if "LOCAL_RANK" in os.environ and on_cuda():
        device = f"cuda:{os.environ['LOCAL_RANK']}"
    return load(settings.pop("model"), lora=settings.pop("lora", None), load_in_4bit=settings.pop("load_in_4bit", False),
                head=head, device=device)


def prompts_from_spec(spec: dict[str, Any]) -> tuple[list[Any], list[dict[str, Any]]]:
    """Prompts and per-prompt ``meta`` for online routines' scripts:

    ``{kind: gsm8k, source, limit}`` (meta: answer), ``{kind: humaneval, limit}`` (meta: task),
    ``{kind: prompt_set, name: alpacaeval|ifeval|arena-hard|mt-bench, limit}`` (meta: reference),
    ``{kind: jsonl, path, limit}`` (rows with ``prompt``; other fields become meta).
    """
    from rlhf_nb.tasks.data import load_gsm8k, load_humaneval, load_prompts, read_records, resolve_path

    spec = dict(spec)
    kind, limit = spec.pop("kind", "jsonl"), spec.pop("limit", None)
    if kind == "gsm8k":
        tasks = load_gsm8k(spec.get("source", "package"), limit=limit)
        return [t.question for t in tasks], [{"domain": "math", "answer": t.answer} for t in tasks]
    if kind == "humaneval":
        tasks = load_humaneval(spec.get("source", "package"), limit=limit)
        return [t.prompt for t in tasks], [{"domain": "code", "task": t} for t in tasks]
    if kind == "prompt_set":
        prompts = load_prompts(spec["name"], limit=limit)
        return [p.text for p in prompts], [{"domain": p.domain, "reference": p.reference} for p in prompts]
    if kind == "jsonl":
        rows = list(read_records(resolve_path(spec["path"], "prompts")))[:limit]
        return [r["prompt"] for r in rows], [{k: v for k, v in r.items() if k != "prompt"} for r in rows]
    raise ValueError(f"unknown prompts kind {kind!r} (gsm8k, humaneval, prompt_set or jsonl)")


def reward_from_settings(ref: str):
    """A reward callable named ``"package.module:function"`` in a script config."""
    from rlhf_nb.core.refs import import_ref

    if ":" not in ref:
        raise ValueError(f"reward {ref!r} must be 'package.module:function', e.g. 'rlhf_nb.rewards.math:math_reward'")
    return import_ref(ref)
