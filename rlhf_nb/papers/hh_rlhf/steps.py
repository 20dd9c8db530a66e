"""Steps of ``notebooks/01_hh_preference_models.ipynb`` (Bai et al. 2022, arXiv 2204.05862).

1. **Preference models, cross-evaluated.** Harmless pairs are HH-RLHF harmless-base (human labels). Helpful pairs
   are HH-RLHF helpful-base from the hub where it can be reached; offline they are pairs of the policy's own
   samples to verifiable-instruction prompts, labelled by the gold (``rlhf_nb.tasks.gold``): "helpful" here means
   following the user's checkable instructions. Helpful-only, harmless-only and mixed Bradley-Terry heads on a
   frozen backbone, each fitted ``seeds`` times on random 80% subsets, are scored on both held-out sets.
2. **PM accuracy vs data** (mixed PM, several training sizes, every size and seed) and vs backbone size.
3. **RLHF against a PM, judged by what it did not optimise.** As Bai et al. split their data into a *train* PM
   (optimised against) and a *test* PM (evaluation), two mixed PMs are fitted on disjoint halves of the training
   pairs. Best-of-n against the train PM (KL known exactly: log n - (n-1)/n) on held-out prompts gives the reward
   vs sqrt(KL) curve; DPO (and PPO where enabled) against the train PM are trained ``seeds`` times. Policies are
   judged by the gold and by the test PM.
4. **Alignment tax**: HumanEval pass@1 (greedy) of the raw and the trained policies.
"""

from __future__ import annotations

import gc
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlhf_nb.lm.evaluate import greedy
from rlhf_nb.lm.models import Loaded, count_parameters, load, merged
from rlhf_nb.papers.hh_rlhf import readers
from rlhf_nb.papers.hh_rlhf.params import Params
from rlhf_nb.rewards.forgetting import Scored, coding
from rlhf_nb.tasks import gold
from rlhf_nb.tasks.data import PreferencePair, load_hh_rlhf, load_humaneval
from rlhf_nb.tasks.gold import GoldSamples, sample_with_gold  # noqa: F401 - sample_with_gold is used by the notebook
from rlhf_nb.train.reward import LinearBT, fit_linear_bt, length_outcomes, pair_outcomes

SETS = ("helpful", "harmless")


@dataclass
class Prompts:
    helpful: list[gold.IFPrompt]  # sampled for helpful pairs (if-gold)
    eval: list[gold.IFPrompt]  # held-out: the trained RLHF policies are judged here
    rl: list[gold.IFPrompt]  # the trained arms' prompts
    bon: list[gold.IFPrompt]  # best-of-n: sampled bon.n times, in three folds (see best_of_n)

    def ids(self) -> dict[str, list[str]]:
        return {k: [p.id for p in getattr(self, k)] for k in ("helpful", "eval", "rl", "bon")}


def make_prompts(P: Params) -> Prompts:
    sizes = {"helpful": P.helpful_prompts if P.helpful == "if-gold" else 0, "eval": P.eval_prompts,
             "rl": P.rl_prompts, "bon": P.bon_prompts}
    pool = gold.synthetic_prompts(sum(sizes.values()), seed=P.seed, system=P.system)
    splits = gold.split_by_base(pool, sizes, seed=P.seed)
    return Prompts(splits["helpful"], splits["eval"], splits["rl"], splits["bon"])


# ----------------------------------------------------------------------------------------------
# 1-2. preference models
# ----------------------------------------------------------------------------------------------


@dataclass
class PairSets:
    train: dict[str, list[PreferencePair]]
    test: dict[str, list[PreferencePair]]

    def counts(self) -> list[dict[str, Any]]:
        source = {"harmless": "HH-RLHF harmless-base (human labels)"}
        return [{"set": s, "train": len(self.train[s]), "test": len(self.test[s]),
                 "source": source.get(s, self.train[s][0].source if self.train[s] else "-")} for s in SETS]


