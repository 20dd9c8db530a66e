"""Steps of ``notebooks/04_precise_rlaif.ipynb`` (Precise RLAIF: sentence-level AI feedback for DPO).

1. **Chosen answers.** The DPO-stage policy answers each training prompt ``answers.n`` times; the first answer that
   ended on its own and has at least ``min_sentences`` degradable sentences is the chosen side. The prompts carry
   verifiable instructions (:mod:`rlhf_nb.tasks.gold`), but the gold is never used to build training data: it only
   judges the policies on held-out prompts (and checks the judge).
2. **Sentence-level degradation.** For up to ``per_answer`` different sentences of a chosen answer, an instruct
   model (the *degrader*) rewrites that sentence to be worse under a principle; the rejected side is the chosen
   answer with that one sentence replaced, every other byte unchanged (verified by re-splitting). Filters, each
   counted: the rewrite differs; its normalised edit distance from the sentence is at least ``min_edit``; the
   result still splits into the same sentences but one; the judge prefers the original (both orders), a filter that
   applies only where the judge was validated against the gold first (``degrade.judge_filter``).
3. **Same-budget sequence-level control.** Pairs of two whole answers of the same policy to the same prompts,
   ordered by the same judge (both orders), as many as the Precise arm has: DPO on whole-response AI feedback,
   so a difference between the arms is sentence-level precision, not "more DPO".
4. **Training and evaluation.** Each arm runs DPO with LoRA from the policy ``seeds`` times; every policy's greedy
   replies to the held-out prompts are scored by the gold (IFEval's checkers). The judge's agreement with the gold
   is measured on the sequence-level pairs whose gold scores differ.
5. **Forgetting.** HumanEval pass@1, GSM8K accuracy and En->Fr BLEU, greedy, before and after (trained policies
   only on tasks where the start policy is off the floor).
"""

from __future__ import annotations

import gc
import random
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from rlhf_nb.lm.evaluate import greedy, sample
from rlhf_nb.lm.generation import SamplingConfig
from rlhf_nb.lm.models import Loaded, load, merged
from rlhf_nb.papers.precise_rlaif.judging import judge_agreement, judge_premise
from rlhf_nb.papers.precise_rlaif.params import PRINCIPLES, Params
from rlhf_nb.rewards.forgetting import Scored
from rlhf_nb.rewards.judge import PAIRWISE_TEMPLATES, LogProbJudge
from rlhf_nb.tasks import gold
from rlhf_nb.tasks.data import PreferencePair, load_gsm8k, load_humaneval
from rlhf_nb.tasks.gold import GoldSamples, sample_with_gold  # noqa: F401 - used by the notebook

# ----------------------------------------------------------------------------------------------
# sentences
# ----------------------------------------------------------------------------------------------

_MARKER = re.compile(r"\s*(?:[-*\u2022]|\d+[.)]|#+)?\s*")  # list markers and heading marks stay outside a sentence
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]\u201d*]*\s+(?=\S)")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence: lines are split at sentence ends; list markers are not part of a sentence."""
    spans = []
    for line in re.finditer(r"[^\n]+", text):
        start, end = line.span()
        start = _MARKER.match(text, start, end).end()
        for boundary in _BOUNDARY.finditer(text, start, end):
            piece_end = boundary.start() + len(boundary.group().rstrip())
            if piece_end > start:
                spans.append((start, piece_end))
            start = boundary.end()
        stripped = end - (len(text[start:end]) - len(text[start:end].rstrip()))
        if stripped > start:
            spans.append((start, stripped))
    return spans


def sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in sentence_spans(text)]


def is_prose(sentence: str, min_words: int) -> bool:
    """A sentence worth degrading: ``min_words`` words or more, ends like a sentence, mostly letters (not code)."""
    letters = sum(c.isalpha() or c.isspace() for c in sentence)
    return (len(sentence.split()) >= min_words and sentence.rstrip("\"')\u201d*").endswith((".", "!", "?"))
            and letters >= 0.8 * len(sentence))


