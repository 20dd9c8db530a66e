"""Parameter schemas, one per notebook (pydantic, strict: unknown keys and wrong types are errors).

Kept free of heavy imports so that validating a params file takes well under a second.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from .models import classify


def _model_name(value: str) -> str:
    classify(value)  # raises ModelError (a ValueError) with the list of aliases
    return value


def _data_source(value: str) -> str:
    if not value.strip():
        raise ValueError("must be 'package', 'hub' or a file path")
    return value


ModelName = Annotated[str, AfterValidator(_model_name), Field(json_schema_extra={"kind": "model"})]
DataSource = Annotated[str, AfterValidator(_data_source), Field(json_schema_extra={"kind": "data"})]
OptionalData = Annotated[DataSource | None, Field(json_schema_extra={"kind": "data"})]
ModelList = Annotated[list[ModelName], Field(min_length=1, json_schema_extra={"kind": "model"})]
PosInt = Annotated[int, Field(gt=0)]
Probability = Annotated[float, Field(gt=0, le=1)]


class BaseParams(BaseModel):
    """Parameters every notebook has."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    seed: int = 0
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # see rlhf_nb.device: bf16 where the hardware is fast at it


class QuickstartParams(BaseParams):
    """00_quickstart: load a model, chat, sample code for a few HumanEval tasks, score it in the sandbox."""

    model: ModelName
    load_in_4bit: bool = False
    chat_prompt: str = "In one sentence, what is reinforcement learning from human feedback?"
    humaneval: DataSource = "package"
    task_ids: Annotated[list[str], Field(min_length=1)] = ["HumanEval/0", "HumanEval/23", "HumanEval/53"]
    n_samples: PosInt = 4
    temperature: Annotated[float, Field(ge=0)] = 0.8
    top_p: Probability = 0.95
    max_new_tokens: PosInt = 256
    batch_size: PosInt = 8
    timeout_s: Annotated[float, Field(gt=0)] = 5.0


class HHParams(BaseParams):
    """01_hh_preference_models: helpful / harmless / mixed PMs cross-evaluated, RLHF vs raw, reward vs sqrt(KL)."""

    policy: ModelName  # the raw model that RLHF starts from (and whose own answers build helpful-proxy pairs)
    pm_base: ModelName  # backbone of the preference models
    pm_sizes: list[ModelName] = []  # extra backbones for "PM accuracy vs model size" (mixed data)
    pm_mode: Literal["linear", "finetune"] = "linear"  # BT head on frozen features, or fine-tuned BT RM
    judge: ModelName
    load_in_4bit: bool = False
    harmless: DataSource  # HH-RLHF harmless pairs: a local .jsonl(.gz) or "hub" (harmless-base)
    helpful: Annotated[str, Field(min_length=1)] = "reference"  # "reference" (offline proxy), "hub", or a file
    n_train: PosInt = 64  # training pairs per set (helpful, harmless); the mixed PM gets half of each
    n_test: PosInt = 32  # held-out pairs per set
    data_sizes: Annotated[list[PosInt], Field(min_length=2)] = [8, 16, 32, 64]  # mixed PM training sizes
    max_pair_chars: PosInt = 1200
    own_max_new_tokens: PosInt = 96
    pm_l2: Annotated[float, Field(gt=0)] = 1.0  # linear mode: L2 strength of the BT head
    pm_learning_rate: Annotated[float, Field(gt=0)] = 1e-5  # finetune mode
    pm_epochs: Annotated[float, Field(gt=0)] = 1.0
    pm_lora_r: Annotated[int, Field(ge=0)] = 16
    pm_max_length: PosInt = 512
    # RLHF against the mixed PM: PPO, and DPO on PM-ranked pairs as a second arm
    rl_prompts: PosInt = 64  # held-out HH and AlpacaEval prompts (half each) for PPO / DPO sampling
    ppo_steps: PosInt = 12
    ppo_batch_size: PosInt = 8
    ppo_learning_rate: Annotated[float, Field(gt=0)] = 1e-4
    kl_coef: Annotated[float, Field(ge=0)] = 0.05
    ppo_epochs: PosInt = 2
    max_new_tokens: PosInt = 64
    dpo_k: Annotated[int, Field(ge=2)] = 4
    dpo_prompts: PosInt = 16
    dpo_learning_rate: Annotated[float, Field(gt=0)] = 1e-4
    dpo_beta: Annotated[float, Field(gt=0)] = 0.1
    dpo_epochs: Annotated[float, Field(gt=0)] = 2.0
    code_pairs: Annotated[int, Field(ge=0)] = 8  # code DPO pairs mixed into the HH DPO arm (0: no mixed arm)
    lora_r: PosInt = 16
    # evaluation
    eval_prompts: PosInt = 16  # held-out prompts (half HH, half AlpacaEval)
    humaneval: DataSource = "package"
    humaneval_eval_n: PosInt = 8
    task_max_new_tokens: PosInt = 256
    h2_margin: Annotated[float, Field(gt=0, lt=1)] = 0.05  # "within a few points" of the best specialised PM
    batch_size: PosInt = 16

    @model_validator(mode="after")
    def _consistent(self) -> HHParams:
        if self.helpful not in ("reference", "hub") and not self.helpful.strip():
            raise ValueError("helpful must be 'reference', 'hub' or a file path")
        if max(self.data_sizes) > 2 * self.n_train:
            raise ValueError(f"data_sizes go up to {max(self.data_sizes)}, but the mixed pool has 2 * n_train = "
                             f"{2 * self.n_train} pairs")
        if self.pm_mode == "finetune" and self.load_in_4bit and self.pm_lora_r == 0:
            raise ValueError("load_in_4bit needs a LoRA preference model: set pm_lora_r > 0")
        if self.code_pairs + self.humaneval_eval_n > 164:
            raise ValueError("code_pairs + humaneval_eval_n exceeds HumanEval's 164 tasks (they must not overlap)")
        return self