def pair_sets(P: Params, prompts: Prompts, helpful: GoldSamples | None) -> PairSets:
    """Seeded, disjoint train/test pairs per set; if-gold helpful pairs are split by prompt."""
    harmless = load_hh_rlhf(P.harmless, subset="harmless-base", split="test" if P.harmless != "hub" else "train",
                            seed=P.seed)
    if P.harmless == "hub":
        harmless_test = load_hh_rlhf("hub", subset="harmless-base", split="test", seed=P.seed)[: P.harmless_test]
        harmless_train = harmless[: P.harmless_train]
    else:
        harmless_train, harmless_test = harmless[: P.harmless_train], harmless[P.harmless_train:
                                                                              P.harmless_train + P.harmless_test]
    if P.helpful == "hub":
        help_train = load_hh_rlhf("hub", subset="helpful-base", split="train", seed=P.seed)[: P.helpful_hub_train]
        help_test = load_hh_rlhf("hub", subset="helpful-base", split="test", seed=P.seed)[: P.helpful_hub_test]
    else:
        assert helpful is not None
        pairs = gold.gold_pairs(prompts.helpful, helpful.texts, helpful.gold,
                                helpful.finished if P.finished_only else None, source="if-gold")
        ids = sorted({p.id.rsplit("-", 1)[0] for p in pairs})
        random.Random(P.seed).shuffle(ids)
        held = set(ids[: round(len(ids) * P.helpful_test_fraction)])
        help_train = [p for p in pairs if p.id.rsplit("-", 1)[0] not in held]
        help_test = [p for p in pairs if p.id.rsplit("-", 1)[0] in held]
    return PairSets({"helpful": help_train, "harmless": harmless_train}, {"helpful": help_test, "harmless": harmless_test})


class PMs:
    """Bradley-Terry heads on one frozen backbone; every conversation is featurised once (cached by text)."""

    def __init__(self, backbone: Loaded, P: Params):
        self.P = P
        self.featurizer = P.pm.featurizer(backbone)

    def fit(self, pairs: list[PreferencePair]) -> LinearBT:
        prompts = [p.prompt for p in pairs]
        return fit_linear_bt(self.featurizer(prompts, [p.chosen for p in pairs]),
                             self.featurizer(prompts, [p.rejected for p in pairs]), l2=self.P.pm.l2,
                             featurizer=self.featurizer)

    def outcomes(self, pm: LinearBT, pairs: list[PreferencePair]) -> list[float]:
        """Per pair: 1 if the PM prefers chosen, 0 if rejected, 0.5 on a tie."""
        return pair_outcomes(pm, pairs).tolist()

    def scores(self, pm: LinearBT, prompts: list[Any], replies: list[str]) -> list[float]:
        return pm.score(prompts, replies).tolist()


def _subset(pairs: list[PreferencePair], fraction: float, seed: int) -> list[PreferencePair]:
    chosen = random.Random(seed).sample(pairs, max(1, round(len(pairs) * fraction)))
    return chosen


def mixed_pool(sets: PairSets, seed: int) -> list[PreferencePair]:
    """Helpful and harmless training pairs interleaved (seeded): every prefix is a balanced mixture."""
    h, s = sets.train["helpful"][:], sets.train["harmless"][:]
    random.Random(seed).shuffle(h)
    random.Random(seed + 1).shuffle(s)
    return [p for ab in zip(h, s) for p in ab] + h[len(s):] + s[len(h):]


def cross_evaluate(pms: PMs, sets: PairSets, P: Params) -> list[dict[str, Any]]:
    """Helpful-only, harmless-only and mixed PMs of equal training size, ``seeds`` fits each on random 80% subsets;
    each row holds one PM type's outcomes on one test set, per seed, and a length-only baseline's on that set."""
    n = min(len(sets.train["helpful"]), len(sets.train["harmless"]))
    if n < 2:
        raise ValueError(f"too few training pairs to fit PMs ({len(sets.train['helpful'])} helpful, "
                         f"{len(sets.train['harmless'])} harmless): raise helpful_prompts / helpful_samples")
    rows = []
    for name in ("helpful", "harmless", "mixed"):
        per_seed = {t: [] for t in SETS}
        for s in range(P.seeds):
            pool = mixed_pool(sets, P.seed + s)[:n] if name == "mixed" else sets.train[name][:n]
            pm = pms.fit(_subset(pool, 0.8, P.seed + s))
            for t in SETS:
                per_seed[t].append(pms.outcomes(pm, sets.test[t]))
        for t in SETS:
            rows.append({"pm": name, "test": t, "train_pairs": round(0.8 * n), "outcomes": per_seed[t],
                         "length_baseline": length_outcomes(sets.test[t]).tolist()})
    return rows


