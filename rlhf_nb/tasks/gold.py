"""Gold rewards for small-scale RLHF: ground truth that no trained model ever sees as a training signal.

This follows Gao et al. (2022, "Scaling laws for reward model overoptimization"): a *gold* reward labels
pairs of samples, a *proxy* reward model is trained on those labels, policies are optimised against the
proxy (best-of-n, DPO, PPO, online DPO), and they are judged by the gold on held-out prompts. Here the gold
is *verifiable instruction following* (IFEval, Zhou et al. 2023): a prompt is an ordinary request plus one
or two instructions that a checker can verify ("answer in all lowercase", "end with the phrase ...",
"fewer than 40 words", "wrap the answer in double quotes"), and the gold reward is the fraction of those
instructions a reply follows. The checkers are Google's IFEval code as packaged by ``if-verifiable``
(Apache-2.0). They are off the floor and off the ceiling for a 135M instruct model, and need no network.

Two prompt sets:

* :func:`synthetic_prompts` - AlpacaEval's 805 instructions as bases, each with instructions drawn from
  :data:`POOL` (kept to ones that short replies can satisfy, with arguments that keep replies short), so a
  token cap rarely cuts a reply off; seeded, and split by base instruction so no base appears in two splits.
* :func:`ifeval_prompts` - the 541 IFEval prompts as published (longer replies; an out-of-distribution check).

Offline, NLTK's punkt model (used by IFEval to count sentences and split words) is not available: sentence
counts use the IFEval code's own rule-based splitter and words NLTK's Treebank tokenizer, which needs no data.
"""

from __future__ import annotations

import contextlib
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from rlhf_nb.tasks.data import load_prompts

#: AlpacaEval's instructions, the bases of :func:`synthetic_prompts` (one base a prompt until they run out)
ALPACAEVAL_BASES = 805

#: instructions used for synthetic prompts, with argument generators that keep replies short
POOL: dict[str, Callable[[random.Random], dict[str, Any]]] = {
    "change_case:english_lowercase": lambda r: {},
    "change_case:english_capital": lambda r: {},
    "punctuation:no_comma": lambda r: {},
    "startend:quotation": lambda r: {},
    "detectable_format:title": lambda r: {},
    "detectable_content:postscript": lambda r: {"postscript_marker": r.choice(["P.S.", "P.P.S"])},
    "startend:end_checker": lambda r: {"end_phrase": r.choice(["Is there anything else I can help with?",
                                                               "Any other questions?", "Let me know if you have "
                                                               "additional questions."])},
    "keywords:existence": lambda r: {"keywords": r.sample(["summary", "example", "simple", "important", "reason",
                                                           "first", "answer", "world", "idea", "because"], 2)},
    "keywords:forbidden_words": lambda r: {"forbidden_words": r.sample(["the", "is", "and", "very", "really",
                                                                        "that", "it", "you"], 2)},
    "detectable_format:number_highlighted_sections": lambda r: {"num_highlights": r.choice([1, 2])},
    "detectable_content:number_placeholders": lambda r: {"num_placeholders": r.choice([1, 2])},
    "detectable_format:number_bullet_lists": lambda r: {"num_bullets": r.choice([2, 3])},
    "length_constraints:number_words": lambda r: {"relation": "less than", "num_words": r.choice([30, 40, 60])},
    "length_constraints:number_sentences": lambda r: {"relation": "less than", "num_sentences": r.choice([3, 4])},
}


@dataclass(frozen=True)
class IFPrompt:
    """A request with instructions that a checker can verify."""

    id: str
    text: str  # the whole user message
    base: str  # the request without the instructions ("" for IFEval's own prompts)
    instructions: tuple[str, ...]
    kwargs: tuple[dict[str, Any], ...] = field(compare=False)
    source: str = "synthetic"  # or "ifeval"
    system: str = ""  # a system line the policy reads before the request ("" for the model's own default)

    def messages(self) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return [*head, {"role": "user", "content": self.text}]


