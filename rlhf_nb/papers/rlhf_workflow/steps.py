"""Steps of ``notebooks/05_online_iterative_dpo.ipynb`` on the gold-reward testbed (:mod:`rlhf_nb.tasks.gold`).

1. **Reward models.** The policy samples ``rm_samples`` replies to each reward-model prompt; the gold (IFEval's
   checkers) labels the best and the worst of them, so both sides of a pair come from the same policy for the
   same prompt. HH-RLHF harmless-base pairs (human labels) are a second source. A Bradley-Terry head and a
   pairwise ("which is better, A or B?") head are fitted on a frozen backbone's features; held-out accuracy
   per source, beside a length-only baseline.
2. **Online iterative DPO** (the paper's loop): each round samples k replies per fresh prompt from the current
   policy, pairs the BT reward model's best against its worst, and runs DPO with the initial policy as the
   reference; ``seeds`` independent runs.
3. **Offline DPO** on the *same prompts*: k replies from the initial policy, ranked by the same reward model,
   exactly as many pairs as the online run of the same seed used, one DPO pass. Online and offline differ
   only in whether the samples come from the policy being trained.
4. **Evaluation** after every round: greedy replies to the held-out prompts, scored by the gold (never seen in
   training) and by the BT reward model (the proxy the policy optimised), with lengths and cut-offs.
"""

from __future__ import annotations

import gc
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlhf_nb.lm.evaluate import Replies, greedy, sample  # noqa: F401 - sample is used by the notebook
from rlhf_nb.lm.models import Loaded, load, merged_while
from rlhf_nb.papers.rlhf_workflow.params import Params
from rlhf_nb.tasks import gold
from rlhf_nb.tasks.data import PreferencePair, load_hh_rlhf
from rlhf_nb.tasks.gold import GoldSamples, with_gold  # noqa: F401 - with_gold is used by the notebook
from rlhf_nb.train.reward import Featurizer, LinearBT, LinearPairwise, fit_linear_bt, fit_linear_pairwise


@dataclass
class Prompts:
    rm: list[gold.IFPrompt]
    online: list[gold.IFPrompt]
    eval: list[gold.IFPrompt]

    def ids(self) -> dict[str, list[str]]:
        return {name: [p.id for p in getattr(self, name)] for name in ("rm", "online", "eval")}


def make_prompts(P: Params) -> Prompts:
    """Seeded verifiable-instruction prompts, split so that no base request appears in two sets."""
    sizes = {"rm": P.prompts.rm, "online": P.prompts.online, "eval": P.prompts.eval}
    pool = gold.synthetic_prompts(sum(sizes.values()), seed=P.seed, system=P.system)
    splits = gold.split_by_base(pool, sizes, seed=P.seed)
    return Prompts(splits["rm"], splits["online"], splits["eval"])


# ----------------------------------------------------------------------------------------------
# 1. reward models
# ----------------------------------------------------------------------------------------------


@dataclass
class RMData:
    train: list[PreferencePair]
    test: dict[str, list[PreferencePair]]  # source -> held-out pairs
    counts: list[dict[str, Any]]


def reward_data(prompts: list[gold.IFPrompt], scored: GoldSamples, P: Params) -> RMData:
    """Gold-labelled pairs (best vs worst of a prompt's finished samples), split by prompt; HH pairs split too."""
    pairs = gold.gold_pairs(prompts, scored.texts, scored.gold, scored.finished if P.finished_only else None)
    by_prompt = sorted({p.id.rsplit("-", 1)[0] for p in pairs})
    random.Random(P.seed).shuffle(by_prompt)
    held = set(by_prompt[: round(len(by_prompt) * P.rm_test_fraction)])
    train = [p for p in pairs if p.id.rsplit("-", 1)[0] not in held]
    test = {"if-gold": [p for p in pairs if p.id.rsplit("-", 1)[0] in held]}
    counts = [{"source": "if-gold (same-policy samples, IFEval checkers)", "prompts": len(prompts),
               "pairs": len(pairs), "train": len(train), "test": len(test["if-gold"])}]
    if P.hh is not None and P.hh_train + P.hh_test:
        if P.hh == "hub":  # the hub has both splits
            hh_train = load_hh_rlhf("hub", subset="harmless-base", split="train", seed=P.seed)[: P.hh_train]
            hh_test = load_hh_rlhf("hub", subset="harmless-base", split="test", seed=P.seed)[: P.hh_test]
        else:  # the bundled test split, divided in two
            hh = load_hh_rlhf(P.hh, subset="harmless-base", split="test", seed=P.seed)
            hh_train, hh_test = hh[: P.hh_train], hh[P.hh_train : P.hh_train + P.hh_test]
        train += hh_train
        test["hh-human"] = hh_test
        counts.append({"source": "hh-human (HH-RLHF harmless-base, human labels)", "prompts": P.hh_train + P.hh_test,
                       "pairs": P.hh_train + P.hh_test, "train": P.hh_train, "test": len(test["hh-human"])})
    random.Random(P.seed).shuffle(train)
    return RMData(train, test, counts)


