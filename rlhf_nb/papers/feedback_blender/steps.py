"""Steps of ``notebooks/06_feedback_blender.ipynb``: a response pool with gold scores, features, the panel, and a
simulated annotator that gives every feedback type at several budgets and noise levels.

**The simulated annotator.** Each response has a gold score (the share of its prompt's verifiable instructions
it follows, :mod:`rlhf_nb.tasks.gold`). The annotator perceives a response's quality as ``gold + e`` with
``e ~ N(0, noise)``, drawn afresh for every event, and each instruction's fulfilment as ``followed + e > 0.5``:

* ``rating``: ``round(scale * perceived)`` clipped to ``0..scale``, for one random response of a random prompt;
* ``descriptive``: the perceived fulfilment of each instruction ("follows: all lowercase" ...) for one response;
* ``comparison``: the perceived better of two random responses of a prompt (a tie when they look equal);
* ``ranking``: all responses of a prompt ordered by perceived quality;
* ``correction``: a response that misses an instruction, edited so that it follows one more (a minimal,
  verified edit: :func:`rlhf_nb.tasks.gold.fix`); the edit is preferred to the original;
* ``demonstration``: the prompt's best response with every failed instruction fixed
  (:func:`rlhf_nb.tasks.gold.fix_all`), preferred to every response shown.

Constructive feedback is written by the oracle, so the noise acts on evaluative and comparative feedback only.
Events go through the same :func:`rlhf_nb.train.feedback.translate` as a person's. Every event is one unit of
budget (a ranking of 4 yields 6 pairs, a demonstration 4: that is what the type is worth per event).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from rlhf_nb.lm.models import Loaded
from rlhf_nb.notebook.feedback_panel import FeedbackPanel, Item
from rlhf_nb.papers.feedback_blender.params import Params
from rlhf_nb.tasks import gold
from rlhf_nb.train.feedback import LEARNED, Event, FeedbackLog, Targets, fit, fit_ensemble, translate
from rlhf_nb.train.reward import Featurizer


@dataclass
class Split:
    train: list[gold.IFPrompt]  # prompts the annotator gives feedback on
    test: list[gold.IFPrompt]  # held-out prompts whose responses judge the reward models

    def ids(self) -> dict[str, list[str]]:
        return {"train": [p.id for p in self.train], "test": [p.id for p in self.test]}


def make_prompts(P: Params) -> Split:
    """Verifiable-instruction prompts, split by base request."""
    pool = gold.synthetic_prompts(P.prompts, seed=P.seed, per_prompt=P.instructions)
    n_test = max(2, round(P.prompts * P.test_fraction))
    parts = gold.split_by_base(pool, {"train": P.prompts - n_test, "test": n_test}, seed=P.seed)
    return Split(parts["train"], parts["test"])


@dataclass
class Pool:
    """Responses of the policy (one row per prompt, train prompts first) with what the oracle needs."""

    prompt_ids: list[str]
    instructions: list[tuple[str, ...]]  # per prompt
    split: list[str]  # "train" or "test", per prompt
    response_ids: list[list[str]]
    texts: list[list[str]]
    gold: list[list[float]]
    followed: list[list[list[bool]]]  # per response, per instruction
    finished: list[list[bool]]
    tokens: list[list[int]]
    tokens_per_s: float
    corrections: dict[str, list[str]]  # response id -> verified single-instruction edits (may be empty)
    demonstrations: dict[str, str]  # prompt id -> the best response with every failed instruction fixed
    demonstration_gold: dict[str, float]

    @property
    def cap_rate(self) -> float:
        flat = [f for row in self.finished for f in row]
        return 1 - sum(flat) / max(1, len(flat))


def build_pool(policy: Loaded, split: Split, P: Params) -> Pool:
    prompts = split.train + split.test
    samples = gold.sample_with_gold(policy, prompts, P.sampling.config(P.seed), "response pool")
    ids = [[f"{p.id}/r{j}" for j in range(len(row))] for p, row in zip(prompts, samples.texts)]
    followed = [[gold.followed(p, t) for t in row] for p, row in zip(prompts, samples.texts)]
    corrections: dict[str, list[str]] = {}
    demos, demo_gold = {}, {}
    for p, rids, row, scores, flags in zip(split.train, ids, samples.texts, samples.gold, followed):
        for rid, text, score, done in zip(rids, row, scores, flags):
            edits = [gold.fix(p, text, i) for i, ok in enumerate(done) if not ok]
            corrections[rid] = [e for e in dict.fromkeys(edits) if gold.if_score(p, e) > score]
        best = row[int(np.argmax(scores))]
        demos[p.id] = gold.fix_all(p, best)
        demo_gold[p.id] = gold.if_score(p, demos[p.id])
    return Pool([p.id for p in prompts], [p.instructions for p in prompts],
                ["train"] * len(split.train) + ["test"] * len(split.test), ids,
                samples.texts, samples.gold, followed, samples.finished, samples.tokens, samples.tokens_per_s,
                corrections, demos, demo_gold)


def pool_summary(pool: Pool) -> dict[str, Any]:
    train = [i for i, s in enumerate(pool.split) if s == "train"]
    rids = [r for i in train for r in pool.response_ids[i]]
    g = np.array([x for row in pool.gold for x in row])
    return {
        "prompts": len(pool.prompt_ids), "train_prompts": len(train), "responses": int(g.size),
        "gold_mean": float(g.mean()), "gold_levels": sorted({round(float(x), 3) for x in g}),
        "cap_rate": pool.cap_rate, "tokens_per_s": pool.tokens_per_s,
        "correctable": float(np.mean([bool(pool.corrections[r]) for r in rids])),
        "imperfect": float(np.mean([pool.gold[i][j] < 1 for i in train for j in range(len(pool.gold[i]))])),
        "demonstration_gold": float(np.mean(list(pool.demonstration_gold.values()))),
    }


# ----------------------------------------------------------------------------------------------
# features
# ----------------------------------------------------------------------------------------------


@dataclass
class Features:
    """Standardised frozen-backbone features: by response id, and by (prompt id, text) for written texts."""

    by_id: dict[str, np.ndarray]
    by_text: dict[tuple[str, str], np.ndarray]
    mean: np.ndarray
    scale: np.ndarray
    featurizer: Featurizer
    prompts: dict[str, gold.IFPrompt]

    def of(self, targets: Targets) -> dict[str, np.ndarray]:
        """Features for every id in ``targets``: pool responses, and written texts (featurised on first use)."""
        missing = [(pid, text) for pid, text in targets.texts.values() if (pid, text) not in self.by_text]
        if missing:
            raw = self.featurizer([self.prompts[pid].messages() for pid, _ in missing], [t for _, t in missing])
            for key, row in zip(missing, (raw - self.mean) / self.scale):
                self.by_text[key] = row
        out = dict(self.by_id)
        for wid, key in targets.texts.items():
            out[wid] = self.by_text[key]
        return out


def featurize(backbone: Loaded, split: Split, pool: Pool, P: Params) -> Features:
    """One pass of the backbone over every response, correction and demonstration."""
    prompts = {p.id: p for p in split.train + split.test}
    keys = [(pid, t) for pid, row in zip(pool.prompt_ids, pool.texts) for t in row]
    keys += [(rid.rsplit("/", 1)[0], t) for rid, edits in pool.corrections.items() for t in edits]
    keys += list(pool.demonstrations.items())
    keys = list(dict.fromkeys(keys))
    featurizer = P.head.featurizer(backbone)
    raw = featurizer([prompts[pid].messages() for pid, _ in keys], [t for _, t in keys])
    n_pool = sum(len(row) for row in pool.texts)
    mean, scale = raw[:n_pool].mean(0), raw[:n_pool].std(0) + 1e-6
    by_text = dict(zip(keys, (raw - mean) / scale))
    by_id = {rid: by_text[(pid, t)] for pid, rids, row in zip(pool.prompt_ids, pool.response_ids, pool.texts)
             for rid, t in zip(rids, row)}
    return Features(by_id, by_text, mean, scale, featurizer, prompts)


# ----------------------------------------------------------------------------------------------
# the simulated annotator
# ----------------------------------------------------------------------------------------------


def _rng(*keys: float) -> np.random.Generator:
    return np.random.default_rng([int(round(k * 1000)) for k in keys])


def simulate(kind: str, budget: int, noise: float, seed: int, pool: Pool, P: Params) -> list[Event]:
    """``budget`` events of one type on the train prompts (see the module docstring for the oracle)."""
    rng = _rng(LEARNED.index(kind), budget, noise, seed)
    train = [i for i, s in enumerate(pool.split) if s == "train"]
    scale = P.rating_scale
    events: list[Event] = []

    def perceived(i: int, j: int) -> float:
        return pool.gold[i][j] + (rng.normal(0, noise) if noise > 0 else 0.0)

    attempts = 0
    while len(events) < budget and attempts < 50 * budget:
        attempts += 1
        i = train[rng.integers(len(train))]
        pid, rids = pool.prompt_ids[i], pool.response_ids[i]
        who = f"oracle-{len(events)}"  # one event per simulated annotator: none replaces another
        if kind == "rating":
            j = int(rng.integers(len(rids)))
            value = int(min(scale, max(0, round(scale * perceived(i, j)))))
            events.append(Event("rating", pid, (rids[j],), {"value": value}, annotator=who))
        elif kind == "descriptive":
            j = int(rng.integers(len(rids)))
            flags = {f"follows: {gold.describe_instruction(name)}": bool(ok + (rng.normal(0, noise) if noise else 0) > 0.5)
                     for name, ok in zip(pool.instructions[i], pool.followed[i][j])}
            events.append(Event("descriptive", pid, (rids[j],), {"features": flags}, annotator=who))
        elif kind == "comparison":
            a, b = (int(x) for x in rng.choice(len(rids), 2, replace=False))
            ua, ub = perceived(i, a), perceived(i, b)
            preferred = "tie" if ua == ub else (rids[a] if ua > ub else rids[b])
            events.append(Event("comparison", pid, (rids[a], rids[b]), {"preferred": preferred}, annotator=who))
        elif kind == "ranking":
            u = np.array([perceived(i, j) for j in range(len(rids))]) + rng.uniform(0, 1e-9, len(rids))
            events.append(Event("ranking", pid, tuple(rids), {"order": [rids[j] for j in np.argsort(-u)]},
                                annotator=who))
        elif kind == "correction":
            options = [j for j, r in enumerate(rids) if pool.corrections.get(r)]
            if not options:
                continue
            j = options[int(rng.integers(len(options)))]
            edits = pool.corrections[rids[j]]
            events.append(Event("correction", pid, (rids[j],), {"text": edits[int(rng.integers(len(edits)))],
                                                               "original": pool.texts[i][j]}, annotator=who))
        elif kind == "demonstration":
            events.append(Event("demonstration", pid, tuple(rids), {"text": pool.demonstrations[pid]}, annotator=who))
        else:
            raise ValueError(f"unknown feedback type {kind!r}")
    return events


# ----------------------------------------------------------------------------------------------
# evaluation
# ----------------------------------------------------------------------------------------------


@dataclass
class TestSet:
    """Held-out responses: features (prompts, n, d), gold (prompts, n), and every pair with different gold, with the
    prompt it belongs to (pairs of one prompt are not independent), whether the longer response is the better one
    (the length-only rules a learned reward model is compared with), the shorter response's length as a share of
    the longer's (the claims judge on pairs of similar length, where length cannot decide), and whether preferring
    the response that ended on its own (not cut off at the token cap) picks the better one."""

    x: np.ndarray
    gold: np.ndarray
    pairs: list[tuple[int, int, int]]  # (prompt, better, worse)
    pair_prompts: list[str]
    longer: list[float]  # per pair: 1 the better response is longer (in characters), 0 shorter, 0.5 as long
    length_ratio: list[float]  # per pair: shorter / longer, in characters (1: as long)
    finished: list[float]  # per pair: 1 only the better response finished, 0 only the worse, 0.5 both or neither
    surface: dict[str, list[float]]  # per surface rule (SURFACE_RULES): its outcome on each pair


MARKUP = ("*", "[", "<<", "P.S.")


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9']+", text.lower()))


# Cheap rules that read the text but learn nothing: many of the gold's instructions ask for markup (highlighted
# *sections*, [placeholders], <<titles>>, a P.S., bullet lists) or for words of the request, so counting them is
# the sceptic's first try.
SURFACE_RULES: dict[str, Callable[[str, str], int]] = {
    "prefer the reply with more markup (*, [, <<, P.S.)": lambda request, text: sum(text.count(m) for m in MARKUP),
    "prefer the reply sharing more words with the request": lambda request, text: len(_words(request) & _words(text)),
}


def test_set(pool: Pool, features: Features) -> TestSet:
    rows = [i for i, s in enumerate(pool.split) if s == "test"]
    x = np.stack([np.stack([features.by_id[r] for r in pool.response_ids[i]]) for i in rows])
    g = np.array([pool.gold[i] for i in rows], dtype=float)
    pairs = [(k, a, b) if g[k, a] > g[k, b] else (k, b, a)
             for k in range(len(rows)) for a, b in combinations(range(g.shape[1]), 2) if g[k, a] != g[k, b]]
    size = [[len(t) for t in pool.texts[i]] for i in rows]

    def prefer(value: list[list[float]]) -> list[float]:  # the rule "prefer the larger value" on each pair
        return [0.5 + 0.5 * float(np.sign(value[k][a] - value[k][b])) for k, a, b in pairs]

    ratio = [min(size[k][a], size[k][b]) / max(size[k][a], size[k][b], 1) for k, a, b in pairs]
    surface = {name: prefer([[rule(features.prompts[pool.prompt_ids[i]].text, t) for t in pool.texts[i]] for i in rows])
               for name, rule in SURFACE_RULES.items()}
    return TestSet(x, g, pairs, [pool.prompt_ids[rows[k]] for k, _, _ in pairs], prefer(size), ratio,
                   prefer([[float(f) for f in pool.finished[i]] for i in rows]), surface)


def evaluate(score: Callable[[np.ndarray], np.ndarray] | None, test: TestSet) -> dict[str, Any]:
    """Pair outcomes (1 right, 0.5 tie, 0 wrong) on the held-out pairs, Spearman's rho with the gold over all
    held-out responses, and the gold of best-of-n selection. ``score`` None (no model): chance everywhere."""
    from scipy.stats import spearmanr

    if score is None:
        return {"outcomes": [0.5] * len(test.pairs), "spearman": 0.0, "bon_gold": float(test.gold.mean())}
    s = score(test.x.reshape(-1, test.x.shape[-1])).reshape(test.gold.shape)
    outcomes = [1.0 if s[k, a] > s[k, b] else 0.5 if s[k, a] == s[k, b] else 0.0 for k, a, b in test.pairs]
    rho = spearmanr(s.ravel(), test.gold.ravel()).statistic if np.ptp(s) > 0 and np.ptp(test.gold) > 0 else 0.0
    return {"outcomes": outcomes, "spearman": 0.0 if math.isnan(rho) else float(rho),
            "bon_gold": float(test.gold[np.arange(len(s)), s.argmax(1)].mean())}


def gold_fed(pool: Pool, features: Features, test: TestSet, l2: float,
             prompts: int | None = None) -> dict[str, Any]:
    """The positive control of the learner: the same linear head fitted on the exact gold of every training response
    (of the first ``prompts`` training prompts; default all), as a value (ridge, the head of ratings and descriptive
    feedback) and as every within-prompt pair whose gold differs (Bradley-Terry, the head of comparisons, rankings,
    corrections and demonstrations), evaluated on the held-out pairs. If even this head does not beat the trivial
    rules, a feedback type's loss to them is the learner's, not the feedback's."""
    train = [i for i, s in enumerate(pool.split) if s == "train"][:prompts]
    values = [(r, float(g)) for i in train for r, g in zip(pool.response_ids[i], pool.gold[i])]
    pairs = [(rids[a], rids[b]) if g[a] > g[b] else (rids[b], rids[a])
             for rids, g in ((pool.response_ids[i], pool.gold[i]) for i in train)
             for a, b in combinations(range(len(rids)), 2) if g[a] != g[b]]
    out = {}
    for form, targets, kind in (("values", Targets(values={"rating": values}), "rating"),
                                ("pairs", Targets(pairs={"comparison": pairs}), "comparison")):
        model = fit(kind, targets, features.by_id, l2)
        out[form] = {"targets": targets.count(kind), **evaluate(model.score if model else None, test)}
    return out


