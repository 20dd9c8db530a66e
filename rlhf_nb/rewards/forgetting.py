"""Forgetting suite: before/after measurements on tasks unrelated to the alignment training.

One evaluator per task, shared by every notebook that measures an alignment tax (01's HumanEval check, 04's
Table 4):

* :func:`coding` - HumanEval pass per task (greedy, the program extracted from a free reply, run in the sandbox);
* :func:`math` - GSM8K correct per problem (greedy, the math verifier);
* :func:`translation` - English->French sentence BLEU per pair (sacrebleu; the first line of a greedy reply).

Each returns a :class:`Scored`: the per-item scores *and* which replies ended before the token cap, so a claim
that compares two models can check that they were cut off alike (a verbose model loses items to the cap, and
that should be visible, not mistaken for lost skill).

:func:`run_suite` runs all three from a :class:`ForgettingConfig` (pairs from a local ``.jsonl`` with
``en``/``fr`` fields, or WMT14 fr-en from the hub); :func:`compare` turns two suite results into rows with
paired bootstrap tests per item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlhf_nb.core.errors import DataError
from rlhf_nb.evidence.metrics import bleu
from rlhf_nb.evidence.stats import paired
from rlhf_nb.lm.evaluate import Replies, greedy
from rlhf_nb.rewards.code import check_programs, code_done, code_prompt, extract_code
from rlhf_nb.rewards.math import is_correct, math_prompt
from rlhf_nb.tasks.data import CodeTask, MathTask, load_gsm8k, load_humaneval, read_records, resolve_path

TRANSLATE = "Translate into French. Reply with the translation only.\n\n{en}"


@dataclass
class Scored:
    """One task measured on one model: a score per item, whether each reply ended on its own (EOS) before the
    token cap, and the outputs the scores were computed from (programs' replies, answers, translations)."""

    scores: list[float]
    finished: list[bool]
    outputs: list[str]

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else 0.0

    @property
    def cap_rate(self) -> float:
        return 1 - sum(self.finished) / len(self.finished) if self.finished else 0.0


def _scored(replies: Replies, scores: list[float], outputs: list[str] | None = None) -> Scored:
    return Scored(scores, [f[0] for f in replies.finished], outputs if outputs is not None else replies.first)


def coding(loaded: Any, tasks: list[CodeTask], max_new_tokens: int = 384, batch_size: int | None = None,
           label: str = "HumanEval (greedy)") -> Scored:
    """Pass (1.0) or fail per task: the project's chat request (:func:`code_prompt`), a free reply, the program
    extracted from it (:func:`extract_code`) and run in the sandbox. The reply is not prefilled with the
    function's signature: a small chat model given an open code block after the docstring tends to close it at
    once (SmolLM2-135M-Instruct returned 40 empty bodies out of 40 that way). A reply ends once the block the
    program is taken from is closed (:class:`rlhf_nb.rewards.code.CodeDone`): what follows cannot change it."""
    replies = greedy(loaded, [code_prompt(t) for t in tasks], max_new_tokens, label, batch_size,
                     done=[code_done(t) for t in tasks])  # a reply ends once its scored code block is closed
    results = check_programs(tasks, [extract_code(r, t) for r, t in zip(replies.first, tasks)])
    return _scored(replies, [float(r.passed) for r in results])


def math(loaded: Any, problems: list[MathTask], max_new_tokens: int = 384, batch_size: int | None = None,
         label: str = "GSM8K (greedy)") -> Scored:
    """Correct (1.0) or not per problem: the final answer of a greedy reply against the reference."""
    replies = greedy(loaded, [math_prompt(p.question) for p in problems], max_new_tokens, label, batch_size)
    return _scored(replies, [float(is_correct(r, p.answer)) for r, p in zip(replies.first, problems)])


def translation(loaded: Any, pairs: list[tuple[str, str]], max_new_tokens: int = 96, batch_size: int | None = None,
                label: str = "En->Fr (greedy)") -> Scored:
    """Sentence BLEU (sacrebleu, 0-100) per pair of the reply's first line; ``outputs`` holds those lines, for a
    corpus BLEU (:func:`rlhf_nb.evidence.metrics.bleu`)."""
    from sacrebleu.metrics import BLEU

    prompts = [[{"role": "user", "content": TRANSLATE.format(en=en)}] for en, _ in pairs]
    replies = greedy(loaded, prompts, max_new_tokens, label, batch_size)
    lines = [r.strip().split("\n")[0] for r in replies.first]
    metric = BLEU(effective_order=True)
    return _scored(replies, [metric.sentence_score(h, [fr]).score for h, (_, fr) in zip(lines, pairs)], lines)


@dataclass
class ForgettingConfig:
    humaneval_tasks: int = 20  # the first N tasks (fixed subset)
    gsm8k_problems: int = 20
    gsm8k_source: str = "package"
    translation: str | None = None  # path to a jsonl with "en"/"fr", "hub", or None (skip)
    translation_pairs: int = 50
    max_new_tokens: int = 384
    translation_tokens: int = 96
    batch_size: int | None = None  # None: the machine's preferred batch for the model (rlhf_nb.lm.evaluate)


@dataclass
class SuiteResult:
    scores: dict[str, float | None]
    per_item: dict[str, list[float]] = field(default_factory=dict)
    cap_rates: dict[str, float] = field(default_factory=dict)


def load_translation_pairs(source: str, limit: int) -> list[tuple[str, str]]:
    """(English, French) pairs from a jsonl with ``en``/``fr`` fields, or WMT14 fr-en test from the hub."""
    if source == "hub":
        from datasets import load_dataset

        try:
            rows = load_dataset("wmt/wmt14", "fr-en", split="test")
        except Exception as err:  # noqa: BLE001
            raise DataError(f"could not load wmt/wmt14 fr-en from the hub ({err}); pass a local jsonl instead") from err
        return [(r["translation"]["en"], r["translation"]["fr"]) for r in rows.select(range(limit))]
    rows = list(read_records(resolve_path(source, "translation pairs")))
    return [(r["en"], r["fr"]) for r in rows[:limit]]


def run_suite(loaded: Any, config: ForgettingConfig = ForgettingConfig()) -> SuiteResult:
    """All three measurements on the model as it is now (BLEU as corpus BLEU over the pairs)."""
    tokens, batch = config.max_new_tokens, config.batch_size
    code = coding(loaded, load_humaneval(limit=config.humaneval_tasks), tokens, batch)
    maths = math(loaded, load_gsm8k(config.gsm8k_source, limit=config.gsm8k_problems), tokens, batch)
    out = SuiteResult({"humaneval_pass@1": code.mean, "gsm8k_accuracy": maths.mean, "en_fr_bleu": None},
                      {"humaneval_pass@1": code.scores, "gsm8k_accuracy": maths.scores},
                      {"humaneval_pass@1": code.cap_rate, "gsm8k_accuracy": maths.cap_rate})
    if config.translation:
        pairs = load_translation_pairs(config.translation, config.translation_pairs)
        fr = translation(loaded, pairs, config.translation_tokens, batch)
        out.scores["en_fr_bleu"] = bleu(fr.outputs, [ref for _, ref in pairs])
        out.cap_rates["en_fr_bleu"] = fr.cap_rate
    return out


def compare(before: SuiteResult, after: SuiteResult) -> list[dict[str, Any]]:
    """Rows per measurement: before, after, change with its 95% interval and the one-sided p-value of "after is worse
    than before" (a significant drop is forgetting), by :func:`rlhf_nb.evidence.stats.paired`, as the claims compute them."""
    rows = []
    for name, b in before.scores.items():
        a = after.scores.get(name)
        row: dict[str, Any] = {"task": name, "before": b, "after": a,
                               "change": None if a is None or b is None else a - b}
        if name in before.per_item and name in after.per_item:
            change = paired(before.per_item[name], after.per_item[name])
            drop = paired(after.per_item[name], before.per_item[name])  # H0: no drop
            row.update(ci_low=change.low, ci_high=change.high, p_drop=drop.p)
        rows.append(row)
    return rows
