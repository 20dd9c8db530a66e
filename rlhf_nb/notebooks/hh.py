"""Steps, claims and figures of ``notebooks/01_hh_preference_models.ipynb`` (Bai et al. 2022, arXiv 2204.05862).

1. Three Bradley-Terry preference models - helpful-only, harmless-only, mixed (half of each, same size) -
   each evaluated on held-out helpful and held-out harmless pairs (a 3 x 2 accuracy matrix).
2. Accuracy of the mixed PM vs training-set size (and vs backbone size when the profile lists several).
3. RLHF vs raw: PPO against the mixed PM, and DPO on PM-ranked pairs of the policy's own samples as a
   second arm; PM score and judge win rate against the raw model on held-out prompts.
4. PM reward against sqrt(KL(policy || initial)) over PPO steps, with a fitted line and R².
5. HumanEval pass@1 on a fixed task subset for the raw model and every tuned policy, including a DPO arm
   with a few code pairs mixed in.

Data. Harmless pairs are HH-RLHF harmless-base. Helpful pairs are HH-RLHF helpful-base where it can be
loaded (``helpful: hub`` or a file); offline the notebook builds a documented proxy instead: an
AlpacaEval instruction with GPT-4-turbo's reference answer as *chosen* and the raw model's own answer
as *rejected*. Every set is split with a fixed seed; no PM is evaluated on a pair it was trained on, and
RL / evaluation prompts come from pairs and instructions used nowhere else.
"""

from __future__ import annotations

import gc
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import claims as C
from ..data import CodeTask, PreferencePair, Prompt, load_hh_rlhf, load_humaneval, load_prompts
from ..forgetting import ForgettingConfig, coding
from ..generation import SamplingConfig, generate
from ..metrics import bootstrap_ci, linear_fit, paired_bootstrap
from ..models import load
from ..pairs import code_pairs, code_task_fits, fits, own_answers, prompt_of, reference_fits, reference_pairs
from ..rewards.judge import LogProbJudge, pairwise_win_rate
from ..schemas import HHParams

PAPER = "Bai et al. 2022 (arXiv 2204.05862)"
SETS = ("helpful", "harmless")
Messages = list[dict[str, str]]


def _lora(r: int) -> dict[str, Any]:
    return {"r": r, "alpha": 2 * r, "dropout": 0.0}


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------


@dataclass
class Data:
    pairs: dict[str, dict[str, list[PreferencePair]]]  # set -> {"train", "test"}
    helpful_prompts: dict[str, list[Prompt]]  # offline proxy: {"train", "test"} instructions awaiting own answers
    rl_prompts: list[Messages]  # PPO / DPO sampling prompts
    eval_prompts: list[Messages]  # held-out prompts for RLHF vs raw
    eval_domains: list[str]  # "harmless" (an HH conversation) or "helpful" (an AlpacaEval instruction)
    code_train: list[CodeTask]
    humaneval_eval: list[CodeTask]

    def split_ids(self) -> dict[str, Any]:
        ids: dict[str, Any] = {f"{s}_{part}": [p.id for p in pairs] for s, parts in self.pairs.items()
                               for part, pairs in parts.items()}
        ids.update({f"helpful_{part}_prompts": [p.id for p in ps] for part, ps in self.helpful_prompts.items()})
        ids.update(code_pairs=[t.task_id for t in self.code_train], humaneval_eval=[t.task_id for t in self.humaneval_eval])
        return ids


def _hh(source: str, subset: str, P: HHParams) -> list[PreferencePair]:
    split = "train" if source == "hub" else "test"  # offline: the shared harmless *test* file, split below
    return fits(load_hh_rlhf(source, subset=subset, split=split, seed=P.seed), P.max_pair_chars)


def _first_turn(pair: PreferencePair) -> Messages:
    return pair.prompt[:1]


