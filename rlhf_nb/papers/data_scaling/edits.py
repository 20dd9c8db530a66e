"""Close pairs built on purpose for ``notebooks/03_data_scaling_rlhf.ipynb`` (Shen et al. 2025, Figs. 10-11).

Sampled responses to one prompt are rarely close: five answers of a small model differ in wording, length and method.
To ask whether a reward separates *fine-grained* differences, take a response the checker marks right and change the
least that makes the checker mark it wrong:

* **math**: one number of the response (from the last one back, the first whose change flips the final-answer
  checker; the number goes up by one), so the worked steps stay and the stated answer no longer follows from them or
  no longer matches the reference;
* **code**: one token of the defining function's body (a comparison, an arithmetic or boolean operator, a boolean or
  ``min``/``max``, or an integer literal plus one), at seeded random sites, kept only when the task's tests (base and
  HumanEval+'s, in the sandbox) then fail.

The pair (right, broken) differs in one token and in the gold. These functions only propose; the caller verifies code
mutants in the sandbox (:func:`rlhf_nb.rewards.code.evaluate_samples`).
"""

from __future__ import annotations

import io
import random
import re
import tokenize
from dataclasses import dataclass

from rlhf_nb.rewards.code import defining_block
from rlhf_nb.rewards.math import is_correct

_SWAPS = {
    "<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "==", "+": "-", "-": "+", "*": "+", "//": "/",
    "+=": "-=", "-=": "+=", "and": "or", "or": "and", "True": "False", "False": "True", "min": "max", "max": "min",
}


@dataclass(frozen=True)
class Edit:
    """A response with one token changed: the new text and what changed (``"old -> new"``)."""

    text: str
    change: str


def break_math(response: str, answer: str) -> Edit | None:
    """``response`` with one number raised by one so that the checker no longer accepts it against ``answer``; None
    when the response is not right to begin with or no single number flips it."""
    if not is_correct(response, answer):
        return None
    for m in reversed(list(re.finditer(r"\d+", response))):
        new = str(int(m.group(0)) + 1)
        text = response[: m.start()] + new + response[m.end():]
        if not is_correct(text, answer):
            return Edit(text, f"{m.group(0)} -> {new}")
    return None


def _body(tokens: list[tokenize.TokenInfo], entry_point: str) -> list[tokenize.TokenInfo]:
    """The tokens of ``entry_point``'s body: after its ``def`` line, up to the dedent that closes it (or, for a
    one-line ``def f(x): return x``, the rest of that line). Code after the function (example calls, asserts) is not
    the function: a mutant there could fail the tests with the function still right."""
    at = next((i for i, t in enumerate(tokens) if t.string == entry_point and i and tokens[i - 1].string == "def"),
              None)
    if at is None:
        return []
    end = next((i for i in range(at, len(tokens)) if tokens[i].type == tokenize.NEWLINE), len(tokens))
    start = end + 1
    while start < len(tokens) and tokens[start].type in (tokenize.NL, tokenize.COMMENT):  # comments before the body
        start += 1
    if start >= len(tokens) or tokens[start].type != tokenize.INDENT:  # one line: the tokens after the colon
        depth, colon = 0, end
        for i in range(at, end):  # the colon that ends the signature, outside brackets (after any "-> T")
            depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(tokens[i].string, 0)
            if tokens[i].string == ":" and depth == 0:
                colon = i
                break
        return tokens[colon + 1 : end]
    depth, out = 0, []
    for t in tokens[start:]:
        depth += {tokenize.INDENT: 1, tokenize.DEDENT: -1}.get(t.type, 0)
        if depth == 0:
            break
        out.append(t)
    return out


def code_mutants(response: str, entry_point: str, rng: random.Random, limit: int) -> list[Edit]:
    """Up to ``limit`` one-token mutants of the function ``entry_point`` as the reply defines it (the fenced block the
    program is taken from), at seeded random sites; [] when the reply has no such block or it does not tokenise."""
    block = defining_block(response, entry_point)
    if block is None:
        return []
    code, base = block.group(1), block.start(1)
    starts = [0]
    for line in io.StringIO(code).readlines():  # the lines as tokenize numbers them (it splits on newlines only)
        starts.append(starts[-1] + len(line))
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return []
    sites = []
    for t in _body(tokens, entry_point):
        if t.type in (tokenize.OP, tokenize.NAME) and t.string in _SWAPS:
            new = _SWAPS[t.string]
        elif t.type == tokenize.NUMBER and t.string.isdigit():
            new = str(int(t.string) + 1)
        else:
            continue
        sites.append((starts[t.start[0] - 1] + t.start[1], len(t.string), t.string, new))
    rng.shuffle(sites)
    out = []
    for at, length, old, new in sites[:limit]:
        i = base + at
        out.append(Edit(response[:i] + new + response[i + length:], f"{old} -> {new}"))
    return out
