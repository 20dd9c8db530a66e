"""Metrics: pass@k against the combinatorial definition, intervals, tests, diversity, BLEU."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest

from rlhf_nb.evidence import metrics, stats
from rlhf_nb.lm import models


@pytest.mark.parametrize("n, c, k", [(10, 3, 1), (10, 3, 5), (20, 0, 5), (20, 20, 1), (200, 7, 100), (5, 4, 2)])
def test_pass_at_k_matches_the_definition(n, c, k):
    assert metrics.pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k), abs=1e-12)


def test_pass_at_k_is_stable_for_large_n():
    value = metrics.pass_at_k(2000, 3, 1000)
    assert 0.8 < value <= 1.0  # comb(2000, 1000) would overflow a float
    with pytest.raises(ValueError, match="at least 10 samples"):
        metrics.pass_at_k(5, 1, 10)


def test_wilson_interval_contains_the_estimate_and_shrinks_with_n():
    small, large = stats.rate_estimate([1.0] * 7 + [0.0] * 3), stats.rate_estimate([1.0] * 700 + [0.0] * 300)
    assert small.low < 0.7 < small.high and large.low < 0.7 < large.high
    assert (large.high - large.low) < (small.high - small.low)
    assert stats.wilson(0, 10)[0] == 0.0


def test_bootstrap_ci_is_seeded():
    x = np.random.default_rng(0).normal(1.0, 1.0, size=200)
    a, b = stats.bootstrap_ci(x, seed=3), stats.bootstrap_ci(x, seed=3)
    assert a == b and a.low < 1.0 < a.high


def test_paired_tests_detect_a_real_improvement_and_not_a_null_one():
    rng = np.random.default_rng(1)
    base = rng.normal(size=100)
    better = base + 0.5 + rng.normal(scale=0.1, size=100)
    same = base + rng.normal(scale=0.1, size=100)
    up, null = stats.paired(base, better), stats.paired(base, same)
    assert up.p < 0.01 and up.low > 0
    assert null.p > 0.05 or null.low <= 0


def test_a_table_and_a_verdict_on_the_same_data_agree():
    """One statistics module: the forgetting table's interval and p are superiority's on the same items."""
    from rlhf_nb.evidence import claims

    rng = np.random.default_rng(2)
    a, b = rng.normal(size=60), rng.normal(0.3, 1, size=60)
    row, test = stats.paired(a, b), claims.superiority(a, b)
    assert (row.low, row.high) == test.ci and row.p == test.p and row.diff == pytest.approx(test.effect)


def test_a_handful_of_items_is_never_significant():
    # two items that both improve by the same amount: the bootstrap alone would see zero variance
    assert stats.paired([0.0, 0.25], [0.25, 0.5]).p > 0.05
    assert stats.paired([0.0] * 6, [1.0] * 6).p == pytest.approx(1 / 64)  # exact sign flip
    assert stats.paired([1.0, 1.0], [1.0, 1.0]).p == 1.0


def test_edit_distances_and_bins():
    distances = metrics.edit_distance_stats(["kitten", "sitting", "kitten"])
    assert distances == {"max": 3.0, "mean": 2.0}
    bins = metrics.edit_distance_bins([1, 2, 3, 4, 50, 60, 70, 80], n_bins=2)
    assert len(set(bins)) == 2 and bins[0] == bins[3] != bins[4]


def test_token_entropy_is_positive_and_bounded_by_log_vocab():
    tok, model = models.load("tiny")
    h = metrics.token_entropy(model, tok, "def add(a, b):", " return a + b")
    assert 0 < h <= np.log(len(tok)) + 1e-6


def test_bleu_uses_sacrebleu():
    assert metrics.bleu(["le chat est sur le tapis"], ["le chat est sur le tapis"]) == pytest.approx(100)
    assert metrics.bleu(["un chien"], ["le chat est sur le tapis"]) < 10


def test_forgetting_suite_runs_end_to_end_and_compares(tmp_path):
    import json

    from rlhf_nb.rewards import forgetting

    pairs = tmp_path / "en_fr.jsonl"
    pairs.write_text("".join(json.dumps(p) + "\n" for p in [{"en": "The cat sleeps.", "fr": "Le chat dort."},
                                                             {"en": "Good morning.", "fr": "Bonjour."}]))
    config = forgetting.ForgettingConfig(humaneval_tasks=2, gsm8k_problems=2, translation=str(pairs),
                                         max_new_tokens=16)
    loaded = models.load("tiny")
    before = forgetting.run_suite(loaded, config)
    assert set(before.scores) == {"humaneval_pass@1", "gsm8k_accuracy", "en_fr_bleu"} == set(before.cap_rates)
    assert all(0 <= c <= 1 for c in before.cap_rates.values())
    assert len(before.per_item["humaneval_pass@1"]) == 2 and 0 <= before.scores["en_fr_bleu"] <= 100
    again = forgetting.run_suite(loaded, config)
    assert again.scores == before.scores  # greedy: deterministic
    worse = forgetting.SuiteResult({"humaneval_pass@1": 0.0}, {"humaneval_pass@1": [0.0] * 20})
    better = forgetting.SuiteResult({"humaneval_pass@1": 1.0}, {"humaneval_pass@1": [1.0] * 20})
    [row] = forgetting.compare(better, worse)
    assert row["change"] == -1.0 and row["ci_high"] < 0 and row["p_drop"] < 0.01
    no_file = forgetting.ForgettingConfig(humaneval_tasks=1, gsm8k_problems=1, max_new_tokens=4)
    assert forgetting.run_suite(loaded, no_file).scores["en_fr_bleu"] is None


def test_humaneval_is_asked_and_scored_one_way_in_01_and_the_forgetting_suite(monkeypatch):
    """01's alignment tax once prefilled the reply with the task's prompt inside an open code block; SmolLM2
    closed the block at once (40 empty bodies of 40), so its raw pass@1 read 0%. Both now send the plain chat
    request and score the program extracted from a free reply: a correct fenced answer passes in both."""
    from types import SimpleNamespace

    from rlhf_nb.lm.evaluate import Replies
    from rlhf_nb.papers.hh_rlhf import steps
    from rlhf_nb.rewards import forgetting
    from rlhf_nb.rewards.code import code_prompt
    from rlhf_nb.tasks import data

    tasks = data.load_humaneval(limit=3)
    asked: list[list] = []

    def fake_greedy(loaded, prompts, max_new_tokens, label, batch_size=None, done=None):
        asked.append(prompts)
        assert [d.entry_point for d in done] == [t.entry_point for t in tasks]  # each reply ends at its own block
        replies = [f"Here it is:\n```python\n{t.prompt}{t.canonical_solution}```\nIt works." for t in tasks]
        return Replies([[r] for r in replies], [[10]] * len(replies), [[True]] * len(replies), 1.0)

    monkeypatch.setattr(forgetting, "greedy", fake_greedy)
    suite = forgetting.coding(None, tasks)
    tax = steps.humaneval_pass(None, SimpleNamespace(humaneval="package", humaneval_tasks=3))
    assert suite.scores == tax.scores == [1.0, 1.0, 1.0]
    assert asked[0] == asked[1] == [code_prompt(t) for t in tasks]  # chat messages, no prefilled open block


def test_one_forgetting_evaluator_serves_01_and_04_and_reports_cut_off_replies(monkeypatch):
    """04's Table 4 and 01's alignment tax go through rlhf_nb.rewards.forgetting (once two evaluators with their own
    settings); each measurement says which replies the token cap cut off, in the units each notebook saves."""
    from types import SimpleNamespace

    from rlhf_nb.lm.evaluate import Replies
    from rlhf_nb.papers.precise_rlaif import steps as precise
    from rlhf_nb.rewards import forgetting
    from rlhf_nb.tasks import data

    tasks = data.load_humaneval(limit=4)
    asked: list[tuple] = []

    def fake_greedy(loaded, prompts, max_new_tokens, label, batch_size=None, done=None):
        asked.append((len(prompts), max_new_tokens, label))
        replies = (["Le chat dort.\nIt means: the cat sleeps."] * len(prompts) if "En->Fr" in label else
                   [f"```python\n{t.prompt}{t.canonical_solution}```" for t in tasks])
        finished = [[i != 1] for i in range(len(prompts))]  # the second reply hit the cap
        return Replies([[r] for r in replies], [[10]] * len(prompts), finished, 1.0)

    monkeypatch.setattr(forgetting, "greedy", fake_greedy)
    suite = precise.Forgetting.__new__(precise.Forgetting)
    suite.P = SimpleNamespace(max_new_tokens=256)
    suite.code, suite.math, suite.translation = tasks, [], [("The cat sleeps.", "Le chat dort.")] * 4
    measured = suite.run(None)
    assert asked == [(4, 256, "HumanEval (greedy)"), (4, 96, "En->Fr (greedy)")]
    assert measured["humaneval"].scores == [100.0] * 4 and measured["humaneval"].cap_rate == 0.25
    assert measured["bleu"].outputs == ["Le chat dort."] * 4 and measured["bleu"].scores[0] > 99
    policy = precise.with_forgetting(precise.Policy("start", None, [], [], [], []), measured)
    assert policy.forgetting_cut_off == {"humaneval": 0.25, "bleu": 0.25}
    assert policy.translations == ["Le chat dort."] * 4


def test_alignment_tax_needs_raw_and_trained_humaneval_replies_cut_off_alike_and_at_one_precision():
    from rlhf_nb.evidence import claims as C
    from rlhf_nb.papers.hh_rlhf import claims

    def policy(arm, seed, passed, cut, dtype="float32"):  # 80 tasks: enough to bound a 5-point loss (59 needed)
        moved = 16 if arm != "raw" else 0  # training changed the gold of 20% of held-out replies
        return {"arm": arm, "seed": seed, "humaneval": [1.0] * passed + [0.0] * (80 - passed), "humaneval_cut_off": cut,
                "gold": [1.0] * moved + [0.5] * (80 - moved), "finished": [True] * 80, "dtype": dtype}

    def h5(raw_cut, trained_cut, raw_dtype="float32"):
        evals = [policy("raw", None, 16, raw_cut, raw_dtype)] + [policy("dpo", s, 18, trained_cut) for s in range(3)]
        return claims.alignment_tax({"data": {"policies": evals}})

    def premise(claim, word):
        return next(p for p in claim.premises if word in p.name)

    alike = h5(0.05, 0.075)
    assert all(p.holds for p in alike.premises) and "cut off at the cap: raw 5%, trained 8%" in alike.our_value
    assert "difference +2.5 pts" in alike.our_value  # the measured difference, not the margin-shifted effect
    assert not premise(h5(0.30, 0.05), "truncated alike").holds  # the raw model lost tasks to the cap: not skill
    unrecorded = premise(h5(None, None), "truncated alike")
    assert not unrecorded.holds and "not recorded" in unrecorded.detail
    # the raw model sampled in bf16 and the trained ones in fp32: the arms would differ by rounding too
    mixed = h5(0.05, 0.05, "bfloat16")
    assert not premise(mixed, "one precision").holds and premise(mixed, "one precision").detail == "bfloat16 vs float32"
    assert C.decide(mixed)[0] == C.NOT_TESTED
    assert not premise(h5(0.05, 0.05, None), "one precision").holds  # a run from before the dtype was recorded
    # H3c reads the same record for the held-out replies judged by the gold
    evals = [policy("raw", None, 16, 0.0, "bfloat16")] + [policy("dpo", s, 18, 0.0) for s in range(3)]
    results = {"data": {"policies": evals, "train_test_pm": {"train_outcomes": {"helpful": [1.0] * 60 + [0.0] * 20}}}}
    h3c = claims.trained_arm(results, "dpo", "H3c")
    assert not premise(h3c, "one precision").holds and C.decide(h3c)[0] == C.NOT_TESTED
    evals[0]["dtype"] = "float32"
    assert premise(claims.trained_arm(results, "dpo", "H3c"), "one precision").holds
