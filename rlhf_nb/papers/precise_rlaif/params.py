"""Parameters of ``notebooks/04_precise_rlaif.ipynb``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rlhf_nb.notebook.params import (
    BaseParams,
    DataSource,
    DPOSection,
    Fraction,
    LoraSection,
    ModelName,
    NonNegInt,
    OptionalModel,
    PosFloat,
    PosInt,
    SamplingSection,
    Section,
    SystemLine,
)

Principle = Literal["instruction-following", "helpfulness", "truthfulness", "all"]

#: what "worse" means under each principle (the paper's constitution, Fig. 3), as the degrader is told
PRINCIPLES: dict[str, str] = {
    "instruction-following": "it ignores or goes against what the request asks for, including any instruction about "
                             "the form or the wording of the answer",
    "helpfulness": "it is vaguer, less relevant or less useful to the person who asked",
    "truthfulness": "it states something false or misleading",
    "all": "it is less truthful, less helpful, and follows the request and its instructions less well",
}


class Splits(Section):
    """Verifiable-instruction prompts (rlhf_nb.tasks.gold), split so that no base request is in two sets."""

    train: PosInt = Field(64, description="prompts whose answers are degraded into pairs (and give the sequence-level "
                                          "control its pairs)")
    eval: PosInt = Field(128, description="held-out prompts on which every policy is judged by the gold")


class Degradation(Section):
    """How a rejected answer is made: one sentence of the chosen answer rewritten to be worse, the rest unchanged."""

    method: Literal["llm", "programmatic", "both"] = Field(
        "both", description="who rewrites a sentence worse: 'llm' (the paper's: an instruct model under the "
                            "constitution), 'programmatic' (rlhf_nb.tasks.gold.break_sentence: the inverse of gold.fix, "
                            "one checked instruction broken inside one sentence) or 'both' (the main arm trains on both "
                            "kinds of pairs)")
    model: ModelName = Field(description="the instruct model that rewrites a sentence (the AI feedback)")
    principle: Principle = Field("all", description="the constitution of the main Precise arm (paper: all)")
    per_answer: PosInt = Field(5, description="pairs per chosen answer, each degrading a different sentence (paper: 5)")
    min_words: PosInt = Field(4, description="sentences shorter than this are not degraded (list markers, headings)")
    min_edit: Fraction = Field(0.2, description="least normalised edit distance between a sentence and its rewrite")
    temperature: float = Field(0.0, ge=0, description="degrader sampling temperature (0: greedy)")
    max_new_tokens: PosInt = Field(64, description="tokens of a rewritten sentence")
    judge_filter: Literal["always", "if-validated", "never"] = Field(
        "if-validated", description="labeller 'judge' only: keep an LLM rewrite only if the judge prefers the original "
                                    "answer: always, never, or only when the judge beats chance on the validation "
                                    "pairs (a judge at chance would drop pairs at random). Under labeller 'gold' every "
                                    "pair must lower the gold instead")
    judge_margin: Fraction = Field(0.0, description="the judge must prefer the original by more than 0.5 + this")


class Forgetting(Section):
    """Unrelated tasks measured before and after Precise DPO (the paper's Table 4)."""

    humaneval_tasks: NonNegInt = Field(40, description="HumanEval tasks (greedy pass@1, sandbox); 0: skip")
    humaneval: DataSource = Field("package", description="HumanEval source")
    gsm8k_problems: NonNegInt = Field(40, description="GSM8K test problems (greedy, exact answer); 0: skip")
    gsm8k: DataSource = Field("bundled", description="GSM8K source")
    translation: str | None = Field("gnome-user-docs", description="En->Fr pairs: 'gnome-user-docs' (GNOME help, read "
                                                                    "at run time), 'hub' (WMT14), a jsonl with en/fr, or "
                                                                    "None to skip")
    translation_pairs: NonNegInt = Field(200, description="En->Fr pairs scored by BLEU (sacrebleu)")
    max_new_tokens: PosInt = Field(256, description="greedy tokens for code and math answers")
    margins: dict[str, PosFloat] = Field({"humaneval": 5.0, "gsm8k": 5.0, "bleu": 2.0},
                                         description="non-inferiority margins (pts of pass@1 / accuracy, BLEU points)")


class Params(BaseParams):
    """04_precise_rlaif: sentence-level degraded pairs for DPO, against a same-budget sequence-level control."""

    policy: ModelName = Field(description="the DPO-stage model every arm starts from (and whose answers are degraded)")
    base: OptionalModel = Field(None, description="an untuned (or SFT-only) checkpoint of the same model for the "
                                                     "paper's 'DPO beats the base' row; None: not available")
    labeller: Literal["gold", "judge"] = Field(
        "gold", description="who verifies the sentence-level pairs and orders the sequence-level ones: 'gold' "
                            "(IFEval's checkers: R1b/R1c are about the kind of pair, not the labeller, so the gold is "
                            "the preference oracle) or 'judge' (the LLM judge below, validated against the gold first)")
    judge: ModelName = Field(description="LLM judge (log-probs of A/B, both orders), labeller 'judge' only: filters "
                                         "degraded pairs, orders the sequence-level pairs, is validated against the gold")
    judge_question: Literal["instructions", "helpful"] = Field(
        "instructions", description="what the judge is asked of two answers: which follows the request and its "
                                    "instructions more exactly, or which is more helpful, correct and harmless "
                                    "(rlhf_nb.rewards.judge.PAIRWISE_TEMPLATES)")
    judge_combine: Literal["probability", "log-odds"] = Field(
        "probability", description="how the judge's two presentation orders are averaged: their probabilities, or "
                                   "their log-odds (keeps the lean of a judge that says 'A' in both orders)")
    prompts: Splits = Splits()
    system: SystemLine = ""
    answers: SamplingSection = Field(SamplingSection(n=4, temperature=0.7, max_new_tokens=160),
                                     description="answers sampled per training prompt: the chosen one (labeller gold: "
                                                 "the finished one with the highest gold; judge: the first finished "
                                                 "one) is degraded; pairs of them form the sequence-level control")
    min_sentences: PosInt = Field(2, description="a chosen answer needs this many degradable sentences")
    degrade: Degradation
    principle_arms: list[Literal["instruction-following", "helpfulness", "truthfulness"]] = Field(
        [], description="single-principle Precise arms for the per-principle ablation (Table 2); each costs its own "
                        "degradations and `seeds` trainings")
    sequence_control: bool | Literal["if-validated"] = Field(
        "if-validated", description="train the same-budget sequence-level DPO control: true, false, or 'if-validated' "
                                    "(only when the judge that orders its pairs beats chance on its validation, R1c's "
                                    "premise: an unvalidated judge orders them by noise and R1c cannot be decided)")
    judge_validation_pairs: NonNegInt = Field(200, description="pairs of training answers whose gold scores differ, "
                                                               "judged to validate the judge (a premise of R1c)")
    dpo: DPOSection = DPOSection(learning_rate=5e-5, beta=0.2, weight_decay=0.01, num_train_epochs=1,
                                 per_device_train_batch_size=4, gradient_accumulation_steps=1, max_length=512)
    lora: LoraSection = LoraSection(r=16)
    eval_max_new_tokens: PosInt = Field(160, description="greedy replies to the held-out prompts")
    forgetting: Forgetting = Forgetting()
    min_effect: PosFloat = Field(2.0, description="gold points: the least gain of Precise worth claiming")

    @model_validator(mode="after")
    def _consistent(self) -> Params:
        if self.forgetting.translation not in (None, "gnome-user-docs", "hub") and not self.forgetting.translation.strip():
            raise ValueError("forgetting.translation: 'gnome-user-docs', 'hub', a jsonl path or None")
        if self.answers.n < 2 and self.sequence_control is not False:
            raise ValueError("answers.n must be at least 2 for the sequence-level control's pairs")
        return self

    def check(self) -> list[str]:
        """Cheap checks before a kernel starts: the translation source can be found."""
        from pathlib import Path

        source = self.forgetting.translation
        if not source or not self.forgetting.translation_pairs or source == "hub":
            return []
        if source == "gnome-user-docs":
            import shutil

            from rlhf_nb.core.errors import DataError
            from rlhf_nb.tasks.parallel import gnome_help_root

            try:
                gnome_help_root(fetch=False)
            except DataError as err:
                if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
                    return [f"parameter 'forgetting.translation': {err}"]
            return []
        if not Path(source).expanduser().is_file():
            return [f"parameter 'forgetting.translation': data file {source!r} does not exist"]
        return []
