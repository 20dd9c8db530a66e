"""The gold is a function of the reply: IFEval's language checkers call langdetect, which samples, so an unseeded
detector can score one reply differently from call to call (and between a run and its resume)."""

from __future__ import annotations

from rlhf_nb.tasks import gold


def test_a_reply_whose_language_is_ambiguous_gets_one_gold_score():
    prompt = gold.IFPrompt("x", "Answer in French.", "Answer.", ("language:response_language",), ({"language": "fr"},))
    # an ambiguous reply: unseeded, langdetect calls it 'fr' or 'es' from call to call
    scores = {gold.if_score(prompt, "qu qu das ta la") for _ in range(20)}
    assert len(scores) == 1