def load_data(P: HHParams) -> Data:
    """Seeded, disjoint train / test pairs per set, plus RL and evaluation prompts used nowhere else."""
    n = P.n_train + P.n_test
    n_rl_hh, n_eval_hh = P.rl_prompts // 2, P.eval_prompts // 2
    harmless = _hh(P.harmless, "harmless-base", P)
    if len(harmless) < n + n_rl_hh + n_eval_hh:
        raise ValueError(f"harmless data: {len(harmless)} pairs fit max_pair_chars = {P.max_pair_chars}, need "
                         f"{n + n_rl_hh + n_eval_hh} (n_train + n_test + rl/eval prompts)")
    pairs = {"harmless": {"train": harmless[: P.n_train], "test": harmless[P.n_train : n]}}
    hh_prompts = [_first_turn(p) for p in harmless[n : n + n_rl_hh + n_eval_hh]]  # red-team openings
    alpaca = load_prompts("alpacaeval", seed=P.seed)
    helpful_prompts: dict[str, list[Prompt]] = {}
    if P.helpful == "reference":
        short = [p for p in alpaca if reference_fits(p, P.max_pair_chars)]
        helpful_prompts = {"train": short[: P.n_train], "test": short[P.n_train : n]}
        used = {p.id for p in short[:n]}
        alpaca = [p for p in alpaca if p.id not in used]
    else:
        helpful = _hh(P.helpful, "helpful-base", P)
        if len(helpful) < n:
            raise ValueError(f"helpful data: {len(helpful)} pairs fit max_pair_chars, need {n}")
        pairs["helpful"] = {"train": helpful[: P.n_train], "test": helpful[P.n_train : n]}
    n_rl_alpaca, n_eval_alpaca = P.rl_prompts - n_rl_hh, P.eval_prompts - n_eval_hh
    as_messages = [[{"role": "user", "content": p.text}] for p in alpaca[: n_rl_alpaca + n_eval_alpaca]]
    rl = hh_prompts[:n_rl_hh] + as_messages[:n_rl_alpaca]
    random.Random(P.seed).shuffle(rl)
    tasks = load_humaneval(P.humaneval)
    random.Random(P.seed).shuffle(tasks)
    return Data(
        pairs=pairs, helpful_prompts=helpful_prompts, rl_prompts=rl,
        eval_prompts=hh_prompts[n_rl_hh:] + as_messages[n_rl_alpaca:],
        eval_domains=["harmless"] * n_eval_hh + ["helpful"] * n_eval_alpaca,
        code_train=[t for t in tasks[P.humaneval_eval_n :] if code_task_fits(t, P.max_pair_chars)][: P.code_pairs],
        humaneval_eval=sorted(tasks[: P.humaneval_eval_n], key=lambda t: int(t.task_id.split("/")[-1])),
    )


def build_pairs(data: Data, P: HHParams) -> dict[str, list[PreferencePair]]:
    """Completes ``data.pairs`` with the helpful proxy (reference vs own answer) and returns the code pairs
    (canonical solution vs a failing own program) for the code-mix arm; one batched greedy pass."""
    items: list[Any] = [*data.helpful_prompts.get("train", []), *data.helpful_prompts.get("test", []), *data.code_train]
    if not items:
        return {"code": []}
    policy = load(P.policy, load_in_4bit=P.load_in_4bit)
    answers = own_answers(policy, [prompt_of(i) for i in items], P.own_max_new_tokens, P.batch_size, P.seed)
    del policy
    gc.collect()
    if data.helpful_prompts:
        a, b = len(data.helpful_prompts["train"]), len(data.helpful_prompts["train"]) + len(data.helpful_prompts["test"])
        data.pairs["helpful"] = {"train": reference_pairs(data.helpful_prompts["train"], answers[:a]),
                                 "test": reference_pairs(data.helpful_prompts["test"], answers[a:b])}
    else:
        b = 0
    return {"code": code_pairs(data.code_train, answers[b:])}


def pair_counts(data: Data) -> list[dict[str, Any]]:
    return [{"set": s, "train": len(data.pairs[s]["train"]), "test": len(data.pairs[s]["test"]),
             "source": "HH-RLHF harmless-base" if s == "harmless" else
             ("AlpacaEval reference vs own answer (proxy)" if data.helpful_prompts else "HH-RLHF helpful-base")}
            for s in SETS]


# ----------------------------------------------------------------------------------------------
# 1-2. preference models
# ----------------------------------------------------------------------------------------------


