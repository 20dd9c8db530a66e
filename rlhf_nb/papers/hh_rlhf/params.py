"""Parameters of ``notebooks/01_hh_preference_models.ipynb``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rlhf_nb.notebook.params import (
    BaseParams,
    DataSource,
    DPOSection,
    HeadSection,
    LoraSection,
    ModelList,
    ModelName,
    PosInt,
    PPOSection,
    SamplingSection,
    SystemLine,
)


class Params(BaseParams):
    """01_hh_preference_models: helpful / harmless / mixed PMs, RLHF against a train PM judged by gold and a test PM."""

    policy: ModelName = Field(description="the raw model that RLHF starts from (and whose samples make helpful pairs)")
    pm_backbone: ModelName = Field(description="frozen backbone of the preference models (linear BT heads)")
    pm_sizes: ModelList = Field([], description="extra backbones of one family for PM accuracy vs model size")
    harmless: DataSource = Field("bundled", description="HH-RLHF harmless-base pairs (human labels)")
    harmless_train: PosInt = Field(600, description="harmless pairs for training PMs")
    harmless_test: PosInt = Field(500, description="held-out harmless pairs")
    system: SystemLine = ""
    helpful: Literal["if-gold", "hub"] = Field(
        "if-gold", description="if-gold: pairs of the policy's own samples labelled by verifiable-instruction checkers "
                               "(offline); hub: HH-RLHF helpful-base (human labels)")
    helpful_prompts: PosInt = Field(240, description="if-gold: prompts sampled for helpful pairs")
    helpful_samples: PosInt = Field(4, description="if-gold: samples per prompt (pairs: best vs worst by the gold)")
    helpful_hub_train: PosInt = Field(2000, description="hub: helpful-base training pairs")
    helpful_hub_test: PosInt = Field(500, description="hub: held-out helpful-base pairs")
    helpful_test_fraction: float = Field(0.4, gt=0, lt=1, description="if-gold: share of prompts held out")
    finished_only: bool = Field(True, description="pairs use only replies that ended on their own (not cut off at the "
                                                  "token cap); False only for plumbing runs of a random model")
    pm: HeadSection = Field(HeadSection(), description="the preference models' linear BT heads")
    data_sizes: list[PosInt] = Field([50, 100, 200, 400], min_length=3,
                                     description="training sizes of the mixed PM for accuracy vs data (per test set)")
    eval_prompts: PosInt = Field(64, description="held-out prompts on which the trained RLHF policies are judged")
    bon_prompts: PosInt = Field(96, description="held-out prompts for best-of-n (disjoint from every other set); "
                                                "each is a best-of-n item in one fold and lends its gold-labelled pairs "
                                                "to the train and test PMs of the other two")
    bon: SamplingSection = Field(SamplingSection(n=16, temperature=1.0, max_new_tokens=160),
                                 description="samples per best-of-n prompt: best-of-n for n = 1, 2, 4, ..., bon.n")
    bon_test_n: PosInt = Field(4, description="the n at which best-of-n is tested against the raw model and the "
                                              "length rules' picks (H3a, H3b), "
                                              "fixed before the run: the larger n, the fewer replies a pick averages "
                                              "over and the wider its interval")
    bon_pairs: PosInt = Field(6, description="gold-labelled pairs per best-of-n prompt (of its replies' pairs whose "
                                             "gold differs, drawn at random) for the fold PMs")
    rl: list[Literal["dpo", "ppo"]] = Field(["dpo"], description="trained RLHF arms (best-of-n always runs)")
    rl_prompts: PosInt = Field(64, description="prompts for the trained arms (disjoint from every other set)")
    rl_samples: PosInt = Field(4, description="dpo: samples per prompt, best vs worst by the train PM")
    dpo: DPOSection = DPOSection(learning_rate=5e-5, beta=0.1, num_train_epochs=1, max_length=512)
    ppo: PPOSection = PPOSection(steps=40, batch_size=16, minibatch_size=8, max_new_tokens=96, learning_rate=1e-4,
                                 kl_coef=0.05)
    lora: LoraSection = LoraSection(r=16)
    eval_max_new_tokens: PosInt = Field(160, description="greedy replies of trained policies to held-out prompts")
    humaneval_tasks: PosInt = Field(40, description="HumanEval tasks for the alignment-tax check (greedy)")
    humaneval: DataSource = Field("package", description="HumanEval source")
    h2_margin: float = Field(0.05, gt=0, lt=1, description="non-inferiority margin of the mixed PM (accuracy)")

    @model_validator(mode="after")
    def _consistent(self) -> Params:
        if self.harmless == "bundled" and self.harmless_train + self.harmless_test > 2312:
            raise ValueError("harmless_train + harmless_test exceeds the 2312 bundled HH-RLHF harmless-base pairs")
        if self.bon.n < 2 or self.bon.n & (self.bon.n - 1):
            raise ValueError(f"bon.n = {self.bon.n}: best-of-n needs a power of two >= 2 (n = 1, 2, 4, ...)")
        if self.bon_test_n < 2 or self.bon_test_n > self.bon.n or self.bon_test_n & (self.bon_test_n - 1):
            raise ValueError(f"bon_test_n = {self.bon_test_n}: one of the measured n = 2, 4, ..., bon.n = {self.bon.n}")
        if self.bon_prompts < 3 * 2:
            raise ValueError(f"bon_prompts = {self.bon_prompts}: three folds need at least 2 prompts each")
        if self.humaneval_tasks > 164:
            raise ValueError("humaneval_tasks exceeds HumanEval's 164")
        return self
