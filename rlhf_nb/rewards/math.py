"""Math verifier for GSM8K-style answers: extract the final answer, normalise it, compare exactly.

Extraction order: the text after ``####`` (GSM8K's own format), the last ``\\boxed{...}``, an
"answer is X" phrase, and finally the last number in the text. Normalisation removes thousands
separators, currency and unit words, percent signs and trailing punctuation, and reads integers,
decimals, fractions (``3/4``, ``\\frac{3}{4}``) and mixed numbers (``1 1/2``) as exact rationals.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+"
_LAST_NUMBER = r"-?\d+\s+\d+\s*/\s*\d+|-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d[\d,]*(?:\.\d+)?)?|-?\.\d+"
_ANSWER_PATTERNS = (
    re.compile(r"####\s*([^\n]+)"),
    re.compile(r"answer\s*(?:is|:|=)\s*\$?\s*([^\n]+)", re.IGNORECASE),
)


def _boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (nested braces allowed)."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 1, start + len("\\boxed{")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


def extract_answer(text: str) -> str | None:
    """The final answer as written in a solution or a model's reply (None when there is no number)."""
    hashes = _ANSWER_PATTERNS[0].findall(text)
    if hashes:
        return hashes[-1].strip()
    boxed = _boxed(text)
    if boxed is not None:
        return boxed.strip()
    phrases = _ANSWER_PATTERNS[1].findall(text)
    if phrases and re.search(_NUMBER, phrases[-1]):
        return phrases[-1].strip()
    numbers = re.findall(_LAST_NUMBER, text)
    return numbers[-1] if numbers else None


def to_number(answer: str | None) -> Fraction | None:
    """An answer string as an exact rational, or None if it holds no readable number."""
    if answer is None:
        return None
    s = answer.strip()
    s = re.sub(r"\\(?:d|t)?frac\{([^{}]+)\}\{([^{}]+)\}", r"\1/\2", s)  # \frac{a}{b} -> a/b
    s = re.sub(r"\\text\{[^{}]*\}|\\[a-zA-Z]+|[{}$€£¥]", " ", s)
    s = s.replace("−", "-").rstrip(".").strip()
    mixed = re.fullmatch(r"(-?\d+)\s+(\d+)\s*/\s*(\d+)", s)
    if mixed:
        whole, num, den = (int(g) for g in mixed.groups())
        return Fraction(whole) + (Fraction(num, den) if whole >= 0 else -Fraction(num, den)) if den else None
    frac = re.search(r"(-?[\d,]*\.?\d+)\s*/\s*([\d,]*\.?\d+)", s)
    if frac:
        num, den = (_decimal(g) for g in frac.groups())
        return num / den if num is not None and den not in (None, 0) else None
    match = re.search(_NUMBER, s)
    if not match:
        return None
    value = _decimal(match.group(0))
    if value is not None and "%" in s[match.end():match.end() + 2]:
        value /= 100
    return value


def _decimal(text: str) -> Fraction | None:
    try:
        return Fraction(Decimal(text.replace(",", "")))
    except (InvalidOperation, ValueError):
        return None


def math_prompt(question: str) -> list[dict[str, str]]:
    """The chat request every notebook uses for a GSM8K-style problem (answer on a ``####`` line)."""
    return [{"role": "user", "content": f"{question}\nSolve it step by step, then give the final answer "
             "on the last line as '#### <number>'."}]


def clean_solution(solution: str) -> str:
    """A GSM8K reference solution without its calculator annotations (``<<48/2=24>>``)."""
    return re.sub(r"<<[^>]*>>", "", solution).strip()


def is_correct(response: str, reference: str, percent_as_fraction: bool = False) -> bool:
    """Does the response's final answer equal the reference answer (exactly, as rationals)?

    ``reference`` may be a bare answer (``"18"``) or a whole GSM8K solution ending in ``#### 18``.
    A percentage is read as its number (``50%`` == ``50``) unless ``percent_as_fraction``.
    """
    want = to_number(extract_answer(reference) if "####" in reference else reference)
    got_text = extract_answer(response)
    got = to_number(got_text)
    if want is None or got is None:
        return False
    if got == want:
        return True
    if not percent_as_fraction and got_text and "%" in got_text:
        return got * 100 == want
    return False


def math_reward(prompts: list, completions: list[str], meta: list[dict]) -> list[float]:
    """Reward callable: 1.0 when the completion's final answer matches ``meta[i]["answer"]``, else 0.0."""
    return [float(is_correct(c, m["answer"])) for c, m in zip(completions, meta)]