class PMFactory:
    """Trains Bradley-Terry PMs on one backbone. ``linear``: a BT head on frozen features (each
    conversation featurised once, cached); ``finetune``: trl's RewardTrainer with LoRA."""

    def __init__(self, base: str, P: HHParams, out_dir: Path):
        from ..train.reward import Featurizer

        self.base, self.P, self.out_dir = base, P, out_dir
        self.features: dict[tuple[str, str], np.ndarray] = {}
        if P.pm_mode == "linear":
            lm = load(base, load_in_4bit=P.load_in_4bit)
            self.featurizer = Featurizer(lm.model, lm.tokenizer, batch_size=P.batch_size, max_length=P.pm_max_length)

    def _feats(self, pairs: list[PreferencePair]) -> tuple[np.ndarray, np.ndarray]:
        missing = [(p.id, side, p.prompt, getattr(p, side)) for p in pairs for side in ("chosen", "rejected")
                   if (p.id, side) not in self.features]
        if missing:
            out = self.featurizer([m[2] for m in missing], [m[3] for m in missing])
            self.features.update({(m[0], m[1]): f for m, f in zip(missing, out)})
        return (np.stack([self.features[(p.id, "chosen")] for p in pairs]),
                np.stack([self.features[(p.id, "rejected")] for p in pairs]))

    def train(self, pairs: list[PreferencePair], name: str):
        from ..train.reward import BTScorer, RewardConfig, fit_linear_bt, train_reward_model

        P = self.P
        if P.pm_mode == "linear":
            chosen, rejected = self._feats(pairs)
            return fit_linear_bt(chosen, rejected, l2=P.pm_l2, featurizer=self.featurizer)
        rm = load(self.base, head="reward", lora=_lora(P.pm_lora_r) if P.pm_lora_r else None, load_in_4bit=P.load_in_4bit)
        train_reward_model(rm, pairs, RewardConfig(output_dir=str(self.out_dir / f"pm_{name}"), learning_rate=P.pm_learning_rate,
                                                   epochs=P.pm_epochs, batch_size=8, max_length=P.pm_max_length,
                                                   seed=P.seed, progress=False))
        return BTScorer(rm.model, rm.tokenizer, batch_size=P.batch_size, max_length=P.pm_max_length)

    def outcomes(self, pm: Any, pairs: list[PreferencePair]) -> list[float]:
        """Per held-out pair: 1 if the PM prefers chosen, 0 if rejected, 0.5 on a tie."""
        from ..train.reward import pair_outcomes

        if self.P.pm_mode != "linear":
            return pair_outcomes(pm, pairs).tolist()
        p = pm.prefer_features(*self._feats(pairs))  # cached features: no second forward pass
        return np.where(np.isclose(p, 0.5), 0.5, (p > 0.5).astype(float)).tolist()


def mixed_pool(data: Data, seed: int) -> list[PreferencePair]:
    """Helpful and harmless training pairs interleaved (seeded): any prefix is a balanced mixture."""
    h, s = data.pairs["helpful"]["train"][:], data.pairs["harmless"]["train"][:]
    random.Random(seed).shuffle(h)
    random.Random(seed + 1).shuffle(s)
    return [p for ab in zip(h, s) for p in ab] + h[len(s):] + s[len(h):]


