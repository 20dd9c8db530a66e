"""Steps of ``notebooks/04_precise_rlaif.ipynb`` (Precise RLAIF: sentence-level AI feedback for DPO).

1. **Chosen answers.** The DPO-stage policy answers each training prompt ``answers.n`` times; the chosen side is a
   finished answer with at least ``min_sentences`` degradable sentences (labeller ``gold``: the one with the highest
   gold, above 0; labeller ``judge``: the first, the gold unused).
2. **The judge** (labeller ``judge`` only), validated against the gold on pairs of training answers whose gold
   differs before it filters anything or orders anything.
3. **Sentence-level degradation.** For up to ``per_answer`` different sentences of a chosen answer, the sentence is
   rewritten worse, the rest of the answer byte for byte unchanged (verified by re-splitting): by an instruct model
   under a principle of the constitution (the paper's degrader; rule filters, each counted), and/or
   programmatically (:func:`rlhf_nb.tasks.gold.break_sentence`: one instruction the answer followed broken inside
   that sentence). Under labeller ``gold`` a pair is kept only where the gold falls (verified AI feedback); under
   ``judge``, where a validated judge prefers the original.
4. **Same-budget sequence-level control.** Pairs of two whole answers of the same policy to the same prompts,
   ordered by the same labeller (the gold: pairs whose gold differs; or the judge, both orders), as many as the
   main Precise arm has, so a difference between the arms is sentence-level precision, not "more DPO".
5. **Training and evaluation.** Each arm runs DPO with LoRA from the policy ``seeds`` times; every policy, the start
   included, is read alike (:func:`rlhf_nb.lm.models.reading`) for its greedy replies to the held-out prompts, scored
   by the gold. Forgetting: HumanEval pass@1, GSM8K accuracy and En->Fr BLEU, greedy, before and after (trained
   policies only on tasks where the start policy is off the floor).
"""

from __future__ import annotations

import gc
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from rlhf_nb.lm.evaluate import greedy, sample
from rlhf_nb.lm.generation import SamplingConfig
from rlhf_nb.lm.models import Loaded, load, read_precision, reading
from rlhf_nb.notebook.experiment import run_now
from rlhf_nb.papers.precise_rlaif.judging import judge_agreement, judge_premise
from rlhf_nb.papers.precise_rlaif.params import PRINCIPLES, Params
from rlhf_nb.papers.precise_rlaif.readers import GOLD_STAGE, JUDGE_STAGE, PROGRAMMATIC_STAGES, RULES, STAGES
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
    splits = gold.split_by_base(gold.synthetic_prompts(sum(sizes.values()), seed=P.seed, system=P.system), sizes,
                                seed=P.seed)
    return Prompts(splits["train"], splits["eval"])


@dataclass
class Chosen:
    prompt_index: int  # into Prompts.train
    sample_index: int
    text: str


def choose_answers(answers: GoldSamples, P: Params) -> list[Chosen]:
    """Per training prompt, the chosen side: among finished answers with ``min_sentences`` degradable sentences, the
    first (labeller 'judge': the gold is not used to build data) or the one with the highest gold, if above 0
    (labeller 'gold': a degradation must lower the gold, so the answer must follow something)."""
    out = []
    for i, (texts, finished, scores) in enumerate(zip(answers.texts, answers.finished, answers.gold)):
        ok = [j for j, (text, done) in enumerate(zip(texts, finished))
              if done and len(degradable(text, P.degrade.min_words)) >= P.min_sentences]
        if P.labeller == "gold":
            ok = sorted((j for j in ok if scores[j] > 0), key=lambda j: -scores[j])
        if ok:
            out.append(Chosen(i, ok[0], texts[ok[0]]))
    return out


# ----------------------------------------------------------------------------------------------
# 2. sentence-level degradation
# ----------------------------------------------------------------------------------------------

DEGRADE = ("Here is a request and one sentence from an answer to it.\n\n[Request]\n{request}\n\n[Sentence]\n"
           "{sentence}\n\nRewrite the sentence so that it is worse: {principle}. Keep it about as long. Reply with the "
           "rewritten sentence only.")