def degradable(text: str, min_words: int) -> list[int]:
    """Indices (into :func:`sentence_spans`) of prose sentences long enough to degrade."""
    return [i for i, s in enumerate(sentences(text)) if is_prose(s, min_words)]


def splice(text: str, index: int, new: str) -> str:
    """``text`` with sentence ``index`` replaced by ``new`` (every other byte unchanged)."""
    a, b = sentence_spans(text)[index]
    return text[:a] + new + text[b:]


def only_one_changed(original: str, edited: str, index: int) -> bool:
    """Verification of a splice: the edited text splits into as many sentences, all byte-identical but ``index``."""
    before, after = sentences(original), sentences(edited)
    return len(before) == len(after) and all(x == y for i, (x, y) in enumerate(zip(before, after)) if i != index) \
        and before[index] != after[index]


def clean_rewrite(text: str) -> str:
    """The degrader's reply -> one sentence: the first non-empty line, without a label or quotes, its first sentence."""
    line = next((x.strip() for x in text.splitlines() if x.strip()), "")
    line = re.sub(r"^\W*(?:rewritten|revised|new|worse|degraded)?\s*(?:sentence|version)?\s*(?:\*\*)?\s*:\s*(?:\*\*)?",
                  "", line, flags=re.IGNORECASE)
    line = line.strip().strip('"\u201c\u201d').strip()
    first = sentences(line)
    return first[0].strip('"\u201c\u201d').strip() if first else ""


# ----------------------------------------------------------------------------------------------
# 1. prompts and chosen answers
# ----------------------------------------------------------------------------------------------


@dataclass
class Prompts:
    train: list[gold.IFPrompt]
    eval: list[gold.IFPrompt]

    def ids(self) -> dict[str, list[str]]:
        return {"train": [p.id for p in self.train], "eval": [p.id for p in self.eval]}


def make_prompts(P: Params) -> Prompts:
    sizes = {"train": P.prompts.train, "eval": P.prompts.eval}
    splits = gold.split_by_base(gold.synthetic_prompts(sum(sizes.values()), seed=P.seed), sizes, seed=P.seed)
    return Prompts(splits["train"], splits["eval"])


@dataclass
class Chosen:
    prompt_index: int  # into Prompts.train
    sample_index: int
    text: str


def choose_answers(answers: GoldSamples, P: Params) -> list[Chosen]:
    """Per training prompt, the first finished answer with ``min_sentences`` degradable sentences (gold unused)."""
    out = []
    for i, (texts, finished) in enumerate(zip(answers.texts, answers.finished)):
        for j, (text, done) in enumerate(zip(texts, finished)):
            if done and len(degradable(text, P.degrade.min_words)) >= P.min_sentences:
                out.append(Chosen(i, j, text))
                break
    return out


# ----------------------------------------------------------------------------------------------
# 2. sentence-level degradation
# ----------------------------------------------------------------------------------------------

DEGRADE = ("Here is a request and one sentence from an answer to it.\n\n[Request]\n{request}\n\n[Sentence]\n"
           "{sentence}\n\nRewrite the sentence so that it is worse: {principle}. Keep it about as long. Reply with the "
           "rewritten sentence only.")

RULES = ("rewritten", "a sentence", "changed", "edited enough", "one sentence changed")  # rule filters, in order
STAGES = ("candidates", *RULES, "judge prefers original")
_META = re.compile(r"\b(?:rewrit|sentence|worse|principle)", re.IGNORECASE)  # a reply about the task, not a rewrite


@dataclass
class Degraded:
    """Every candidate degradation with the filter it stopped at (``kept``: passed them all)."""

    principle: str
    records: list[dict[str, Any]]  # prompt_index, sentence, original, rewrite, edit, p_original, stage
    pairs: list[PreferencePair]
    judged: bool = True  # False: the judge filter was off (its stage is skipped; p_original is None)

    @property
    def stages(self) -> tuple[str, ...]:
        """The filters applied, in order (the last one's survivors are the pairs)."""
        return STAGES if self.judged else STAGES[:-1]

    def yields(self) -> list[dict[str, Any]]:
        """How many candidates reached each applied stage."""
        reached = [STAGES.index(r["stage"]) for r in self.records]
        return [{"principle": self.principle, "stage": s, "count": sum(x >= k for x in reached)}
                for k, s in enumerate(self.stages)]


