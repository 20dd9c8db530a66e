"""Parts 3-4 of ``notebooks/03_data_scaling_rlhf.ipynb``: which prompts, in which order (Shen et al. 2025, Figs. 2-4,
6, 8; Tables 1, 3).

Three domains, each with a gold that training never sees as a reward where it matters:

* **math**: GSM8K (train problems to train on, test problems held out); the reward *and* the gold is the checker (RTV);
* **code**: HumanEval tasks split by id (or, with ``prepo.code_train: mbpp``, MBPP's train tasks to train on and
  HumanEval tasks held out); the reward is their tests in the sandbox (RTV), the held-out gold HumanEval+'s tests
  (``items.humaneval_plus``; HumanEval's own when it is None);
* **instruction**: IFEval's prompts split by id; no verifier is used as a reward (as for the paper's open-ended
  prompts): the reward is the judge's P(helpful and correct) (GenRM without GT), z-scored within the domain; the
  gold is IFEval's checkers.
* **open** (``prepo.open_gold`` set): AlpacaEval's instructions; the reward is the judge's P(correct and consistent
  with the reference) given AlpacaEval's GPT-4-turbo answer (GenRM with GT), z-scored within the domain; the gold is
  another, larger judge's P(the answer beats that reference) (both orders), never a reward, whose agreement with
  HH-RLHF's human labels is measured first (:func:`validate_gold`).

The training reward is the paper's hybrid: RTV where a verifier exists, a GenRM elsewhere, normalised per domain
(:class:`rlhf_nb.rewards.hybrid.HybridReward`). Arms, all GRPO from the same policy with a fresh LoRA adapter, the same
number of steps, ``seeds`` runs each, prompts fed in a fixed seeded order (trl's shuffling off):

* ``base``: the base prompts; ``all``: base + every new prompt (Fig. 2: more prompts);
* ``random``: base + a random ``fraction`` of the new prompts; ``prepo``: base + the same number of new prompts with
  the lowest reward (Pre-PPO: the start policy's mean reward over ``samples`` responses, z-scored per domain;
  Figs. 3, 8; Table 3);
* ``early``: the ``prepo`` prompts with math and code first (Figs. 4, 6; with ``prepo``, the Table 1 analog).

Every arm's final policy answers the held-out prompts greedily and is scored by the gold, per item.
"""

from __future__ import annotations

import gc
import random
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from rlhf_nb.lm.evaluate import greedy, sample
from rlhf_nb.lm.models import Loaded, load
from rlhf_nb.papers.data_scaling.params import Params
from rlhf_nb.papers.data_scaling.readers import EARLY
from rlhf_nb.rewards.code import code_prompt, code_reward, data_id, evaluate_samples, extract_code
from rlhf_nb.rewards.hybrid import Component, HybridReward, normalize_per_domain
from rlhf_nb.rewards.judge import LogProbJudge
from rlhf_nb.rewards.math import clean_solution, is_correct, math_prompt, math_reward
from rlhf_nb.tasks import gold as G
from rlhf_nb.tasks.data import (
    CodeTask,
    load_gsm8k,
    load_hh_rlhf,
    load_humaneval,
    load_humaneval_plus,
    load_mbpp,
    load_prompts,
)

ARMS = ("base", "all", "random", "prepo", "early")


@dataclass(frozen=True)
class Prompt:
    domain: str
    id: str
    messages: list[dict[str, str]]
    meta: dict[str, Any]  # plain data for the reward: the answer (math), the task id (code); the domain


@dataclass
class Pool:
    base: list[Prompt]
    new: list[Prompt]
    eval: list[Prompt]
    answers: dict[str, str]  # math id -> final answer
    tasks: dict[str, CodeTask]  # code id -> task
    instructions: dict[str, G.IFPrompt]  # instruction id -> prompt with its checkers
    code_source: str | None
    references: dict[str, str] = field(default_factory=dict)  # open id -> AlpacaEval's reference answer


def _split(items: list[Any], sizes: tuple[int, int, int], what: str, rng: random.Random) -> list[list[Any]]:
    if sum(sizes) > len(items):
        raise ValueError(f"parameter 'prepo': {sum(sizes)} {what} prompts asked for (base + new + eval), the source "
                         f"has {len(items)}")
    items = rng.sample(items, sum(sizes))
    return [items[: sizes[0]], items[sizes[0] : sizes[0] + sizes[1]], items[sizes[0] + sizes[1] :]]


