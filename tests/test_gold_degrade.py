"""The programmatic sentence degrader (gold.break_sentence): one sentence rewritten so that one instruction breaks,
verified by the gold, every other character unchanged."""

from __future__ import annotations

import re

import pytest

from rlhf_nb.tasks import gold


def _prompt(instruction: str, **kwargs) -> gold.IFPrompt:
    return gold.IFPrompt("t", "Say something.", "Say something.", (instruction,), (kwargs,))


def _spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(r"[^.!?\n]+[.!?]?", text) if m.group().strip()]


@pytest.mark.parametrize("instruction, kwargs, reply", [
    ("change_case:english_lowercase", {}, "this is fine. it has two sentences."),
    ("change_case:english_capital", {}, "THIS IS FINE. IT HAS TWO SENTENCES."),
    ("punctuation:no_comma", {}, "This is fine. It has two sentences."),
    ("keywords:forbidden_words", {"forbidden_words": ["really", "very"]}, "This is fine. It has two sentences."),
    ("keywords:existence", {"keywords": ["simple", "idea"]}, "A simple reply. One idea in it."),
    ("detectable_format:title", {}, "<<Answer>> This is fine. It has two sentences."),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, "This is fine. Any other questions?"),
    ("length_constraints:number_words", {"relation": "less than", "num_words": 30},
     "This is a short reply. It stays well under the limit."),
    ("detectable_content:number_placeholders", {"num_placeholders": 1}, "Write to [name] today. That is all."),
])
def test_one_sentence_rewritten_breaks_its_instruction_and_nothing_else_changes(instruction, kwargs, reply):
    prompt = _prompt(instruction, **kwargs)
    assert gold.followed(prompt, reply) == [True]
    found = [b for span in _spans(reply) if (b := gold.break_sentence(prompt, reply, span, 0)) is not None]
    assert found, "no sentence could be broken"
    for b in found:
        start, end = b.span
        assert b.text[:start] == reply[:start] and b.text.endswith(reply[end:])
        assert gold.followed(prompt, b.text) == [False] and b.gold_after < b.gold_before == 1.0


def test_nothing_is_returned_where_the_instruction_was_not_followed_or_cannot_break_in_one_sentence():
    lower = _prompt("change_case:english_lowercase")
    assert gold.break_sentence(lower, "Not lowercase. At all.", (0, 14), 0) is None  # already failing
    bullets = _prompt("detectable_format:number_bullet_lists", num_bullets=2)
    reply = "* One point.\n* Two points."
    assert gold.followed(bullets, reply) == [True]
    assert all(gold.break_sentence(bullets, reply, span, 0) is None for span in _spans(reply))
    ender = _prompt("startend:end_checker", end_phrase="Any other questions?")
    assert gold.break_sentence(ender, "This is fine. Any other questions?", (0, 13), 0) is None  # not the last
    with pytest.raises(ValueError, match="span"):
        gold.break_sentence(lower, "short.", (3, 99), 0)


def test_a_two_instruction_prompt_loses_exactly_the_broken_one():
    prompt = gold.IFPrompt("t", "x", "x", ("punctuation:no_comma", "change_case:english_lowercase"), ({}, {}))
    reply = "this is fine. it has two sentences."
    broken = gold.break_sentence(prompt, reply, (14, len(reply)), 0)
    assert broken is not None and gold.followed(prompt, broken.text) == [False, True]
    assert (broken.gold_before, broken.gold_after) == (1.0, 0.5)
