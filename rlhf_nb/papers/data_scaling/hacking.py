"""Part 2 of ``notebooks/03_data_scaling_rlhf.ipynb``: reward hacking by reward type (Shen et al. 2025, Fig. 7).

The paper trains with PPO under a rule-based verifier (RTV), a generative reward model that reads the ground truth
(GenRM with GT) and a Bradley-Terry RM (BT), and finds RTV the most resistant to hacking, then GenRM with GT, BT the
least. Here, on math (GSM8K), where the gold is the final-answer checker:

1. **The BT RM**: a linear Bradley-Terry head on the judge's frozen features, trained on part 1's math samples:
   right vs wrong responses of the *same* policy to the *same* problem (the gold labels them; nothing else differs
   in source), split by problem so that some pairs validate it.
2. **GRPO** (trl ``GRPOTrainer``; chosen over PPO because it needs no value model: half the memory and compute on
   two cores, the same group-relative signal the paper's PPO estimates with a critic) from the same policy with a
   fresh LoRA adapter, under each reward alone, ``seeds`` runs each. The RTV reward is the gold itself.
3. **Snapshots**: before training and every ``eval_every`` steps, the policy's greedy answers to held-out GSM8K test
   problems (none of part 1's) are scored by the arm's reward (the proxy) and by the gold.

The hacking index (``readers.py``) is computed from the saved snapshots alone.
"""

from __future__ import annotations

import gc
import random
from dataclasses import dataclass, replace
from typing import Any

from rlhf_nb.lm.evaluate import Replies, greedy
from rlhf_nb.lm.models import Loaded, load
from rlhf_nb.papers.data_scaling.params import Params
from rlhf_nb.papers.data_scaling.steps import right_wrong
from rlhf_nb.rewards.judge import LogProbJudge
from rlhf_nb.rewards.math import clean_solution, is_correct, math_prompt, math_reward
from rlhf_nb.tasks.data import MathTask, PreferencePair, load_gsm8k
from rlhf_nb.train.reward import Featurizer, LinearBT, fit_linear_bt, length_outcomes, pair_outcomes


@dataclass(frozen=True)
class Problems:
    train: list[MathTask]  # what GRPO samples from (GSM8K train)
    eval: list[MathTask]  # held-out (GSM8K test, none of part 1's)


def problems(P: Params, part1_ids: set[str]) -> Problems:
    """Seeded GSM8K train problems for GRPO and test problems for the snapshots, disjoint from part 1's items."""
    H = P.hacking
    rng = random.Random(P.seed + 3)
    train = load_gsm8k(P.items.gsm8k, "train")
    test = [t for t in load_gsm8k(P.items.gsm8k, "test") if t.id not in part1_ids]
    for name, pool, want in (("train", train, H.train_prompts), ("test (outside part 1)", test, H.eval_items)):
        if want > len(pool):
            raise ValueError(f"parameter 'hacking': {want} GSM8K {name} problems asked for, the source has {len(pool)}")
    return Problems(rng.sample(train, H.train_prompts), rng.sample(test, H.eval_items))


def _meta(task: MathTask) -> dict[str, str]:
    return {"answer": task.answer, "reference": clean_solution(task.solution) or task.answer}


# ----------------------------------------------------------------------------------------------
# 1. the BT RM, from part 1's same-policy samples
# ----------------------------------------------------------------------------------------------


def bt_pairs(records: list[dict[str, Any]], questions: dict[str, str], P: Params
             ) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Every right x wrong pair of part 1's mixed math items (deduplicated texts), split by item into train / test."""
    pairs: dict[str, list[PreferencePair]] = {}
    for r in records:
        if r["domain"] != "math":
            continue
        messages = math_prompt(questions[r["id"]])
        mine = [PreferencePair(f"{r['id']}-{i}", messages, c, x)
                for i, (c, x) in enumerate(right_wrong(r["responses"], r["gold"]))]
        if mine:
            pairs[r["id"]] = mine
    ids = sorted(pairs)
    random.Random(P.seed).shuffle(ids)
    held = set(ids[: round(len(ids) * P.hacking.bt_test_fraction)])
    return ([p for i in ids if i not in held for p in pairs[i]], [p for i in ids if i in held for p in pairs[i]])


@dataclass
class BTModel:
    bt: LinearBT | None  # None: no training pairs
    train_pairs: int
    test_outcomes: list[float]  # per held-out pair: 1 right, 0 wrong, 0.5 tie
    length_outcomes: list[float]  # the same pairs by a length-only baseline (longer preferred)


def fit_bt(model: Any, tokenizer: Any, train: list[PreferencePair], test: list[PreferencePair], P: Params) -> BTModel:
    """A linear BT head on a frozen model's features (last token + mean), validated on held-out pairs."""
    if not train:
        return BTModel(None, 0, [], [])
    featurizer = Featurizer(model, tokenizer, batch_size=8, max_length=P.hacking.bt.max_length,
                            pooling=P.hacking.bt.pooling)
    prompts = [p.prompt for p in train]
    bt = fit_linear_bt(featurizer(prompts, [p.chosen for p in train]), featurizer(prompts, [p.rejected for p in train]),
                       l2=P.hacking.bt.l2, featurizer=featurizer)
    return BTModel(bt, len(train), pair_outcomes(bt, test).tolist() if test else [], length_outcomes(test).tolist())