def make_pool(P: Params) -> Pool:
    """Seeded base / new / held-out prompts per domain (``prepo.base``, ``prepo.new``, ``prepo.eval`` each)."""
    S = P.prepo
    rng = random.Random(P.seed + 4)
    sizes = (S.base, S.new, S.eval)
    out: dict[str, list[Prompt]] = {"base": [], "new": [], "eval": []}
    answers: dict[str, str] = {}
    tasks: dict[str, CodeTask] = {}
    instructions: dict[str, G.IFPrompt] = {}
    code_source = None
    if "math" in S.domains:
        train = load_gsm8k(P.items.gsm8k, "train")
        test = load_gsm8k(P.items.gsm8k, "test")
        base, new, _ = _split(train, (S.base, S.new, 0), "GSM8K train", rng)
        (held,) = _split(test, (0, 0, S.eval), "GSM8K test", rng)[2:]
        for part, chosen in (("base", base), ("new", new), ("eval", held)):
            for t in chosen:
                answers[t.id] = t.answer
                out[part].append(Prompt("math", t.id, math_prompt(t.question),
                                        {"domain": "math", "id": t.id, "answer": t.answer,
                                         "reference": clean_solution(t.solution) or t.answer}))
    if "code" in S.domains:
        code_source = P.items.humaneval_plus
        pool = load_humaneval_plus(code_source) if code_source else load_humaneval("package")
        if S.code_train == "mbpp":  # train on MBPP, hold out HumanEval(+)
            base, new, _ = _split(load_mbpp(S.mbpp, "train"), (S.base, S.new, 0), "MBPP train", rng)
            parts = [base, new, _split(pool, (0, 0, S.eval), "HumanEval", rng)[2]]
        else:
            parts = _split(pool, sizes, "HumanEval", rng)
        for part, chosen in zip(("base", "new", "eval"), parts):
            for t in chosen:
                tasks[t.task_id] = t
                out[part].append(Prompt("code", t.task_id, code_prompt(t), {"domain": "code", "id": t.task_id}))
    if "instruction" in S.domains:
        for part, chosen in zip(("base", "new", "eval"), _split(G.ifeval_prompts(), sizes, "IFEval", rng)):
            for p in chosen:
                instructions[p.id] = p
                out[part].append(Prompt("instruction", p.id, p.messages(), {"domain": "instruction", "id": p.id}))
    references: dict[str, str] = {}
    if "open" in S.domains:
        for part, chosen in zip(("base", "new", "eval"), _split(load_prompts("alpacaeval"), sizes, "AlpacaEval", rng)):
            for p in chosen:
                references[p.id] = p.reference or ""
                out[part].append(Prompt("open", p.id, [{"role": "user", "content": p.text}],
                                        {"domain": "open", "id": p.id, "reference": p.reference}))
    return Pool(out["base"], out["new"], out["eval"], answers, tasks, instructions, code_source, references)


def hybrid_reward(pool: Pool, judge: LogProbJudge) -> HybridReward:
    """RTV for math and code; the judge for instructions (no reference) and open prompts (AlpacaEval's reference),
    z-scored per domain."""
    def code(prompts: Any, completions: Any, meta: Any) -> list[float]:
        return code_reward(prompts, completions, [{"task": pool.tasks[m["id"]]} for m in meta])

    return HybridReward({"math": Component(math_reward, ("math",)), "code": Component(code, ("code",)),
                         "genrm": Component(judge.genrm_reward, ("instruction", "open"), normalize=True)})


# ----------------------------------------------------------------------------------------------
# Pre-PPO: the start policy's reward on the new prompts
# ----------------------------------------------------------------------------------------------


def score_new(policy: Loaded, pool: Pool, reward: HybridReward, P: Params) -> list[dict[str, Any]]:
    """Per new prompt: the mean hybrid reward of ``prepo.samples`` responses of the start policy, and its z-score
    within the domain (what Pre-PPO ranks by). The judge's part is z-scored over these samples."""
    S = P.prepo
    config = P.samples.model_copy(update={"max_new_tokens": S.max_new_tokens}).config(P.seed + 5, n=S.samples)
    replies = sample(policy, [p.messages for p in pool.new], config, "Pre-PPO: new prompts")
    prompts = [p.messages for p in pool.new for _ in range(S.samples)]
    texts = [x for row in replies.texts for x in row]
    meta = [p.meta for p in pool.new for _ in range(S.samples)]
    values = np.array(reward(prompts, texts, meta), dtype=float).reshape(len(pool.new), S.samples).mean(1)
    z = normalize_per_domain(values.tolist(), [p.domain for p in pool.new])
    return [{"domain": p.domain, "id": p.id, "reward": float(v), "z": float(zi)}
            for p, v, zi in zip(pool.new, values, z)]