def degrade(degrader: Loaded, judge: LogProbJudge | None, prompts: Prompts, chosen: list[Chosen], principle: str,
            P: Params, seed: int) -> Degraded:
    """Up to ``per_answer`` one-sentence degradations of each chosen answer under ``principle``, filtered (by the
    judge too, unless ``judge`` is None: see :func:`judge_filter`)."""
    from rapidfuzz.distance import Levenshtein

    rng = random.Random(seed)
    jobs = []
    for c in chosen:
        options = degradable(c.text, P.degrade.min_words)
        for index in sorted(rng.sample(options, min(P.degrade.per_answer, len(options)))):
            jobs.append((c, index))
    requests = [[{"role": "user", "content": DEGRADE.format(request=prompts.train[c.prompt_index].text,
                                                            sentence=sentences(c.text)[i],
                                                            principle=PRINCIPLES[principle])}] for c, i in jobs]
    config = SamplingConfig(n=1, temperature=P.degrade.temperature, max_new_tokens=P.degrade.max_new_tokens, seed=seed)
    replies = sample(degrader, requests, config, f"degrading ({principle})").first if jobs else []
    records = []
    for (c, index), reply in zip(jobs, replies):
        original = sentences(c.text)[index]
        rewrite = clean_rewrite(reply)
        edit = Levenshtein.normalized_distance(original, rewrite) if rewrite else 0.0
        checks = zip(RULES, [bool(rewrite),
                             is_prose(rewrite, min(3, P.degrade.min_words)) and not _META.search(rewrite),
                             rewrite != original, edit >= P.degrade.min_edit,
                             only_one_changed(c.text, splice(c.text, index, rewrite), index)])
        stage = STAGES[0]
        for name, passed in checks:
            if not passed:
                break
            stage = name
        records.append({"prompt_index": c.prompt_index, "sentence": index, "original": original, "rewrite": rewrite,
                        "edit": round(edit, 4), "p_original": None, "stage": stage})
    survivors = [r for r in records if r["stage"] == RULES[-1]]
    chosen_text = {c.prompt_index: c.text for c in chosen}
    if survivors and judge is not None:
        probs = judge.prefer_many([prompts.train[r["prompt_index"]].text for r in survivors],
                                  [chosen_text[r["prompt_index"]] for r in survivors],
                                  [splice(chosen_text[r["prompt_index"]], r["sentence"], r["rewrite"]) for r in survivors])
        for r, p in zip(survivors, probs):
            r["p_original"] = round(float(p), 4)
            if p > 0.5 + P.degrade.judge_margin:
                r["stage"] = STAGES[-1]
    degraded = Degraded(principle, records, [], judged=judge is not None)
    degraded.pairs = [PreferencePair(f"{prompts.train[r['prompt_index']].id}-s{r['sentence']}",
                                     prompts.train[r["prompt_index"]].messages(), chosen_text[r["prompt_index"]],
                                     splice(chosen_text[r["prompt_index"]], r["sentence"], r["rewrite"]),
                                     f"precise-{principle}")
                      for r in records if r["stage"] == degraded.stages[-1]]
    return degraded


def judge_of(loaded: Loaded, question: str = "instructions",
             combine: Literal["probability", "log-odds"] = "probability") -> LogProbJudge:
    """The LLM judge: P(A better) from the log-probs of its one-letter answer, both orders averaged (``combine``:
    their probabilities or their log-odds), asked ``question`` (a key of :data:`PAIRWISE_TEMPLATES`)."""
    return LogProbJudge(loaded.model, loaded.tokenizer, batch_size=16, pairwise=PAIRWISE_TEMPLATES[question],
                        combine=combine)


