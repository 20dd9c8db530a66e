"""Best-of-n as a measuring instrument for optimisation against a reward, from cached samples (Gao et al. 2022).

Sample m replies per prompt once, with a frozen policy; score them with any number of rewards (proxies) and the gold.
The best-of-n policy of a reward picks, among n replies drawn from the m, the one that reward scores highest. For
each prompt this module computes, without bias and without drawing, the expectation over *all* size-n subsets of the
m replies of what the pick scores, for every n <= m: sort the replies by the reward; the i-th smallest (0-based) is
the pick of a subset exactly when it is in the subset and the other n - 1 members are among the i below it, which
happens for C(i, n - 1) of the C(m, n) subsets. Replies the reward ties are picked uniformly among the tied, so their
values are averaged first.

The KL divergence of the best-of-n policy from the sampling policy is known exactly: log n - (n - 1) / n. So the same
cached samples give, for every reward and every n, the proxy reward and the gold of the pick against sqrt(KL): the
overoptimisation curves of Gao et al.'s Fig. 1, at no further sampling cost.

:func:`hacking_gap` measures how far a reward's pick falls below the best pick the gold itself would make (the gold
of the pick of the gold as the reward), per prompt and n: 0 for a reward that orders replies as the gold does, growing
with n for a reward that can be gamed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


def kl(n: int) -> float:
    """KL(best-of-n || sampling policy) in nats: log n - (n - 1) / n."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return math.log(n) - (n - 1) / n


def pick_weights(m: int, n: int) -> np.ndarray:
    """P(the i-th smallest of m replies is the best of a uniformly drawn size-n subset), i = 0 .. m - 1."""
    if not 1 <= n <= m:
        raise ValueError(f"best-of-{n} needs 1 <= n <= m = {m} cached replies per prompt")
    i = np.arange(m)
    return np.array([math.comb(int(k), n - 1) for k in i], dtype=float) / math.comb(m, n)


def _tie_averaged(order_key: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` sorted by ``order_key`` ascending, each run of equal keys replaced by its mean."""
    order = np.argsort(order_key, kind="stable")
    keys, vals = order_key[order], values[order].astype(float)
    out = vals.copy()
    start = 0
    for end in range(1, len(keys) + 1):
        if end == len(keys) or keys[end] != keys[start]:
            out[start:end] = vals[start:end].mean()
            start = end
    return out


def expected_pick(reward: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Per prompt, the expected ``values`` of the reply best-of-n by ``reward`` picks, over all size-n subsets of its m
    cached replies. ``reward`` and ``values`` are (prompts, m)."""
    R, V = np.asarray(reward, dtype=float), np.asarray(values, dtype=float)
    if R.shape != V.shape or R.ndim != 2:
        raise ValueError(f"reward and values must both be (prompts, m), got {R.shape} and {V.shape}")
    if np.isnan(R).any():
        raise ValueError("a reward is missing (NaN): score every cached reply")
    w = pick_weights(R.shape[1], n)
    return np.array([float(w @ _tie_averaged(r, v)) for r, v in zip(R, V)])


@dataclass(frozen=True)
class Curve:
    """One reward's best-of-n curve: per n, the proxy reward and the gold of its pick, per prompt."""

    reward: str
    n: list[int]
    kl: list[float]
    proxy: np.ndarray  # (levels, prompts): the reward's own score of its pick
    gold: np.ndarray  # (levels, prompts): the gold of its pick

    @property
    def sqrt_kl(self) -> np.ndarray:
        return np.sqrt(np.asarray(self.kl))

    def to_dict(self) -> dict[str, object]:
        return {"reward": self.reward, "n": self.n, "kl": self.kl, "proxy": self.proxy.tolist(),
                "gold": self.gold.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Curve:
        return cls(str(data["reward"]), list(data["n"]), list(data["kl"]), np.asarray(data["proxy"], dtype=float),
                   np.asarray(data["gold"], dtype=float))


def curve(name: str, reward: np.ndarray, gold: np.ndarray, ns: Sequence[int]) -> Curve:
    """The best-of-n curve of one reward over ``ns`` from cached (prompts, m) scores."""
    ns = sorted(set(int(n) for n in ns))
    return Curve(name, ns, [kl(n) for n in ns], np.stack([expected_pick(reward, reward, n) for n in ns]),
                 np.stack([expected_pick(reward, gold, n) for n in ns]))


def curves(rewards: Mapping[str, np.ndarray], gold: np.ndarray, ns: Sequence[int]) -> dict[str, Curve]:
    """Every reward's curve, and the gold's own (``"gold"``: the best pick any reward could make)."""
    out = {name: curve(name, r, gold, ns) for name, r in rewards.items()}
    out["gold"] = curve("gold", gold, gold, ns)
    return out


def hacking_gap(of: Curve, oracle: Curve) -> np.ndarray:
    """(levels, prompts): how far the gold of ``of``'s pick falls below the gold of the gold's own pick, per n."""
    if of.n != oracle.n:
        raise ValueError("the two curves must cover the same n")
    return oracle.gold - of.gold
