"""The best-of-n instrument on constructed samples whose answers are known."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from rlhf_nb.evidence import bestofn


def _brute_force(reward: np.ndarray, values: np.ndarray, n: int) -> float:
    """The mean over every size-n subset of the value of its pick, ties broken uniformly."""
    picks = []
    for subset in itertools.combinations(range(len(reward)), n):
        top = max(reward[list(subset)])
        tied = [i for i in subset if reward[i] == top]
        picks.append(np.mean(values[tied]))
    return float(np.mean(picks))


def test_an_exact_small_case():
    reward, gold = np.array([[1.0, 2.0, 3.0]]), np.array([[0.0, 10.0, 20.0]])
    assert bestofn.expected_pick(reward, gold, 1)[0] == pytest.approx(10.0)
    assert bestofn.expected_pick(reward, gold, 2)[0] == pytest.approx(50 / 3)  # subsets {1,2} 10, {1,3} 20, {2,3} 20
    assert bestofn.expected_pick(reward, gold, 3)[0] == pytest.approx(20.0)


def test_ties_are_picked_uniformly_and_every_case_matches_brute_force():
    gen = np.random.default_rng(0)
    for _ in range(30):
        m = int(gen.integers(2, 8))
        reward = gen.integers(0, 3, m).astype(float)  # many ties
        gold = gen.random(m)
        for n in range(1, m + 1):
            got = bestofn.expected_pick(reward[None], gold[None], n)[0]
            assert got == pytest.approx(_brute_force(reward, gold, n)), (reward, gold, n)


def test_best_of_one_is_the_mean_and_the_weights_sum_to_one():
    gen = np.random.default_rng(1)
    reward, gold = gen.normal(size=(5, 16)), gen.random((5, 16))
    assert np.allclose(bestofn.expected_pick(reward, gold, 1), gold.mean(1))
    for n in (1, 2, 7, 16):
        assert bestofn.pick_weights(16, n).sum() == pytest.approx(1.0)


def test_the_kl_of_best_of_n_is_log_n_minus_n_minus_one_over_n():
    assert bestofn.kl(1) == 0.0
    assert bestofn.kl(2) == pytest.approx(math.log(2) - 0.5)
    assert bestofn.kl(16) == pytest.approx(math.log(16) - 15 / 16)
    with pytest.raises(ValueError):
        bestofn.kl(0)


def test_a_gamed_reward_rises_while_its_gold_falls_and_the_gap_shows_it():
    """A proxy that rewards length, on replies whose gold falls with length past a point: its proxy rises with n,
    the gold of its pick falls, and the gap to the gold's own pick grows."""
    gen = np.random.default_rng(2)
    length = gen.uniform(0, 1, (300, 16))
    gold = 1.0 - (length - 0.4) ** 2 + gen.normal(0, 0.05, length.shape)
    curves = bestofn.curves({"length": length}, gold, [1, 2, 4, 8, 16])
    proxy, picked = curves["length"].proxy.mean(1), curves["length"].gold.mean(1)
    assert np.all(np.diff(proxy) > 0) and picked[-1] < picked[0]
    gap = bestofn.hacking_gap(curves["length"], curves["gold"]).mean(1)
    assert gap[0] == pytest.approx(0.0, abs=1e-12) and np.all(np.diff(gap) > 0)
    again = bestofn.Curve.from_dict(curves["length"].to_dict())
    assert np.allclose(again.gold, curves["length"].gold) and again.n == [1, 2, 4, 8, 16]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="1 <= n <= m"):
        bestofn.expected_pick(np.zeros((2, 4)), np.zeros((2, 4)), 5)
    with pytest.raises(ValueError, match="both be"):
        bestofn.expected_pick(np.zeros((2, 4)), np.zeros((2, 3)), 2)
    with pytest.raises(ValueError, match="missing"):
        bestofn.expected_pick(np.array([[np.nan, 1.0]]), np.zeros((1, 2)), 1)


def test_the_overoptimisation_figure_draws_proxy_and_gold_against_sqrt_kl():
    import matplotlib

    matplotlib.use("Agg")
    from rlhf_nb.notebook.figures import bestofn_figure

    gen = np.random.default_rng(3)
    reward, gold = gen.normal(size=(40, 8)), gen.random((40, 8))
    fig = bestofn_figure(list(bestofn.curves({"rm": reward}, gold, [1, 2, 4, 8]).values()), "test")
    left, right = fig.axes
    assert len(left.lines) == 1 and len(right.lines) == 2  # the gold's own pick has no proxy line
    assert "40 prompts" in fig._suptitle.get_text()


# --- 01's folds: no PM ranks replies to a prompt whose pairs it was fitted on -------------------------------------


