"""What the judge's validation says, as pure functions over the judged pairs a run saved: read by the steps (whether
the degradations go through the judge filter) and by the claims (R1c's premise) alike, so the two cannot disagree."""

from __future__ import annotations

from typing import Any

from rlhf_nb.evidence import claims as C


def judge_agreement(judged: list[dict[str, Any]]) -> list[float]:
    """Per judged pair whose gold scores differ: 1 if the judge prefers the gold-better answer, 0 if not, 0.5 on a
    tie (the judge's validation, both orders averaged)."""
    better = [r["p_a"] if r["gold_a"] > r["gold_b"] else 1 - r["p_a"] for r in judged if r["gold_a"] != r["gold_b"]]
    return C.preference_outcomes(better).tolist()


def judge_premise(outcomes: list[float]) -> C.Premise:
    """The judge beats chance on pairs whose gold differs (``outcomes`` from :func:`judge_agreement`)."""
    return C.validated_on("judge (agreement with the gold)", outcomes)