# ----------------------------------------------------------------------------------------------
# 3. the same-budget sequence-level control
# ----------------------------------------------------------------------------------------------


@dataclass
class SequencePairs:
    pairs: list[PreferencePair]
    judged: list[dict[str, Any]]  # per pair: prompt_index, a, b, p_a, gold_a, gold_b (the judge's validation data)
    skipped: str = ""  # why the control was not built (then no pairs)


def sequence_pairs(judge: LogProbJudge, prompts: Prompts, answers: GoldSamples, precise: Degraded, P: Params,
                   seed: int, judge_filter: dict[str, Any] | None = None) -> SequencePairs:
    """Pairs of two whole answers to the same prompts, as many per prompt as the Precise arm has (topped up from
    other training prompts where a prompt has too few), ordered by the judge (both orders).

    None (and no judge call) where ``P.sequence_control`` is false, or is ``if-validated`` and ``judge_filter`` (from
    :func:`judge_filter`) says the judge failed its validation: pairs ordered by a judge at chance would train the
    control on noise, and R1c's premise fails whatever the arms score, so their training would decide nothing."""
    if P.sequence_control is False:
        return SequencePairs([], [], "sequence_control is false")
    if P.sequence_control == "if-validated" and judge_filter is not None and not judge_filter["validated"]:
        return SequencePairs([], [], f"the judge that would order its pairs failed its validation "
                                     f"({judge_filter['detail']})")
    rng = random.Random(seed)
    want: dict[int, int] = {}
    for pair in precise.pairs:
        index = next(i for i, p in enumerate(prompts.train) if pair.id.startswith(p.id + "-s"))
        want[index] = want.get(index, 0) + 1
    options: dict[int, list[tuple[int, int]]] = {}
    for i, (texts, finished) in enumerate(zip(answers.texts, answers.finished)):
        keep = [j for j in range(len(texts)) if finished[j]]
        candidates = [(a, b) for x, a in enumerate(keep) for b in keep[x + 1:] if texts[a] != texts[b]]
        rng.shuffle(candidates)
        options[i] = candidates
    picked = []
    for i, k in sorted(want.items()):
        picked += [(i, ab) for ab in options.get(i, [])[:k]]
        options[i] = options.get(i, [])[k:]
    short = len(precise.pairs) - len(picked)
    leftovers = [(i, ab) for i, rest in sorted(options.items()) for ab in rest]
    rng.shuffle(leftovers)
    picked += leftovers[:max(0, short)]
    if not picked:
        return SequencePairs([], [])
    texts = answers.texts
    probs = judge.prefer_many([prompts.train[i].text for i, _ in picked], [texts[i][a] for i, (a, _) in picked],
                              [texts[i][b] for i, (_, b) in picked])
    pairs, judged = [], []
    for (i, (a, b)), p in zip(picked, probs):
        first, second = (a, b) if p >= 0.5 else (b, a)
        pairs.append(PreferencePair(f"{prompts.train[i].id}-q{a}{b}", prompts.train[i].messages(), texts[i][first],
                                    texts[i][second], "sequence"))
        judged.append({"prompt_index": i, "a": a, "b": b, "p_a": round(float(p), 4), "gold_a": answers.gold[i][a],
                       "gold_b": answers.gold[i][b]})
    return SequencePairs(pairs, judged)