@contextlib.contextmanager
def _offline_nltk() -> Iterator[None]:
    """IFEval's checkers without NLTK data: the code's own sentence splitter, Treebank word tokens."""
    import nltk
    from if_verifiable.ifeval import instructions_util as util

    original_count, original_tokenize = util.count_sentences, nltk.word_tokenize
    treebank = nltk.tokenize.TreebankWordTokenizer()
    util.count_sentences = lambda text: len([s for s in util.split_into_sentences(text) if s.strip()])
    nltk.word_tokenize = lambda text, *a, **k: [t for s in util.split_into_sentences(text) for t in treebank.tokenize(s)]
    try:
        yield
    finally:
        util.count_sentences, nltk.word_tokenize = original_count, original_tokenize


def _registry() -> dict[str, Any]:
    import langdetect
    from if_verifiable.ifeval.instructions_registry import INSTRUCTION_CONFLICTS, INSTRUCTION_DICT

    # the language checkers call langdetect, which samples: unseeded, one reply's gold could differ between processes
    langdetect.DetectorFactory.seed = 0
    return {"checkers": INSTRUCTION_DICT, "conflicts": INSTRUCTION_CONFLICTS}


def _describe(instruction: str, kwargs: dict[str, Any], seed: int) -> str:
    """The instruction's text, as IFEval's own code writes it for these arguments (its phrasing is randomised
    from the global ``random`` module: seeded here, state restored)."""
    checker = _registry()["checkers"][instruction](instruction)
    state = random.getstate()
    random.seed(seed)
    try:
        return checker.build_description(**kwargs)
    finally:
        random.setstate(state)


def synthetic_prompts(n: int, seed: int = 0, per_prompt: tuple[int, int] = (1, 2),
                      pool: Sequence[str] | None = None, exclude_bases: set[str] = frozenset(),
                      system: str = "") -> list[IFPrompt]:
    """``n`` prompts: AlpacaEval instructions (bases, in a seeded order) each followed by 1-2 non-conflicting
    instructions from :data:`POOL`. A base is used at most once; more than 805 prompts reuse bases with
    different instructions, in rounds. ``system``, if given, is a system line every prompt carries (sampling,
    training and reward models all see it)."""
    names = list(pool or POOL)
    unknown = [i for i in names if i not in POOL]
    if unknown:
        raise ValueError(f"unknown instruction(s) {unknown}; known: {', '.join(POOL)}")
    conflicts = _registry()["conflicts"]
    bases = [p for p in load_prompts("alpacaeval", seed=seed) if p.text.strip() not in exclude_bases]
    rng = random.Random(seed)
    out = []
    for i in range(n):
        base = bases[i % len(bases)]
        chosen: list[str] = []
        for _ in range(rng.randint(*per_prompt)):
            options = [x for x in names if x not in chosen and not any(x in conflicts.get(c, ()) or
                                                                           c in conflicts.get(x, ()) for c in chosen)]
            if options:
                chosen.append(rng.choice(options))
        kwargs = [POOL[c](rng) for c in chosen]
        text = base.text.strip() + "\n\n" + " ".join(_describe(c, k, seed + i) for c, k in zip(chosen, kwargs))
        out.append(IFPrompt(f"if-{seed}-{i}", text, base.text.strip(), tuple(chosen), tuple(kwargs), system=system))
    return out


def ifeval_prompts(limit: int | None = None, seed: int | None = None) -> list[IFPrompt]:
    """IFEval's 541 prompts as published (instruction ids and arguments from the packaged data)."""
    out = []
    for p in load_prompts("ifeval", limit=limit, seed=seed):
        kwargs = tuple({k: v for k, v in (kw or {}).items() if v is not None} for kw in p.meta["kwargs"])
        out.append(IFPrompt(p.id, p.text, "", tuple(p.meta["instruction_id_list"]), kwargs, "ifeval"))
    return out


def followed(prompt: IFPrompt, reply: str) -> list[bool]:
    """For each instruction of ``prompt``: does ``reply`` follow it (IFEval's strict check)?"""
    checkers = _registry()["checkers"]
    out = []
    with _offline_nltk():
        for instruction, kwargs in zip(prompt.instructions, prompt.kwargs):
            checker = checkers[instruction](instruction)
            state = random.getstate()
            checker.build_description(**kwargs)
            random.setstate(state)
            args = checker.get_instruction_args()
            if args and "prompt" in args:
                checker.build_description(prompt=prompt.text)
            out.append(bool(reply.strip()) and bool(checker.check_following(reply)))
    return out


def if_score(prompt: IFPrompt, reply: str) -> float:
    """The gold reward: the fraction of the prompt's instructions that the reply follows."""
    done = followed(prompt, reply)
    return sum(done) / len(done) if done else 0.0


