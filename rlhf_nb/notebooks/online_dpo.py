"""Steps, claims and figures of ``notebooks/05_online_iterative_dpo.ipynb`` (RLHF Workflow, arXiv 2405.07863).

1. Reward modelling: a Bradley-Terry RM and a pairwise preference model trained on the same pairs,
   held-out accuracy per data source with bootstrap intervals.
2. Offline vs online: from the same instruct model, (a) DPO on a fixed set of pairs drawn from the
   reward-modelling data, (b) online iterative DPO - each round samples ``k`` responses per fresh prompt
   from the current policy, pairs the RM's best against its worst, and runs DPO with the *initial*
   policy as the reference. (a) gets exactly as many pairs as (b) formed over all rounds.
3. After every round, and for (a): RM reward on held-out instructions (greedy replies), response length,
   GSM8K and HumanEval subset accuracy; at the end a judge compares every snapshot's replies with the
   starting model's, in both orders.

AlpacaEval's 805 instructions are split once (seeded) into three disjoint sets: reference-answer pairs
for the RMs, online training prompts, held-out evaluation prompts. HumanEval tasks for code pairs and
for evaluation are disjoint too, and GSM8K pairs come from the train split while evaluation uses test.
"""

from __future__ import annotations

import gc
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import claims as C
from ..data import CodeTask, MathTask, PreferencePair, Prompt, load_gsm8k, load_humaneval, load_prompts, split
from ..forgetting import ForgettingConfig, coding, math
from ..generation import SamplingConfig, generate
from ..metrics import bootstrap_ci, linear_fit, paired_bootstrap
from ..models import load
from ..pairs import (code_pairs, code_task_fits, fits, fits_tokens, hh_pairs, math_pairs, own_answers, prompt_of,
                     reference_fits, reference_pairs, ultrafeedback_pairs)
from ..rewards.judge import LogProbJudge, PreferFn, pairwise_win_rate
from ..schemas import OnlineDPOParams

PAPER = "RLHF Workflow (Xiong, Dong et al. 2024)"
# Headline numbers of the paper (Llama-3-8B, iterative DPO), for the paper-vs-ours table.
PAPER_NUMBERS = {
    "bt_rewardbench": 83.6, "pairwise_rewardbench": 85.7, "lc_alpacaeval2": 31.3, "lc_alpacaeval2_sft": 12.7,
    "gsm8k": 85.3, "humaneval": 68.3,
}


def _lora(r: int) -> dict[str, Any] | None:
    return {"r": r, "alpha": 2 * r, "dropout": 0.0} if r > 0 else None


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------


@dataclass
class Data:
    """Every prompt set the notebook uses, disjoint where they must be."""

    reference: list[Prompt]  # AlpacaEval instructions for reference-vs-own pairs
    online: list[Prompt]  # online training prompts, ``prompts_per_iteration`` per round
    eval: list[Prompt]  # held-out instructions for per-round evaluation
    math_train: list[MathTask]  # GSM8K train problems for verifier-labelled pairs
    code_train: list[CodeTask]  # HumanEval tasks for verifier-labelled pairs
    gsm8k_eval: list[MathTask]
    humaneval_eval: list[CodeTask]

    def split_ids(self) -> dict[str, list[str]]:
        return {"reference": [p.id for p in self.reference], "online": [p.id for p in self.online],
                "eval": [p.id for p in self.eval], "code_pairs": [t.task_id for t in self.code_train],
                "humaneval_eval": [t.task_id for t in self.humaneval_eval],
                "gsm8k_pairs": [t.id for t in self.math_train], "gsm8k_eval": [t.id for t in self.gsm8k_eval]}