@dataclass
class RewardModels:
    featurizer: Featurizer
    bt: LinearBT
    pairwise: LinearPairwise

    def score(self, prompts: list[Any], replies: list[str]) -> list[float]:
        """The BT reward of each (prompt, reply)."""
        return self.bt.score(prompts, replies).tolist()

    def reward(self, prompts: list[Any], completions: list[str], meta: list[dict] | None = None) -> list[float]:
        return self.score(prompts, completions)


def train_reward_models(backbone: Loaded, data: RMData, P: Params) -> RewardModels:
    featurizer = P.rm.featurizer(backbone)
    prompts = [p.prompt for p in data.train]
    bt = fit_linear_bt(featurizer(prompts, [p.chosen for p in data.train]),
                       featurizer(prompts, [p.rejected for p in data.train]), l2=P.rm.l2, featurizer=featurizer)
    pairwise = fit_linear_pairwise(featurizer, data.train, l2=P.rm.l2)
    return RewardModels(featurizer, bt, pairwise)


def rm_accuracy(rms: RewardModels, data: RMData) -> list[dict[str, Any]]:
    """Per model and source: each held-out pair's outcome (1 right, 0 wrong, 0.5 tie), and the outcomes of a
    length-only baseline (the longer reply is preferred) on the same pairs."""
    from rlhf_nb.train.reward import length_outcomes, pair_outcomes

    rows = []
    for source, pairs in data.test.items():
        if not pairs:
            continue
        length = length_outcomes(pairs).tolist()
        for name, model in (("BT", rms.bt), ("pairwise", rms.pairwise)):
            rows.append({"model": name, "source": source, "outcomes": pair_outcomes(model, pairs).tolist(),
                         "length_baseline": length})
    return rows


# ----------------------------------------------------------------------------------------------
# 2-4. online and offline DPO, judged by the gold
# ----------------------------------------------------------------------------------------------


@dataclass
class Snapshot:
    """A policy's greedy replies to the held-out prompts, judged."""

    arm: str  # "start", "online" or "offline"
    seed: int | None
    round: int
    gold: list[float]  # per held-out prompt
    proxy: list[float]  # BT reward
    tokens: list[int]
    finished: list[bool]
    dtype: str | None = None  # the weights' dtype the replies were sampled with (arms compared at one precision)


def snapshot(loaded: Loaded, prompts: list[gold.IFPrompt], rms: RewardModels, P: Params, arm: str, seed: int | None,
             round_: int) -> Snapshot:
    with merged_while(loaded):  # a policy in training is read as fast as a merged one
        replies = greedy(loaded, [p.messages() for p in prompts], P.eval_max_new_tokens,
                         label=f"{arm} {round_}: held-out")
    texts = replies.first
    return Snapshot(arm, seed, round_, gold.if_scores(prompts, texts), rms.score([p.messages() for p in prompts], texts),
                    [t[0] for t in replies.tokens], [f[0] for f in replies.finished], loaded.info.get("dtype"))


@dataclass
class OnlineRun:
    seed: int
    snapshots: list[Snapshot]
    history: list[dict[str, float]]
    pairs: int  # pairs formed over all rounds (the offline arm's budget)