def if_scores(prompts: Sequence[IFPrompt], replies: Sequence[str]) -> list[float]:
    return [if_score(p, r) for p, r in zip(prompts, replies)]


def if_reward(prompts: Sequence[Any], completions: Sequence[str], meta: Sequence[dict]) -> list[float]:
    """Reward callable (``meta[i]["if_prompt"]`` is the :class:`IFPrompt`) for PPO / GRPO / online DPO."""
    return [if_score(m["if_prompt"], c) for m, c in zip(meta, completions)]


#: the order in which :func:`fix_all` applies fixes: shortening first, casing and quoting last (they must see
#: everything that was appended)
_FIX_ORDER = ("length_constraints:number_sentences", "length_constraints:number_words", "keywords:forbidden_words",
              "detectable_format:number_bullet_lists", "detectable_format:number_highlighted_sections",
              "detectable_content:number_placeholders", "keywords:existence", "detectable_format:title",
              "detectable_content:postscript", "startend:end_checker", "punctuation:no_comma",
              "change_case:english_lowercase", "change_case:english_capital", "startend:quotation")


def fix(prompt: IFPrompt, reply: str, index: int) -> str:
    """A minimal edit of ``reply`` meant to make it follow instruction ``index`` of ``prompt`` (what an annotator's
    correction would do). Not guaranteed: check the result with :func:`followed`."""
    name, kw = prompt.instructions[index], prompt.kwargs[index]
    text = reply.strip()
    if name == "change_case:english_lowercase":
        return text.lower()
    if name == "change_case:english_capital":
        return text.upper()
    if name == "punctuation:no_comma":
        return text.replace(",", "")
    if name == "startend:quotation":
        return '"' + text.strip('"') + '"'
    if name == "detectable_format:title":
        return "<<Answer>>\n" + text
    if name == "detectable_content:postscript":
        return f"{text}\n\n{kw['postscript_marker']} I hope this helps."
    if name == "startend:end_checker":
        return f"{text} {kw['end_phrase']}"
    if name == "keywords:existence":
        return text + "\n\n" + " ".join(k.capitalize() + "." for k in kw["keywords"])
    if name == "keywords:forbidden_words":
        words = "|".join(re.escape(w) for w in kw["forbidden_words"])
        return re.sub(rf"\b(?:{words})\b ?", "", text, flags=re.IGNORECASE).strip()
    if name == "detectable_format:number_highlighted_sections":
        return text + "".join(f"\n\n*Point {i + 1}*" for i in range(kw["num_highlights"]))
    if name == "detectable_content:number_placeholders":
        return text + " " + " ".join(f"[{w}]" for w in ("name", "place", "date")[: kw["num_placeholders"]])
    if name == "detectable_format:number_bullet_lists":
        plain = re.sub(r"^\s*[*-]\s?", "", text, flags=re.MULTILINE)
        return plain + "\n" + "".join(f"\n* Point {i + 1}." for i in range(kw["num_bullets"]))
    if name == "length_constraints:number_words":
        return " ".join(text.split()[: max(1, kw["num_words"] // 2)])
    if name == "length_constraints:number_sentences":
        from if_verifiable.ifeval import instructions_util as util

        return " ".join(s.strip() for s in util.split_into_sentences(text)[: max(1, kw["num_sentences"] - 2)])
    raise ValueError(f"no fix for instruction {name!r}")


def fix_all(prompt: IFPrompt, reply: str) -> str:
    """Every failed instruction fixed in turn (an expert's demonstration built from ``reply``)."""
    done = followed(prompt, reply)
    todo = sorted((i for i, ok in enumerate(done) if not ok),
                  key=lambda i: _FIX_ORDER.index(prompt.instructions[i]) if prompt.instructions[i] in _FIX_ORDER else 99)
    for i in todo:
        reply = fix(prompt, reply, i)
    return reply


def _first_word(text: str) -> re.Match | None:
    return re.search(r"[A-Za-z][A-Za-z'-]*", text)


def _break(name: str, kw: dict[str, Any], sentence: str, last: bool, words_outside: int) -> str | None:
    """``sentence`` rewritten so that the reply it sits in breaks instruction ``name`` (None where one sentence
    cannot); see :func:`break_sentence`."""
    first = _first_word(sentence)
    if name == "change_case:english_lowercase":
        m = re.search(r"[a-z]", sentence)
        return None if m is None else sentence[:m.start()] + m.group().upper() + sentence[m.end():]
    if name == "change_case:english_capital":
        m = re.search(r"[A-Z]", sentence)
        return None if m is None else sentence[:m.start()] + m.group().lower() + sentence[m.end():]
    if name == "punctuation:no_comma":
        return None if first is None else sentence[:first.end()] + "," + sentence[first.end():]
    if name == "startend:quotation":
        stripped = sentence.strip('"')
        return stripped if stripped != sentence else None
    if name == "detectable_format:title":
        return re.sub(r"<<|>>", "", sentence) if "<<" in sentence else None
    if name == "detectable_content:postscript":
        marker = kw["postscript_marker"]
        return sentence.replace(marker, "") if marker in sentence else None
    if name == "startend:end_checker":
        return sentence + " Thanks." if last else None
    if name == "keywords:existence":
        words = "|".join(re.escape(w) for w in kw["keywords"])
        out = re.sub(rf"\b(?:{words})\b", "", sentence, flags=re.IGNORECASE)
        return re.sub(r"  +", " ", out) if out != sentence else None
    if name == "keywords:forbidden_words":
        if first is None:
            return None
        return sentence[:first.end()] + " " + kw["forbidden_words"][0] + sentence[first.end():]
    if name == "detectable_format:number_highlighted_sections":
        return sentence.replace("*", "") if "*" in sentence else None
    if name == "detectable_content:number_placeholders":
        return re.sub(r"[\[\]]", "", sentence) if "[" in sentence else None
    if name == "length_constraints:number_words":  # the sentence padded, still one sentence
        body, end = sentence.rstrip(".!?"), sentence[len(sentence.rstrip(".!?")):] or "."
        if not body.split():
            return None
        out, total = body, words_outside + len(body.split())
        while total < kw["num_words"]:
            out += ", in other words, " + body[0].lower() + body[1:]
            total += 3 + len(body.split())
        return out + end if out != body else None
    return None  # a list (number_bullet_lists) or a sentence count cannot be broken inside one sentence


@dataclass(frozen=True)
class Broken:
    """A reply with one sentence rewritten so that one instruction it followed is broken, verified by the gold."""

    text: str
    sentence: str  # the rewritten sentence (``text`` is the reply with it in place of the original one)
    instruction: int  # index into the prompt's instructions
    span: tuple[int, int]  # the sentence's (start, end) in the original reply
    gold_before: float
    gold_after: float


def break_sentence(prompt: IFPrompt, reply: str, span: tuple[int, int], index: int,
                   before: list[bool] | None = None) -> Broken | None:
    """``reply`` with the sentence at ``span`` rewritten to break instruction ``index`` of ``prompt`` (the inverse of
    :func:`fix`: a programmatic degrader for sentence-level pairs), or None. The result is returned only when it is
    verified: the instruction was followed and no longer is, the gold score fell, and every character outside the
    sentence is unchanged. ``before``: :func:`followed` of ``reply``, where the caller has it already."""
    start, end = span
    if not (0 <= start < end <= len(reply)):
        raise ValueError(f"span {span} is not a sentence of a {len(reply)}-character reply")
    before = followed(prompt, reply) if before is None else before
    if not before[index]:
        return None
    sentence = reply[start:end]
    outside = len((reply[:start] + " " + reply[end:]).split())
    new = _break(prompt.instructions[index], prompt.kwargs[index], sentence, not reply[end:].strip(), outside)
    if new is None or new == sentence:
        return None
    text = reply[:start] + new + reply[end:]
    after = followed(prompt, text)
    gold_before, gold_after = sum(before) / len(before), sum(after) / len(after)
    if after[index] or gold_after >= gold_before:
        return None
    return Broken(text, new, index, span, gold_before, gold_after)


@dataclass
class GoldSamples:
    """Replies to a prompt set with the gold's verdicts (one row per prompt)."""

    prompt_ids: list[str]
    texts: list[list[str]]
    gold: list[list[float]]
    tokens: list[list[int]]
    finished: list[list[bool]]
    tokens_per_s: float

    @property
    def cap_rate(self) -> float:
        """Share of replies cut off at the token cap."""
        flat = [f for row in self.finished for f in row]
        return 1 - sum(flat) / max(1, len(flat))


def with_gold(prompts: Sequence[IFPrompt], replies: Any) -> GoldSamples:
    """Score :class:`rlhf_nb.lm.evaluate.Replies` (one row per prompt) with the gold."""
    scores = [[if_score(p, t) for t in row] for p, row in zip(prompts, replies.texts)]
    return GoldSamples([p.id for p in prompts], replies.texts, scores, replies.tokens, replies.finished,
                       replies.tokens_per_s)


def sample_with_gold(policy: Any, prompts: Sequence[IFPrompt], config: Any, label: str) -> GoldSamples:
    """``config.n`` replies per prompt from ``policy`` (a loaded model), scored by the gold."""
    from rlhf_nb.lm.evaluate import sample

    return with_gold(prompts, sample(policy, [p.messages() for p in prompts], config, label))


def system_note(system: str | None) -> str:
    """The words a finding adds about a system line ('' without one)."""
    return f' (every request preceded by the system line "{system}")' if system else ""


def split_by_base(prompts: Sequence[IFPrompt], sizes: dict[str, int], seed: int = 0) -> dict[str, list[IFPrompt]]:
    """Disjoint named splits (e.g. {"rm": 300, "online": 96, "eval": 150}) in which no base request appears in two
    splits; raises when the prompts cannot fill them."""
    groups: dict[str, list[IFPrompt]] = {}
    for p in prompts:
        groups.setdefault(p.base or p.id, []).append(p)
    keys = list(groups)
    random.Random(seed).shuffle(keys)
    out: dict[str, list[IFPrompt]] = {name: [] for name in sizes}
    names = iter(sizes.items())
    name, want = next(names)
    for key in keys:
        while len(out[name]) >= want:
            try:
                name, want = next(names)
            except StopIteration:
                return out
        out[name].extend(groups[key][: want - len(out[name])])
    missing = {n: w - len(out[n]) for n, w in sizes.items() if len(out[n]) < w}
    if missing:
        raise ValueError(f"not enough prompts for the splits: short by {missing}")
    return out


def describe_instruction(instruction: str) -> str:
    """A short human label for an instruction id ("change_case:english_lowercase" -> "english lowercase")."""
    return re.sub(r"[_:]", " ", instruction.split(":", 1)[-1])


def differing_pairs(replies: Sequence[str], scores: Sequence[float], keep: Sequence[int] | None = None
                    ) -> list[tuple[int, int]]:
    """(better, worse) indices of every pair of one prompt's replies (among ``keep``, default all) whose gold scores
    differ and whose texts differ."""
    keep = list(range(len(replies))) if keep is None else list(keep)
    return [(a, b) if scores[a] > scores[b] else (b, a) for x, a in enumerate(keep) for b in keep[x + 1:]
            if scores[a] != scores[b] and replies[a] != replies[b]]


def gold_pairs(prompts: Sequence[IFPrompt], replies: Sequence[Sequence[str]], scores: Sequence[Sequence[float]],
               finished: Sequence[Sequence[bool]] | None = None, mode: str = "best-worst", source: str = "if-gold"):
    """Preference pairs of two samples of the *same* policy for the same prompt, labelled by the gold score.

    ``mode="best-worst"``: one pair per prompt, the highest-scored reply against the lowest (prompts whose
    replies all tie give none); ``"all"``: every pair of replies with different scores. Replies cut off at the
    token cap are left out when ``finished`` is given (a finished reply is preferred for what it says, not for
    being shorter).
    """
    from rlhf_nb.tasks.data import PreferencePair

    pairs = []
    for i, (prompt, texts, s) in enumerate(zip(prompts, replies, scores)):
        keep = [j for j in range(len(texts)) if finished is None or finished[i][j]]
        if mode == "best-worst":
            if len(keep) < 2:
                continue
            best, worst = max(keep, key=lambda j: s[j]), min(keep, key=lambda j: s[j])
            candidates = [(best, worst)] if s[best] > s[worst] and texts[best] != texts[worst] else []
        else:
            candidates = differing_pairs(texts, s, keep)
        for k, (a, b) in enumerate(candidates):
            pairs.append(PreferencePair(f"{prompt.id}-{k}", prompt.messages(), texts[a], texts[b], source))
    return pairs