def load_data(P: OnlineDPOParams) -> Data:
    """Seeded, disjoint prompt sets. Items for pairs are the first (in seeded order) whose reference fits
    ``max_pair_chars`` (the policy's own answer is capped by ``own_max_new_tokens``)."""
    alpaca = load_prompts("alpacaeval", seed=P.seed)
    reference = [p for p in alpaca if reference_fits(p, P.max_pair_chars)][: P.reference_pairs]
    rest = [p for p in alpaca if p not in reference]
    n_online = P.iterations * P.prompts_per_iteration
    tasks = load_humaneval(P.humaneval)
    random.Random(P.seed).shuffle(tasks)
    humaneval_eval, candidates = tasks[: P.humaneval_eval_n], tasks[P.humaneval_eval_n :]
    math_train = []
    if P.math_pairs and P.gsm8k:
        problems = load_gsm8k(P.gsm8k, split="train")
        random.Random(P.seed).shuffle(problems)
        math_train = [t for t in problems if len(t.question) + len(t.solution) <= P.max_pair_chars][: P.math_pairs]
    data = Data(
        reference=reference, online=rest[:n_online], eval=rest[n_online : n_online + P.eval_prompts],
        math_train=math_train, code_train=[t for t in candidates if code_task_fits(t, P.max_pair_chars)][: P.code_pairs],
        gsm8k_eval=load_gsm8k(P.gsm8k_eval, split="test", limit=P.gsm8k_eval_n) if P.gsm8k_eval_n else [],
        humaneval_eval=sorted(humaneval_eval, key=lambda t: int(t.task_id.split("/")[-1])),
    )
    if len(data.eval) < P.eval_prompts or len(data.online) < n_online:
        raise ValueError("not enough AlpacaEval instructions for reference pairs + online rounds + evaluation")
    ids = data.split_ids()
    assert not set(ids["reference"]) & set(ids["online"]) and not set(ids["online"]) & set(ids["eval"])
    assert not set(ids["code_pairs"]) & set(ids["humaneval_eval"])
    return data


def build_pairs(data: Data, P: OnlineDPOParams) -> dict[str, list[PreferencePair]]:
    """Preference pairs per source; the policy's own answers come from one batched greedy pass."""
    sources: dict[str, list[PreferencePair]] = {}
    if P.hh_pairs:
        sources["hh"] = hh_pairs(P.hh_rlhf, P.hh_pairs, P.seed, P.max_pair_chars)
    if P.ultrafeedback_pairs:
        sources["ultrafeedback"] = ultrafeedback_pairs(P.ultrafeedback, P.ultrafeedback_pairs, P.seed, P.max_pair_chars)
    items: list[Prompt | MathTask | CodeTask] = [*data.reference, *data.math_train, *data.code_train]
    if items:
        policy = load(P.policy, load_in_4bit=P.load_in_4bit)
        answers = own_answers(policy, [prompt_of(i) for i in items], P.own_max_new_tokens, P.batch_size, P.seed)
        del policy
        gc.collect()
        a, b = len(data.reference), len(data.reference) + len(data.math_train)
        own = {"reference": reference_pairs(data.reference, answers[:a]), "math": math_pairs(data.math_train, answers[a:b]),
               "code": code_pairs(data.code_train, answers[b:])}
        sources.update({name: fits(pairs, P.max_pair_chars) for name, pairs in own.items() if pairs})
    return sources


def split_pairs(sources: dict[str, list[PreferencePair]], P: OnlineDPOParams
                ) -> tuple[list[PreferencePair], dict[str, list[PreferencePair]]]:
    """Per-source seeded train/test split (stratified by source); training pairs shuffled together."""
    train, test = [], {}
    for name, pairs in sources.items():
        if len(pairs) < 2:
            continue
        tr, te = split(pairs, P.rm_test_fraction, P.seed)
        train += tr
        test[name] = te
    random.Random(P.seed).shuffle(train)
    return train, test


def pair_counts(sources: dict[str, list[PreferencePair]], train: list[PreferencePair],
                test: dict[str, list[PreferencePair]]) -> list[dict[str, Any]]:
    train_ids = {p.id for p in train}
    return [{"source": name, "pairs": len(pairs), "train": sum(p.id in train_ids for p in pairs),
             "test": len(test.get(name, []))} for name, pairs in sources.items() if pairs]


# ----------------------------------------------------------------------------------------------
# 1. reward modelling
# ----------------------------------------------------------------------------------------------


@dataclass
class RewardModels:
    """The BT RM (``bt``: a reward callable with ``score``) and the pairwise PM (``pairwise``: ``prefer_many``)."""

    bt: Any
    pairwise: Any
    history: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    trained_on: int = 0  # training pairs that fit rm_max_length