def data_size_curve(pms: PMs, sets: PairSets, P: Params) -> list[dict[str, Any]]:
    """Mixed PM at every size in ``data_sizes`` (sizes beyond the pool are skipped), ``seeds`` random subsets each."""
    pool = mixed_pool(sets, P.seed)
    rows = []
    for size in sorted(set(P.data_sizes)):
        if size > len(pool):
            continue
        per_seed = {t: [] for t in SETS}
        for s in range(P.seeds):
            pm = pms.fit(random.Random(P.seed + 100 + s).sample(pool, size))
            for t in SETS:
                per_seed[t].append(pms.outcomes(pm, sets.test[t]))
        for t in SETS:
            rows.append({"train_pairs": size, "test": t, "outcomes": per_seed[t]})
    return rows


def model_size_curve(sets: PairSets, P: Params, pms: PMs) -> list[dict[str, Any]]:
    """Mixed PM (the whole pool) on ``pm_backbone`` and each of ``pm_sizes``."""
    pool = mixed_pool(sets, P.seed)
    rows = []
    for name in dict.fromkeys([P.pm_backbone, *P.pm_sizes]):
        heads = pms if name == P.pm_backbone else PMs(load(name), P)
        pm = heads.fit(pool)
        rows.append({"backbone": name, "params": count_parameters(heads.featurizer.model)["total"],
                     **{t: heads.outcomes(pm, sets.test[t]) for t in SETS}})
        if heads is not pms:
            del heads
            gc.collect()
    return rows


@dataclass
class TrainTestPM:
    """Bai et al.'s split: the train PM (optimised against) and the test PM (evaluation), on disjoint halves."""

    train: LinearBT
    test: LinearBT
    train_outcomes: dict[str, list[float]]  # held-out accuracy per set
    test_outcomes: dict[str, list[float]]


def train_test_pms(pms: PMs, sets: PairSets, P: Params) -> TrainTestPM:
    pool = mixed_pool(sets, P.seed + 7)
    half_a, half_b = pool[0::2], pool[1::2]
    train, test = pms.fit(half_a), pms.fit(half_b)
    return TrainTestPM(train, test, {t: pms.outcomes(train, sets.test[t]) for t in SETS},
                       {t: pms.outcomes(test, sets.test[t]) for t in SETS})


# ----------------------------------------------------------------------------------------------
# 3. RLHF against the train PM
# ----------------------------------------------------------------------------------------------


FOLDS = 3  # best-of-n prompts: each fold is scored by PMs fitted on the other two (one for train, one for test)
DRAWS = 3  # fold assignments: which prompts fit a PM is a source of chance too, so the folds are drawn three times


