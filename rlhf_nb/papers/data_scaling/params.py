"""Parameters of ``notebooks/03_data_scaling_rlhf.ipynb``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rlhf_nb.notebook.params import (
    BaseParams,
    DataSource,
    Fraction,
    GRPOSection,
    HeadSection,
    LoraSection,
    ModelName,
    NonNegInt,
    OptionalData,
    OptionalModel,
    PosFloat,
    PosInt,
    SamplingSection,
    Section,
)
from rlhf_nb.tasks.data import HUMANEVAL_TASKS
from rlhf_nb.tasks.gold import ALPACAEVAL_BASES


class Items(Section):
    """Prompts with a verifier (the gold) and a reference answer (the GenRM's ground truth)."""

    math: NonNegInt = Field(40, description="GSM8K test problems (gold: the final-answer checker; reference: the "
                                            "worked solution)")
    gsm8k: DataSource = Field("bundled", description="GSM8K source ('bundled': data/gsm8k_test.jsonl.gz)")
    code: NonNegInt = Field(40, description="HumanEval tasks (gold: their tests in the sandbox; reference: the "
                                            "canonical solution)")
    humaneval_plus: OptionalData = Field("bundled", description="HumanEval+ source: the gold runs base + plus "
                                                                     "inputs; None: HumanEval's own tests only")


class GRPOPart(Section):
    """What every training part of notebook 03 shares: how long, how long the answers, GRPO and LoRA settings."""

    steps: NonNegInt = Field(0, description="GRPO steps per run; 0: this part is not run in this profile")
    max_new_tokens: PosInt = Field(320, description="token cap of sampled and held-out answers")
    grpo: GRPOSection = GRPOSection(learning_rate=2e-5, num_generations=4, per_device_train_batch_size=8,
                                    max_completion_length=320, temperature=0.8, beta=0.0)
    lora: LoraSection = LoraSection(r=16)


class Hacking(GRPOPart):
    """Part 2 (Fig. 7): GRPO on GSM8K train problems under each reward alone; every ``eval_every`` steps the
    policy's greedy answers to held-out GSM8K test problems are scored by that reward and by the gold."""

    rewards: list[Literal["rtv", "genrm_gt", "bt"]] = Field(
        ["rtv", "genrm_gt", "bt"], description="the rewards trained on, one arm each: the math checker (RTV), the "
                                               "judge with the reference (GenRM with GT), a linear Bradley-Terry RM")
    eval_every: PosInt = Field(5, description="steps between held-out evaluations (and one before training)")
    train_prompts: PosInt = Field(64, description="GSM8K train problems GRPO samples from")
    eval_items: PosInt = Field(64, description="held-out GSM8K test problems (none of part 1's), scored by the gold")
    bt_test_fraction: float = Field(0.3, gt=0, lt=1, description="share of part 1's math items whose right-vs-wrong "
                                                                 "pairs are held out to validate the BT RM")
    bt: HeadSection = Field(HeadSection(l2=1.0, pooling="last+mean", max_length=1024),
                            description="the linear BT reward model on the judge's features")
    min_effect: PosFloat = Field(0.25, description="SD: the least difference in hacking index worth claiming")
    min_entropy_drop: PosFloat = Field(0.05, description="nats per token: the least fall in the samples' entropy "
                                                         "over a run worth claiming (Fig. 12)")


class BestOfN(Section):
    """Part 2 without training (Gao et al. 2022's instrument): best-of-n over part 1's samples under each reward, the
    gold of the pick against sqrt(KL); the hacking index of a reward is how far its pick's gold falls below the gold's
    own pick at the largest n (:mod:`rlhf_nb.evidence.bestofn`)."""

    bt: HeadSection = Field(HeadSection(l2=1.0, pooling="last+mean", max_length=1024),
                            description="the BT RM: a linear head on the policy's frozen features (reward models start "
                                        "from the policy), fitted on right-vs-wrong pairs of other items")
    folds: int = Field(5, ge=2, description="cross-fitting: the mixed items split by item into this many folds; each "
                                            "fold's responses are scored by a BT RM fitted on the other folds' pairs")
    min_effect: PosFloat = Field(5.0, description="gold pts: the least difference in hacking index at the largest n "
                                                  "worth choosing a reward for")


class Close(Section):
    """Close pairs built on purpose (Figs. 10-11): a right response and the same response with one token changed so
    that the checker marks it wrong (math: one number; code: one operator, literal or name, verified in the sandbox)."""

    per_item: NonNegInt = Field(2, description="right responses edited per item (distinct texts, seeded); 0: none")
    tries: PosInt = Field(4, description="code: one-token mutants tried per right response; the first that fails the "
                                         "tests is kept")
    all_right: bool = Field(True, description="also edit responses of items whose every response is right (their right "
                                              "response is then judged too); else only mixed items' (already judged)")


class PrePPO(GRPOPart):
    """Parts 3-4 (Figs. 2-4, 6, 8; Tables 1, 3): GRPO on the hybrid reward over math, code and instruction prompts;
    arms differ only in which prompts they train on and in what order."""

    domains: list[Literal["math", "code", "instruction", "open"]] = Field(
        ["math", "code", "instruction"], description="math: GSM8K; code: HumanEval split by task; instruction: "
                                                     "IFEval's prompts (reward: the judge; gold: IFEval's checkers); "
                                                     "open: AlpacaEval's instructions (reward: the judge given the "
                                                     "GPT-4-turbo reference; gold: `open_gold`)")
    open_gold: OptionalModel = Field(
        None, description="the open domain's gold: a judge other than `judge` (larger), never a training reward, asked "
                          "whether a held-out answer beats AlpacaEval's reference (both orders); validated on HH-RLHF "
                          "human labels first")
    gold_validation: PosInt = Field(200, description="HH-RLHF harmless-base pairs (human labels) that validate "
                                                     "`open_gold`")
    hh: DataSource = Field("bundled", description="HH-RLHF harmless-base source for that validation")
    base: PosInt = Field(32, description="base prompts per domain (every arm trains on them)")
    new: PosInt = Field(64, description="new prompts per domain (added: all, a random fraction, or Pre-PPO's)")
    eval: PosInt = Field(64, description="held-out prompts per domain, scored by the gold only")
    fraction: Fraction = Field(0.5, description="share of the new prompts that the random and Pre-PPO arms add")
    samples: PosInt = Field(4, description="start-policy responses per new prompt; their mean reward ranks it")
    margin: PosFloat = Field(3.0, description="pts: 'more prompts do not help' holds when all-new vs base stays "
                                              "within this margin (equivalence)")
    min_effect: PosFloat = Field(3.0, description="pts of held-out gold: the least gain worth claiming")
    code_train: Literal["humaneval", "mbpp"] = Field(
        "humaneval", description="where the base and new code prompts come from: HumanEval tasks split from the "
                                 "held-out ones, or MBPP's train split (then every held-out code prompt is a HumanEval "
                                 "task)")
    mbpp: DataSource = Field("hub", description="MBPP source (google-research-datasets/mbpp, 'full') when code_train "
                                                "is mbpp: 'hub' or a jsonl file")
    eval_every: NonNegInt = Field(0, description="steps between held-out gold evaluations during training (Figs. 4, "
                                                 "6: gold per domain vs step); 0: the final policy only")

    @model_validator(mode="after")
    def _domains(self) -> PrePPO:
        if not self.domains:
            raise ValueError("prepo.domains must name at least one domain")
        if self.steps and "open" in self.domains and not self.open_gold:
            raise ValueError("prepo.domains has 'open': set prepo.open_gold, the judge that is its gold (a model other "
                             "than the training judge)")
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
    min_spread: PosFloat = Field(0.2, description="standard deviations: the least gain in within-prompt spread worth "
                                                  "claiming")
    bestofn: BestOfN = BestOfN()
    close_pairs: Close = Close()
    hacking: Hacking = Hacking()
    prepo: PrePPO = PrePPO()

    @model_validator(mode="after")
    def _sizes(self) -> Params:
        """Sizes the published sets cannot meet fail here, before any model loads (a local file may be smaller:
        that is caught when it is read)."""
        S, need = self.prepo, self.prepo.base + self.prepo.new + self.prepo.eval
        if S.steps and "code" in S.domains and S.code_train == "humaneval" and need > HUMANEVAL_TASKS:
            raise ValueError(f"prepo: base + new + eval = {need} code prompts, HumanEval has {HUMANEVAL_TASKS} tasks")
        if (S.steps and "code" in S.domains and S.code_train == "mbpp"
                and (S.eval > HUMANEVAL_TASKS or S.base + S.new > 374)):
            raise ValueError(f"prepo: {S.base} + {S.new} MBPP train prompts (MBPP's train split has 374) and {S.eval} "
                             f"held-out HumanEval tasks ({HUMANEVAL_TASKS})")
        if S.steps and "instruction" in S.domains and need > 541:
            raise ValueError(f"prepo: base + new + eval = {need} instruction prompts, IFEval has 541")
        if S.steps and "open" in S.domains and need > ALPACAEVAL_BASES:
            raise ValueError(f"prepo: base + new + eval = {need} open prompts, AlpacaEval has {ALPACAEVAL_BASES}")
        if self.hacking.steps and self.items.math + self.hacking.eval_items > 1319:
            total = self.items.math + self.hacking.eval_items
            raise ValueError(f"items.math + hacking.eval_items = {total} GSM8K test problems (they must not overlap), "
                             "GSM8K has 1319")
        return self
