"""Building blocks of every notebook's parameters: field types, the base model, and nested sections.

A paper's ``params.py`` declares one pydantic model (``Params``) from these pieces; ``params/NN_name.yaml``
holds only the overrides of its defaults, per profile. Validation is strict (unknown keys and wrong types
are errors) and fast: nothing here imports torch, transformers or trl.

Sections for routines that trl implements (:class:`DPOSection`, :class:`RewardSection`, :class:`SFTSection`)
use trl's own argument names; a field left at ``None`` takes the routine's default (defined once, in
``rlhf_nb.train``), and ``extra`` passes any other trl argument through (checked against trl's config class
before a run starts, see :func:`check_trl_extras`).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from .models import classify


def _model_name(value: str) -> str:
    classify(value)  # raises ModelError (a ValueError) with the list of aliases
    return value


def _data_source(value: str) -> str:
    if not value.strip():
        raise ValueError("must be 'package', 'hub', 'bundled' or a file path")
    return value


ModelName = Annotated[str, AfterValidator(_model_name), Field(json_schema_extra={"kind": "model"})]
DataSource = Annotated[str, AfterValidator(_data_source), Field(json_schema_extra={"kind": "data"})]
OptionalData = Annotated[DataSource | None, Field(json_schema_extra={"kind": "data"})]
# a union or a list hides its members' mark from the field: these carry it at the field level (preflight reads it)
OptionalModel = Annotated[ModelName | None, Field(json_schema_extra={"kind": "model"})]
ModelList = Annotated[list[ModelName], Field(json_schema_extra={"kind": "model"})]
PosInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0)]
Probability = Annotated[float, Field(gt=0, le=1)]
Fraction = Annotated[float, Field(ge=0, le=1)]
#: a system line before every verifiable-instruction request of the gold testbed (rlhf_nb.gold.IFPrompt.system)
SystemLine = Annotated[str, Field(description="a system line the policy reads before every verifiable-instruction "
                                              "request (sampling, training and reward models alike); '' keeps the "
                                              "model's default")]


class Section(BaseModel):
    """A strict, frozen group of parameters."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class BaseParams(Section):
    """Parameters every notebook has."""

    seed: int = Field(0, description="base random seed (data splits, sampling, training)")
    seeds: PosInt = Field(1, description="independent trainings per trained arm; intervals resample them")
    precision: Literal["auto", "bf16", "mixed", "fp32"] = Field(
        "auto", description="rlhf_nb.device: auto = bf16 where the hardware is fast at it (on CPU only for models that "
                            "do not train), else fp32; bf16/fp32 apply to everything; mixed = auto, but trl trainers "
                            "autocast to bf16 on fp32 weights with fp32 LoRA sums")


class LoraSection(Section):
    r: PosInt = 16
    alpha: PosInt | None = None  # None: 2 r
    dropout: Fraction = 0.0

    def spec(self) -> dict[str, Any]:
        return {"r": self.r, "alpha": self.alpha or 2 * self.r, "dropout": self.dropout}


class SamplingSection(Section):
    """How replies are drawn (see rlhf_nb.generation.SamplingConfig)."""

    n: PosInt = 1
    temperature: Annotated[float, Field(ge=0)] = 0.0
    top_p: Probability = 1.0
    max_new_tokens: PosInt = 128
    batch_size: PosInt | None = None  # None: the machine's knee (32 on CPU, 64 on CUDA)

    def config(self, seed: int = 0, n: int | None = None, stop: tuple[str, ...] = ()):
        from .generation import SamplingConfig

        return SamplingConfig(n=n or self.n, temperature=self.temperature, top_p=self.top_p,
                              max_new_tokens=self.max_new_tokens, batch_size=self.batch_size, seed=seed, stop=stop)


class _TrlSection(Section):
    """Overrides of a trl config; ``None`` keeps the routine's default."""

    routine: ClassVar[str] = ""  # "module:Class" of the rlhf-nb config (a trl config subclass)
    learning_rate: PosFloat | None = None
    num_train_epochs: PosFloat | None = None
    max_steps: int | None = None
    per_device_train_batch_size: PosInt | None = None
    gradient_accumulation_steps: PosInt | None = None
    max_length: PosInt | None = None
    weight_decay: Annotated[float, Field(ge=0)] | None = None
    warmup_ratio: Fraction | None = None
    lr_scheduler_type: str | None = None
    gradient_checkpointing: bool | None = None
    extra: dict[str, Any] = {}  # any other argument of the trl config, under trl's name

    def overrides(self) -> dict[str, Any]:
        values = {k: v for k, v in self.model_dump(exclude={"extra"}).items() if v is not None}
        return {**values, **self.extra}

    def build(self, output_dir: str, seed: int = 0, **fixed: Any):
        """The routine's config (a trl config subclass) with these overrides, ``seed`` and ``output_dir``."""
        from .experiment import import_ref

        cls = import_ref(self.routine)
        return cls(output_dir=output_dir, seed=seed, data_seed=seed, **{**self.overrides(), **fixed})


