"""Parameters of ``notebooks/03_data_scaling_rlhf.ipynb``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ...params import (BaseParams, DataSource, Fraction, GRPOSection, LoraSection, ModelName, NonNegInt, PosFloat,
                       PosInt, SamplingSection, Section)


class Items(Section):
    """Prompts with a verifier (the gold) and a reference answer (the GenRM's ground truth)."""

    math: NonNegInt = Field(40, description="GSM8K test problems (gold: the final-answer checker; reference: the "
                                            "worked solution)")
    gsm8k: DataSource = Field("bundled", description="GSM8K source ('bundled': data/gsm8k_test.jsonl.gz)")
    code: NonNegInt = Field(40, description="HumanEval tasks (gold: their tests in the sandbox; reference: the "
                                            "canonical solution)")
    humaneval_plus: DataSource | None = Field("bundled", description="HumanEval+ source: the gold runs base + plus "
                                                                     "inputs; None: HumanEval's own tests only")


class Hacking(Section):
    """Part 2 (Fig. 7): GRPO on GSM8K train problems under each reward alone; every ``eval_every`` steps the
    policy's greedy answers to held-out GSM8K test problems are scored by that reward and by the gold."""

    rewards: list[Literal["rtv", "genrm_gt", "bt"]] = Field(
        ["rtv", "genrm_gt", "bt"], description="the rewards trained on, one arm each: the math checker (RTV), the "
                                               "judge with the reference (GenRM with GT), a linear Bradley-Terry RM")
    steps: NonNegInt = Field(0, description="GRPO steps per run; 0: part 2 is not run in this profile")
    eval_every: PosInt = Field(5, description="steps between held-out evaluations (and one before training)")
    train_prompts: PosInt = Field(64, description="GSM8K train problems GRPO samples from")
    eval_items: PosInt = Field(64, description="held-out GSM8K test problems (none of part 1's), scored by the gold")
    max_new_tokens: PosInt = Field(320, description="greedy answers to the held-out problems")
    bt_test_fraction: float = Field(0.3, gt=0, lt=1, description="share of part 1's math items whose right-vs-wrong "
                                                                 "pairs are held out to validate the BT RM")
    bt_l2: PosFloat = Field(1.0, description="L2 strength of the linear BT head")
    grpo: GRPOSection = GRPOSection(learning_rate=2e-5, num_generations=4, per_device_train_batch_size=8,
                                    max_completion_length=320, temperature=0.8, beta=0.0)
    lora: LoraSection = LoraSection(r=16)
    min_effect: PosFloat = Field(0.25, description="SD: the least difference in hacking index worth claiming")
    min_entropy_drop: PosFloat = Field(0.05, description="nats per token: the least fall in the samples' entropy "
                                                         "over a run worth claiming (Fig. 12)")

    @model_validator(mode="after")
    def _groups(self) -> Hacking:
        batch, group = self.grpo.per_device_train_batch_size or 4, self.grpo.num_generations or 4
        if batch % group:
            raise ValueError(f"hacking.grpo.per_device_train_batch_size = {batch} must be a multiple of "
                             f"hacking.grpo.num_generations = {group} (whole groups of completions per prompt)")
        return self


class Params(BaseParams):
    """03_data_scaling_rlhf, part 1: which reward tells close responses apart (Shen et al., Figs. 10-11)."""

    policy: ModelName = Field(description="the model whose samples are scored (must be off the floor on the tasks)")
    judge: ModelName = Field(description="the generative reward model (GenRM), asked with and without the reference")
    items: Items = Items()
    samples: SamplingSection = Field(SamplingSection(n=5, temperature=0.8, max_new_tokens=320),
                                     description="responses per prompt (paper: 5) and how they are drawn")
    judged: Literal["mixed", "all"] = Field(
        "mixed", description="items the GenRM scores: 'mixed' (some responses right, some wrong: the only items a "
                             "within-prompt AUC is defined on; saves the judge passes on the rest) or 'all'")
    bins: PosInt = Field(4, description="equal-count bins of the per-prompt max edit distance (the figures' x-axis)")
    close: Fraction = Field(0.5, description="'close' prompts: max normalised edit distance at or below this quantile")
    min_effect: PosFloat = Field(5.0, description="AUC points: the least gain of the reference-guided GenRM worth "
                                                  "claiming")
    hacking: Hacking = Hacking()
    min_spread: PosFloat = Field(0.2, description="standard deviations: the least gain in within-prompt spread worth "
                                                  "claiming")