def run_grid(P: Params, pool: Pool, features: Features) -> dict[str, Any]:
    """Every type alone (``budget`` events each) and the ensemble (the same total budget split evenly over the
    types), at every budget, noise level and seed; all evaluated on the held-out responses."""
    from tqdm.auto import tqdm

    test = test_set(pool, features)
    pool_x = np.stack(list(features.by_id.values()))
    cells = [(b, z, s) for b in P.budgets for z in P.noises for s in range(P.seeds)]
    rows = []
    for budget, noise, s in tqdm(cells, desc="simulated feedback", unit="cell"):
        seed = P.seed + s
        for kind in P.types:
            targets = translate(simulate(kind, budget, noise, seed, pool, P), (0, P.rating_scale))
            model = fit(kind, targets, features.of(targets), P.head.l2)
            rows.append({"arm": kind, "budget": budget, "noise": noise, "seed": s, "targets": targets.count(kind),
                         **evaluate(model.score if model else None, test)})
        share = max(1, budget // len(P.types))
        events = [e for kind in P.types for e in simulate(kind, share, noise, seed, pool, P)]
        targets = translate(events, (0, P.rating_scale))
        ens = fit_ensemble(targets, features.of(targets), pool_x, P.head.l2, P.bootstraps, seed)
        rows.append({"arm": "ensemble", "budget": budget, "noise": noise, "seed": s,
                     "targets": sum(targets.count(k) for k in P.types), **evaluate(ens.score if ens else None, test)})
    return {"rows": rows, **pair_record(test), "gold_fed": gold_fed(pool, features, test, P.head.l2)}


def pair_record(test: TestSet) -> dict[str, Any]:
    """What the grid saves of the held-out pairs (their prompts, lengths, endings and surface rules): what the claims'
    readers judge on (``readers.claim_set``)."""
    return {"test_pairs": len(test.pairs), "test_prompts": int(test.gold.shape[0]),
            "pair_prompts": test.pair_prompts, "pair_longer": test.longer, "pair_length_ratio": test.length_ratio,
            "pair_finished": test.finished, "pair_rules": test.surface,
            "test_gold_mean": float(test.gold.mean()), "test_gold_best": float(test.gold.max(1).mean())}


# ----------------------------------------------------------------------------------------------
# the panel
# ----------------------------------------------------------------------------------------------


def panel(split: Split, pool: Pool, features: Features, P: Params, log_path: str | Path,
          annotator: str = "you") -> FeedbackPanel:
    """The feedback panel on the first ``panel_items`` train prompts; after each event it shows the held-out
    pair accuracy of the ensemble learned from the log so far."""
    log = FeedbackLog(log_path, (0, P.rating_scale))
    test = test_set(pool, features)
    pool_x = np.stack(list(features.by_id.values()))
    items = []
    for i in range(min(P.panel_items, len(split.train))):
        p = split.train[i]
        items.append(Item(p.id, p.text, list(zip(pool.response_ids[i], pool.texts[i])),
                          [f"follows: {gold.describe_instruction(x)}" for x in dict.fromkeys(p.instructions)]))

    def live() -> str:
        events = log.events()
        targets = translate(events, log.scale)
        ens = fit_ensemble(targets, features.of(targets), pool_x, P.head.l2, 1, P.seed)
        if ens is None:
            return f"{len(events)} events: not enough to learn from yet (two different ratings or one pair)."
        if not test.pairs:
            return f"{len(events)} events; no held-out pair of responses differs in gold, so nothing to judge them on."
        result = evaluate(ens.score, test)
        acc = float(np.mean(result["outcomes"]))
        return (f"Reward model from your {len(events)} events: held-out pair accuracy <b>{100 * acc:.0f}%</b> on "
                f"{len(test.pairs)} pairs (chance 50%), Spearman {result['spearman']:+.2f} with the gold.")

    return FeedbackPanel(items, log, annotator=annotator, model=P.policy, params={"seed": P.seed}, on_event=live)