def train_reward_models(train: list[PreferencePair], P: OnlineDPOParams, out_dir: Path) -> RewardModels:
    """Bradley-Terry RM and pairwise PM on the same training pairs.

    ``rm_mode: finetune`` trains both networks (trl's RewardTrainer; SFT on "A"/"B" in both orders);
    ``linear`` fits a BT head and a pairwise logistic head on one frozen backbone's features, which a
    2-core CPU can afford (weaker: only a linear layer learns).
    """
    from ..train.reward import (BTScorer, Featurizer, RewardConfig, fit_linear_bt, fit_linear_pairwise,
                                train_pairwise_pm, train_reward_model)
    from ..train.sft import SFTConfig

    if P.rm_mode == "linear":
        lm = load(P.reward_base, load_in_4bit=P.load_in_4bit)
        featurizer = Featurizer(lm.model, lm.tokenizer, batch_size=P.rm_batch_size, max_length=2 * P.rm_max_length)
        train = fits_tokens(train, lm.tokenizer, P.rm_max_length)
        _require(train, P)
        prompts = [p.prompt for p in train]
        bt = fit_linear_bt(featurizer(prompts, [p.chosen for p in train]), featurizer(prompts, [p.rejected for p in train]),
                           l2=P.rm_l2, featurizer=featurizer)
        return RewardModels(bt, fit_linear_pairwise(featurizer, train, l2=P.rm_l2), {}, trained_on=len(train))
    common = dict(batch_size=P.rm_batch_size, max_length=P.rm_max_length, seed=P.seed, progress=False)
    bt_model = load(P.reward_base, head="reward", lora=_lora(P.rm_lora_r), load_in_4bit=P.load_in_4bit)
    train = fits_tokens(train, bt_model.tokenizer, P.rm_max_length)  # trl would drop longer ones silently
    _require(train, P)
    bt_run = train_reward_model(bt_model, train, RewardConfig(output_dir=str(out_dir / "rm_bt"), learning_rate=P.rm_learning_rate,
                                                              epochs=P.rm_epochs, **common))
    pm = load(P.reward_base, lora=_lora(P.pm_lora_r), load_in_4bit=P.load_in_4bit)
    pm_run = train_pairwise_pm(pm, train, SFTConfig(output_dir=str(out_dir / "rm_pairwise"), learning_rate=P.pm_learning_rate,
                                                    epochs=P.pm_epochs, **{**common, "max_length": 2 * P.rm_max_length}))
    return RewardModels(BTScorer(bt_model.model, bt_model.tokenizer, batch_size=P.rm_batch_size),
                        LogProbJudge(pm.model, pm.tokenizer, batch_size=P.rm_batch_size),
                        {"bt": bt_run.history, "pairwise": pm_run.history}, trained_on=len(train))


def _require(train: list[PreferencePair], P: OnlineDPOParams) -> None:
    if not train:
        raise ValueError(f"no training pair fits rm_max_length = {P.rm_max_length} tokens: raise rm_max_length "
                         "or lower max_pair_chars")


def rm_accuracy(rms: RewardModels, test: dict[str, list[PreferencePair]], P: OnlineDPOParams) -> list[dict[str, Any]]:
    """Held-out accuracy (ties half) per source and pooled, BT and pairwise, 95% bootstrap intervals."""
    from ..train.reward import pair_outcomes

    rows = []
    for name, scorer in (("BT", rms.bt), ("pairwise", rms.pairwise)):
        outcomes = {source: pair_outcomes(scorer, pairs).tolist() for source, pairs in test.items()}
        outcomes["all"] = [o for source in test for o in outcomes[source]]
        for source, items in outcomes.items():
            est = bootstrap_ci(items, seed=P.seed)
            rows.append({"model": name, "source": source, "n": est.n, "accuracy": est.value, "ci_low": est.low,
                         "ci_high": est.high})
    return rows


# ----------------------------------------------------------------------------------------------
# 2-3. offline vs online DPO, evaluated after every round
# ----------------------------------------------------------------------------------------------


def _messages(prompts: list[Prompt]) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": p.text}] for p in prompts]


