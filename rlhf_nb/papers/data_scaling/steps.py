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
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from rlhf_nb.lm.evaluate import sample
from rlhf_nb.lm.models import Loaded
from rlhf_nb.papers.data_scaling.params import Params
from rlhf_nb.rewards.code import code_prompt, data_id, evaluate_samples, extract_code
from rlhf_nb.rewards.judge import LogProbJudge
from rlhf_nb.rewards.math import clean_solution, is_correct, math_prompt
from rlhf_nb.tasks.data import CodeTask, MathTask, PreferencePair, load_gsm8k, load_humaneval, load_humaneval_plus


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
    rtv: list[float] = field(default_factory=list)  # the verifier: math the gold itself, code HumanEval's base tests
    genrm_gt: list[float] | None = None  # P(Yes), reference-guided
    genrm: list[float] | None = None  # P(Yes), no reference
    bt: list[float] | None = None  # the BT RM's reward, fitted on other items (cross-fitted)


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
            r.rtv = list(r.gold)
        else:
            code_jobs += [{"task_id": r.id, "solution": extract_code(x, items.code[r.id])} for x in r.responses]
    if code_jobs:
        plus = items.code_source is not None
        rows = evaluate_samples(code_jobs, list(items.code.values()), dataset="humaneval+" if plus else "humaneval",
                                data_id=data_id(items.code_source) if plus else "package", progress="tests")
        passed = iter((float(row["passed"]), float(row.get("base_passed", row["passed"]))) for row in rows)
        for r in records:
            if r.domain == "code":
                r.gold, r.rtv = (list(x) for x in zip(*(next(passed) for _ in r.responses)))
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
    return [replace(r, genrm_gt=scored[id(r)][0], genrm=scored[id(r)][1]) if id(r) in scored else replace(r)
            for r in records]


# ----------------------------------------------------------------------------------------------
# part 2 without training: the BT RM's rewards for best-of-n, cross-fitted by item
# ----------------------------------------------------------------------------------------------


def right_wrong(responses: list[str], gold: list[float]) -> list[tuple[str, str]]:
    """Every (right, wrong) pair of one item's responses by the gold, each distinct text once."""
    right = list(dict.fromkeys(x for x, g in zip(responses, gold) if g > 0.5))
    wrong = list(dict.fromkeys(x for x, g in zip(responses, gold) if g <= 0.5))
    return [(c, x) for c in right for x in wrong]


def bt_scores(policy: Loaded, items: Items, records: list[Record], P: Params) -> tuple[list[Record], dict[str, Any]]:
    """Every judged record's responses scored by a linear BT RM on the policy's frozen features that never saw that
    record's item: the judged records split by item into ``bestofn.folds`` folds, each scored by a head fitted on
    the other folds' right-vs-wrong pairs (the gold labels them). Returns new records and, for the results, the
    held-out pairs' outcomes (1: the right response scored higher), a length-only rule's on the same pairs, and each
    pair's item (to resample by item)."""
    from rlhf_nb.train.reward import fit_linear_bt, length_outcomes

    messages = {(it.domain, it.id): it.messages for it in items.items}
    judged = [r for r in records if r.genrm_gt is not None]
    order = list(range(len(judged)))
    random.Random(P.seed + 5).shuffle(order)
    fold = {i: k % P.bestofn.folds for k, i in enumerate(order)}
    featurize = P.bestofn.bt.featurizer(policy, batch_size=8)
    features = {}
    for r in judged:  # one pass per text; the featurizer caches
        features[id(r)] = featurize([messages[(r.domain, r.id)]] * len(r.responses), r.responses)
    info: dict[str, Any] = {"folds": P.bestofn.folds, "train_pairs": [], "test_outcomes": [], "length_outcomes": [],
                            "clusters": [], "features": "policy"}
    scored: dict[int, list[float]] = {}
    for k in range(P.bestofn.folds):
        train = [(r, c, x) for i, r in enumerate(judged) if fold[i] != k for c, x in right_wrong(r.responses, r.gold)]
        info["train_pairs"].append(len(train))
        if not train:
            continue
        chosen = np.stack([features[id(r)][r.responses.index(c)] for r, c, _ in train])
        rejected = np.stack([features[id(r)][r.responses.index(x)] for r, _, x in train])
        bt = fit_linear_bt(chosen, rejected, l2=P.bestofn.bt.l2)
        for i, r in enumerate(judged):
            if fold[i] != k:
                continue
            scores = bt.score_features(features[id(r)])
            scored[id(r)] = [float(v) for v in scores]
            held = [PreferencePair(r.id, "", c, x) for c, x in right_wrong(r.responses, r.gold)]
            for p in held:
                a, b = scores[r.responses.index(p.chosen)], scores[r.responses.index(p.rejected)]
                info["test_outcomes"].append(1.0 if a > b else 0.5 if a == b else 0.0)
            info["length_outcomes"] += length_outcomes(held).tolist()
            info["clusters"] += [f"{r.domain}/{r.id}"] * len(held)
    return [replace(r, bt=scored.get(id(r))) for r in records], info