_META = re.compile(r"\b(?:rewrit|sentence|worse|principle)", re.IGNORECASE)  # a reply about the task, not a rewrite


@dataclass
class Degraded:
    """Every candidate degradation with the filter it stopped at (the last stage's survivors are the pairs)."""

    principle: str  # a principle of the constitution, or "programmatic"
    records: list[dict[str, Any]]  # prompt_index, sentence, original, rewrite, edit, p_original, gold, stage
    pairs: list[PreferencePair]
    judged: bool = True  # the judge filter ran (its stage applies; p_original filled)
    gold_verified: bool = False  # labeller 'gold': a pair must lower the gold (the last stage)

    @property
    def stages(self) -> tuple[str, ...]:
        """The filters applied, in order."""
        if self.principle == "programmatic":
            return PROGRAMMATIC_STAGES
        last = (GOLD_STAGE,) if self.gold_verified else (JUDGE_STAGE,) if self.judged else ()
        return (*STAGES[:-1], *last)

    def yields(self) -> list[dict[str, Any]]:
        """How many candidates reached each applied stage."""
        reached = [self.stages.index(r["stage"]) for r in self.records]
        return [{"principle": self.principle, "stage": s, "count": sum(x >= k for x in reached)}
                for k, s in enumerate(self.stages)]


def _pairs(prompts: Prompts, chosen_text: dict[int, str], records: list[dict[str, Any]], last: str,
           tag: str) -> list[PreferencePair]:
    return [PreferencePair(f"{prompts.train[r['prompt_index']].id}-s{r['sentence']}",
                           prompts.train[r["prompt_index"]].messages(), chosen_text[r["prompt_index"]],
                           splice(chosen_text[r["prompt_index"]], r["sentence"], r["rewrite"]), tag)
            for r in records if r["stage"] == last]


def degrade_programmatic(prompts: Prompts, chosen: list[Chosen], P: Params, seed: int) -> Degraded:
    """Up to ``per_answer`` sentence-level degradations of each chosen answer, each a different sentence rewritten by
    :func:`rlhf_nb.tasks.gold.break_sentence` so that one instruction the answer followed breaks, verified by the
    gold (it falls) and by a re-split (only that sentence changed). Candidates are (degradable sentence, followed
    instruction) in a seeded order."""
    rng = random.Random(seed)
    records = []
    for c in chosen:
        prompt = prompts.train[c.prompt_index]
        spans = sentence_spans(c.text)
        follows = gold.followed(prompt, c.text)
        options = [(k, i) for k in degradable(c.text, P.degrade.min_words) for i, ok in enumerate(follows) if ok]
        rng.shuffle(options)
        used: set[int] = set()
        for k, i in options:
            if len(used) >= P.degrade.per_answer or k in used:
                continue
            broken = gold.break_sentence(prompt, c.text, spans[k], i, before=follows)
            record = {"prompt_index": c.prompt_index, "sentence": k, "original": c.text[slice(*spans[k])],
                      "rewrite": None, "edit": None, "p_original": None, "instruction": prompt.instructions[i],
                      "gold": None, "stage": PROGRAMMATIC_STAGES[0]}
            if broken is not None and only_one_changed(c.text, broken.text, k):
                used.add(k)
                record.update(rewrite=broken.sentence, gold=[broken.gold_before, broken.gold_after],
                              stage=PROGRAMMATIC_STAGES[1])
            records.append(record)
    degraded = Degraded("programmatic", records, [], judged=False, gold_verified=True)
    degraded.pairs = _pairs(prompts, {c.prompt_index: c.text for c in chosen}, records, GOLD_STAGE,
                            "precise-programmatic")
    return degraded