class Evaluator:
    """Greedy replies to the held-out instructions scored by the BT RM, their length, GSM8K and HumanEval
    subsets; every call appends a snapshot (with the replies, for the judge)."""

    def __init__(self, data: Data, rms: RewardModels, P: OnlineDPOParams):
        self.data, self.rms, self.P = data, rms, P
        self.snapshots: list[dict[str, Any]] = []

    def __call__(self, loaded: Any, kind: str) -> dict[str, float]:
        P = self.P
        iteration = sum(s["kind"] == kind for s in self.snapshots) if kind == "online" else None
        config = SamplingConfig(n=1, temperature=0.0, max_new_tokens=P.eval_max_new_tokens, batch_size=P.batch_size)
        replies = [per[0] for per in generate(loaded.model, loaded.tokenizer, _messages(self.data.eval), config,
                                              progress=f"{kind} {'' if iteration is None else iteration}: evaluation replies")]
        texts = [r.text for r in replies]
        rewards = [float(r) for r in self.rms.bt.score(_messages(self.data.eval), texts)]
        tasks = ForgettingConfig(max_new_tokens=P.task_max_new_tokens, batch_size=P.batch_size)
        snap = {"kind": kind, "iteration": iteration, "responses": texts, "reward": rewards,
                "length": [r.n_tokens for r in replies], "capped": [not r.finished for r in replies],
                "gsm8k": math(loaded, self.data.gsm8k_eval, tasks) if self.data.gsm8k_eval else [],
                "humaneval": coding(loaded, self.data.humaneval_eval, tasks) if self.data.humaneval_eval else []}
        self.snapshots.append(snap)
        return {f"eval/{k}": float(np.mean(snap[k])) if snap[k] else float("nan")
                for k in ("reward", "length", "gsm8k", "humaneval")}


def _dpo_config(P: OnlineDPOParams, out: Path):
    from ..train.dpo import DPOConfig

    return DPOConfig(output_dir=str(out), learning_rate=P.dpo_learning_rate, beta=P.dpo_beta, epochs=P.dpo_epochs,
                     batch_size=P.dpo_batch_size, max_length=1024, seed=P.seed, progress=False)


def run_online(data: Data, rms: RewardModels, evaluator: Evaluator, P: OnlineDPOParams, out_dir: Path) -> list[dict[str, float]]:
    """Online iterative DPO from the policy (LoRA); returns one history row per round (round 0 = start)."""
    from ..train.online_dpo import IterativeDPOConfig, iterative_dpo

    policy = load(P.policy, lora=_lora(P.lora_r), load_in_4bit=P.load_in_4bit)
    config = IterativeDPOConfig(iterations=P.iterations, k=P.k, temperature=P.temperature, top_p=1.0,
                                max_new_tokens=P.max_new_tokens, prompts_per_iteration=P.prompts_per_iteration,
                                sample_batch_size=P.batch_size, dpo=_dpo_config(P, out_dir / "online"), seed=P.seed)
    result = iterative_dpo(policy, _messages(data.online), rms.bt, config,
                           evaluate=lambda loaded: evaluator(loaded, "online"))
    del policy
    gc.collect()
    return result.history


def run_offline(train: list[PreferencePair], n_pairs: int, evaluator: Evaluator, P: OnlineDPOParams,
                out_dir: Path) -> dict[str, Any]:
    """DPO from the same start on ``n_pairs`` pairs drawn from the reward-modelling training data."""
    from ..train.dpo import train_dpo

    pairs = random.Random(P.seed).sample(train, min(n_pairs, len(train)))
    if not pairs:
        return {"pairs": 0, "history": []}
    policy = load(P.policy, lora=_lora(P.lora_r), load_in_4bit=P.load_in_4bit)
    result = train_dpo(policy, pairs, _dpo_config(P, out_dir / "offline"))
    metrics = evaluator(policy, "offline")
    del policy
    gc.collect()
    return {"pairs": len(pairs), "sources": {s: sum(p.source == s for p in pairs) for s in {p.source for p in pairs}},
            "history": result.history, **metrics}


def judge(rms: RewardModels, P: OnlineDPOParams) -> Any:
    """The pairwise PM from step 1 (``judge: pairwise-pm``) or a chat model asked A-or-B by log-probabilities."""
    if P.judge == "pairwise-pm":
        return rms.pairwise
    loaded = load(P.judge, load_in_4bit=P.load_in_4bit)
    return LogProbJudge(loaded.model, loaded.tokenizer, batch_size=P.rm_batch_size)