@dataclass
class BestOfN:
    """Best-of-n against the train PM on held-out prompts, per fold draw, n and prompt: what its pick scores by the
    train PM, the held-out test PM and the gold, beside the picks of the length rules and of the gold itself. Each
    prompt's PMs were fitted on other prompts' pairs (:func:`best_of_n`). PM scores are centred per prompt and in units
    of each fold PM's within-prompt standard deviation over the replies it ranks."""

    n: list[int]
    kl: list[float]
    test_n: int  # the n H3a and H3b test (bon_test_n)
    train_pm: list[list[list[float]]]  # [draw][n][prompt]
    gold: list[list[list[float]]]
    test_pm: list[list[list[float]]]
    test_pm_shorter: list[list[list[float]]]  # the test PM of the pick of "prefer the shorter reply"
    test_pm_longer: list[list[list[float]]]
    gold_shorter: list[list[float]]  # [n][prompt]: the gold of the pick of "prefer the shorter reply"
    gold_longer: list[list[float]]
    gold_oracle: list[list[float]]  # the gold's own pick: the most any reward could reach
    gold_finished: list[float | None]  # per prompt: the mean gold of its replies that finished (None: none did)
    pick_cut_off: list[list[float]]  # [draw][n]: the share of the train PM's picks cut off at the token cap
    cap_rate: float  # of all the sampled replies
    tokens: list[float]  # mean length per prompt
    validation: dict[str, list]  # every prompt's pairs, each scored by the PMs that did not see it: "train" /
    # "test" [draw][pair], and per pair "longer" (the longer-reply rule), "finished" (both replies ended on their own)
    # and "prompt" (the pairs of a prompt are one cluster)
    fold_pairs: list[list[int]]  # [draw][fold]: gold-labelled pairs each fold lends its PMs


def _fold_pairs(prompts: list[gold.IFPrompt], samples: GoldSamples, per_prompt: int, seed: int
                ) -> list[list[tuple[int, int]]]:
    """Per prompt, up to ``per_prompt`` (better, worse) reply indices whose gold differs, drawn at random. Cut-off
    replies take part: best-of-n ranks them too, and the gold scores a reply as it stands."""
    rng = random.Random(seed)
    out = []
    for texts, g in zip(samples.texts, samples.gold):
        pairs = gold.differing_pairs(texts, g)
        out.append(rng.sample(pairs, min(per_prompt, len(pairs))))
    return out


def _within_prompt_units(scores: np.ndarray) -> np.ndarray:
    """Scores (prompts, m) centred per prompt, in units of their pooled within-prompt standard deviation."""
    centred = scores - scores.mean(1, keepdims=True)
    sd = float(np.sqrt((centred ** 2).mean()))
    return centred / (sd or 1.0)