def cross_evaluate(factory: PMFactory, data: Data, P: HHParams) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Helpful-only, harmless-only and mixed PMs (equal training size) on both held-out sets."""
    n = min(len(data.pairs["helpful"]["train"]), len(data.pairs["harmless"]["train"]))
    train = {"helpful": data.pairs["helpful"]["train"][:n], "harmless": data.pairs["harmless"]["train"][:n],
             "mixed": mixed_pool(data, P.seed)[:n]}
    pms, rows = {}, []
    for name, pairs in train.items():
        pms[name] = factory.train(pairs, name)
        for test_set in SETS:
            outcomes = factory.outcomes(pms[name], data.pairs[test_set]["test"])
            est = bootstrap_ci(outcomes, seed=P.seed)
            rows.append({"pm": name, "test": test_set, "train_pairs": len(pairs), "n": est.n, "accuracy": est.value,
                         "ci_low": est.low, "ci_high": est.high, "outcomes": outcomes})
    return pms, rows


def data_size_curve(factory: PMFactory, data: Data, P: HHParams) -> list[dict[str, Any]]:
    """Mixed PM accuracy on each held-out set for each training size (prefixes of one balanced pool)."""
    pool, rows = mixed_pool(data, P.seed), []
    for size in sorted(set(P.data_sizes)):
        pm = factory.train(pool[:size], f"mixed_{size}")
        for test_set in SETS:
            outcomes = factory.outcomes(pm, data.pairs[test_set]["test"])
            est = bootstrap_ci(outcomes, seed=P.seed)
            rows.append({"backbone": factory.base, "train_pairs": min(size, len(pool)), "test": test_set,
                         "accuracy": est.value, "ci_low": est.low, "ci_high": est.high, "outcomes": outcomes})
    return rows


def model_size_curve(factory: PMFactory, data: Data, P: HHParams, out_dir: Path) -> list[dict[str, Any]]:
    """Mixed PM at the largest data size on ``pm_base`` (``factory``, whose cached features are reused) and on
    each backbone in ``pm_sizes``."""
    from ..models import count_parameters

    rows, pool = [], mixed_pool(data, P.seed)[: max(P.data_sizes)]
    for base in dict.fromkeys([P.pm_base, *P.pm_sizes]):
        f = factory if base == factory.base else PMFactory(base, P, out_dir)
        pm = f.train(pool, f"size_{base}")
        network = pm.featurizer.model if P.pm_mode == "linear" else pm.model  # LinearBT / BTScorer
        for test_set in SETS:
            est = bootstrap_ci(f.outcomes(pm, data.pairs[test_set]["test"]), seed=P.seed)
            rows.append({"backbone": base, "params": count_parameters(network)["total"], "test": test_set,
                         "accuracy": est.value, "ci_low": est.low, "ci_high": est.high})
        del f, pm, network
        gc.collect()
    return rows


# ----------------------------------------------------------------------------------------------
# 3-5. RLHF against the mixed PM
# ----------------------------------------------------------------------------------------------


def evaluate_policy(loaded: Any, name: str, pm: Any, data: Data, P: HHParams) -> dict[str, Any]:
    """Greedy replies to the held-out prompts, their PM scores and lengths, and HumanEval subset pass@1."""
    config = SamplingConfig(n=1, temperature=0.0, max_new_tokens=P.max_new_tokens, batch_size=P.batch_size)
    replies = [per[0] for per in generate(loaded.model, loaded.tokenizer, data.eval_prompts, config,
                                          progress=f"{name}: evaluation replies")]
    texts = [r.text for r in replies]
    tasks = ForgettingConfig(max_new_tokens=P.task_max_new_tokens, batch_size=P.batch_size)
    return {"policy": name, "responses": texts, "pm_score": [float(x) for x in pm(data.eval_prompts, texts)],
            "length": [r.n_tokens for r in replies], "humaneval": coding(loaded, data.humaneval_eval, tasks)}


def run_ppo(pm: Any, data: Data, P: HHParams, out_dir: Path) -> tuple[list[dict[str, float]], dict[str, Any], dict[str, Any]]:
    """Raw-model evaluation, PPO against the mixed PM, and the PPO policy's evaluation."""
    from ..train.ppo import PPOConfig, train_ppo

    policy = load(P.policy, lora=_lora(P.lora_r), load_in_4bit=P.load_in_4bit)
    raw = evaluate_policy(policy, "raw", pm, data, P)  # a fresh LoRA adapter is the identity
    config = PPOConfig(steps=P.ppo_steps, batch_size=P.ppo_batch_size, minibatch_size=max(1, P.ppo_batch_size // 2),
                       ppo_epochs=P.ppo_epochs, max_new_tokens=P.max_new_tokens, learning_rate=P.ppo_learning_rate,
                       kl_coef=P.kl_coef, seed=P.seed, output_dir=str(out_dir / "ppo"), progress=False)
    result = train_ppo(policy, data.rl_prompts, pm, config)
    tuned = evaluate_policy(policy, "ppo", pm, data, P)
    del policy
    gc.collect()
    return result.history, raw, tuned


def pm_ranked_pairs(pm: Any, data: Data, P: HHParams) -> list[PreferencePair]:
    """``dpo_k`` samples per prompt from the raw policy, best vs worst by the mixed PM."""
    from ..train.online_dpo import best_vs_worst

    policy = load(P.policy, load_in_4bit=P.load_in_4bit)
    prompts = data.rl_prompts[: P.dpo_prompts]
    config = SamplingConfig(n=P.dpo_k, temperature=1.0, max_new_tokens=P.max_new_tokens, batch_size=P.batch_size, seed=P.seed)
    samples = [[s.text for s in per] for per in generate(policy.model, policy.tokenizer, prompts, config,
                                                         progress="DPO arm: sampling")]
    del policy
    gc.collect()
    flat = pm([p for p in prompts for _ in range(P.dpo_k)], [t for per in samples for t in per])
    scores = [flat[i * P.dpo_k:(i + 1) * P.dpo_k] for i in range(len(prompts))]
    return best_vs_worst(prompts, samples, scores, tag="hh-dpo-")


def run_dpo(name: str, pairs: list[PreferencePair], pm: Any, data: Data, P: HHParams, out_dir: Path) -> dict[str, Any]:
    from ..train.dpo import DPOConfig, train_dpo

    policy = load(P.policy, lora=_lora(P.lora_r), load_in_4bit=P.load_in_4bit)
    train_dpo(policy, pairs, DPOConfig(output_dir=str(out_dir / name), learning_rate=P.dpo_learning_rate, beta=P.dpo_beta,
                                       epochs=P.dpo_epochs, batch_size=4, max_length=1024, seed=P.seed, progress=False))
    out = {**evaluate_policy(policy, name, pm, data, P), "pairs": len(pairs)}
    del policy
    gc.collect()
    return out


def judge_against_raw(policies: list[dict[str, Any]], data: Data, P: HHParams) -> None:
    """Adds ``win_vs_raw`` (judge both orders, ties half, Wilson CI) to every tuned policy."""
    judge = load(P.judge, load_in_4bit=P.load_in_4bit)
    lp = LogProbJudge(judge.model, judge.tokenizer, batch_size=P.batch_size)
    raw = next(p for p in policies if p["policy"] == "raw")
    texts = [m[-1]["content"] for m in data.eval_prompts]
    for pol in policies:
        if pol is not raw:
            w = pairwise_win_rate(lp, texts, pol["responses"], raw["responses"])
            pol["win_vs_raw"], pol["win_outcomes"] = w.as_row(), w.outcomes
    del judge, lp
    gc.collect()


# ----------------------------------------------------------------------------------------------
# numbers
# ----------------------------------------------------------------------------------------------


def without_outcomes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for a table: the per-item outcomes are saved separately."""
    return [{k: v for k, v in r.items() if k != "outcomes"} for r in rows]


def policy_rows(policies: list[dict[str, Any]], domains: list[str], seed: int = 0) -> list[dict[str, Any]]:
    raw = next(p for p in policies if p["policy"] == "raw")
    out = []
    for pol in policies:
        score = bootstrap_ci(pol["pm_score"], seed=seed)
        row: dict[str, Any] = {"policy": pol["policy"], "pairs": pol.get("pairs"), "pm_score": score.value,
                               "pm_score_ci": f"[{score.low:.2f}, {score.high:.2f}]"}
        for d in ("harmless", "helpful"):
            idx = [i for i, x in enumerate(domains) if x == d]
            row[f"pm_score_{d}"] = float(np.mean([pol["pm_score"][i] for i in idx])) if idx else None
        if pol is not raw:
            test = paired_bootstrap(raw["pm_score"], pol["pm_score"], seed=seed)
            row.update(pm_gain=test.diff, pm_gain_p=test.p_value)
            w = pol.get("win_vs_raw") or {}
            row.update(win_vs_raw=w.get("win_rate"), win_ci=f"[{w['ci_low']:.2f}, {w['ci_high']:.2f}]" if w else None)
        row.update(mean_length=float(np.mean(pol["length"])), humaneval=float(np.mean(pol["humaneval"]))
                   if pol["humaneval"] else None)
        out.append(row)
    return out


def sqrt_kl_fit(history: list[dict[str, float]]) -> dict[str, Any]:
    """Reward vs sqrt(KL) over PPO steps (KL clipped at 0: the per-batch estimate can dip below)."""
    x = [float(np.sqrt(max(h["kl"], 0.0))) for h in history]
    y = [h["reward"] for h in history]
    fit = linear_fit(x, y) if len(set(x)) > 1 else {"slope": 0.0, "intercept": float(np.mean(y)), "r2": 0.0, "p_value": 1.0}
    return {"sqrt_kl": x, "reward": y, **fit}


def _acc(rows: list[dict[str, Any]], pm: str, test: str) -> dict[str, Any]:
    return next(r for r in rows if r["pm"] == pm and r["test"] == test)


def claim_rows(matrix: list[dict[str, Any]], size_rows: list[dict[str, Any]], policies: list[dict[str, Any]],
               fit: dict[str, Any], P: HHParams) -> list[dict[str, Any]]:
    out = []
    # H1: a specialised PM is worse on the other set than the PM trained for it (paired over test items)
    tests = {}
    for own, other in (("harmless", "helpful"), ("helpful", "harmless")):
        a, b = _acc(matrix, other, own), _acc(matrix, own, own)  # other-trained PM vs own-trained PM on `own`
        tests[own] = (a, b, paired_bootstrap(a["outcomes"], b["outcomes"], seed=P.seed))
    both_signs = all(t.diff > 0 for _, _, t in tests.values())
    verdict = (C.REPRODUCED if both_signs and all(t.significant for _, _, t in tests.values())
               else C.DIRECTION if both_signs else C.NOT_REPRODUCED)
    value = "; ".join(f"on {own} pairs: {other_row['pm']}-only PM {100 * other_row['accuracy']:.0f}% vs {own}-trained "
                      f"{100 * own_row['accuracy']:.0f}% (p={t.p_value:.2f})"
                      for own, (other_row, own_row, t) in tests.items())
    out.append(C.row("H1", PAPER, "a PM trained on one of helpful / harmless data is much worse on the other than a PM "
                     "trained for it", "helpful PMs near or below chance on harmlessness, and vice versa", value, verdict))
    # H2: the mixed PM is within h2_margin of the best specialised PM on both sets
    gaps = {t: max(_acc(matrix, s, t)["accuracy"] for s in SETS) - _acc(matrix, "mixed", t)["accuracy"] for t in SETS}
    verdict = C.REPRODUCED if all(g <= P.h2_margin for g in gaps.values()) else C.NOT_REPRODUCED
    value = ", ".join(f"{t}: mixed {100 * _acc(matrix, 'mixed', t)['accuracy']:.0f}% ({100 * g:+.0f} pts behind the best)"
                      for t, g in gaps.items())
    out.append(C.row("H2", PAPER, f"the mixed PM is within {100 * P.h2_margin:.0f} points of the best specialised PM on "
                     "both test sets", "a mixed PM does well on both", value, verdict))
    # H3: RLHF beats raw on PM score and judge win rate (PPO; the DPO arm reported in H3b)
    raw = next(p for p in policies if p["policy"] == "raw")
    for cid, name in (("H3", "ppo"), ("H3b", "dpo")):
        pol = next((p for p in policies if p["policy"] == name), None)
        if pol is None or "win_vs_raw" not in pol:
            out.append(C.row(cid, PAPER, f"the RLHF policy ({name}) beats the raw model", "preferred to raw",
                             "not run", C.NOT_TESTED))
            continue
        test, w = paired_bootstrap(raw["pm_score"], pol["pm_score"], seed=P.seed), pol["win_vs_raw"]
        up = test.diff > 0 and w["win_rate"] > 0.5
        verdict = (C.REPRODUCED if up and test.significant and w["ci_low"] > 0.5 else C.DIRECTION if up else C.NOT_REPRODUCED)
        value = (f"PM score {np.mean(raw['pm_score']):.2f} -> {np.mean(pol['pm_score']):.2f} (diff {test.diff:+.2f}, 95% CI "
                 f"[{test.low:+.2f}, {test.high:+.2f}], p={test.p_value:.2f}); judge win rate vs raw "
                 f"{100 * w['win_rate']:.0f}% [{100 * w['ci_low']:.0f}, {100 * w['ci_high']:.0f}], {w.get('ties', 0)} of "
                 f"{w['n']} ties")
        out.append(C.row(cid, PAPER, f"the RLHF policy ({name.upper()}) beats the raw model on PM score and win rate",
                         "preferred to raw", value, verdict))
    # H4: reward roughly linear in sqrt(KL)
    if len(fit["sqrt_kl"]) >= 3:
        verdict = (C.REPRODUCED if fit["slope"] > 0 and fit["r2"] >= 0.5 and fit["p_value"] < 0.05
                   else C.DIRECTION if fit["slope"] > 0 else C.NOT_REPRODUCED)
        value = (f"slope {fit['slope']:+.3f} per sqrt(nat), R² {fit['r2']:.2f} (p={fit['p_value']:.2f}) over "
                 f"{len(fit['sqrt_kl'])} PPO steps; sqrt(KL) reached {max(fit['sqrt_kl']):.2f}")
    else:
        verdict, value = C.NOT_TESTED, "fewer than 3 PPO steps"
    out.append(C.row("H4", PAPER, "PM reward grows roughly linearly in sqrt(KL(policy || initial))", "linear (R² high)",
                     value, verdict))
    # H5: HH training does not cost HumanEval pass@1 beyond its interval
    base = raw["humaneval"]
    tuned = [p for p in policies if p is not raw and p["humaneval"]]
    if not base or not tuned:
        verdict, value = C.NOT_TESTED, "no HumanEval evaluation"
    elif sum(base) == 0:
        after = ", ".join(f"{p['policy']} {int(sum(p['humaneval']))}" for p in tuned)
        verdict, value = C.NOT_TESTED, f"the raw model solves 0 of the {len(base)} tasks: nothing to lose (after: {after})"
    else:
        drops = {p["policy"]: paired_bootstrap(p["humaneval"], base, seed=P.seed) for p in tuned}  # H0: no drop
        verdict = C.REPRODUCED if all(not d.significant for d in drops.values()) else C.NOT_REPRODUCED
        value = f"raw {100 * np.mean(base):.0f}%; " + ", ".join(
            f"{p['policy']} {100 * np.mean(p['humaneval']):.0f}% (drop p={drops[p['policy']].p_value:.2f})" for p in tuned)
    out.append(C.row("H5", PAPER, "HH training does not reduce HumanEval pass@1 beyond its confidence interval",
                     "no cost to coding skill (larger models)", value, verdict))
    # H6: PM accuracy rises with training data (log-linear in Bai et al.): slope over log2(size) of the mean
    # accuracy, and largest vs smallest size paired over the held-out items of both sets
    sizes = sorted({r["train_pairs"] for r in size_rows})
    if len(sizes) >= 2:
        acc = [float(np.mean([r["accuracy"] for r in size_rows if r["train_pairs"] == s])) for s in sizes]
        slope = linear_fit(np.log2(sizes).tolist(), acc)["slope"] if len(sizes) > 2 else acc[-1] - acc[0]
        items = {s: [o for t in SETS for r in size_rows if r["train_pairs"] == s and r["test"] == t for o in r["outcomes"]]
                 for s in (sizes[0], sizes[-1])}
        test = paired_bootstrap(items[sizes[0]], items[sizes[-1]], seed=P.seed)
        verdict = (C.REPRODUCED if slope > 0 and test.significant else C.DIRECTION if slope > 0 and test.diff > 0
                   else C.NOT_REPRODUCED)
        value = (" -> ".join(f"{s}: {100 * a:.0f}%" for s, a in zip(sizes, acc)) +
                 f" (slope {100 * slope:+.1f} pts per doubling; {sizes[-1]} vs {sizes[0]} pairs: p={test.p_value:.2f})")
    else:
        verdict, value = C.NOT_TESTED, "one data size"
    out.append(C.row("H6", PAPER, "PM accuracy rises roughly log-linearly with training data", "log-linear", value, verdict))
    return out


# ----------------------------------------------------------------------------------------------
# figures: drawn from the saved results only
# ----------------------------------------------------------------------------------------------


def fig_pm_matrix(results: dict[str, Any]):
    import matplotlib.pyplot as plt
    import seaborn as sns

    rows = results["tables"]["pm_matrix"]
    pms = ["helpful", "harmless", "mixed"]
    acc = np.array([[_acc(rows, pm, t)["accuracy"] for t in SETS] for pm in pms])
    labels = np.array([[f"{100 * _acc(rows, pm, t)['accuracy']:.0f}%\n[{100 * _acc(rows, pm, t)['ci_low']:.0f}, "
                        f"{100 * _acc(rows, pm, t)['ci_high']:.0f}]" for t in SETS] for pm in pms])
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    sns.heatmap(acc, annot=labels, fmt="", vmin=0.3, vmax=1.0, cmap="RdYlGn", ax=ax, cbar_kws={"label": "accuracy"},
                xticklabels=[f"{t} test\n(n={_acc(rows, 'mixed', t)['n']})" for t in SETS],
                yticklabels=[f"{pm} PM" for pm in pms])
    ax.set(title="Preference-model accuracy (95% CI)")
    return fig


def fig_pm_data_size(results: dict[str, Any]):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator, ScalarFormatter

    rows = results["tables"]["pm_data_size"]
    model_rows = results["tables"].get("pm_model_size") or []
    fig, axes = plt.subplots(1, 2 if len({r["backbone"] for r in model_rows}) > 1 else 1, figsize=(9, 3.4), squeeze=False)
    ax = axes[0][0]
    for test in SETS:
        rs = sorted([r for r in rows if r["test"] == test], key=lambda r: r["train_pairs"])
        x = [r["train_pairs"] for r in rs]
        ax.plot(x, [r["accuracy"] for r in rs], "o-", label=f"{test} test")
        ax.fill_between(x, [r["ci_low"] for r in rs], [r["ci_high"] for r in rs], alpha=0.15)
    ax.axhline(0.5, color="grey", ls=":", lw=1)
    ax.set(xscale="log", xlabel="training pairs (mixed)", ylabel="accuracy", ylim=(0.3, 1), title="PM accuracy vs data")
    ax.set_xticks(sorted({r["train_pairs"] for r in rows}))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())
    ax.legend(fontsize=8)
    if axes.shape[1] > 1:
        ax = axes[0][1]
        for test in SETS:
            rs = sorted([r for r in model_rows if r["test"] == test], key=lambda r: r["params"])
            ax.plot([r["params"] for r in rs], [r["accuracy"] for r in rs], "o-", label=f"{test} test")
        ax.set(xscale="log", xlabel="backbone parameters", ylim=(0.3, 1), title="PM accuracy vs model size")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def fig_rlhf_vs_raw(results: dict[str, Any]):
    import matplotlib.pyplot as plt

    rows = results["tables"]["policies"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    names = [r["policy"] for r in rows]
    lows = [float(r["pm_score_ci"].strip("[]").split(",")[0]) for r in rows]
    highs = [float(r["pm_score_ci"].strip("[]").split(",")[1]) for r in rows]
    means = [r["pm_score"] for r in rows]
    axes[0].bar(names, means, yerr=[[m - lo for m, lo in zip(means, lows)], [hi - m for m, hi in zip(means, highs)]],
                capsize=3, color=["grey"] + ["tab:blue"] * (len(rows) - 1))
    axes[0].set(ylabel="mixed-PM score (held-out prompts)", title="PM score")
    tuned = [r for r in rows if r.get("win_vs_raw") is not None]
    if tuned:
        w = [r["win_vs_raw"] for r in tuned]
        ci = [[float(x) for x in r["win_ci"].strip("[]").split(",")] for r in tuned]
        axes[1].bar([r["policy"] for r in tuned], w, yerr=[[v - c[0] for v, c in zip(w, ci)], [c[1] - v for v, c in zip(w, ci)]],
                    capsize=3, color="tab:green")
    axes[1].axhline(0.5, color="grey", ls=":", lw=1)
    axes[1].set(ylim=(0, 1), ylabel="judge win rate vs raw (95% CI)", title="Judge: tuned vs raw, both orders")
    fig.tight_layout()
    return fig


def fig_reward_vs_sqrt_kl(results: dict[str, Any]):
    import matplotlib.pyplot as plt

    fit = results["data"]["sqrt_kl_fit"]
    fig, ax = plt.subplots(figsize=(5, 3.4))
    sc = ax.scatter(fit["sqrt_kl"], fit["reward"], c=range(len(fit["reward"])), cmap="viridis", s=20)
    fig.colorbar(sc, ax=ax, label="PPO step")
    if fit["sqrt_kl"]:
        xs = np.linspace(0, max(fit["sqrt_kl"]) or 1, 20)
        ax.plot(xs, fit["intercept"] + fit["slope"] * xs, "k--", lw=1, label=f"fit: R² = {fit['r2']:.2f}")
        ax.legend(fontsize=8)
    ax.set(xlabel="sqrt(KL(policy || initial))  [sqrt(nats)]", ylabel="mixed-PM reward (batch mean)",
           title="Reward vs sqrt(KL) during PPO")
    return fig


def fig_humaneval(results: dict[str, Any]):
    import matplotlib.pyplot as plt

    rows = [r for r in results["tables"]["policies"] if r["humaneval"] is not None]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar([r["policy"] for r in rows], [r["humaneval"] for r in rows], color=["grey"] + ["tab:blue"] * (len(rows) - 1))
    ax.set(ylim=(0, 1), ylabel="HumanEval pass@1 (greedy, subset)", title="Coding skill before and after HH training")
    return fig