class DPOSection(_TrlSection):
    routine: ClassVar[str] = "rlhf_nb.train.dpo:DPOConfig"
    beta: PosFloat | None = None
    loss_type: str | list[str] | None = None


class GRPOSection(_TrlSection):
    routine: ClassVar[str] = "rlhf_nb.train.grpo:GRPOConfig"
    num_generations: PosInt | None = None
    max_completion_length: PosInt | None = None
    temperature: PosFloat | None = None
    beta: Annotated[float, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _whole_groups(self) -> GRPOSection:
        batch, group = self.per_device_train_batch_size or 4, self.num_generations or 4  # rlhf-nb's defaults
        if batch % group:
            raise ValueError(f"per_device_train_batch_size = {batch} must be a multiple of num_generations = {group} "
                             "(whole groups of completions per prompt)")
        return self


class RewardSection(_TrlSection):
    routine: ClassVar[str] = "rlhf_nb.train.reward:RewardConfig"


class SFTSection(_TrlSection):
    routine: ClassVar[str] = "rlhf_nb.train.sft:SFTConfig"


class PPOSection(Section):
    """Overrides of ``rlhf_nb.train.ppo.PPOConfig`` (rlhf-nb's own PPO: trl dropped its PPOTrainer)."""

    steps: PosInt | None = None
    batch_size: PosInt | None = None
    minibatch_size: PosInt | None = None
    ppo_epochs: PosInt | None = None
    max_new_tokens: PosInt | None = None
    temperature: PosFloat | None = None
    learning_rate: PosFloat | None = None
    kl_coef: Annotated[float, Field(ge=0)] | None = None
    adaptive_kl: bool | None = None

    def build(self, seed: int = 0, **fixed: Any):
        from .train.ppo import PPOConfig

        values = {k: v for k, v in self.model_dump().items() if v is not None}
        return PPOConfig(seed=seed, progress=False, **{**values, **fixed})


def check_trl_extras(params: BaseModel) -> list[str]:
    """Problems with ``extra`` arguments of trl sections (unknown names), found by importing the config classes.

    Run before a notebook starts (it imports trl: a few seconds, no model), so a typo fails before any work.
    """
    import dataclasses

    from .experiment import import_ref

    problems = []
    for path, section in _sections(params):
        if isinstance(section, _TrlSection) and section.extra:
            names = {f.name for f in dataclasses.fields(import_ref(section.routine))}
            for key in section.extra:
                if key not in names:
                    import difflib

                    close = difflib.get_close_matches(key, sorted(names), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    problems.append(f"parameter '{path}.extra.{key}': not an argument of {section.routine}{hint}")
    return problems


def _sections(model: BaseModel, prefix: str = ""):
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield f"{prefix}{name}", value
            yield from _sections(value, f"{prefix}{name}.")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield f"{prefix}{name}[{i}]", item
                    yield from _sections(item, f"{prefix}{name}[{i}].")


def fields_of_kind(params: BaseModel, kind: str, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) of every field marked ``kind`` ("data" or "model"), in nested sections and lists too."""
    out = []
    for name, info in type(params).model_fields.items():
        value = getattr(params, name)
        key = f"{prefix}{name}"
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if extra.get("kind") == kind:
            out.extend((key, v) for v in (value if isinstance(value, list) else [value]) if v is not None)
        elif isinstance(value, BaseModel):
            out += fields_of_kind(value, kind, f"{key}.")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    out += fields_of_kind(item, kind, f"{key}[{i}].")
    return out


def data_fields(params: BaseModel) -> list[tuple[str, str]]:
    return fields_of_kind(params, "data")


def model_fields(params: BaseModel) -> list[tuple[str, str]]:
    return fields_of_kind(params, "model")


def describe(params: BaseModel, prefix: str = "") -> list[dict[str, Any]]:
    """Rows (key, value, meaning) for a params table: nested sections flattened to dotted keys."""
    rows = []
    for name, info in type(params).model_fields.items():
        value = getattr(params, name)
        key = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            rows += describe(value, f"{key}.")
            continue
        shown = "(routine default)" if value is None and isinstance(params, (_TrlSection, PPOSection)) else value
        rows.append({"key": key, "value": shown, "meaning": info.description or ""})
    return rows