def best_of_n(pms: PMs, samples: GoldSamples, prompts: list[gold.IFPrompt], P: Params) -> BestOfN:
    """Best-of-n on held-out prompts in three folds, so that no PM ranks replies to a prompt it was fitted on, and
    every prompt is both a best-of-n item and PM data. The prompts of fold k are ranked by a train PM fitted on
    fold k+1's gold-labelled pairs and scored by a test PM fitted on fold k+2's (Bai et al.'s train / test split,
    on disjoint prompts); fold k's own pairs validate both. The folds are drawn :data:`DRAWS` times (features are
    cached, so a draw costs only its fits). Expected picks are exact over all size-n subsets of each prompt's
    ``bon.n`` replies (:mod:`rlhf_nb.evidence.bestofn`)."""
    from rlhf_nb.evidence import bestofn

    m = len(samples.texts[0])
    index = _fold_pairs(prompts, samples, P.bon_pairs, P.seed + 12)
    messages = [p.messages() for p in prompts]
    pairs = [[PreferencePair(f"{prompts[i].id}-{a}-{b}", messages[i], samples.texts[i][a], samples.texts[i][b],
                             "if-gold") for a, b in index[i]] for i in range(len(prompts))]
    G = np.asarray(samples.gold, dtype=float)
    T = np.asarray(samples.tokens, dtype=float)
    F = np.asarray(samples.finished, dtype=bool)
    cut = 1.0 - F
    ns = [2 ** i for i in range(int(np.log2(m)) + 1)]
    pick = lambda reward, values, n: bestofn.expected_pick(reward, values, n).tolist()  # noqa: E731
    out: dict[str, list] = {k: [] for k in ("train_pm", "gold", "test_pm", "test_pm_shorter", "test_pm_longer",
                                            "pick_cut_off", "fold_pairs")}
    validation: dict[str, list] = {"train": [], "test": []}
    for draw in range(DRAWS):
        gen = random.Random(P.seed + 11 + draw)  # prompts with pairs dealt round-robin first: balanced folds
        order = [sorted(i for i in range(len(prompts)) if bool(pairs[i]) is has) for has in (True, False)]
        order = [i for part in order for i in gen.sample(part, len(part))]
        fold = np.empty(len(prompts), dtype=int)
        fold[order] = np.arange(len(prompts)) % FOLDS
        scores = {"train": np.zeros((len(prompts), m)), "test": np.zeros((len(prompts), m))}
        outcomes: dict[str, list[list[float]]] = {"train": [[] for _ in prompts], "test": [[] for _ in prompts]}
        counts = []
        for k in range(FOLDS):
            rows = np.flatnonzero(fold == k)
            lent = {j: [x for i in np.flatnonzero(fold == (k + j) % FOLDS) for x in pairs[i]] for j in (1, 2)}
            counts.append(sum(len(pairs[i]) for i in rows))
            short = {j: len(x) for j, x in lent.items() if len(x) < 2}
            if short:
                raise ValueError(f"best-of-n fold {k}: the folds that fit its PMs lend {short} gold-labelled pairs "
                                 "(need 2 each): too few replies differ by the gold; raise bon_prompts or bon.n")
            for name, j in (("train", 1), ("test", 2)):
                pm = pms.fit(lent[j])
                fold_scores = np.asarray(pms.scores(pm, [messages[i] for i in rows for _ in range(m)],
                                                    [samples.texts[i][r] for i in rows for r in range(m)]))
                scores[name][rows] = _within_prompt_units(fold_scores.reshape(len(rows), m))
                for i in rows:
                    outcomes[name][i] = pms.outcomes(pm, pairs[i])
        train, test = scores["train"], scores["test"]
        out["train_pm"].append([pick(train, train, n) for n in ns])
        out["gold"].append([pick(train, G, n) for n in ns])
        out["test_pm"].append([pick(train, test, n) for n in ns])
        out["test_pm_shorter"].append([pick(-T, test, n) for n in ns])
        out["test_pm_longer"].append([pick(T, test, n) for n in ns])
        out["pick_cut_off"].append([float(np.mean(pick(train, cut, n))) for n in ns])
        out["fold_pairs"].append(counts)
        for name in ("train", "test"):
            validation[name].append([x for row in outcomes[name] for x in row])
    every = [(i, a, b) for i in range(len(prompts)) for a, b in index[i]]
    validation["longer"] = length_outcomes([x for row in pairs for x in row]).tolist()
    validation["finished"] = [bool(F[i, a] and F[i, b]) for i, a, b in every]
    validation["prompt"] = [float(i) for i, _, _ in every]
    finished_gold = [float(G[i][F[i]].mean()) if F[i].any() else None for i in range(len(prompts))]
    return BestOfN(ns, [bestofn.kl(n) for n in ns], P.bon_test_n, out["train_pm"], out["gold"], out["test_pm"],
                   out["test_pm_shorter"], out["test_pm_longer"], [pick(-T, G, n) for n in ns],
                   [pick(T, G, n) for n in ns], [pick(G, G, n) for n in ns], finished_gold, out["pick_cut_off"],
                   samples.cap_rate, T.mean(1).tolist(), validation, out["fold_pairs"])


@dataclass
class PolicyEval:
    """A policy's greedy replies to the held-out prompts: gold per prompt, test-PM reward, lengths, HumanEval."""

    arm: str  # "raw", "dpo", "ppo"
    seed: int | None
    gold: list[float]
    test_pm: list[float]
    tokens: list[int]
    finished: list[bool]
    humaneval: list[float] | None = None  # pass (1.0) or fail per task
    humaneval_cut_off: float | None = None  # share of the HumanEval replies cut off at the token cap
    history: list[dict[str, float]] = field(default_factory=list)
    dtype: str | None = None  # the weights' dtype the replies were sampled with (arms compared at one precision)