def online(P: Params, prompts: Prompts, rms: RewardModels, seed: int, out_dir: str) -> OnlineRun:
    """Online iterative DPO (``rlhf_nb.train.online_dpo``) ranked by the BT RM; a snapshot after every round."""
    import torch

    from rlhf_nb.train.online_dpo import IterativeDPOConfig, iterative_dpo

    torch.manual_seed(seed)
    policy = load(P.policy, lora=P.lora.spec())
    snapshots: list[Snapshot] = []
    rounds = iter(range(1, P.iterations + 1))

    def evaluate(loaded: Loaded) -> dict[str, float]:  # after each round (round 0 is the shared start snapshot)
        snap = snapshot(loaded, prompts.eval, rms, P, "online", seed, next(rounds))
        snapshots.append(snap)
        return {"eval/gold": float(np.mean(snap.gold)), "eval/proxy": float(np.mean(snap.proxy)),
                "eval/tokens": float(np.mean(snap.tokens))}

    config = IterativeDPOConfig(iterations=P.iterations, k=P.sampling.n, temperature=P.sampling.temperature,
                                top_p=P.sampling.top_p, max_new_tokens=P.sampling.max_new_tokens,
                                prompts_per_iteration=P.prompts_per_iteration, sample_batch_size=P.sampling.batch_size,
                                dpo=P.dpo.build(f"{out_dir}/online_seed{seed}", seed=seed), seed=seed,
                                evaluate_start=False)
    result = iterative_dpo(policy, [p.messages() for p in prompts.online], rms.reward, config, evaluate=evaluate)
    history = [{k: v for k, v in row.items() if isinstance(v, (int, float))} for row in result.history]
    del policy, result
    gc.collect()
    return OnlineRun(seed, snapshots, history, int(sum(h.get("pairs", 0) for h in history)))


def offline_samples(initial: Loaded, prompts: Prompts, P: Params) -> Replies:
    """k replies per online prompt from the initial policy (shared by every offline seed)."""
    return sample(initial, [p.messages() for p in prompts.online], P.sampling.config(P.seed + 999), "offline samples")


def offline(P: Params, prompts: Prompts, rms: RewardModels, replies: Replies, n_pairs: int, seed: int,
            out_dir: str) -> tuple[Snapshot, int]:
    """DPO on pairs of the initial policy's replies to the same prompts, best vs worst by the same RM, ``n_pairs``
    of them (the online run's count), one pass; returns the snapshot and the number of pairs used."""
    import torch

    from rlhf_nb.train.dpo import train_dpo
    from rlhf_nb.train.online_dpo import best_vs_worst

    messages = [p.messages() for p in prompts.online]
    flat = rms.score([m for m, row in zip(messages, replies.texts) for _ in row],
                     [t for row in replies.texts for t in row])
    k = len(replies.texts[0])
    scores = [flat[i * k:(i + 1) * k] for i in range(len(messages))]
    pairs = best_vs_worst(messages, replies.texts, scores, tag="offline-")
    pairs = random.Random(seed).sample(pairs, min(n_pairs, len(pairs)))
    torch.manual_seed(seed)
    policy = load(P.policy, lora=P.lora.spec())
    if pairs:
        train_dpo(policy, pairs, P.dpo.build(f"{out_dir}/offline_seed{seed}", seed=seed))
    snap = snapshot(policy, prompts.eval, rms, P, "offline", seed, P.iterations)
    del policy
    gc.collect()
    return snap, len(pairs)


@dataclass
class Runs:
    start: Snapshot
    online: list[OnlineRun] = field(default_factory=list)
    offline: list[Snapshot] = field(default_factory=list)
    offline_pairs: list[int] = field(default_factory=list)


def run_arms(P: Params, prompts: Prompts, rms: RewardModels, initial: Loaded, out_dir: str) -> Runs:
    """The start snapshot, then ``seeds`` online runs and as many offline runs at matched pair budgets."""
    runs = Runs(snapshot(initial, prompts.eval, rms, P, "start", None, 0))
    replies = offline_samples(initial, prompts, P)
    for s in range(P.seeds):
        seed = P.seed + s
        run = online(P, prompts, rms, seed, out_dir)
        runs.online.append(run)
        snap, used = offline(P, prompts, rms, replies, run.pairs, seed, out_dir)
        runs.offline.append(snap)
        runs.offline_pairs.append(used)
    return runs