def degrade(degrader: Loaded, judge: LogProbJudge | None, prompts: Prompts, chosen: list[Chosen], principle: str,
            P: Params, seed: int) -> Degraded:
    """Up to ``per_answer`` one-sentence degradations of each chosen answer under ``principle`` by the LLM degrader,
    filtered by rules, then (labeller 'gold') kept only where the gold falls, or (labeller 'judge') where the judge
    prefers the original, unless ``judge`` is None (see :func:`judge_filter`)."""
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
                        "edit": round(edit, 4), "p_original": None, "gold": None, "stage": stage})
    survivors = [r for r in records if r["stage"] == RULES[-1]]
    chosen_text = {c.prompt_index: c.text for c in chosen}
    if P.labeller == "gold":  # the rewrite must lower the gold: verified AI feedback
        for r in survivors:
            prompt, text = prompts.train[r["prompt_index"]], chosen_text[r["prompt_index"]]
            r["gold"] = [gold.if_score(prompt, text), gold.if_score(prompt, splice(text, r["sentence"], r["rewrite"]))]
            if r["gold"][1] < r["gold"][0]:
                r["stage"] = GOLD_STAGE
        degraded = Degraded(principle, records, [], judged=False, gold_verified=True)
        degraded.pairs = _pairs(prompts, chosen_text, records, GOLD_STAGE, f"precise-{principle}")
        return degraded
    if survivors and judge is not None:
        probs = judge.prefer_many([prompts.train[r["prompt_index"]].text for r in survivors],
                                  [chosen_text[r["prompt_index"]] for r in survivors],
                                  [splice(chosen_text[r["prompt_index"]], r["sentence"], r["rewrite"]) for r in survivors])
        for r, p in zip(survivors, probs):
            r["p_original"] = round(float(p), 4)
            if p > 0.5 + P.degrade.judge_margin:
                r["stage"] = STAGES[-1]
    degraded = Degraded(principle, records, [], judged=judge is not None)
    degraded.pairs = _pairs(prompts, chosen_text, records, degraded.stages[-1], f"precise-{principle}")
    return degraded


def judge_stage(exp: Any, P: Params, policy: Loaded, prompts: Prompts, answers: GoldSamples
                ) -> tuple[LogProbJudge | None, dict[str, Any]]:
    """Section 2 of the notebook: under labeller 'judge', the judge loaded and validated on pairs of training answers
    whose gold differs (a cached stage), and whether it filters; under labeller 'gold', no judge (the gold verifies
    the pairs and orders the control)."""
    from rlhf_nb.papers.precise_rlaif import readers

    if P.labeller == "gold":
        rule = exp.save("judge_filter", {"mode": P.degrade.judge_filter, "applied": False, "validated": False,
                                         "detail": "labeller 'gold': no judge in this run"})
        exp.finding(readers.finding_judge_stage(exp.results))
        return None, rule
    judge = judge_of(policy if P.judge == P.policy else load(P.judge), P.judge_question, P.judge_combine)
    validation = exp.save("judge_validation", exp.stage("judge validation", validate_judge, judge, prompts, answers,
                                                        P.judge_validation_pairs, P.seed))
    rule = exp.save("judge_filter", judge_filter(P, validation))
    exp.finding(readers.finding_judge_stage(exp.results))
    return judge, rule


def degradations(exp: Any, P: Params, policy: Loaded, judge: LogProbJudge | None, rule: dict[str, Any],
                 prompts: Prompts, chosen: list[Chosen]) -> dict[str, Degraded]:
    """Section 3: the LLM rewriter's degradations per principle (``degrade.method`` 'llm' or 'both') and the
    programmatic ones ('programmatic' or 'both'), each a cached stage; saved with their yields."""
    out: dict[str, Degraded] = {}
    if P.degrade.method in ("llm", "both"):
        degrader = policy if P.degrade.model == P.policy else load(P.degrade.model)
        filtering = judge if rule["applied"] else None
        principles = [P.degrade.principle, *[p for p in P.principle_arms if p != P.degrade.principle]]
        for k, p in enumerate(principles):
            out[p] = exp.stage(f"degraded ({p})", degrade, degrader, filtering, prompts, chosen, p, P, P.seed + k)
    if P.degrade.method in ("programmatic", "both"):
        out["programmatic"] = exp.stage("degraded (programmatic)", degrade_programmatic, prompts, chosen, P, P.seed)
    exp.save("degraded", {p: {"records": d.records, "yields": d.yields(), "judged": d.judged,
                              "gold_verified": d.gold_verified} for p, d in out.items()})
    return out


