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

from rlhf_nb.core.text import did_you_mean
from rlhf_nb.lm.models import classify


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
#: a system line before every verifiable-instruction request of the gold testbed (rlhf_nb.tasks.gold.IFPrompt.system)
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
        "auto", description="rlhf_nb.lm.device: auto = bf16 where the hardware is fast at it (on CPU only for models that "
                            "do not train), else fp32; bf16/fp32 apply to everything; mixed = auto, but trl trainers "
                            "autocast to bf16 on fp32 weights with fp32 LoRA sums")


class HeadSection(Section):
    """A linear reward head on a frozen backbone's features (rlhf_nb.train.reward: Featurizer, LinearBT and
    LinearPairwise): one section for every paper's reward heads."""

    l2: PosFloat = Field(1.0, description="L2 strength of the linear head (larger: smoother, closer to chance)")
    pooling: Literal["last", "last+mean"] = Field(
        "last+mean", description="features per conversation: the last token's final hidden state, or it beside the "
                                 "mean over the reply's tokens")
    max_length: PosInt = Field(256, description="tokens per conversation read by the backbone (longer ones are cut)")

    def featurizer(self, loaded: Any, batch_size: int = 16):
        from rlhf_nb.train.reward import Featurizer

        return Featurizer(loaded.model, loaded.tokenizer, batch_size=batch_size, max_length=self.max_length,
                          pooling=self.pooling)


class LoraSection(Section):
    """peft LoRA adapters on every linear layer (rlhf_nb.lm.models.load(lora=...))."""

    r: PosInt = Field(16, description="rank of the LoRA update")
    alpha: PosInt | None = Field(None, description="LoRA scaling alpha (update scale alpha / r); None: 2 r")
    dropout: Fraction = Field(0.0, description="dropout on the LoRA branch")

    def spec(self) -> dict[str, Any]:
        return {"r": self.r, "alpha": self.alpha or 2 * self.r, "dropout": self.dropout}


class SamplingSection(Section):
    """How replies are drawn (see rlhf_nb.lm.generation.SamplingConfig)."""

    n: PosInt = Field(1, description="replies sampled per prompt")
    temperature: Annotated[float, Field(ge=0)] = Field(0.0, description="sampling temperature; 0: greedy")
    top_p: Probability = Field(1.0, description="nucleus sampling: keep the smallest set of tokens with this much "
                                                "probability; 1: all")
    max_new_tokens: PosInt = Field(128, description="token cap of a reply (a reply that reaches it is cut off)")
    batch_size: PosInt | None = Field(None, description="sequences decoded together; None: the machine's knee (on "
                                                        "CPU 128 for models under 1B parameters, else 32; 64 on CUDA)")

    def config(self, seed: int = 0, n: int | None = None, stop: tuple[str, ...] = ()):
        from rlhf_nb.lm.generation import SamplingConfig

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
    weight_decay: Annotated[float, Field(ge=0)] | None = None
    warmup_steps: Annotated[float, Field(ge=0)] | None = None  # transformers 5: a float in [0, 1) is a ratio
    lr_scheduler_type: str | None = None
    gradient_checkpointing: bool | None = None
    report_to: str | list[str] | None = Field(
        None, description="experiment tracking, passed through to trl: e.g. 'trackio' (a local dashboard that opens in "
                          "JupyterLab; pip install trackio), 'tensorboard', 'wandb'; None: rlhf-nb's default 'none'")
    extra: dict[str, Any] = {}  # any other argument of the trl config, under trl's name

    def overrides(self) -> dict[str, Any]:
        values = {k: v for k, v in self.model_dump(exclude={"extra"}).items() if v is not None}
        return {**values, **self.extra}

    def build(self, output_dir: str, seed: int = 0, **fixed: Any):
        """The routine's config (a trl config subclass) with these overrides, ``seed`` and ``output_dir``."""
        from rlhf_nb.core.refs import import_ref

        cls = import_ref(self.routine)
        return cls(output_dir=output_dir, seed=seed, data_seed=seed, **{**self.overrides(), **fixed})


class DPOSection(_TrlSection):
    routine: ClassVar[str] = "rlhf_nb.train.dpo:DPOConfig"
    max_length: PosInt | None = None
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
    max_length: PosInt | None = None


class SFTSection(_TrlSection):
    routine: ClassVar[str] = "rlhf_nb.train.sft:SFTConfig"
    max_length: PosInt | None = None


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
        from rlhf_nb.train.ppo import PPOConfig

        values = {k: v for k, v in self.model_dump().items() if v is not None}
        return PPOConfig(seed=seed, progress=False, **{**values, **fixed})


def check_trl_extras(params: BaseModel) -> list[str]:
    """Problems with ``extra`` arguments of trl sections (unknown names), found by importing the config classes.

    Run before a notebook starts (it imports trl: a few seconds, no model), so a typo fails before any work.
    """
    import dataclasses

    from rlhf_nb.core.refs import import_ref

    problems = []
    for path, section in _sections(params):
        if isinstance(section, _TrlSection) and section.extra:
            names = {f.name for f in dataclasses.fields(import_ref(section.routine))}
            for key in section.extra:
                if key not in names:
                    hint = did_you_mean(key, names)
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


def routine_field(section: BaseModel, name: str) -> tuple[Any, str]:
    """(default, meaning) of a routine section's field from the config class it wraps: rlhf-nb's default (the
    routine's, which wins over trl's where it restates one) and trl's own help text (or, for rlhf-nb's PPO, its
    field's). Imports the routine (trl: a few seconds)."""
    import dataclasses

    from rlhf_nb.core.refs import import_ref

    routine = import_ref(section.routine if isinstance(section, _TrlSection) else "rlhf_nb.train.ppo:PPOConfig")
    found = {f.name: f for f in dataclasses.fields(routine)}.get(name)
    if found is None:
        return None, ""
    default = found.default if found.default is not dataclasses.MISSING else (
        found.default_factory() if found.default_factory is not dataclasses.MISSING else None)
    helps = (getattr(c, "__dataclass_fields__", {}).get(name) for c in routine.__mro__)  # rlhf-nb's override of a
    text = next((f.metadata["help"] for f in helps if f is not None and f.metadata.get("help")), "")  # trl field
    return default, " ".join(str(text).split())


def describe(params: BaseModel, prefix: str = "") -> list[dict[str, Any]]:
    """Rows (key, value, meaning) for a params table: nested sections flattened to dotted keys. A routine section's
    field reads its meaning from the routine's config class (trl's help text) and, left at ``None``, shows the
    routine's default as its value."""
    rows = []
    routine = isinstance(params, (_TrlSection, PPOSection))
    for name, info in type(params).model_fields.items():
        value = getattr(params, name)
        key = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            rows += describe(value, f"{key}.")
            continue
        meaning = info.description or ""
        if routine and name == "extra":
            target = params.routine if isinstance(params, _TrlSection) else "rlhf_nb.train.ppo:PPOConfig"
            meaning = meaning or f"any other argument of {target}, under its own name"
        elif routine:
            default, help_text = routine_field(params, name)
            meaning = meaning or help_text
            if value is None:
                value = f"{default} (routine default)"
        rows.append({"key": key, "value": value, "meaning": meaning})
    return rows