def judge_snapshots(snapshots: list[dict[str, Any]], data: Data, judge_: LogProbJudge | PreferFn) -> dict[str, Any]:
    """Each snapshot's win rate against the starting model (both orders, ties half), and online vs offline."""
    prompts = [p.text for p in data.eval]
    start = next(s for s in snapshots if s["kind"] == "online" and s["iteration"] == 0)
    for snap in snapshots:
        if snap is start:
            snap["win_vs_start"] = {"win_rate": 0.5, "ci_low": 0.5, "ci_high": 0.5, "n": len(prompts), "ties": len(prompts)}
            snap["win_outcomes"] = [0.5] * len(prompts)
            continue
        w = pairwise_win_rate(judge_, prompts, snap["responses"], start["responses"])
        snap["win_vs_start"], snap["win_outcomes"] = w.as_row(), w.outcomes
    online = [s for s in snapshots if s["kind"] == "online"]
    offline = next((s for s in snapshots if s["kind"] == "offline"), None)
    head_to_head = None
    if offline is not None and len(online) > 1:
        head_to_head = pairwise_win_rate(judge_, prompts, online[-1]["responses"], offline["responses"]).as_row()
    return {"online_vs_offline": head_to_head}


# ----------------------------------------------------------------------------------------------
# numbers
# ----------------------------------------------------------------------------------------------


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def iteration_rows(snapshots: list[dict[str, Any]], history: list[dict[str, float]]) -> list[dict[str, Any]]:
    """One row per snapshot: RM reward (with CI), win rate vs start, length, GSM8K, HumanEval, training pairs."""
    pairs = {int(h["iteration"]): h.get("pairs") for h in history}
    rows = []
    for s in snapshots:
        reward = bootstrap_ci(s["reward"])
        win = s.get("win_vs_start") or {}
        rows.append({"policy": f"{s['kind']} DPO", "round": "-" if s["iteration"] is None else s["iteration"],
                     "rm_reward": reward.value,
                     "rm_reward_ci": f"[{reward.low:.2f}, {reward.high:.2f}]", "win_vs_start": win.get("win_rate"),
                     "win_ci": f"[{win['ci_low']:.2f}, {win['ci_high']:.2f}]" if win else None,
                     "mean_length": _mean(s["length"]), "gsm8k": _mean(s["gsm8k"]), "humaneval": _mean(s["humaneval"]),
                     "pairs_this_round": pairs.get(s["iteration"]) if s["kind"] == "online" else None})
    return rows


