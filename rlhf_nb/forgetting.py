"""Forgetting suite: fast before/after measurements on tasks unrelated to the alignment training.

* coding - HumanEval pass@1 on a fixed task subset (greedy, scored in the sandbox);
* math - GSM8K accuracy on a fixed problem subset (greedy, the math verifier);
* translation - English->French BLEU (sacrebleu) on pairs from a local ``.jsonl`` (``en``/``fr`` fields)
  or the hub (``wmt/wmt14``, ``fr-en`` test split). No English-French parallel text ships in the PyPI
  packages or the project's ``data/``, so without a file or network this part reports ``None`` rather
  than a made-up set.

:func:`compare` turns two suite results into rows with paired bootstrap tests per item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .data import CodeTask, DataError, MathTask, load_gsm8k, load_humaneval, read_records, resolve_path
from .evaluate import greedy
from .metrics import bleu, paired_bootstrap
from .rewards.code import check_programs, code_prompt, extract_code
from .rewards.math import is_correct, math_prompt


@dataclass
class ForgettingConfig:
    humaneval_tasks: int = 20  # the first N tasks (fixed subset)
    gsm8k_problems: int = 20
    gsm8k_source: str = "package"
    translation: str | None = None  # path to a jsonl with "en"/"fr", "hub", or None (skip)
    translation_pairs: int = 50
    max_new_tokens: int = 384
    batch_size: int = 8


@dataclass
class SuiteResult:
    scores: dict[str, float | None]
    per_item: dict[str, list[float]] = field(default_factory=dict)


def _greedy(loaded: Any, prompts: list[Any], config: ForgettingConfig, label: str,
            max_new_tokens: int | None = None) -> list[str]:
    return greedy(loaded, prompts, max_new_tokens or config.max_new_tokens, label, config.batch_size).first


def coding(loaded: Any, tasks: list[CodeTask], config: ForgettingConfig,
           label: str = "HumanEval (greedy)") -> list[float]:
    """Pass (1.0) or fail per task: the project's chat request (:func:`code_prompt`), a free reply, the program
    extracted from it (:func:`extract_code`) and run in the sandbox. The reply is not prefilled with the
    function's signature: a small chat model given an open code block after the docstring tends to close it at
    once (SmolLM2-135M-Instruct returned 40 empty bodies out of 40 that way)."""
    replies = _greedy(loaded, [code_prompt(t) for t in tasks], config, label)
    return [float(r.passed) for r in check_programs(tasks, [extract_code(r, t) for r, t in zip(replies, tasks)])]


def math(loaded: Any, problems: list[MathTask], config: ForgettingConfig) -> list[float]:
    prompts = [math_prompt(p.question) for p in problems]
    replies = _greedy(loaded, prompts, config, "GSM8K (greedy)")
    return [float(is_correct(r, p.answer)) for r, p in zip(replies, problems)]


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


def translation(loaded: Any, pairs: list[tuple[str, str]], config: ForgettingConfig) -> float:
    prompts = [[{"role": "user", "content": f"Translate into French. Reply with the translation only.\n\n{en}"}]
               for en, _ in pairs]
    replies = [r.strip().split("\n")[0]
               for r in _greedy(loaded, prompts, config, "En->Fr (greedy)", max_new_tokens=128)]
    return bleu(replies, [fr for _, fr in pairs])


def run_suite(loaded: Any, config: ForgettingConfig = ForgettingConfig()) -> SuiteResult:
    """All three measurements on the model as it is now."""
    code_items = coding(loaded, load_humaneval(limit=config.humaneval_tasks), config)
    math_items = math(loaded, load_gsm8k(config.gsm8k_source, limit=config.gsm8k_problems), config)
    bleu_score = None
    if config.translation:
        bleu_score = translation(loaded, load_translation_pairs(config.translation, config.translation_pairs), config)
    return SuiteResult(
        {"humaneval_pass@1": sum(code_items) / len(code_items), "gsm8k_accuracy": sum(math_items) / len(math_items),
         "en_fr_bleu": bleu_score},
        {"humaneval_pass@1": code_items, "gsm8k_accuracy": math_items},
    )


def compare(before: SuiteResult, after: SuiteResult) -> list[dict[str, Any]]:
    """Rows per measurement: before, after, change with its 95% paired-bootstrap interval, and the one-sided
    p-value of "after is worse than before" (a significant drop is forgetting)."""
    rows = []
    for name, b in before.scores.items():
        a = after.scores.get(name)
        row: dict[str, Any] = {"task": name, "before": b, "after": a,
                               "change": None if a is None or b is None else a - b}
        if name in before.per_item and name in after.per_item:
            change = paired_bootstrap(before.per_item[name], after.per_item[name])
            drop = paired_bootstrap(after.per_item[name], before.per_item[name])  # H0: no drop
            row.update(ci_low=change.low, ci_high=change.high, p_drop=drop.p_value)
        rows.append(row)
    return rows