# ----------------------------------------------------------------------------------------------
# close pairs built on purpose (Figs. 10-11)
# ----------------------------------------------------------------------------------------------


@dataclass
class Pair(Record):
    """A right response and the same response with one token changed so that the checker marks it wrong."""

    edit: str = ""


def close_pairs(items: Items, records: list[Record], P: Params) -> list[Pair]:
    """Up to ``close_pairs.per_item`` right responses per item (distinct, seeded), each with one token changed so the
    gold marks it wrong (:mod:`edits`): math by the checker, code by the tests in the sandbox (the first of
    ``close_pairs.tries`` mutants that fails them). A judged record's scores of the right response are kept; the rest
    are left for :func:`score_pairs`."""
    from rlhf_nb.papers.data_scaling.edits import break_math, code_mutants

    C = P.close_pairs
    rng = random.Random(P.seed + 11)
    chosen: list[tuple[Record, int]] = []
    for r in records:
        if not any(g > 0.5 for g in r.gold) or (r.genrm_gt is None and not (C.all_right and all(r.gold))):
            continue
        first: dict[str, int] = {}  # each distinct right text once
        for i, (x, g) in enumerate(zip(r.responses, r.gold)):
            if g > 0.5:
                first.setdefault(x, i)
        right = list(first.values())
        chosen += [(r, i) for i in sorted(rng.sample(right, min(C.per_item, len(right))))]

    def pair(r: Record, i: int, text: str, change: str, rtv: float) -> Pair:
        def keep(scores: list[float] | None) -> list[float | None]:
            return [scores[i] if scores is not None else None, None]

        return Pair(r.domain, r.id, [r.responses[i], text], [r.tokens[i]] * 2, [r.finished[i]] * 2, [1.0, 0.0],
                    [r.rtv[i], rtv], keep(r.genrm_gt), keep(r.genrm), edit=change)

    out: list[Pair] = []
    jobs: list[tuple[Record, int, Any]] = []
    for r, i in chosen:
        if r.domain == "math":
            edit = break_math(r.responses[i], items.math[r.id].answer)
            if edit is not None:
                out.append(pair(r, i, edit.text, edit.change, 0.0))
        else:
            jobs += [(r, i, e) for e in code_mutants(r.responses[i], items.code[r.id].entry_point, rng, C.tries)]
    if jobs:
        plus = items.code_source is not None
        rows = evaluate_samples([{"task_id": r.id, "solution": extract_code(e.text, items.code[r.id])}
                                 for r, _, e in jobs], list(items.code.values()),
                                dataset="humaneval+" if plus else "humaneval",
                                data_id=data_id(items.code_source) if plus else "package", progress="mutants")
        done: set[tuple[int, int]] = set()
        for (r, i, e), row in zip(jobs, rows):
            if not row["passed"] and (id(r), i) not in done:
                done.add((id(r), i))
                out.append(pair(r, i, e.text, e.change, float(row.get("base_passed", row["passed"]))))
    return out


def score_pairs(judge: LogProbJudge, items: Items, pairs: list[Pair], chunk: int = 32) -> list[Pair]:
    """Both GenRM rewards for every response of ``pairs`` not scored yet. Returns new pairs."""
    from tqdm.auto import tqdm

    by_id = {(it.domain, it.id): it for it in items.items}
    todo = [(k, j) for k, p in enumerate(pairs) for j in range(2) if p.genrm_gt[j] is None or p.genrm[j] is None]
    gt = {k: list(p.genrm_gt) for k, p in enumerate(pairs)}
    plain = {k: list(p.genrm) for k, p in enumerate(pairs)}
    with tqdm(total=len(todo), desc="GenRM on the close pairs", unit="response") as bar:
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            its = [by_id[(pairs[k].domain, pairs[k].id)] for k, _ in part]
            texts = [pairs[k].responses[j] for k, j in part]
            with_gt = judge.reference_scores([it.question for it in its], texts, [it.reference for it in its])
            without = judge.scores([it.question for it in its], texts)
            for (k, j), a, b in zip(part, with_gt, without):
                gt[k][j], plain[k][j] = float(a), float(b)
            bar.update(len(part))
    return [replace(p, genrm_gt=gt[k], genrm=plain[k]) for k, p in enumerate(pairs)]


def as_dicts(records: list[Record]) -> list[dict[str, Any]]:
    from dataclasses import asdict

    return [asdict(r) for r in records]
