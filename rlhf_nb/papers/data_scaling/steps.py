"""Steps of ``notebooks/03_data_scaling_rlhf.ipynb``, part 1: which reward tells close responses apart.

Shen et al. (2025, Figs. 10-11) bin prompts by the largest edit distance among five responses and find that a
generative reward model that reads the ground truth (GenRM with GT) separates responses that differ little better
than one that does not (GenRM without GT); rule-based verifiers (RTV) separate them best. Here, with no training:

1. **Items**: GSM8K test problems (gold: the final-answer checker; ground truth: the worked solution) and HumanEval
   tasks (gold: their tests, HumanEval+'s extra inputs too, in the sandbox; ground truth: the canonical solution).
   The gold is the RTV: it is what decides right from wrong, and no reward model is trained on it.
2. **Samples**: ``samples.n`` responses per item from the policy, each scored by the gold.
3. **Rewards**: the judge's P(Yes) that a response is correct and agrees with the reference (GenRM with GT), and
   P(Yes) that it is helpful and correct with no reference (GenRM without GT), from one-token log-probs
   (:class:`rlhf_nb.rewards.judge.LogProbJudge`); by default only for items whose responses are mixed (some right,
   some wrong), the only ones a within-prompt ranking against the gold is defined on.

Everything after that (edit distances, within-prompt AUCs against the gold, spreads) is computed from the saved
records alone, in ``readers.py``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from rlhf_nb.lm.evaluate import sample
from rlhf_nb.lm.models import Loaded
from rlhf_nb.papers.data_scaling.params import Params
from rlhf_nb.rewards.code import code_prompt, data_id, evaluate_samples, extract_code
from rlhf_nb.rewards.judge import LogProbJudge
from rlhf_nb.rewards.math import clean_solution, is_correct, math_prompt
from rlhf_nb.tasks.data import CodeTask, MathTask, load_gsm8k, load_humaneval, load_humaneval_plus


@dataclass(frozen=True)
class Item:
    """A prompt with a verifier and a reference answer."""

    domain: str  # "math" or "code"
    id: str
    question: str  # what the judge reads as the request
    reference: str  # the ground truth the reference-guided GenRM reads
    messages: list[dict[str, str]]  # what the policy is asked


@dataclass
class Record:
    """One item's responses, each with its gold score and both GenRM rewards."""

    domain: str
    id: str
    responses: list[str]
    tokens: list[int]
    finished: list[bool]
    gold: list[float]  # 1 correct / passed, 0 not
    genrm_gt: list[float] | None = None  # P(Yes), reference-guided
    genrm: list[float] | None = None  # P(Yes), no reference


@dataclass
class Items:
    items: list[Item]
    math: dict[str, MathTask]
    code: dict[str, CodeTask]
    code_source: str | None  # HumanEval+ source, or None for HumanEval's own tests


def make_items(P: Params) -> Items:
    """A seeded subset of GSM8K test problems and HumanEval(+) tasks."""
    rng = random.Random(P.seed)
    I = P.items
    math_tasks = load_gsm8k(I.gsm8k, "test") if I.math else []
    if I.code:
        code_tasks = load_humaneval_plus(I.humaneval_plus) if I.humaneval_plus else load_humaneval("package")
    else:
        code_tasks = []
    for name, pool, want in (("GSM8K", math_tasks, I.math), ("HumanEval", code_tasks, I.code)):
        if want > len(pool):
            raise ValueError(f"parameter 'items': {want} {name} items asked for, the source has {len(pool)}")
    math_tasks = rng.sample(math_tasks, I.math)
    code_tasks = rng.sample(code_tasks, I.code)
    items = [Item("math", t.id, t.question, clean_solution(t.solution) or t.answer, math_prompt(t.question))
             for t in math_tasks]
    items += [Item("code", t.task_id, f"Complete this Python function:\n{t.prompt}", t.prompt + t.canonical_solution,
                   code_prompt(t)) for t in code_tasks]
    return Items(items, {t.id: t for t in math_tasks}, {t.task_id: t for t in code_tasks},
                 I.humaneval_plus if I.code else None)


def sample_items(policy: Loaded, items: Items, P: Params) -> list[Record]:
    """``samples.n`` responses per item, each scored by the gold (math checker; tests in the sandbox)."""
    replies = sample(policy, [it.messages for it in items.items], P.samples.config(P.seed), "samples")
    records = [Record(it.domain, it.id, texts, tokens, finished, [])
               for it, texts, tokens, finished in zip(items.items, replies.texts, replies.tokens, replies.finished)]
    code_jobs = []
    for r in records:
        if r.domain == "math":
            r.gold = [float(is_correct(x, items.math[r.id].answer)) for x in r.responses]
        else:
            code_jobs += [{"task_id": r.id, "solution": extract_code(x, items.code[r.id])} for x in r.responses]
    if code_jobs:
        plus = items.code_source is not None
        rows = evaluate_samples(code_jobs, list(items.code.values()), dataset="humaneval+" if plus else "humaneval",
                                data_id=data_id(items.code_source) if plus else "package", progress="tests")
        passed = iter(float(row["passed"]) for row in rows)
        for r in records:
            if r.domain == "code":
                r.gold = [next(passed) for _ in r.responses]
    return records


def judge_of(loaded: Loaded) -> LogProbJudge:
    return LogProbJudge(loaded.model, loaded.tokenizer, batch_size=8)


def score(judge: LogProbJudge, items: Items, records: list[Record], chunk: int = 16,
          judged: str = "all") -> list[Record]:
    """Both GenRM rewards for the responses of every record (``judged="all"``) or of the mixed ones only (some right,
    some wrong: ``judged="mixed"``; the others keep ``None``), ``chunk`` items a call. Returns new records."""
    from tqdm.auto import tqdm

    by_id = {(it.domain, it.id): it for it in items.items}
    chosen = [r for r in records if judged == "all" or 0 < sum(r.gold) < len(r.gold)]
    scored: dict[int, tuple[list[float], list[float]]] = {}
    with tqdm(total=len(chosen), desc="GenRM with and without the reference", unit="item") as bar:
        for start in range(0, len(chosen), chunk):
            part = chosen[start : start + chunk]
            questions = [by_id[(r.domain, r.id)].question for r in part for _ in r.responses]
            references = [by_id[(r.domain, r.id)].reference for r in part for _ in r.responses]
            responses = [x for r in part for x in r.responses]
            with_gt = iter(float(x) for x in judge.reference_scores(questions, responses, references))
            without = iter(float(x) for x in judge.scores(questions, responses))
            for r in part:
                n = len(r.responses)
                scored[id(r)] = ([next(with_gt) for _ in range(n)], [next(without) for _ in range(n)])
            bar.update(len(part))
    return [Record(r.domain, r.id, r.responses, r.tokens, r.finished, r.gold, *scored.get(id(r), (None, None)))
            for r in records]


def as_dicts(records: list[Record]) -> list[dict[str, Any]]:
    from dataclasses import asdict

    return [asdict(r) for r in records]