def main_pairs(P: Params, degraded: dict[str, Degraded]) -> list[PreferencePair]:
    """The main Precise arm's pairs: the LLM rewrites under the main principle and/or the programmatic ones."""
    return [pair for name in (P.degrade.principle, "programmatic") if name in degraded for pair in degraded[name].pairs]


def pair_sets(P: Params, degraded: dict[str, Degraded], sequence: SequencePairs) -> dict[str, list[PreferencePair]]:
    """Every arm's training pairs: ``precise-<principle>`` (the main arm, :func:`main_pairs`), the single-principle
    arms, and the same-budget ``sequence`` control (none where it was skipped)."""
    sets = {f"precise-{P.degrade.principle}": main_pairs(P, degraded)}
    sets.update({f"precise-{p}": d.pairs for p, d in degraded.items() if p not in (P.degrade.principle, "programmatic")})
    sets["sequence"] = sequence.pairs
    return sets


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


def sequence_pairs(judge: LogProbJudge | None, prompts: Prompts, answers: GoldSamples, precise: list[PreferencePair],
                   P: Params, seed: int, judge_filter: dict[str, Any] | None = None) -> SequencePairs:
    """Pairs of two whole answers to the same prompts, as many per prompt as the Precise arm has (topped up from
    other training prompts where a prompt has too few), ordered by the labeller: the gold (labeller 'gold'; only
    pairs whose gold differs) or the judge (both orders).

    None (and no judge call) where ``P.sequence_control`` is false, or is ``if-validated`` and ``judge_filter`` (from
    :func:`judge_filter`) says the judge failed its validation: pairs ordered by a judge at chance would train the
    control on noise, and R1c's premise fails whatever the arms score, so their training would decide nothing."""
    if P.sequence_control is False:
        return SequencePairs([], [], "sequence_control is false")
    by_gold = P.labeller == "gold"
    if P.sequence_control == "if-validated" and not by_gold and judge_filter is not None and not judge_filter["validated"]:
        return SequencePairs([], [], f"the judge that would order its pairs failed its validation "
                                     f"({judge_filter['detail']})")
    rng = random.Random(seed)
    want: dict[int, int] = {}
    for pair in precise:
        index = next(i for i, p in enumerate(prompts.train) if pair.id.startswith(p.id + "-s"))
        want[index] = want.get(index, 0) + 1
    options: dict[int, list[tuple[int, int]]] = {}
    for i, (texts, finished) in enumerate(zip(answers.texts, answers.finished)):
        keep = [j for j in range(len(texts)) if finished[j]]
        candidates = [(a, b) for x, a in enumerate(keep) for b in keep[x + 1:] if texts[a] != texts[b]
                      and (not by_gold or answers.gold[i][a] != answers.gold[i][b])]
        rng.shuffle(candidates)
        options[i] = candidates
    picked = []
    for i, k in sorted(want.items()):
        picked += [(i, ab) for ab in options.get(i, [])[:k]]
        options[i] = options.get(i, [])[k:]
    short = len(precise) - len(picked)
    leftovers = [(i, ab) for i, rest in sorted(options.items()) for ab in rest]
    rng.shuffle(leftovers)
    picked += leftovers[:max(0, short)]
    if not picked:
        return SequencePairs([], [])
    texts = answers.texts
    if by_gold:
        probs = [1.0 if answers.gold[i][a] > answers.gold[i][b] else 0.0 for i, (a, b) in picked]
    else:
        assert judge is not None, "labeller 'judge' needs the judge"
        probs = judge.prefer_many([prompts.train[i].text for i, _ in picked], [texts[i][a] for i, (a, _) in picked],
                                  [texts[i][b] for i, (_, b) in picked])
    pairs, judged = [], []
    for (i, (a, b)), p in zip(picked, probs):
        first, second = (a, b) if p >= 0.5 else (b, a)
        pairs.append(PreferencePair(f"{prompts.train[i].id}-q{a}{b}", prompts.train[i].messages(), texts[i][first],
                                    texts[i][second], "sequence"))
        judged.append({"prompt_index": i, "a": a, "b": b, "p_a": round(float(p), 4), "gold_a": answers.gold[i][a],
                       "gold_b": answers.gold[i][b]})
    return SequencePairs(pairs, judged)  # under the gold, p_a is 1 or 0: the pairs' record, not a judge's


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
    """Greedy replies to the held-out prompts, judged by the gold (call under :func:`rlhf_nb.lm.models.reading`, as
    every compared policy is read)."""
    started = time.perf_counter()
    replies = greedy(loaded, [p.messages() for p in prompts.eval], P.eval_max_new_tokens, label=f"{arm}: held-out")
    texts = replies.first
    return Policy(arm, seed, gold.if_scores(prompts.eval, texts), [t[0] for t in replies.tokens],
                  [f[0] for f in replies.finished], texts, dtype=read_precision(loaded),
                  seconds={"held-out": round(time.perf_counter() - started, 1)})


