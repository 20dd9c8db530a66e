"""How often each verdict is wrong, by simulation: the claim rule on data sets whose true effect is known.

A trained arm is evaluated on items after each of several training seeds; the seeds differ by a shift common to
all items (how that training run went, spread ``tau``), and every (seed, item) score has noise ``sigma`` around
the item's own level. Under a null effect, "reproduced" should come up in at most 5% of data sets; with the true
effect at the paper's minimum effect, "not reproduced" should come up in at most 2.5% of them (the top of a 95%
interval is below the truth that often). Side by side, for the same data sets:

* ``items only``: the rule as it read before ``claims.crossed_se``: the sign-flip p over items on the seed means
  and the crossed bootstrap's interval;
* ``rlhf-nb``: :func:`rlhf_nb.claims.superiority` as it is now (with several seeds, the t test on the crossed
  standard error too).

    python benchmarks/verdict_calibration.py [--reps 200] [--items 100] [--seeds 3] [--baseline-seeds 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rlhf_nb import claims
from rlhf_nb.claims import wilson


def data(rng: np.random.Generator, items: int, seeds: int, baseline_seeds: int, effect: float, tau: float,
         sigma: float) -> tuple[np.ndarray, np.ndarray]:
    level = rng.normal(0, 1, items)  # item difficulty, shared by the arms (paired)
    run = rng.normal(0, tau, (baseline_seeds, 1)) * (baseline_seeds > 1)  # an untrained baseline has no run effect
    a = level + run + rng.normal(0, sigma, (baseline_seeds, items))
    b = level + effect + rng.normal(0, tau, (seeds, 1)) + rng.normal(0, sigma, (seeds, items))
    return a, b


def verdicts(a: np.ndarray, b: np.ndarray, min_effect: float, seed: int) -> dict[str, tuple[bool, bool]]:
    """(reproduced, not reproduced) under the old and the current rule, on one data set."""
    test = claims.superiority(a, b, seed=seed)
    d = b.mean(0) - a.mean(0)
    lo, hi = claims._interval(claims.crossed_bootstrap([a, b], lambda x: float(x[1].mean() - x[0].mean()), seed=seed))
    old_p = claims.sign_flip_p(d, seed=seed)
    return {"items only": (old_p < claims.ALPHA and lo > 0, hi < min_effect),
            "rlhf-nb": (test.p < claims.ALPHA and test.ci[0] > 0, test.ci[1] < min_effect)}


def rate(hits: int, n: int) -> str:
    lo, hi = wilson(hits, n)
    return f"{100 * hits / n:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200, help="data sets per row")
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3, help="training seeds of the trained arm")
    parser.add_argument("--baseline-seeds", type=int, default=1, help="1: an untrained baseline; >1: a trained one")
    parser.add_argument("--sigma", type=float, default=0.5, help="noise of one (seed, item) score")
    parser.add_argument("--taus", default="0,0.1,0.2,0.4", help="seed-to-seed spreads (comma-separated)")
    parser.add_argument("--min-effect", type=float, default=0.15)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{args.items} items, {args.seeds} seeds vs {args.baseline_seeds}, item noise {args.sigma}, "
          f"min effect {args.min_effect}, {args.reps} data sets per row\n")
    print("| seed spread tau | rule | null effect: 'reproduced' (should be <= 5%) | effect = min effect: "
          "'not reproduced' (should be <= 2.5%) | effect = min effect: 'reproduced' (power) | s |")
    print("|---|---|---|---|---|---|")
    for tau in [float(t) for t in args.taus.split(",")]:
        started = time.perf_counter()
        counts = {rule: [0, 0, 0] for rule in ("items only", "rlhf-nb")}
        for r in range(args.reps):
            null = verdicts(*data(rng, args.items, args.seeds, args.baseline_seeds, 0.0, tau, args.sigma),
                            args.min_effect, r)
            real = verdicts(*data(rng, args.items, args.seeds, args.baseline_seeds, args.min_effect, tau, args.sigma),
                            args.min_effect, r)
            for rule in counts:
                counts[rule][0] += null[rule][0]
                counts[rule][1] += real[rule][1]
                counts[rule][2] += real[rule][0]
        seconds = time.perf_counter() - started
        for rule, (false_yes, false_no, power) in counts.items():
            print(f"| {tau:g} | {rule} | {rate(false_yes, args.reps)} | {rate(false_no, args.reps)} | "
                  f"{rate(power, args.reps)} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