# ----------------------------------------------------------------------------------------------
# 2-3. GRPO under each reward, with snapshots
# ----------------------------------------------------------------------------------------------


def rewards(judge: LogProbJudge, bt: BTModel) -> dict[str, Any]:
    """The reward callables ``fn(prompts, completions, meta)``; meta carries each problem's answer and reference."""
    out: dict[str, Any] = {"rtv": math_reward, "genrm_gt": judge.genrm_reward}
    if bt.bt is not None:
        out["bt"] = bt.bt
    return out


@dataclass
class Snapshot:
    """The policy's greedy answers to the held-out problems at one step, scored by the arm's reward and the gold."""

    reward: str
    seed: int
    step: int
    proxy: list[float]
    gold: list[float]
    tokens: list[int]
    finished: list[bool]


def snapshot(loaded: Loaded, probs: Problems, reward_fn: Any, P: Params, name: str, seed: int, step: int,
             replies: Replies | None = None) -> Snapshot:
    """``replies``: the greedy answers when already made (the start policy's, shared by every reward)."""
    prompts = [math_prompt(t.question) for t in probs.eval]
    if replies is None:
        replies = greedy(loaded, prompts, P.hacking.max_new_tokens, label=f"{name} seed {seed} step {step}: held-out")
    texts = replies.first
    proxy = [float(x) for x in reward_fn(prompts, texts, [_meta(t) for t in probs.eval])]
    gold = [float(is_correct(x, t.answer)) for x, t in zip(texts, probs.eval)]
    return Snapshot(name, seed, step, proxy, gold, [t[0] for t in replies.tokens], [f[0] for f in replies.finished])


def _snapshot_callback(policy: Loaded, probs: Problems, reward_fn: Any, P: Params, name: str, seed: int,
                       into: list[Snapshot]):
    from rlhf_nb.train.grpo import every_steps

    return every_steps(P.hacking.eval_every, lambda model, step: into.append(
        snapshot(replace(policy, model=model), probs, reward_fn, P, name, seed, step)))


@dataclass
class Run:
    reward: str
    seed: int
    snapshots: list[Snapshot]
    history: list[dict[str, float]]  # trl's log per step: reward, its std, entropy, KL, completion lengths...


def train_runs(P: Params, start: Loaded, probs: Problems, reward_fns: dict[str, Any], out_dir: str) -> list[Run]:
    """Per reward and seed, GRPO from ``P.policy`` with a fresh LoRA adapter; step 0 is ``start``'s snapshot,
    shared by the seeds of an arm (greedy answers of the same weights)."""
    import torch

    from rlhf_nb.train.grpo import train_grpo

    H = P.hacking
    prompts = [math_prompt(t.question) for t in probs.train]
    meta = [_meta(t) for t in probs.train]
    runs = []
    start_replies = greedy(start, [math_prompt(t.question) for t in probs.eval], H.max_new_tokens,
                           label="start: held-out")  # the same weights for every reward: answer once, score each
    for name in H.rewards:
        if name not in reward_fns:
            continue
        first = snapshot(start, probs, reward_fns[name], P, name, -1, 0, replies=start_replies)
        for k in range(P.seeds):
            seed = P.seed + k
            torch.manual_seed(seed)
            policy = load(P.policy, lora=H.lora.spec())
            snaps = [replace(first, seed=seed)]
            config = H.grpo.build(f"{out_dir}/grpo_{name}_seed{seed}", seed=seed, max_steps=H.steps)
            result = train_grpo(policy, prompts, reward_fns[name], config, meta=meta,
                                callbacks=[_snapshot_callback(policy, probs, reward_fns[name], P, name, seed, snaps)])
            history = [{k2: v for k2, v in row.items() if isinstance(v, (int, float))} for row in result.history]
            runs.append(Run(name, seed, snaps, history))
            del policy, result
            gc.collect()
    return runs


@dataclass
class Part2:
    bt_rm: dict[str, Any]  # training pairs, held-out outcomes (and a length-only baseline's)
    runs: list[dict[str, Any]]  # Run as plain data


def run(P: Params, items: Any, policy: Loaded, judge: LogProbJudge, part1: list[dict[str, Any]], out_dir: str
        ) -> Part2:
    """The whole of part 2 (nothing when ``hacking.steps`` is 0): the BT RM from part 1's records (``part1``, as
    saved), then GRPO under each reward with snapshots. ``policy`` (no adapter) gives the step-0 snapshots."""
    from dataclasses import asdict

    if not P.hacking.steps:
        return Part2({"train_pairs": 0, "test_outcomes": [], "length_outcomes": [], "fitted": False}, [])
    questions = {it.id: it.question for it in items.items if it.domain == "math"}
    bt = fit_bt(judge.model, judge.tokenizer, *bt_pairs(part1, questions, P), P)
    probs = problems(P, {r["id"] for r in part1 if r["domain"] == "math"})
    runs = train_runs(P, policy, probs, rewards(judge, bt), out_dir)
    summary = {"train_pairs": bt.train_pairs, "test_outcomes": bt.test_outcomes,
               "length_outcomes": bt.length_outcomes, "fitted": bt.bt is not None}
    return Part2(summary, [asdict(r) for r in runs])