def evaluate_policy(loaded: Loaded, arm: str, seed: int | None, prompts: list[gold.IFPrompt], pms: PMs,
                    split: TrainTestPM, P: Params, humaneval: bool) -> PolicyEval:
    messages = [p.messages() for p in prompts]
    replies = greedy(loaded, messages, P.eval_max_new_tokens, label=f"{arm}: held-out replies")
    out = PolicyEval(arm, seed, gold.if_scores(prompts, replies.first), pms.scores(split.test, messages, replies.first),
                     [t[0] for t in replies.tokens], [f[0] for f in replies.finished], dtype=loaded.info.get("dtype"))
    if humaneval:
        code = humaneval_pass(loaded, P)
        out.humaneval, out.humaneval_cut_off = code.scores, code.cap_rate
    return out


def humaneval_pass(loaded: Loaded, P: Params) -> Scored:
    """Greedy pass@1 per task on the first ``humaneval_tasks`` HumanEval tasks, by the forgetting suite's evaluator
    (:func:`rlhf_nb.rewards.forgetting.coding`), so 01's alignment tax and 04's forgetting read alike."""
    return coding(loaded, load_humaneval(P.humaneval)[: P.humaneval_tasks])


def rl_pairs(pms: PMs, split: TrainTestPM, samples: GoldSamples, prompts: list[gold.IFPrompt],
             finished_only: bool = True) -> list[PreferencePair]:
    """DPO pairs from the raw policy's samples to the RL prompts: best vs worst by the train PM (finished replies)."""
    from rlhf_nb.train.online_dpo import best_vs_worst

    messages = [p.messages() for p in prompts]
    keep = [[t for t, f in zip(row, fin) if f or not finished_only] for row, fin in zip(samples.texts, samples.finished)]
    rows = [(m, r) for m, r in zip(messages, keep) if len(r) >= 2]
    scores = [pms.scores(split.train, [m] * len(r), r) for m, r in rows]
    return best_vs_worst([m for m, _ in rows], [r for _, r in rows], scores, tag="rl-")


def code_off_floor(raw: PolicyEval) -> bool:
    """Whether the raw model's HumanEval pass@1 is off the floor and ceiling (:func:`readers.code_off_floor`)."""
    return readers.code_off_floor(raw.humaneval)


def train_arms(P: Params, prompts: Prompts, pms: PMs, split: TrainTestPM, rl_samples: GoldSamples | None, humaneval: bool,
               out_dir: str) -> list[PolicyEval]:
    """The trained RLHF arms, ``seeds`` runs each, evaluated on the held-out prompts."""
    import torch

    from rlhf_nb.train.dpo import train_dpo
    from rlhf_nb.train.ppo import train_ppo

    out = []
    pairs = (rl_pairs(pms, split, rl_samples, prompts.rl, P.finished_only)
             if "dpo" in P.rl and rl_samples is not None else [])
    for s in range(P.seeds):
        seed = P.seed + s
        if "dpo" in P.rl and pairs:
            torch.manual_seed(seed)
            policy = load(P.policy, lora=P.lora.spec())
            result = train_dpo(policy, pairs, P.dpo.build(f"{out_dir}/dpo_seed{seed}", seed=seed))
            policy = merged(policy)  # the adapter folded into the weights for the evaluation
            ev = evaluate_policy(policy, "dpo", seed, prompts.eval, pms, split, P, humaneval)
            ev.history = [{k: v for k, v in r.items() if isinstance(v, (int, float))} for r in result.history]
            out.append(ev)
            del policy, result
            gc.collect()
        if "ppo" in P.rl:
            torch.manual_seed(seed)
            policy = load(P.policy, lora=P.lora.spec())
            reward = lambda ps, cs, meta: pms.scores(split.train, list(ps), list(cs))  # noqa: E731
            result = train_ppo(policy, [p.messages() for p in prompts.rl], reward, P.ppo.build(seed=seed))
            policy = merged(policy)
            ev = evaluate_policy(policy, "ppo", seed, prompts.eval, pms, split, P, humaneval)
            ev.history = result.history
            out.append(ev)
            del policy, result
            gc.collect()
    return out