def arm_prompts(pool: Pool, scores: list[dict[str, Any]], P: Params) -> dict[str, list[Prompt]]:
    """The prompt set of every arm (order decided per seed by :func:`ordered`)."""
    k = round(P.prepo.fraction * len(pool.new))
    lowest = {s["id"] for s in sorted(scores, key=lambda s: (s["z"], s["id"]))[:k]}
    rng = random.Random(P.seed + 6)
    randomly = set(rng.sample([p.id for p in pool.new], k))
    prepo = pool.base + [p for p in pool.new if p.id in lowest]
    return {"base": pool.base, "all": pool.base + pool.new, "random": pool.base + [p for p in pool.new
                                                                                   if p.id in randomly],
            "prepo": prepo, "early": prepo}


def ordered(arm: str, prompts: list[Prompt], seed: int) -> list[Prompt]:
    """A seeded shuffle; for ``early`` math and code prompts first (each part shuffled)."""
    rng = random.Random(seed)
    if arm != "early":
        return rng.sample(prompts, len(prompts))
    first = [p for p in prompts if p.domain in EARLY]
    rest = [p for p in prompts if p.domain not in EARLY]
    return rng.sample(first, len(first)) + rng.sample(rest, len(rest))


# ----------------------------------------------------------------------------------------------
# training and the held-out gold
# ----------------------------------------------------------------------------------------------


def gold_scores(loaded: Loaded, pool: Pool, P: Params, label: str, gold_judge: LogProbJudge | None = None
                ) -> dict[str, Any]:
    """Greedy answers to every held-out prompt, scored by its domain's gold; per item, in ``pool.eval`` order (open
    prompts: ``gold_judge``'s P(the answer beats the reference), both orders)."""
    replies = greedy(loaded, [p.messages for p in pool.eval], P.prepo.max_new_tokens, label=label)
    texts = replies.first
    scores = [0.0] * len(texts)
    code_jobs = []
    for i, (p, x) in enumerate(zip(pool.eval, texts)):
        if p.domain == "math":
            scores[i] = float(is_correct(x, pool.answers[p.id]))
        elif p.domain == "instruction":
            scores[i] = G.if_score(pool.instructions[p.id], x)
        elif p.domain == "open":
            continue  # below, in one batch
        else:
            code_jobs.append((i, {"task_id": p.id, "solution": extract_code(x, pool.tasks[p.id])}))
    if code_jobs:
        plus = pool.code_source is not None
        rows = evaluate_samples([job for _, job in code_jobs], list(pool.tasks.values()),
                                dataset="humaneval+" if plus else "humaneval",
                                data_id=data_id(pool.code_source) if plus else "package")
        for (i, _), row in zip(code_jobs, rows):
            scores[i] = float(row["passed"])
    open_items = [i for i, p in enumerate(pool.eval) if p.domain == "open"]
    if open_items:
        if gold_judge is None:
            raise ValueError("held-out open prompts need the gold judge (prepo.open_gold)")
        wins = gold_judge.prefer_many([pool.eval[i].messages[-1]["content"] for i in open_items],
                                      [texts[i] for i in open_items], [pool.references[pool.eval[i].id]
                                                                       for i in open_items])
        for i, w in zip(open_items, wins):
            scores[i] = float(w)
    return {"gold": scores, "tokens": [t[0] for t in replies.tokens], "finished": [f[0] for f in replies.finished]}


def gold_callback(policy: Loaded, pool: Pool, P: Params, label: str, into: list[dict[str, Any]],
                  gold_judge: LogProbJudge | None = None):
    """A TrainerCallback that scores the held-out gold every ``prepo.eval_every`` steps (not at the last step: the
    final policy is scored after training) into ``into`` as ``{"step": s, **gold_scores}``."""
    from rlhf_nb.train.grpo import every_steps

    def score(model: Any, step: int) -> None:
        scores = gold_scores(replace(policy, model=model), pool, P, f"{label} step {step}: held-out", gold_judge)
        into.append({"step": step, **scores})

    return every_steps(P.prepo.eval_every, score, at_last=False)


