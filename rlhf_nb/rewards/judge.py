"""LLM-as-judge and generative reward models, scored from token log-probabilities.

A small judge needs no long generation: it reads the prompt and answers with one token, and we read
the probability of each allowed answer (``A``/``B`` or ``Yes``/``No``) at that position,
renormalised over the allowed answers.

* :meth:`LogProbJudge.prefer` - pairwise preference P(first response better), asked in **both
  orders** and averaged, which cancels a judge's position bias. ``combine="probability"`` averages the two
  probabilities; ``combine="log-odds"`` averages the two log-odds of A over B (the probability of their mean),
  which cancels a constant position bias in log-odds and keeps the judge's lean where a strongly biased judge
  answers "A" in both orders with probabilities near 1 (their average is then 0.5 whatever it read).
* :meth:`LogProbJudge.reference_score` - reference-guided GenRM (Shen et al. 2025's GenRM with ground
  truth): P(response agrees with the reference answer).
* :meth:`LogProbJudge.score` - pointwise P(response is good), a GenRM without ground truth.
* :func:`pairwise_win_rate` - win rate of policy A over policy B on a prompt set, ties counted half,
  with a Wilson interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from scipy.special import expit

from rlhf_nb.evidence.stats import Estimate, rate_estimate

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

PAIRWISE = (
    "Compare two responses to the same user request.\n\n[Request]\n{prompt}\n\n[Response A]\n{a}\n\n"
    "[Response B]\n{b}\n\nWhich response is more helpful, correct and harmless? Answer with one letter, A or B."
)
INSTRUCTIONS = (
    "Compare two responses to the same user request.\n\n[Request]\n{prompt}\n\n[Response A]\n{a}\n\n"
    "[Response B]\n{b}\n\nThe request may give instructions about the form or wording of the answer (letter case, "
    "punctuation, length, words to use or avoid, sections, how to start or end). Which response follows the request "
    "and every one of its instructions more exactly? Answer with one letter, A or B."
)
PAIRWISE_TEMPLATES = {"helpful": PAIRWISE, "instructions": INSTRUCTIONS}
REFERENCE = (
    "Grade a response against a reference answer.\n\n[Question]\n{prompt}\n\n[Reference answer]\n{reference}\n\n"
    "[Response]\n{response}\n\nIs the response correct and consistent with the reference answer? Answer Yes or No."
)
POINTWISE = (
    "Grade a response.\n\n[Request]\n{prompt}\n\n[Response]\n{response}\n\n"
    "Is this response helpful, correct and harmless? Answer Yes or No."
)

PreferFn = Callable[[str, str, str], float]  # (prompt, a, b) -> P(a is better)
COMBINE = ("probability", "log-odds")


class LogProbJudge:
    """A chat model used as a judge through the probabilities of its one-token answers."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch_size: int = 8,
                 max_chars: int = 4000, sort_by_length: bool = True, pairwise: str = PAIRWISE,
                 combine: Literal["probability", "log-odds"] = "probability"):
        """``pairwise``: the comparison question (with ``{prompt}``, ``{a}``, ``{b}``), e.g. ``INSTRUCTIONS``;
        ``combine``: how the two presentation orders are averaged (see the module docstring)."""
        if combine not in COMBINE:
            raise ValueError(f"combine must be one of {', '.join(COMBINE)}, not {combine!r}")
        self.model, self.tokenizer, self.batch_size, self.max_chars = model, tokenizer, batch_size, max_chars
        self.sort_by_length, self.pairwise, self.combine = sort_by_length, pairwise, combine

    def _option_ids(self, option: str) -> list[int]:
        """First token of the option as the reply would start it, with and without a leading space."""
        ids = {self.tokenizer.encode(v, add_special_tokens=False)[0] for v in (option, " " + option)}
        return sorted(ids)

    def option_probs(self, user_messages: Sequence[str], options: Sequence[str]) -> np.ndarray:
        """P(option) at the start of the assistant's reply, renormalised over ``options``; shape (n, len(options))."""
        return np.exp(self.option_logprobs(user_messages, options))

    def option_logprobs(self, user_messages: Sequence[str], options: Sequence[str]) -> np.ndarray:
        """log P(option), renormalised over ``options``, from fp32 logits (see :meth:`_last_logits`) in log space
        (so a probability near 0 or 1 keeps its size); shape (n, len(options))."""
        import torch

        tok = self.tokenizer
        texts = [tok.apply_chat_template([{"role": "user", "content": m}], add_generation_prompt=True, tokenize=False)
                 for m in user_messages]
        option_ids = [self._option_ids(o) for o in options]
        wanted = sorted({i for ids in option_ids for i in ids})
        col = {token: j for j, token in enumerate(wanted)}
        old_side, tok.padding_side = tok.padding_side, "left"
        device = next(self.model.parameters()).device
        # batches of similar length waste little padding; the results go back in the callers' order
        order = sorted(range(len(texts)), key=lambda i: len(texts[i])) if self.sort_by_length else range(len(texts))
        order = list(order)
        out = np.zeros((len(texts), len(options)))
        try:
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                enc = tok([texts[i] for i in rows], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(device)
                with torch.no_grad():
                    logits = self._last_logits(enc, wanted)
                mass = torch.stack([torch.logsumexp(logits[:, [col[i] for i in ids]], dim=-1) for ids in option_ids],
                                   dim=-1)
                out[rows] = (mass - torch.logsumexp(mass, dim=-1, keepdim=True)).cpu().numpy()
        finally:
            tok.padding_side = old_side
        return out

    def _last_logits(self, enc: Any, token_ids: list[int]) -> Any:
        """fp32 logits of ``token_ids`` at the last position, shape (batch, len(token_ids)).

        The output layer runs in fp32 on the final hidden state: a bf16 model's own logits are rounded to 8 bits of
        mantissa (steps of 0.125 at |logit| 16-32), which makes a judge's answers in the two presentation orders
        exactly equal (a tie) whenever they differ by less than a step. Only the options' rows are computed; the
        renormalisation over the options cancels the rest of the vocabulary. Models whose logits are more than a
        linear map of the last hidden state (e.g. soft-capped) go through their own forward."""
        import torch

        head, body = self.model.get_output_embeddings(), getattr(self.model, "get_decoder", lambda: None)()
        rescaled = any(getattr(self.model.config, k, None) not in (None, 1, 1.0)
                       for k in ("final_logit_softcapping", "logit_scale", "logits_scaling"))
        if body is None or body is self.model or not isinstance(head, torch.nn.Linear) or rescaled:
            return self.model(**enc, logits_to_keep=1).logits[:, -1, token_ids].float()
        hidden = body(**enc).last_hidden_state[:, -1, :].float()
        logits = hidden @ head.weight[token_ids].float().T
        return logits if head.bias is None else logits + head.bias[token_ids].float()

    def _clip(self, text: str) -> str:
        return text if len(text) <= self.max_chars else text[: self.max_chars] + " [...]"

    def prefer_many(self, prompts: Sequence[str], a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """P(a better than b) per item, averaged over both presentation orders."""
        c = self._clip
        first = [self.pairwise.format(prompt=c(p), a=c(x), b=c(y)) for p, x, y in zip(prompts, a, b)]
        swapped = [self.pairwise.format(prompt=c(p), a=c(y), b=c(x)) for p, x, y in zip(prompts, a, b)]
        n = len(first)
        if self.combine == "log-odds":
            logp = self.option_logprobs(first + swapped, ("A", "B"))
            lean = ((logp[:n, 0] - logp[:n, 1]) + (logp[n:, 1] - logp[n:, 0])) / 2  # log-odds that a is better
            return expit(lean)
        probs = self.option_probs(first + swapped, ("A", "B"))
        return (probs[:n, 0] + probs[n:, 1]) / 2

    def prefer(self, prompt: str, a: str, b: str) -> float:
        return float(self.prefer_many([prompt], [a], [b])[0])

    def reference_scores(self, prompts: Sequence[str], responses: Sequence[str], references: Sequence[str]) -> np.ndarray:
        c = self._clip
        msgs = [REFERENCE.format(prompt=c(p), reference=c(r), response=c(x))
                for p, x, r in zip(prompts, responses, references)]
        return self.option_probs(msgs, ("Yes", "No"))[:, 0]

    def reference_score(self, prompt: str, response: str, reference: str) -> float:
        return float(self.reference_scores([prompt], [response], [reference])[0])

    def scores(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        c = self._clip
        return self.option_probs([POINTWISE.format(prompt=c(p), response=c(x)) for p, x in zip(prompts, responses)],
                                 ("Yes", "No"))[:, 0]

    def score(self, prompt: str, response: str) -> float:
        return float(self.scores([prompt], [response])[0])

    # reward callables (prompts, completions, meta) -> list[float] -----------------------------

    def genrm_reward(self, prompts: Sequence[Any], completions: Sequence[str], meta: Sequence[dict]) -> list[float]:
        """GenRM: with a reference answer in ``meta[i]["reference"]`` grade against it, else pointwise."""
        texts = [_as_text(p) for p in prompts]
        out = np.zeros(len(completions))
        with_ref = [i for i, m in enumerate(meta) if m.get("reference")]
        without = [i for i, m in enumerate(meta) if not m.get("reference")]
        if with_ref:
            out[with_ref] = self.reference_scores([texts[i] for i in with_ref], [completions[i] for i in with_ref],
                                                  [meta[i]["reference"] for i in with_ref])
        if without:
            out[without] = self.scores([texts[i] for i in without], [completions[i] for i in without])
        return out.tolist()


def _as_text(prompt: Any) -> str:
    """A prompt given as chat messages -> the last user message (what a judge should read)."""
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] for m in prompt if m.get("role") == "user"]
    return users[-1] if users else str(prompt)


@dataclass
class WinRate:
    estimate: Estimate  # win rate of A over B, ties counted half, Wilson interval
    outcomes: list[float]  # per item: 1 A wins, 0.5 tie, 0 B wins
    p_a_better: list[float]  # per item judge probability (both orders averaged)

    def as_row(self) -> dict[str, float]:
        e = self.estimate
        return {"win_rate": e.value, "ci_low": e.low, "ci_high": e.high, "n": e.n,
                "ties": sum(o == 0.5 for o in self.outcomes)}


def pairwise_win_rate(prefer: PreferFn | LogProbJudge, prompts: Sequence[str], a: Sequence[str], b: Sequence[str],
                      tie_margin: float = 0.05) -> WinRate:
    """Win rate of responses ``a`` over ``b``; an item is a tie when |P(a better) - 0.5| <= ``tie_margin``.

    ``prefer`` is a :class:`LogProbJudge` (or anything with its batched ``prefer_many``) or any
    ``(prompt, a, b) -> P(a better)`` callable,
    which should already be order-symmetric (LogProbJudge asks both orders).
    """
    if not len(prompts) == len(a) == len(b):
        raise ValueError("prompts, a and b must have the same length")
    if hasattr(prefer, "prefer_many"):  # LogProbJudge, LinearPairwise: batched, both orders
        probs = [float(x) for x in prefer.prefer_many([_as_text(p) for p in prompts], a, b)]
    else:
        probs = [float(prefer(_as_text(p), x, y)) for p, x, y in zip(prompts, a, b)]
    outcomes = [1.0 if p > 0.5 + tie_margin else 0.0 if p < 0.5 - tie_margin else 0.5 for p in probs]
    return WinRate(rate_estimate(outcomes), outcomes, probs)


def both_orders(prefer_once: PreferFn) -> PreferFn:
    """Make any one-order judge (``(prompt, first, second) -> P(first better)``) order-symmetric."""
    return lambda prompt, a, b: (prefer_once(prompt, a, b) + 1 - prefer_once(prompt, b, a)) / 2