class PasskParams(BaseParams):
    """02_passk_model_size: pass@k vs model size on HumanEval(+), base vs DPO on execution feedback."""

    models: ModelList  # ordered smallest first; the first is the one preference-tuned
    humaneval: DataSource = "package"
    humaneval_plus: OptionalData = None  # None: HumanEval+ not evaluated (e.g. offline without the file)
    eval_tasks: PosInt = 10  # seeded subset of HumanEval used for evaluation
    train_tasks: PosInt = 20  # disjoint subset used to build preference pairs
    train_source: Literal["humaneval", "mbpp"] = "humaneval"  # mbpp: train on MBPP, evaluate all of HumanEval
    mbpp: DataSource = "hub"  # MBPP (google-research-datasets/mbpp, full) or a local jsonl in its format
    task_limit: dict[str, PosInt] = {}  # per-model cap on evaluated tasks (slow models on CPU)
    n_low: PosInt = 2  # samples per task at t_low (pass@1, CodeT5+ protocol)
    t_low: Annotated[float, Field(ge=0)] = 0.2
    n_high: PosInt = 8  # samples per task at t_high (pass@k curves)
    t_high: Annotated[float, Field(gt=0)] = 0.8
    max_new_tokens: PosInt = 256
    batch_size: PosInt = 16
    timeout_s: Annotated[float, Field(gt=0)] = 5.0
    tune: bool = True
    tune_k: PosInt = 4  # samples per training task for pairs
    tune_temperature: Annotated[float, Field(gt=0)] = 0.8
    dpo_learning_rate: Annotated[float, Field(gt=0)] = 5e-5
    dpo_beta: Annotated[float, Field(gt=0)] = 0.1
    dpo_epochs: Annotated[float, Field(gt=0)] = 2.0
    lora_r: PosInt = 16
    published: dict[str, dict[str, float]] = {}  # model -> {"humaneval": %, "humaneval_plus": %}
    published_source: str = ""