def train_arms(P: Params, start: Loaded, pool: Pool, judge: LogProbJudge, arms: dict[str, list[Prompt]],
               out_dir: str, gold_judge: LogProbJudge | None = None) -> list[dict[str, Any]]:
    """Every arm x seed: GRPO for ``prepo.steps`` steps on its prompts in :func:`ordered` order, then the held-out
    gold (and every ``prepo.eval_every`` steps on the way: ``curve``). The start policy's own scores come first as
    arm ``start`` (seed -1). Each run gets a fresh hybrid reward, so the judge's running normalisation never carries
    from one run to the next."""
    import torch

    from rlhf_nb.train.grpo import train_grpo

    S = P.prepo
    runs = [{"arm": "start", "seed": -1, "prompts": 0, "history": [],
             **gold_scores(start, pool, P, "start: held-out", gold_judge)}]
    for arm in ARMS:
        for k in range(P.seeds):
            seed = P.seed + k
            prompts = ordered(arm, arms[arm], seed)
            torch.manual_seed(seed)
            policy = load(P.policy, lora=S.lora.spec())
            config = S.grpo.build(f"{out_dir}/prepo_{arm}_seed{seed}", seed=seed, max_steps=S.steps,
                                  shuffle_dataset=False)
            curve: list[dict[str, Any]] = []
            result = train_grpo(policy, [p.messages for p in prompts], hybrid_reward(pool, judge), config,
                                meta=[p.meta for p in prompts],
                                callbacks=[gold_callback(policy, pool, P, f"{arm} seed {seed}", curve, gold_judge)])
            history = [{k2: v for k2, v in row.items() if isinstance(v, (int, float))} for row in result.history]
            runs.append({"arm": arm, "seed": seed, "prompts": len(prompts), "history": history,
                         "domains": [p.domain for p in prompts], "curve": curve,
                         **gold_scores(policy, pool, P, f"{arm} seed {seed}: held-out", gold_judge)})
            del policy, result
            gc.collect()
    return runs


def validate_gold(gold_judge: LogProbJudge, P: Params) -> list[float]:
    """The open domain's gold judge on ``prepo.gold_validation`` seeded HH-RLHF harmless-base pairs: per pair its
    P(the human-chosen reply is better), both orders (the conversation so far as the request)."""
    pairs = load_hh_rlhf(P.prepo.hh, "harmless-base", "test", limit=P.prepo.gold_validation, seed=P.seed + 7)

    def conversation(pair: Any) -> str:
        return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in pair.prompt)

    probs = gold_judge.prefer_many([conversation(p) for p in pairs], [p.chosen for p in pairs],
                                   [p.rejected for p in pairs])
    return [round(float(x), 4) for x in probs]


@dataclass
class Part3:
    scores: list[dict[str, Any]]  # per new prompt: domain, id, reward, z
    eval: list[dict[str, str]]  # per held-out item: domain, id
    arms: dict[str, list[str]]  # arm -> prompt ids
    runs: list[dict[str, Any]]
    gold_judge: dict[str, Any] | None = None  # open domain: the model and its P(human choice) per validation pair


def run(P: Params, policy: Loaded, judge: LogProbJudge, out_dir: str) -> Part3:
    """Parts 3-4 end to end (nothing when ``prepo.steps`` is 0)."""
    if not P.prepo.steps:
        return Part3([], [], {}, [])
    pool = make_pool(P)
    gold_judge, validation = None, None
    if "open" in P.prepo.domains:  # the training judge's weights when it names the same model (smoke): loaded once
        gold_judge = judge
        if P.prepo.open_gold != P.judge:
            loaded = load(P.prepo.open_gold)
            gold_judge = LogProbJudge(loaded.model, loaded.tokenizer, batch_size=8)
        validation = {"model": P.prepo.open_gold, "validation": validate_gold(gold_judge, P)}
    scores = score_new(policy, pool, hybrid_reward(pool, judge), P)
    arms = arm_prompts(pool, scores, P)
    runs = train_arms(P, policy, pool, judge, arms, out_dir, gold_judge)
    return Part3(scores, [{"domain": p.domain, "id": p.id} for p in pool.eval],
                 {a: [p.id for p in ps] for a, ps in arms.items()}, runs, validation)


def as_dict(part: Part3) -> dict[str, Any]:
    return asdict(part)
