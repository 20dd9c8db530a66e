"""Parameters of ``notebooks/05_online_iterative_dpo.ipynb``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rlhf_nb.notebook.params import (
    BaseParams,
    DPOSection,
    HeadSection,
    LoraSection,
    ModelName,
    NonNegInt,
    OptionalData,
    PosInt,
    SamplingSection,
    Section,
    SystemLine,
)


class PromptSplits(Section):
    """Verifiable-instruction prompts (rlhf_nb.tasks.gold), split so that no base request is in two sets."""

    rm: NonNegInt = Field(160, description="prompts whose sampled replies, labelled by the gold, train the reward "
                                           "models (0 with reward_models: false)")
    online: PosInt = Field(96, description="prompts for the DPO rounds (iterations x prompts_per_iteration); the "
                                           "offline arm uses the same prompts")
    eval: PosInt = Field(160, description="held-out prompts on which every policy is judged by the gold")


class Params(BaseParams):
    """05_online_iterative_dpo: BT and pairwise reward models, then online iterative vs offline DPO."""

    policy: ModelName = Field(description="the instruct model that every arm starts from")
    labeller: Literal["gold", "rm"] = Field(
        "gold", description="who picks the best and worst of a prompt's k replies for the online and offline pairs: "
                            "'gold' (IFEval's checkers: the claims are about the algorithm, with the gold as the "
                            "preference oracle) or 'rm' (the BT reward model fitted below; its validation becomes a "
                            "premise)")
    label_noise: float = Field(0.0, ge=0, description="gold labeller only: a simulated rater scores each reply as its "
                                                      "gold plus Gaussian noise of this SD (gold in 0-1); 0: the gold")
    reward_models: bool = Field(True, description="fit and validate the BT and pairwise reward models (W1a-e); "
                                                  "needed when labeller is 'rm'")
    rm_backbone: ModelName = Field(description="frozen backbone whose features the BT and pairwise heads read")
    prompts: PromptSplits = PromptSplits()
    system: SystemLine = ""
    hh: OptionalData = Field("bundled", description="human-labelled pairs (HH-RLHF harmless-base) as a second "
                                                         "reward-model source; None: gold-labelled pairs only")
    hh_train: NonNegInt = Field(200, description="HH pairs for training the reward models")
    hh_test: NonNegInt = Field(400, description="held-out HH pairs")
    rm_samples: PosInt = Field(4, description="samples per reward-model prompt; pairs are best vs worst by the gold")
    rm_test_fraction: float = Field(0.4, gt=0, lt=1, description="share of RM prompts held out for accuracy")
    finished_only: bool = Field(True, description="the reward models' gold pairs use only replies that ended on their "
                                                  "own (not cut off at the token cap); False only for plumbing runs of a "
                                                  "random model. The DPO pairs score a cut-off reply as it stands")
    rm: HeadSection = Field(HeadSection(), description="the BT and pairwise reward models' linear heads")
    sampling: SamplingSection = Field(SamplingSection(n=4, temperature=1.0, top_p=1.0, max_new_tokens=128),
                                      description="the paper's sampling: k = 4 replies per prompt at T = 1.0")
    iterations: PosInt = Field(3, description="online rounds (the paper: 3)")
    eval_max_new_tokens: PosInt = Field(128, description="greedy replies to the held-out prompts")
    dpo: DPOSection = DPOSection(learning_rate=5e-5, beta=0.1, num_train_epochs=1, max_length=512)
    lora: LoraSection = LoraSection(r=16)

    @model_validator(mode="after")
    def _consistent(self) -> Params:
        if self.labeller == "rm" and not self.reward_models:
            raise ValueError("labeller 'rm' needs reward_models: true (the BT reward model labels the pairs)")
        if self.reward_models and not self.prompts.rm:
            raise ValueError("reward_models: true needs prompts.rm > 0")
        if self.prompts.online % self.iterations:
            raise ValueError(f"prompts.online = {self.prompts.online} must divide into {self.iterations} iterations")
        if self.hh is not None and self.hh_train + self.hh_test > 2312 and self.hh == "bundled":
            raise ValueError("hh_train + hh_test exceeds the 2312 bundled HH-RLHF harmless-base test pairs")
        return self

    @property
    def prompts_per_iteration(self) -> int:
        return self.prompts.online // self.iterations
