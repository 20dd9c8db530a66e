"""Preference pairs that can be built offline, without human or GPT-4 labels.

Four sources, each a list of :class:`~rlhf_nb.data.PreferencePair` tagged with its ``source``:

* ``hh`` - Anthropic HH-RLHF pairs as published (human labels), from a local file or the hub;
* ``ultrafeedback`` - UltraFeedback (binarized) pairs (GPT-4 labels), hub or local file;
* ``reference`` - an instruction with a reference answer (AlpacaEval ships GPT-4-turbo's), the reference
  preferred to the policy's own answer: a proxy for "helpful", cheap to build and clearly labelled
  as a proxy, since a strong model's answer is usually, not always, the better one;
* ``math`` / ``code`` - verifier-labelled: a GSM8K reference solution (correct by construction) preferred
  to the policy's own answer when the math checker says that answer is wrong; a HumanEval canonical
  solution preferred to the policy's own program when the sandbox says it fails. Own answers that
  are right give no pair (there is nothing wrong to prefer against).

``max_chars`` keeps only pairs whose prompt plus longer response fit a budget: on CPU every token
costs, and trl's trainers drop (not truncate) sequences longer than ``max_length``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .data import CodeTask, MathTask, PreferencePair, Prompt, load_hh_rlhf, load_ultrafeedback
from .generation import SamplingConfig, generate
from .rewards.code import check_programs, code_prompt, extract_code
from .rewards.math import clean_solution, is_correct, math_prompt
from .sandbox import Limits


def pair_chars(pair: PreferencePair) -> int:
    """Prompt characters plus the longer response's."""
    return sum(len(m["content"]) for m in pair.prompt) + max(len(pair.chosen), len(pair.rejected))


def fits(pairs: Sequence[PreferencePair], max_chars: int | None) -> list[PreferencePair]:
    return [p for p in pairs if max_chars is None or pair_chars(p) <= max_chars]


def reference_fits(prompt: Prompt, max_chars: int) -> bool:
    """Would a reference-vs-own pair for this instruction fit ``max_chars`` (own answer capped elsewhere)?"""
    return len(prompt.text) + len(prompt.reference or "") <= max_chars


def code_task_fits(task: CodeTask, max_chars: int) -> bool:
    """Would a code pair (request with the stub, canonical solution with the stub) fit ``max_chars``?"""
    return 2 * len(task.prompt) + len(task.canonical_solution) + 200 <= max_chars


def fits_tokens(pairs: Sequence[PreferencePair], tokenizer: Any, max_length: int) -> list[PreferencePair]:
    """Pairs whose longer conversation (chat template applied) has at most ``max_length`` tokens."""
    def n_tokens(pair: PreferencePair, reply: str) -> int:
        text = tokenizer.apply_chat_template(pair.prompt + [{"role": "assistant", "content": reply}], tokenize=False)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return [p for p in pairs if max(n_tokens(p, p.chosen), n_tokens(p, p.rejected)) <= max_length]


def hh_pairs(source: str, n: int, seed: int, max_chars: int | None = None, subset: str = "harmless-base",
             split: str = "test") -> list[PreferencePair]:
    """``n`` HH-RLHF pairs (seeded shuffle) that fit ``max_chars``."""
    return fits(load_hh_rlhf(source, subset=subset, split=split, seed=seed), max_chars)[:n]


def ultrafeedback_pairs(source: str, n: int, seed: int, max_chars: int | None = None) -> list[PreferencePair]:
    return fits(load_ultrafeedback(source, seed=seed), max_chars)[:n]


def own_answers(loaded: Any, prompts: Sequence[Any], max_new_tokens: int, batch_size: int = 16, seed: int = 0,
                progress: bool | str = "own answers") -> list[str]:
    """The policy's greedy answer to each prompt (chat messages or strings)."""
    config = SamplingConfig(n=1, temperature=0.0, max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed)
    return [per[0].text for per in generate(loaded.model, loaded.tokenizer, list(prompts), config, progress=progress)]


def reference_pairs(prompts: Sequence[Prompt], answers: Sequence[str]) -> list[PreferencePair]:
    """Reference answer preferred to the policy's own answer (prompts without a reference are skipped)."""
    return [PreferencePair(f"reference-{p.id}", [{"role": "user", "content": p.text}], p.reference, a, "reference")
            for p, a in zip(prompts, answers) if p.reference and a.strip() != p.reference.strip()]


def math_pairs(tasks: Sequence[MathTask], answers: Sequence[str]) -> list[PreferencePair]:
    """Reference solution preferred to an own answer the math checker marks wrong."""
    pairs = []
    for task, answer in zip(tasks, answers):
        if task.solution and not is_correct(answer, task.answer):
            pairs.append(PreferencePair(f"math-{task.id}", math_prompt(task.question), clean_solution(task.solution),
                                        answer, "math"))
    return pairs


def code_pairs(tasks: Sequence[CodeTask], answers: Sequence[str], limits: Limits = Limits()) -> list[PreferencePair]:
    """Canonical solution preferred to an own reply whose program fails the task's tests in the sandbox."""
    verdicts = check_programs(list(tasks), [extract_code(a, t) for a, t in zip(answers, tasks)], limits)
    return [PreferencePair(f"code-{t.task_id}", code_prompt(t), f"```python\n{t.prompt}{t.canonical_solution}```", a, "code")
            for t, a, v in zip(tasks, answers, verdicts) if not v.passed]


def prompt_of(item: Prompt | MathTask | CodeTask) -> list[dict[str, str]]:
    """The chat request for a reference prompt, a math problem or a code task."""
    if isinstance(item, Prompt):
        return [{"role": "user", "content": item.text}]
    if isinstance(item, MathTask):
        return math_prompt(item.question)
    return code_prompt(item)