def test_hh_best_of_n_folds_keep_every_pm_off_the_prompts_it_ranks():
    """01's best-of-n in three folds, with a stand-in PM that remembers the prompts of the pairs it was fitted on:
    each prompt's replies are ranked and scored by PMs fitted on other prompts (train and test PMs on different
    folds), and its own pairs validate them."""
    from types import SimpleNamespace

    from rlhf_nb.papers.hh_rlhf import steps
    from rlhf_nb.tasks.gold import GoldSamples, IFPrompt

    prompts = [IFPrompt(f"p{i}", f"request {i}", f"base {i}", ("x",), ({},)) for i in range(12)]
    m = 4
    texts = [[f"reply {i}.{j}" + "!" * j for j in range(m)] for i in range(12)]
    gold = [[float(j % 2) for j in range(m)] for _ in range(12)]  # replies 1 and 3 follow the instruction
    samples = GoldSamples([p.id for p in prompts], texts, gold, [[5 + j for j in range(m)]] * 12,
                          [[True, True, True, False]] * 12, 100.0)
    fitted, ranked = [], []

    class StandIn:
        def fit(self, pairs):
            seen = {p.prompt[-1]["content"] for p in pairs}
            fitted.append(seen)
            return seen

        def scores(self, pm, prompts_, replies):
            ranked.append((pm, {p[-1]["content"] for p in prompts_}))
            return [float(r.count("!")) for r in replies]  # prefers later replies

        def outcomes(self, pm, pairs):
            return [1.0 if p.chosen.count("!") > p.rejected.count("!") else 0.0 for p in pairs]

    P = SimpleNamespace(seed=0, bon_pairs=2, bon_test_n=2)
    b = steps.best_of_n(StandIn(), samples, prompts, P)
    draws = steps.DRAWS
    assert len(fitted) == 6 * draws and len(ranked) == 6 * draws  # a train and a test PM per fold and draw
    for pm, seen in ranked:
        assert not pm & seen  # never ranks a prompt it was fitted on
    for f in range(0, len(fitted), 2):
        assert not fitted[f] & fitted[f + 1]  # a fold's train and test PMs come from different prompts
    assert b.n == [1, 2, 4] and np.shape(b.gold) == (draws, 3, 12) and b.fold_pairs == [[8, 8, 8]] * draws
    assert np.asarray(b.gold)[:, 0] == pytest.approx(0.5)  # n = 1: the mean of a prompt's replies
    assert np.asarray(b.gold)[:, -1] == pytest.approx(1.0)  # best-of-4 by '!' picks reply 3, which follows it
    assert b.pick_cut_off[0][-1] == pytest.approx(1.0) and b.pick_cut_off[0][0] == pytest.approx(0.25)
    assert b.gold_shorter[-1] == pytest.approx([0.0] * 12)  # the fewest tokens: reply 0
    assert b.gold_oracle[-1] == pytest.approx([1.0] * 12) and b.gold_finished == pytest.approx([1 / 3] * 12)
    assert np.asarray(b.train_pm)[0, 0] == pytest.approx(0.0)  # centred per prompt
    assert sorted(set(b.validation["prompt"])) == list(range(12)) and len(b.validation["train"]) == draws
    assert not all(b.validation["finished"])  # pairs with reply 3, which was cut off, are marked


def test_best_of_n_reward_of_a_normal_score_is_near_linear_in_sqrt_kl_whatever_it_learned():
    """Why 01's H4 needs an RL trajectory: best-of-n's own reward against sqrt(KL) is the order statistics of the
    score, near-linear for a normal one (the curvature the premise quotes)."""
    from rlhf_nb.evidence.claims import curvature

    scores = np.random.default_rng(0).normal(size=(4000, 16))
    ns = [1, 2, 4, 8, 16]
    c = bestofn.curve("normal", scores, scores, ns)
    assert abs(curvature(c.sqrt_kl, c.proxy.mean(1))) < 0.05


# --- the crossing k of two pass@k curves (issue 42's measure) ---------------------------------------


def test_pass_at_k_curves_are_the_unbiased_estimator_per_task():
    from rlhf_nb.evidence import crossing

    c = crossing.curves([[0, 2, 4]], n=4)
    assert c.shape == (1, 3, 4)
    assert list(c[0, 0]) == [0.0] * 4 and list(c[0, 2]) == [1.0] * 4
    assert c[0, 1].tolist() == pytest.approx([0.5, 5 / 6, 1.0, 1.0])  # 2 of 4: 1 - C(2, k) / C(4, k)
    with pytest.raises(ValueError, match="passing counts"):
        crossing.curves([5], n=4)


def test_crossing_k_is_interpolated_in_log_k_and_flags_no_lead_and_no_crossing():
    from rlhf_nb.evidence import crossing

    assert crossing.crossing_k([0.6, 0.7, 0.75, 0.8], [0.4, 0.6, 0.75, 0.9]) == pytest.approx(3.0)
    k = crossing.crossing_k([0.6, 0.7], [0.5, 0.8])  # lead +0.1 at k = 1, -0.1 at k = 2: halfway in log k
    assert k == pytest.approx(2 ** 0.5)
    assert math.isinf(crossing.crossing_k([0.6, 0.8], [0.5, 0.7]))
    assert math.isnan(crossing.crossing_k([0.5, 0.8], [0.5, 0.7]))


def test_crossing_of_a_sharpened_arm_and_its_start_from_counts():
    """Tasks the start solves sometimes: the tuned arm solves the easy ones always and the hard ones never (RL that
    sharpens without widening): it leads at k = 1, the start overtakes it at some k and the interval holds it."""
    from rlhf_nb.evidence import crossing

    n, rng = 16, np.random.default_rng(0)
    p = rng.uniform(0.05, 0.6, 120)
    start = rng.binomial(n, p)[None, :]
    tuned = np.stack([np.where(p > 0.25, rng.binomial(n, np.minimum(1, p + 0.35)), 0) for _ in range(3)])
    out = crossing.crossing(tuned, start, n, n_boot=400)
    assert out.lead[0] > 0 > out.lead[-1] and 1 < out.k < n
    assert out.ci[0] <= out.k <= out.ci[1] and out.no_crossing < 0.05 and out.tasks == 120
    assert "crossing at k =" in out.describe()
    same = crossing.crossing(start, start, n, n_boot=200)  # no lead at all
    assert math.isnan(same.k) and "does not lead" in same.describe()
    ahead = crossing.crossing(np.full((2, 120), n), start, n, n_boot=200)  # always right: never overtaken
    assert math.isinf(ahead.k) and ahead.no_crossing > 0.9 and "> 16" in ahead.describe()
