"""Parameters of ``notebooks/03_data_scaling_rlhf.ipynb``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ...params import BaseParams, DataSource, Fraction, ModelName, NonNegInt, PosFloat, PosInt, SamplingSection, Section


class Items(Section):
    """Prompts with a verifier (the gold) and a reference answer (the GenRM's ground truth)."""

    math: NonNegInt = Field(40, description="GSM8K test problems (gold: the final-answer checker; reference: the "
                                            "worked solution)")
    gsm8k: DataSource = Field("bundled", description="GSM8K source ('bundled': data/gsm8k_test.jsonl.gz)")
    code: NonNegInt = Field(40, description="HumanEval tasks (gold: their tests in the sandbox; reference: the "
                                            "canonical solution)")
    humaneval_plus: DataSource | None = Field("bundled", description="HumanEval+ source: the gold runs base + plus "
                                                                     "inputs; None: HumanEval's own tests only")


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
    min_spread: PosFloat = Field(0.2, description="standard deviations: the least gain in within-prompt spread worth "
                                                  "claiming")
