"""Parameters of ``notebooks/06_feedback_blender.ipynb``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rlhf_nb.notebook.params import BaseParams, HeadSection, ModelName, PosInt, SamplingSection

FeedbackType = Literal["rating", "comparison", "ranking", "correction", "demonstration", "descriptive"]


class Params(BaseParams):
    """06_feedback_blender: a panel for six feedback types, and what each type is worth (simulated annotator)."""

    policy: ModelName = Field(description="the model whose replies are the response pool")
    backbone: ModelName = Field(description="frozen backbone whose features the reward models read")
    prompts: PosInt = Field(240, description="verifiable-instruction prompts (rlhf_nb.tasks.gold) in the response pool")
    instructions: tuple[PosInt, PosInt] = Field((2, 3), description="instructions per prompt (min, max): more "
                                                                    "levels of the gold than one or two")
    test_fraction: float = Field(0.35, gt=0, lt=1, description="share of prompts held out for evaluation (split "
                                                               "by base request)")
    sampling: SamplingSection = Field(SamplingSection(n=4, temperature=1.0, top_p=1.0, max_new_tokens=160),
                                      description="responses per prompt (also the n of best-of-n selection)")
    types: list[FeedbackType] = Field(["rating", "comparison", "ranking", "correction", "demonstration",
                                       "descriptive"], min_length=1, description="feedback types the annotator gives")
    budgets: list[PosInt] = Field([10, 30, 100, 300], min_length=2,
                                  description="feedback events per type (ascending); the last is the full budget")
    noises: list[float] = Field([0.0, 0.1, 0.25, 0.5], min_length=2,
                                description="annotator noise: the SD of the error on the 0-1 gold scale with which "
                                            "the annotator perceives a response (ascending)")
    claim_noise: float = Field(0.1, ge=0, description="the noise level (one of noises) at which B1 and B2 are tested")
    rating_scale: PosInt = Field(10, description="ratings are integers 0..rating_scale")
    head: HeadSection = Field(HeadSection(l2=30.0, max_length=384), description="the reward models' linear heads")
    bootstraps: PosInt = Field(5, description="bootstrap refits per type for the ensemble's inverse-variance weights")
    length_match: float = Field(0.7, ge=0, lt=1,
                                description="the claims' held-out pairs: those whose shorter response has at least "
                                            "this share of the longer one's characters, where length cannot decide "
                                            "(0: every pair with different gold)")
    b2_margin: float = Field(0.03, gt=0, lt=1, description="non-inferiority margin of the ensemble (pair accuracy)")
    panel_items: PosInt = Field(6, description="training prompts shown in the interactive panel")

    @model_validator(mode="after")
    def _consistent(self) -> Params:
        if sorted(self.budgets) != self.budgets or sorted(self.noises) != self.noises:
            raise ValueError("budgets and noises must be ascending")
        if self.claim_noise not in self.noises:
            raise ValueError(f"claim_noise {self.claim_noise} is not one of noises {self.noises}")
        if self.instructions[0] > self.instructions[1]:
            raise ValueError(f"instructions {self.instructions}: min exceeds max")
        if self.sampling.n < 2:
            raise ValueError("sampling.n must be at least 2 (comparisons need two responses per prompt)")
        if len(set(self.types)) != len(self.types):
            raise ValueError(f"types {self.types} lists a type twice")
        return self