def validate_judge(judge: LogProbJudge, prompts: Prompts, answers: GoldSamples, limit: int, seed: int
                   ) -> list[dict[str, Any]]:
    """The judge on pairs of finished answers to the training prompts whose gold scores differ (up to ``limit``,
    seeded), both orders: the data of :func:`judge_agreement`, larger than the sequence-level pairs alone."""
    rng = random.Random(seed)
    candidates = [(i, a, b) for i, (texts, finished, gold_) in enumerate(zip(answers.texts, answers.finished,
                                                                                answers.gold))
                  for a in range(len(texts)) for b in range(a + 1, len(texts))
                  if finished[a] and finished[b] and gold_[a] != gold_[b]]
    picked = sorted(rng.sample(candidates, min(limit, len(candidates))))
    if not picked:
        return []
    texts = answers.texts
    probs = judge.prefer_many([prompts.train[i].text for i, _, _ in picked], [texts[i][a] for i, a, _ in picked],
                              [texts[i][b] for i, _, b in picked])
    return [{"prompt_index": i, "a": a, "b": b, "p_a": round(float(p), 4), "gold_a": answers.gold[i][a],
             "gold_b": answers.gold[i][b]} for (i, a, b), p in zip(picked, probs)]


def judge_filter(P: Params, validation: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether the degradations go through the judge filter: ``always``, ``never``, or (``if-validated``) only when
    the judge beats chance on ``validation`` by the same rule as R1c's premise (interval bottom above 50%)."""
    premise = judge_premise(judge_agreement(validation))
    mode = P.degrade.judge_filter
    applied = mode == "always" or (mode == "if-validated" and premise.holds)
    return {"mode": mode, "applied": applied, "validated": premise.holds, "detail": premise.detail}


# ----------------------------------------------------------------------------------------------
# 4. training and evaluation
# ----------------------------------------------------------------------------------------------


@dataclass
class Policy:
    """A policy's greedy replies to the held-out prompts, judged by the gold."""

    arm: str  # "start", "base", "precise-<principle>" or "sequence"
    seed: int | None
    gold: list[float]
    tokens: list[int]
    finished: list[bool]
    texts: list[str]
    pairs: int = 0  # DPO pairs it was trained on
    history: list[dict[str, float]] = field(default_factory=list)
    forgetting: dict[str, list[float]] = field(default_factory=dict)  # task -> per-item score
    forgetting_cut_off: dict[str, float] = field(default_factory=dict)  # task -> share of replies cut off at the cap
    translations: list[str] = field(default_factory=list)  # En->Fr hypotheses (for the corpus BLEU)
    dtype: str | None = None  # the weights' dtype the replies were sampled with (arms compared at one precision)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage: train, held-out, forgetting


def evaluate(loaded: Loaded, prompts: Prompts, P: Params, arm: str, seed: int | None) -> Policy:
    started = time.perf_counter()
    replies = greedy(loaded, [p.messages() for p in prompts.eval], P.eval_max_new_tokens, label=f"{arm}: held-out")
    texts = replies.first
    return Policy(arm, seed, gold.if_scores(prompts.eval, texts), [t[0] for t in replies.tokens],
                  [f[0] for f in replies.finished], texts, dtype=loaded.info.get("dtype"),
                  seconds={"held-out": round(time.perf_counter() - started, 1)})


def train_arm(P: Params, prompts: Prompts, pairs: list[PreferencePair], arm: str, seed: int, out_dir: str,
              forgetting: Forgetting | None = None) -> Policy:
    """DPO with LoRA from the policy on ``pairs``; the adapter folded in; evaluated (and the forgetting suite)."""
    import torch

    from rlhf_nb.train.dpo import train_dpo

    torch.manual_seed(seed)
    started = time.perf_counter()
    policy = load(P.policy, lora=P.lora.spec())
    result = train_dpo(policy, pairs, P.dpo.build(f"{out_dir}/{arm}_seed{seed}", seed=seed))
    policy = merged(policy)
    trained_in = time.perf_counter() - started
    ev = evaluate(policy, prompts, P, arm, seed)
    ev.pairs = len(pairs)
    ev.history = [{k: v for k, v in r.items() if isinstance(v, (int, float))} for r in result.history]
    ev.seconds["train"] = round(trained_in, 1)
    if forgetting is not None:
        ev = with_forgetting(ev, forgetting.run(policy, only=forgetting.tasks_off_floor, seconds=ev.seconds))
    del policy, result
    gc.collect()
    return ev


# ----------------------------------------------------------------------------------------------
# 5. forgetting
# ----------------------------------------------------------------------------------------------


class Forgetting:
    """HumanEval, GSM8K and En->Fr translation items, loaded once; measured by :mod:`rlhf_nb.rewards.forgetting` (the
    evaluator 01's alignment tax uses too)."""

    def __init__(self, P: Params):
        from rlhf_nb.tasks.parallel import load_en_fr

        F = P.forgetting
        self.P = F
        self.code = load_humaneval(F.humaneval, limit=F.humaneval_tasks) if F.humaneval_tasks else []
        self.math = load_gsm8k(F.gsm8k, limit=F.gsm8k_problems) if F.gsm8k_problems else []
        self.translation = (load_en_fr(F.translation, F.translation_pairs, seed=P.seed)
                            if F.translation and F.translation_pairs else [])
        self.tasks_off_floor: list[str] = []

    def run(self, loaded: Loaded, only: list[str] | None = None, seconds: dict[str, float] | None = None
            ) -> dict[str, Scored]:
        """Per task, per item in points: passed (0/100), correct (0/100), sentence BLEU (0-100); with which
        replies were cut off and the translations (for the corpus BLEU). ``seconds`` (optional) gets each task's
        wall time."""
        from rlhf_nb.rewards import forgetting

        todo = [t for t in ("humaneval", "gsm8k", "bleu") if only is None or t in only]
        tasks = {"humaneval": (self.code, lambda: _points(forgetting.coding(loaded, self.code, self.P.max_new_tokens))),
                 "gsm8k": (self.math, lambda: _points(forgetting.math(loaded, self.math, self.P.max_new_tokens))),
                 "bleu": (self.translation, lambda: forgetting.translation(loaded, self.translation, 96))}
        out: dict[str, Scored] = {}
        for task in todo:
            items, measure = tasks[task]
            if items:
                started = time.perf_counter()
                out[task] = measure()
                if seconds is not None:
                    seconds[f"forgetting {task}"] = round(time.perf_counter() - started, 1)
        return out


def _points(scored: Scored) -> Scored:
    return replace(scored, scores=[100.0 * x for x in scored.scores])


def with_forgetting(policy: Policy, measured: dict[str, Scored]) -> Policy:
    """``policy`` with the forgetting suite's scores, cut-off rates and translations."""
    return replace(policy, forgetting={t: m.scores for t, m in measured.items()},
                   forgetting_cut_off={t: m.cap_rate for t, m in measured.items()},
                   translations=measured["bleu"].outputs if "bleu" in measured else [])


# ----------------------------------------------------------------------------------------------
# everything, in order
# ----------------------------------------------------------------------------------------------


@dataclass
class Arms:
    start: Policy
    base: Policy | None = None
    trained: list[Policy] = field(default_factory=list)


def run_arms(P: Params, prompts: Prompts, start: Loaded, pair_sets: dict[str, list[PreferencePair]],
             forgetting: Forgetting, out_dir: str) -> Arms:
    """The start policy (and the base, where given) evaluated, then every arm trained ``seeds`` times."""
    first = evaluate(start, prompts, P, "start", None)
    arms = Arms(with_forgetting(first, forgetting.run(start, seconds=first.seconds)))
    floors = {"humaneval": (5.0, 95.0), "gsm8k": (5.0, 95.0), "bleu": (5.0, 100.0)}
    forgetting.tasks_off_floor = [t for t, (lo, hi) in floors.items()
                                  if t in arms.start.forgetting and lo <= float(np.mean(arms.start.forgetting[t])) <= hi]
    if P.base:
        base = load(P.base, baseline=True)  # compared with the start policy: at its (the training) precision
        arms.base = evaluate(base, prompts, P, "base", None)
        del base
        gc.collect()
    for s in range(P.seeds):
        for arm, pairs in pair_sets.items():
            if pairs:
                main = arm == f"precise-{P.degrade.principle}"
                arms.trained.append(train_arm(P, prompts, pairs, arm, P.seed + s, out_dir,
                                              forgetting if main else None))
    return arms