def train_arm(P: Params, prompts: Prompts, pairs: list[PreferencePair], arm: str, seed: int, out_dir: str,
              forgetting: Forgetting | None = None) -> Policy:
    """DPO with LoRA from the policy on ``pairs``; evaluated (and the forgetting suite) read as the start is."""
    import torch

    from rlhf_nb.train.dpo import train_dpo

    torch.manual_seed(seed)
    started = time.perf_counter()
    policy = load(P.policy, lora=P.lora.spec())
    result = train_dpo(policy, pairs, P.dpo.build(f"{out_dir}/{arm}_seed{seed}", seed=seed))
    trained_in = time.perf_counter() - started
    with reading(policy):
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


def start_arm(P: Params, prompts: Prompts, start: Loaded, forgetting: Forgetting) -> Policy:
    """The start policy's held-out replies and the whole forgetting suite."""
    with reading(start):
        first = evaluate(start, prompts, P, "start", None)
        return with_forgetting(first, forgetting.run(start, seconds=first.seconds))


def base_arm(P: Params, prompts: Prompts) -> Policy:
    """The base checkpoint's held-out replies, read at the start policy's (the training) precision."""
    base = load(P.base, baseline=True)
    with reading(base):
        out = evaluate(base, prompts, P, "base", None)
    del base
    gc.collect()
    return out


def off_floor(start: Policy) -> list[str]:
    """The forgetting tasks on which the start is off the floor and the ceiling (the only ones re-measured)."""
    floors = {"humaneval": (5.0, 95.0), "gsm8k": (5.0, 95.0), "bleu": (5.0, 100.0)}
    return [t for t, (lo, hi) in floors.items()
            if t in start.forgetting and lo <= float(np.mean(start.forgetting[t])) <= hi]


def run_arms(P: Params, prompts: Prompts, start: Loaded, pair_sets: dict[str, list[PreferencePair]],
             forgetting: Forgetting, out_dir: str, stage: Callable[..., Any] = run_now) -> Arms:
    """The start policy (and the base, where given) evaluated, then every arm trained ``seeds`` times. Each is a
    ``stage`` of its own (``Experiment.stage`` in the notebook), so a stopped run resumes after its last finished
    arm."""
    arms = Arms(stage("start arm", start_arm, P, prompts, start, forgetting))
    forgetting.tasks_off_floor = off_floor(arms.start)
    if P.base:
        arms.base = stage("base arm", base_arm, P, prompts)
    for s in range(P.seeds):
        for arm, pairs in pair_sets.items():
            if pairs:
                main = arm == f"precise-{P.degrade.principle}"
                arms.trained.append(stage(f"{arm} seed {P.seed + s}", train_arm, P, prompts, pairs, arm, P.seed + s,
                                          out_dir, forgetting if main else None))
    return arms
