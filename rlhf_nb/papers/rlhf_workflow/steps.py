"""Steps of ``notebooks/05_online_iterative_dpo.ipynb`` on the gold-reward testbed (:mod:`rlhf_nb.tasks.gold`).

1. **Reward models** (``reward_models``). The policy samples ``rm_samples`` replies to each reward-model prompt; the
   gold (IFEval's checkers) labels the best and the worst of them, so both sides of a pair come from the same policy
   for the same prompt. HH-RLHF harmless-base pairs (human labels) are a second source. A Bradley-Terry head and a
   pairwise ("which is better, A or B?") head are fitted on a frozen backbone's features; held-out accuracy per
   source, beside the trivial rules.
2. **Online iterative DPO** (the paper's loop): each round samples k replies per fresh prompt from the current
   policy, the **labeller** pairs its best against its worst, and DPO runs with the initial policy as the
   reference; ``seeds`` independent runs. The labeller is the gold by default (the claims are about the algorithm,
   so the gold serves as the preference oracle, as in Gao et al. 2022) or the BT reward model.
3. **Offline DPO** on the *same prompts*: k replies from the initial policy, ranked by the same labeller, exactly as
   many pairs as the online run of the same seed used (where the one offline draw has that many), trained as many
   epochs. The arms differ in whether the samples come from the policy being trained, and in that the online arm
   trains in rounds (a learning-rate schedule each); the offline draw is shared by the offline seeds.
4. **Evaluation** after every round: greedy replies to held-out prompts no arm trained on, scored by the gold,
   with lengths and cut-offs (a cut-off reply is scored as it stands: the gold sees what a user would). Every arm,
   the start included, is read alike (:func:`rlhf_nb.lm.models.reading`).
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from rlhf_nb.lm.evaluate import Replies, greedy, sample
from rlhf_nb.lm.models import Loaded, load, read_precision, reading
from rlhf_nb.notebook.experiment import run_now
from rlhf_nb.papers.rlhf_workflow.params import Params
from rlhf_nb.tasks import gold
from rlhf_nb.tasks.data import PreferencePair, load_hh_rlhf
from rlhf_nb.tasks.gold import GoldSamples
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


def reward_models(exp: Any, P: Params, prompts: Prompts, initial: Loaded) -> RewardModels | None:
    """Section 1 of the notebook, or None where ``reward_models`` is off: samples for the reward models (a cached
    stage), their gold-labelled pairs, the two heads and their held-out accuracy, saved with their findings."""
    from rlhf_nb.papers.rlhf_workflow import readers

    if not P.reward_models:
        exp.finding(readers.NO_REWARD_MODELS)
        return None
    backbone = initial if P.rm_backbone == P.policy else load(P.rm_backbone)
    replies = exp.stage("reward-model samples", sample, initial, [p.messages() for p in prompts.rm],
                        P.sampling.config(P.seed, n=P.rm_samples), "reward-model samples")
    data = reward_data(prompts.rm, exp.save("rm_samples", gold.with_gold(prompts.rm, replies)), P)
    exp.save("rm_counts", data.counts)
    exp.finding(readers.finding_rm_data(exp.results))
    rms = train_reward_models(backbone, data, P)
    exp.save("rm_accuracy", rm_accuracy(rms, data))
    exp.finding(readers.finding_rms(exp.results))
    return rms


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


Labeller = Any  # a reward callable (prompts, completions, meta) -> scores; meta[i]["if_prompt"] is the IFPrompt


def labeller(P: Params, rms: RewardModels | None, seed: int) -> Labeller:
    """The scorer whose best and worst reply of a prompt form a pair (``P.labeller``): the gold (IFEval's checkers),
    plus a simulated rater's Gaussian noise of SD ``P.label_noise`` drawn from ``seed``, or the BT reward model."""
    if P.labeller == "rm":
        if rms is None:
            raise ValueError("labeller 'rm' needs the reward models (reward_models: true)")
        return rms.reward
    rng = np.random.default_rng([seed, 5])

    def rate(prompts: Any, completions: Any, meta: Any) -> list[float]:
        scores = np.array(gold.if_reward(prompts, completions, meta))
        return (scores + P.label_noise * rng.standard_normal(len(scores)) if P.label_noise else scores).tolist()

    return rate


@dataclass
class Snapshot:
    """A policy's greedy replies to the held-out prompts, judged."""

    arm: str  # "start", "online" or "offline"
    seed: int | None
    round: int
    gold: list[float]  # per held-out prompt
    proxy: list[float]  # BT reward (empty without reward models)
    tokens: list[int]
    finished: list[bool]
    dtype: str | None = None  # how the replies were read (models.read_precision): arms compared at one precision
    seconds: float = 0.0  # wall time of the greedy replies
    tokens_per_s: float = 0.0


def snapshot(loaded: Loaded, prompts: list[gold.IFPrompt], rms: RewardModels | None, P: Params, arm: str,
             seed: int | None, round_: int) -> Snapshot:
    started = time.perf_counter()
    with reading(loaded):  # every arm, the start included, read alike (on a fast-bf16 CPU: bf16 matmuls, fp32 sums)
        replies = greedy(loaded, [p.messages() for p in prompts], P.eval_max_new_tokens,
                         label=f"{arm} {round_}: held-out")
        read = read_precision(loaded)
    seconds = time.perf_counter() - started
    texts = replies.first
    proxy = rms.score([p.messages() for p in prompts], texts) if rms is not None else []
    return Snapshot(arm, seed, round_, gold.if_scores(prompts, texts), proxy, [t[0] for t in replies.tokens],
                    [f[0] for f in replies.finished], read, seconds, replies.tokens_per_s)


@dataclass
class OnlineRun:
    seed: int
    snapshots: list[Snapshot]
    history: list[dict[str, float]]  # per round: the samples' mean label, tokens, cut-off share, entropy; DPO stats
    pairs: int  # pairs formed over all rounds (the offline arm's budget)


def _meta(prompts: list[gold.IFPrompt]) -> list[dict[str, Any]]:
    return [{"if_prompt": p} for p in prompts]


def online(P: Params, prompts: Prompts, rms: RewardModels | None, seed: int, out_dir: str) -> OnlineRun:
    """Online iterative DPO (``rlhf_nb.train.online_dpo``), pairs by ``labeller``; a snapshot after every round."""
    import torch

    from rlhf_nb.train.online_dpo import IterativeDPOConfig, iterative_dpo

    torch.manual_seed(seed)
    policy = load(P.policy, lora=P.lora.spec())
    snapshots: list[Snapshot] = []
    rounds = iter(range(1, P.iterations + 1))

    def evaluate(loaded: Loaded) -> dict[str, float]:  # after each round (round 0 is the shared start snapshot)
        snap = snapshot(loaded, prompts.eval, rms, P, "online", seed, next(rounds))
        snapshots.append(snap)
        return {"eval/gold": float(np.mean(snap.gold)), "eval/tokens": float(np.mean(snap.tokens))}

    config = IterativeDPOConfig(iterations=P.iterations, k=P.sampling.n, temperature=P.sampling.temperature,
                                top_p=P.sampling.top_p, max_new_tokens=P.sampling.max_new_tokens,
                                prompts_per_iteration=P.prompts_per_iteration, sample_batch_size=P.sampling.batch_size,
                                dpo=P.dpo.build(f"{out_dir}/online_seed{seed}", seed=seed), seed=seed,
                                evaluate_start=False)
    result = iterative_dpo(policy, [p.messages() for p in prompts.online], labeller(P, rms, seed), config,
                           meta=_meta(prompts.online), evaluate=evaluate)
    history = [{k: v for k, v in row.items() if isinstance(v, (int, float))} for row in result.history]
    del policy, result
    gc.collect()
    return OnlineRun(seed, snapshots, history, int(sum(h.get("pairs", 0) for h in history)))


def offline_samples(initial: Loaded, prompts: Prompts, P: Params) -> Replies:
    """k replies per online prompt from the initial policy, read as every arm is (shared by every offline seed)."""
    with reading(initial):
        return sample(initial, [p.messages() for p in prompts.online],
                      replace(P.sampling.config(P.seed + 999), entropy=True), "offline samples")


def offline(P: Params, prompts: Prompts, rms: RewardModels | None, replies: Replies, n_pairs: int, seed: int,
            out_dir: str) -> tuple[Snapshot, int, float]:
    """DPO on pairs of the initial policy's replies to the same prompts, best vs worst by the same labeller,
    ``n_pairs`` of them (the online run's count), as many epochs as each online round; returns the snapshot, the
    number of pairs used and the training's wall seconds."""
    import torch

    from rlhf_nb.train.dpo import train_dpo
    from rlhf_nb.train.online_dpo import best_vs_worst

    messages = [p.messages() for p in prompts.online]
    k = len(replies.texts[0])
    flat = labeller(P, rms, seed)([m for m in messages for _ in range(k)], [t for row in replies.texts for t in row],
                                  [m for m in _meta(prompts.online) for _ in range(k)])
    scores = [flat[i * k:(i + 1) * k] for i in range(len(messages))]
    pairs = best_vs_worst(messages, replies.texts, scores, tag="offline-")
    pairs = random.Random(seed).sample(pairs, min(n_pairs, len(pairs)))
    torch.manual_seed(seed)
    policy = load(P.policy, lora=P.lora.spec())
    started = time.perf_counter()
    if pairs:
        train_dpo(policy, pairs, P.dpo.build(f"{out_dir}/offline_seed{seed}", seed=seed))
    trained = time.perf_counter() - started
    snap = snapshot(policy, prompts.eval, rms, P, "offline", seed, P.iterations)
    del policy
    gc.collect()
    return snap, len(pairs), trained


@dataclass
class Runs:
    start: Snapshot
    online: list[OnlineRun] = field(default_factory=list)
    offline: list[Snapshot] = field(default_factory=list)
    offline_pairs: list[int] = field(default_factory=list)
    offline_samples: dict[str, float] = field(default_factory=dict)  # the start's samples: label, tokens, entropy
    offline_seconds: list[float] = field(default_factory=list)  # each offline arm's DPO training


def offline_pool(initial: Loaded, prompts: Prompts, P: Params) -> tuple[Replies, dict[str, float]]:
    """:func:`offline_samples` with their gold label, length, cut-off share, entropy, wall time and speed."""
    started = time.perf_counter()
    replies = offline_samples(initial, prompts, P)
    labels = [g for p, row in zip(prompts.online, replies.texts) for g in gold.if_scores([p] * len(row), row)]
    return replies, {"gold": float(np.mean(labels)), "mean_tokens": float(np.mean(
        [n for row in replies.tokens for n in row])), "cut_off": replies.cap_rate, "entropy": float(np.mean(
        [h for row in replies.entropy or [] for h in row])), "seconds": time.perf_counter() - started,
        "tokens_per_s": replies.tokens_per_s}


def run_arms(P: Params, prompts: Prompts, rms: RewardModels | None, initial: Loaded, out_dir: str,
             stage: Callable[..., Any] = run_now) -> Runs:
    """The start snapshot, then ``seeds`` online runs and as many offline runs at matched pair budgets. Each is a
    ``stage`` of its own (``Experiment.stage`` in the notebook), so a stopped run resumes after its last finished
    arm."""
    runs = Runs(stage("start snapshot", snapshot, initial, prompts.eval, rms, P, "start", None, 0))
    replies, runs.offline_samples = stage("offline samples", offline_pool, initial, prompts, P)
    for s in range(P.seeds):
        seed = P.seed + s
        run = stage(f"online seed {seed}", online, P, prompts, rms, seed, out_dir)
        runs.online.append(run)
        snap, used, seconds = stage(f"offline seed {seed}", offline, P, prompts, rms, replies, run.pairs, seed, out_dir)
        runs.offline.append(snap)
        runs.offline_pairs.append(used)
        runs.offline_seconds.append(seconds)
        gc.collect()
    return runs