def paper_rows(results_rm: list[dict[str, Any]], snapshots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The paper's headline numbers next to ours (different models, data and benchmarks: context, not a match)."""
    pooled = {r["model"]: r["accuracy"] for r in results_rm if r["source"] == "all"}
    final = [s for s in snapshots if s["kind"] == "online"][-1]
    pct = lambda v: None if v is None else round(100 * v, 1)  # noqa: E731
    return [
        {"measure": "BT RM accuracy", "paper": f"{PAPER_NUMBERS['bt_rewardbench']} (RewardBench)",
         "ours": pct(pooled.get("BT")), "ours_on": "held-out pairs of the sources above"},
        {"measure": "pairwise PM accuracy", "paper": f"{PAPER_NUMBERS['pairwise_rewardbench']} (RewardBench)",
         "ours": pct(pooled.get("pairwise")), "ours_on": "held-out pairs of the sources above"},
        {"measure": "chat quality after iterative DPO",
         "paper": f"LC AlpacaEval-2 {PAPER_NUMBERS['lc_alpacaeval2']} (SFT {PAPER_NUMBERS['lc_alpacaeval2_sft']})",
         "ours": pct((final.get("win_vs_start") or {}).get("win_rate")), "ours_on": "judge win rate vs the start model"},
        {"measure": "GSM8K accuracy", "paper": PAPER_NUMBERS["gsm8k"], "ours": pct(_mean(final["gsm8k"])),
         "ours_on": f"{len(final['gsm8k'])} test problems, greedy"},
        {"measure": "HumanEval pass@1", "paper": PAPER_NUMBERS["humaneval"], "ours": pct(_mean(final["humaneval"])),
         "ours_on": f"{len(final['humaneval'])} tasks, greedy"},
    ]


def _trend_verdict(x: list[float], first: list[float], last: list[float], seed: int) -> tuple[str, dict[str, float], Any]:
    """Verdict for "grows across iterations": slope of the per-round means and a paired test last vs first."""
    fit = linear_fit(list(range(len(x))), x)
    test = paired_bootstrap(first, last, seed=seed)
    if fit["slope"] > 0 and test.significant:
        verdict = C.REPRODUCED
    elif fit["slope"] > 0 and test.diff > 0:
        verdict = C.DIRECTION
    else:
        verdict = C.NOT_REPRODUCED
    return verdict, fit, test


def claim_rows(rm_rows: list[dict[str, Any]], snapshots: list[dict[str, Any]], judged: dict[str, Any],
               P: OnlineDPOParams, history: list[dict[str, float]] | None = None) -> list[dict[str, Any]]:
    """W1-W4; ``history`` (the online rounds' log) adds the sampled replies' length to W4."""
    history = history or []
    out = []
    # W1: both reward models above chance on held-out pairs
    pooled = {r["model"]: r for r in rm_rows if r["source"] == "all"}
    if {"BT", "pairwise"} <= set(pooled):
        bt, pw = pooled["BT"], pooled["pairwise"]
        verdict = (C.REPRODUCED if bt["ci_low"] > 0.5 and pw["ci_low"] > 0.5
                   else C.DIRECTION if bt["accuracy"] > 0.5 and pw["accuracy"] > 0.5 else C.NOT_REPRODUCED)
        value = (f"BT {100 * bt['accuracy']:.0f}% [{100 * bt['ci_low']:.0f}, {100 * bt['ci_high']:.0f}], pairwise "
                 f"{100 * pw['accuracy']:.0f}% [{100 * pw['ci_low']:.0f}, {100 * pw['ci_high']:.0f}] on {bt['n']} held-out pairs")
    else:
        verdict, value = C.NOT_TESTED, "no held-out pairs"
    out.append(C.row("W1", PAPER, "the reward models are above chance on held-out preference pairs",
                     f"BT {PAPER_NUMBERS['bt_rewardbench']} / pairwise {PAPER_NUMBERS['pairwise_rewardbench']} "
                     "(RewardBench)", value, verdict))
    online = [s for s in snapshots if s["kind"] == "online"]
    offline = next((s for s in snapshots if s["kind"] == "offline"), None)
    # W2: online beats offline on RM reward and win rate, equal pair budget
    h2h = judged.get("online_vs_offline")
    if offline is not None and len(online) > 1 and h2h is not None:
        test = paired_bootstrap(offline["reward"], online[-1]["reward"], seed=P.seed)
        both_up = test.diff > 0 and h2h["win_rate"] > 0.5
        verdict = (C.REPRODUCED if both_up and test.significant and h2h["ci_low"] > 0.5
                   else C.DIRECTION if both_up else C.NOT_REPRODUCED)
        value = (f"RM reward {np.mean(offline['reward']):.2f} (offline) vs {np.mean(online[-1]['reward']):.2f} (online, "
                 f"diff {test.diff:+.2f}, 95% CI [{test.low:+.2f}, {test.high:+.2f}], p={test.p_value:.2f}); judge win "
                 f"rate online vs offline {100 * h2h['win_rate']:.0f}% [{100 * h2h['ci_low']:.0f}, {100 * h2h['ci_high']:.0f}]")
    else:
        verdict, value = C.NOT_TESTED, "no offline run or no online rounds"
    out.append(C.row("W2", PAPER, "online iterative DPO beats offline DPO at equal pair budget (RM reward and win rate)",
                     "online > offline", value, verdict))
    # W3: reward improves across iterations; W4: length grows (length bias)
    if len(online) > 1:
        means = [float(np.mean(s["reward"])) for s in online]
        verdict, fit, test = _trend_verdict(means, online[0]["reward"], online[-1]["reward"], P.seed)
        value = (" -> ".join(f"{m:.2f}" for m in means) + f" (slope {fit['slope']:+.3f}/round; last vs start "
                 f"{test.diff:+.2f}, 95% CI [{test.low:+.2f}, {test.high:+.2f}], p={test.p_value:.2f})")
        out.append(C.row("W3", PAPER, "RM reward on held-out prompts improves across iterations", "rises every round",
                         value, verdict))
        lengths = [float(np.mean(s["length"])) for s in online]
        capped = float(np.mean([c for s in online for c in s.get("capped", [])] or [0.0]))
        sampled = [h["mean_length"] for h in history if "mean_length" in h]
        verdict, fit, test = _trend_verdict(lengths, [float(v) for v in online[0]["length"]],
                                            [float(v) for v in online[-1]["length"]], P.seed)
        value = (" -> ".join(f"{m:.0f}" for m in lengths) + f" tokens (slope {fit['slope']:+.1f} tokens/round; last vs "
                 f"start {test.diff:+.1f}, p={test.p_value:.2f}); {100 * capped:.0f}% of replies hit the "
                 f"{P.eval_max_new_tokens}-token cap")
        if sampled:
            value += "; sampled training replies " + " -> ".join(f"{m:.0f}" for m in sampled) + " characters"
        if capped > 0.5:  # most replies end at the cap: their length cannot grow, the test would be empty
            verdict = C.NOT_TESTED
        out.append(C.row("W4", PAPER, "response length grows across iterations (length bias)", "longer every round",
                         value, verdict))
    else:
        for cid, text in (("W3", "RM reward improves across iterations"), ("W4", "response length grows across iterations")):
            out.append(C.row(cid, PAPER, text, "rises", "no online rounds", C.NOT_TESTED))
    return out


# ----------------------------------------------------------------------------------------------
# figures: drawn from the saved results only
# ----------------------------------------------------------------------------------------------


def fig_rm_accuracy(results: dict[str, Any]):
    import matplotlib.pyplot as plt

    rows = results["tables"]["rm_accuracy"]
    sources = list(dict.fromkeys(r["source"] for r in rows))
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for j, model in enumerate(("BT", "pairwise")):
        rs = {r["source"]: r for r in rows if r["model"] == model}
        x = np.arange(len(sources)) + (j - 0.5) * 0.38
        acc = [rs[s]["accuracy"] for s in sources]
        err = [[rs[s]["accuracy"] - rs[s]["ci_low"] for s in sources], [rs[s]["ci_high"] - rs[s]["accuracy"] for s in sources]]
        ax.bar(x, acc, 0.38, yerr=err, capsize=3, label="BT reward model" if model == "BT" else "pairwise preference model")
    ax.axhline(0.5, color="grey", ls=":", lw=1)
    ax.set_xticks(np.arange(len(sources)), [f"{s}\n(n={next(r['n'] for r in rows if r['source'] == s)})" for s in sources],
                  fontsize=8)
    ax.set(ylim=(0, 1), ylabel="held-out accuracy (95% CI)", title="Reward models on held-out pairs, per source")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def fig_iterations(results: dict[str, Any]):
    import matplotlib.pyplot as plt

    snaps = results["data"]["snapshots"]
    online = [s for s in snaps if s["kind"] == "online"]
    offline = next((s for s in snaps if s["kind"] == "offline"), None)
    panels = [("reward", "RM reward (held-out)"), ("win", "judge win rate vs start"), ("length", "reply length (tokens)"),
              ("gsm8k", "GSM8K accuracy"), ("humaneval", "HumanEval pass@1")]

    def value(s: dict[str, Any], key: str) -> float:
        if key == "win":
            return (s.get("win_vs_start") or {}).get("win_rate", np.nan)
        return float(np.mean(s[key])) if s[key] else np.nan

    fig, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 3.0))
    its = [s["iteration"] for s in online]
    for ax, (key, title) in zip(axes, panels):
        ax.plot(its, [value(s, key) for s in online], "o-", label="online iterative DPO")
        if offline is not None:
            ax.axhline(value(offline, key), color="tab:red", ls="--", label="offline DPO (same pairs)")
        ax.set(title=title, xlabel="iteration", xticks=its)
        if key in ("win", "gsm8k", "humaneval"):
            ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def fig_length_bias(results: dict[str, Any]):
    import matplotlib.pyplot as plt

    snaps = [s for s in results["data"]["snapshots"] if s["kind"] == "online"]
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for s in snaps:
        ax.scatter(s["length"], s["reward"], s=14, alpha=0.7, label=f"iteration {s['iteration']}")
    x = [v for s in snaps for v in s["length"]]
    y = [v for s in snaps for v in s["reward"]]
    if len(set(x)) > 1:
        fit = linear_fit(x, y)
        xs = np.linspace(min(x), max(x), 10)
        ax.plot(xs, fit["intercept"] + fit["slope"] * xs, "k--", lw=1, label=f"fit, R² = {fit['r2']:.2f}")
    ax.set(xlabel="reply length (tokens)", ylabel="RM reward", title="Length bias: reward vs length")
    ax.legend(fontsize=7)
    return fig