class OnlineDPOParams(BaseParams):
    """05_online_iterative_dpo: BT and pairwise reward models, then offline vs online iterative DPO."""

    policy: ModelName  # the starting instruct model (also the source of "own answers" for pairs)
    reward_base: ModelName  # backbone of the Bradley-Terry RM and of the pairwise preference model
    judge: Annotated[str, Field(min_length=1)] = "pairwise-pm"  # "pairwise-pm" (the PM trained here) or a model
    load_in_4bit: bool = False  # policy and judge (and the RMs when rm_lora_r > 0)
    # preference data for reward modelling (each source optional; counts are before the train/test split)
    hh_rlhf: OptionalData = None
    hh_pairs: Annotated[int, Field(ge=0)] = 0
    ultrafeedback: OptionalData = None
    ultrafeedback_pairs: Annotated[int, Field(ge=0)] = 0
    reference_pairs: Annotated[int, Field(ge=0)] = 0  # AlpacaEval reference answer vs the policy's own
    gsm8k: OptionalData = None  # problems for verifier-labelled math pairs (a *train* split)
    math_pairs: Annotated[int, Field(ge=0)] = 0
    humaneval: DataSource = "package"
    code_pairs: Annotated[int, Field(ge=0)] = 0  # HumanEval tasks (disjoint from the evaluated subset)
    max_pair_chars: PosInt = 1200
    own_max_new_tokens: PosInt = 128
    rm_test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.3
    rm_mode: Literal["linear", "finetune"] = "finetune"  # linear: BT and pairwise heads on frozen features
    rm_l2: Annotated[float, Field(gt=0)] = 1.0  # linear mode: L2 strength of the heads
    rm_learning_rate: Annotated[float, Field(gt=0)] = 1e-5
    rm_epochs: Annotated[float, Field(gt=0)] = 1.0
    rm_lora_r: Annotated[int, Field(ge=0)] = 0  # 0: full fine-tuning
    pm_learning_rate: Annotated[float, Field(gt=0)] = 1e-5
    pm_epochs: Annotated[float, Field(gt=0)] = 1.0
    pm_lora_r: Annotated[int, Field(ge=0)] = 0
    rm_max_length: PosInt = 512
    rm_batch_size: PosInt = 8
    # offline vs online DPO (the paper: 3 iterations, 4 samples per prompt at T = 1.0)
    iterations: PosInt = 3
    k: Annotated[int, Field(ge=2)] = 4
    temperature: Annotated[float, Field(gt=0)] = 1.0
    prompts_per_iteration: PosInt = 16
    max_new_tokens: PosInt = 128
    dpo_learning_rate: Annotated[float, Field(gt=0)] = 5e-6
    dpo_beta: Annotated[float, Field(gt=0)] = 0.1
    dpo_epochs: Annotated[float, Field(gt=0)] = 1.0
    dpo_batch_size: PosInt = 4
    lora_r: PosInt = 16
    # per-iteration evaluation
    eval_prompts: PosInt = 16  # held-out AlpacaEval instructions
    gsm8k_eval: DataSource = "package"
    gsm8k_eval_n: Annotated[int, Field(ge=0)] = 8
    humaneval_eval_n: Annotated[int, Field(ge=0)] = 4
    eval_max_new_tokens: PosInt = 128
    task_max_new_tokens: PosInt = 256  # GSM8K / HumanEval replies
    batch_size: PosInt = 16  # sampling

    @model_validator(mode="after")
    def _consistent(self) -> OnlineDPOParams:
        needs = {"hh_pairs": "hh_rlhf", "ultrafeedback_pairs": "ultrafeedback", "math_pairs": "gsm8k"}
        for count, source in needs.items():
            if getattr(self, count) > 0 and getattr(self, source) is None:
                raise ValueError(f"{count} = {getattr(self, count)} needs the data parameter {source!r}")
        if self.hh_pairs + self.ultrafeedback_pairs + self.reference_pairs + self.math_pairs + self.code_pairs == 0:
            raise ValueError("no preference data: set at least one of hh_pairs, ultrafeedback_pairs, "
                             "reference_pairs, math_pairs, code_pairs")
        alpaca = self.reference_pairs + self.iterations * self.prompts_per_iteration + self.eval_prompts
        if alpaca > 805:
            raise ValueError(f"reference_pairs + iterations * prompts_per_iteration + eval_prompts = {alpaca} "
                             "AlpacaEval instructions, but it has 805 (the three sets must not overlap)")
        if self.code_pairs + self.humaneval_eval_n > 164:
            raise ValueError("code_pairs + humaneval_eval_n exceeds HumanEval's 164 tasks (they must not overlap)")
        if self.judge != "pairwise-pm":
            classify(self.judge)  # unknown aliases fail here, naming the known ones
        if self.load_in_4bit and self.rm_mode == "finetune" and (self.rm_lora_r == 0 or self.pm_lora_r == 0):
            raise ValueError("load_in_4bit needs LoRA reward models: set rm_lora_r and pm_lora_r > 0")
        return self


SCHEMAS: dict[str, type[BaseParams]] = {
    "00_quickstart": QuickstartParams,
    "01_hh_preference_models": HHParams,
    "02_passk_model_size": PasskParams,
    "05_online_iterative_dpo": OnlineDPOParams,
}


def _fields_of_kind(params: BaseModel, kind: str) -> list[tuple[str, Any]]:
    out = []
    for name, info in type(params).model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if extra.get("kind") == kind:
            value = getattr(params, name)
            out.extend((name, v) for v in (value if isinstance(value, list) else [value]) if v is not None)
    return out


def data_fields(params: BaseModel) -> list[tuple[str, str]]:
    """(key, value) of every data-source parameter (lists are flattened)."""
    return _fields_of_kind(params, "data")


def model_fields(params: BaseModel) -> list[tuple[str, str]]:
    """(key, value) of every model-name parameter (lists are flattened)."""
    return _fields_of_kind(params, "model")
