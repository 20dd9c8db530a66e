"""Reward models: a Bradley-Terry RM (trl ``RewardTrainer``) and a pairwise preference model.

* Bradley-Terry: a one-output sequence-classification head on the policy's backbone (load it with
  ``models.load(name, head="reward")``), trained so that r(chosen) > r(rejected).
* Bradley-Terry head on frozen features (:class:`LinearBT`): the same BT loss, but only a linear
  head is trained, on the final hidden state of a frozen backbone. Featurising is one forward pass per
  conversation and fitting takes milliseconds, so data-size sweeps and many PMs fit a CPU budget;
  weaker than fine-tuning, and labelled as such wherever it is used.
* Pairwise preference model (as RLHFlow's): a causal LM fine-tuned to answer ``A`` or ``B`` to
  "which response is better?", trained on both orders of every pair, and scored from the
  probability of that one token in both orders, averaged (:class:`rlhf_nb.rewards.judge.LogProbJudge`).

:func:`pair_accuracy` measures either on held-out pairs, with a bootstrap confidence interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import trl

from rlhf_nb.evidence.claims import preference_outcomes
from rlhf_nb.evidence.stats import Estimate, bootstrap_ci
from rlhf_nb.rewards.judge import PAIRWISE, LogProbJudge, _as_text
from rlhf_nb.tasks.data import PreferencePair
from rlhf_nb.train.common import (
    RlhfNbArgs,
    TrainResult,
    history_callback,
    model_from_settings,
    pairs_from_spec,
    prepare_model,
    run_trainer,
    script_main,
    settings_from,
)
from rlhf_nb.train.dpo import preference_dataset
from rlhf_nb.train.sft import SFTConfig, train_sft


@dataclass
class RewardConfig(RlhfNbArgs, trl.RewardConfig):
    """``trl.RewardConfig`` with rlhf-nb's defaults (``center_rewards_coefficient`` etc. as in trl)."""

    output_dir: str = "runs/train/reward"
    learning_rate: float = 1e-5
    per_device_train_batch_size: int = 8
    max_length: int | None = 1024


def train_reward_model(loaded: Any, pairs: Sequence[PreferencePair], config: RewardConfig | None = None,
                       callbacks: Sequence[Any] = ()) -> TrainResult:
    """Bradley-Terry RM: ``loaded`` must come from ``models.load(..., head="reward")`` (LoRA optional)."""
    config = config or RewardConfig()
    tokenizer, model = loaded
    prepare_model(model, config)
    history: list[dict[str, float]] = []
    trainer = trl.RewardTrainer(model=model, args=config, train_dataset=preference_dataset(pairs),
                                processing_class=tokenizer, callbacks=[history_callback(history), *callbacks])
    return run_trainer(trainer, config, history)


class BTScorer:
    """Scores conversations with a Bradley-Terry RM; also a reward callable ``(prompts, completions, meta)``."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 8, max_length: int = 1024):
        self.model, self.tokenizer, self.batch_size, self.max_length = model, tokenizer, batch_size, max_length

    def score(self, prompts: Sequence[Any], responses: Sequence[str]) -> np.ndarray:
        import torch

        tok = self.tokenizer
        texts = []
        for p, r in zip(prompts, responses):
            msgs = [{"role": "user", "content": p}] if isinstance(p, str) else list(p)
            texts.append(tok.apply_chat_template(msgs + [{"role": "assistant", "content": r}], tokenize=False))
        device = next(self.model.parameters()).device
        old_side, tok.padding_side = tok.padding_side, "right"
        out = []
        try:
            was_training = self.model.training
            self.model.eval()
            for i in range(0, len(texts), self.batch_size):
                enc = tok(texts[i : i + self.batch_size], return_tensors="pt", padding=True, truncation=True,
                          max_length=self.max_length, add_special_tokens=False).to(device)
                with torch.no_grad():
                    out.append(self.model(**enc).logits[:, 0].float().cpu().numpy())
            self.model.train(was_training)
        finally:
            tok.padding_side = old_side
        return np.concatenate(out) if out else np.zeros(0)

    def __call__(self, prompts: Sequence[Any], completions: Sequence[str], meta: Sequence[dict] | None = None) -> list[float]:
        return self.score(prompts, completions).tolist()

    def prefer_many(self, pairs: Sequence[PreferencePair]) -> np.ndarray:
        """P(chosen better) = sigmoid(r_chosen - r_rejected) per pair."""
        prompts = [p.prompt for p in pairs]
        diff = self.score(prompts, [p.chosen for p in pairs]) - self.score(prompts, [p.rejected for p in pairs])
        return 1 / (1 + np.exp(-diff))


class Featurizer:
    """Frozen-backbone features of ``prompt + response`` conversations (chat template applied).

    ``pooling="last"``: the final layer's hidden state at the last token; ``"last+mean"``: that concatenated
    with the mean over the conversation's tokens. Only the backbone runs (no vocabulary projection), texts
    are batched by length (little padding), and each text is featurised once: features are cached in
    memory by text, so several heads, data sizes and seeds on the same conversations cost one pass.
    """

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 8, max_length: int = 1024,
                 pooling: str = "last"):
        if pooling not in ("last", "last+mean"):
            raise ValueError(f"pooling must be 'last' or 'last+mean', got {pooling!r}")
        self.model, self.tokenizer, self.batch_size, self.max_length = model, tokenizer, batch_size, max_length
        self.pooling = pooling
        self.cache: dict[str, np.ndarray] = {}

    def __call__(self, prompts: Sequence[Any], responses: Sequence[str]) -> np.ndarray:
        """Features of each conversation ``prompt`` + assistant ``response``."""
        texts = []
        for p, r in zip(prompts, responses):
            msgs = [{"role": "user", "content": p}] if isinstance(p, str) else list(p)
            texts.append(self.tokenizer.apply_chat_template(msgs + [{"role": "assistant", "content": r}], tokenize=False))
        return self.texts(texts)

    def requests(self, user_messages: Sequence[str]) -> np.ndarray:
        """Features at the start of the assistant's reply to each user message (where a judge would answer)."""
        return self.texts([self.tokenizer.apply_chat_template([{"role": "user", "content": m}], add_generation_prompt=True,
                                                              tokenize=False) for m in user_messages])

    def texts(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if missing:
            self.cache.update(zip(missing, self._compute(missing)))
        if not texts:
            return np.zeros((0, 0))
        return np.stack([self.cache[t] for t in texts])

    def _compute(self, texts: list[str]) -> list[np.ndarray]:
        import torch

        tok = self.tokenizer
        backbone = _backbone(self.model)
        device = next(self.model.parameters()).device
        lengths = [min(len(ids), self.max_length) for ids in tok(texts, add_special_tokens=False)["input_ids"]]
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
        out: list[np.ndarray | None] = [None] * len(texts)
        # left padding: the last position is every row's last token; left truncation: a conversation longer than
        # max_length loses its beginning, never the reply at its end (which is what tells two responses apart)
        old_side, tok.padding_side = tok.padding_side, "left"
        old_trunc, tok.truncation_side = tok.truncation_side, "left"
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                enc = tok([texts[i] for i in rows], return_tensors="pt", padding=True, truncation=True,
                          max_length=self.max_length, add_special_tokens=False).to(device)
                with torch.inference_mode():
                    hidden = backbone(**enc).last_hidden_state.float()
                feats = hidden[:, -1, :]
                if self.pooling == "last+mean":
                    mask = enc["attention_mask"].unsqueeze(-1).float()
                    feats = torch.cat([feats, (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)], dim=-1)
                for i, f in zip(rows, feats.cpu().numpy()):
                    out[i] = f
        finally:
            tok.padding_side, tok.truncation_side = old_side, old_trunc
            self.model.train(was_training)
        return out  # type: ignore[return-value]


def _backbone(model: Any) -> Any:
    """The transformer without its head (``LlamaModel`` of a ``LlamaForCausalLM``; through a peft wrapper too)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(inner, getattr(inner, "base_model_prefix", ""), inner)


@dataclass
class LinearBT:
    """r(x) = w . standardise(features(x)); fitted by :func:`fit_linear_bt`."""

    featurizer: Featurizer | None
    w: np.ndarray
    mean: np.ndarray
    scale: np.ndarray

    def score_features(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.scale) @ self.w

    def score(self, prompts: Sequence[Any], responses: Sequence[str]) -> np.ndarray:
        if self.featurizer is None:
            raise ValueError("this LinearBT has no featurizer; use score_features")
        return self.score_features(self.featurizer(prompts, responses))

    def __call__(self, prompts: Sequence[Any], completions: Sequence[str], meta: Sequence[dict] | None = None) -> list[float]:
        return self.score(prompts, completions).tolist()

    def prefer_features(self, chosen: np.ndarray, rejected: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(self.score_features(chosen) - self.score_features(rejected))))

    def prefer_many(self, pairs: Sequence[PreferencePair]) -> np.ndarray:
        prompts = [p.prompt for p in pairs]
        return 1 / (1 + np.exp(-(self.score(prompts, [p.chosen for p in pairs])
                                 - self.score(prompts, [p.rejected for p in pairs]))))


def logistic(z: np.ndarray, sign: np.ndarray, l2: float, bias: bool) -> np.ndarray:
    """argmin_w sum softplus(-sign * (z @ w)) + l2/2 |w|^2 (the last column, a bias, unpenalised when ``bias``), L-BFGS."""
    from scipy.optimize import minimize

    penalised = np.r_[np.ones(z.shape[1] - 1), 0.0 if bias else 1.0]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        margin = sign * (z @ w)
        reg = penalised * w
        return float(np.logaddexp(0, -margin).sum() + 0.5 * l2 * reg @ reg), -(z.T @ (sign / (1 + np.exp(margin)))) + l2 * reg

    return minimize(loss, np.zeros(z.shape[1]), jac=True, method="L-BFGS-B").x


def fit_linear_bt(chosen: np.ndarray, rejected: np.ndarray, l2: float = 1.0,
                  featurizer: Featurizer | None = None) -> LinearBT:
    """Bradley-Terry on feature differences: minimise sum softplus(-(w . (c - r))) + l2/2 |w|^2 (L-BFGS).

    Features are standardised with the training conversations' mean and spread first.
    """
    both = np.concatenate([chosen, rejected])
    mean, scale = both.mean(0), both.std(0) + 1e-6
    d = ((chosen - mean) / scale) - ((rejected - mean) / scale)
    return LinearBT(featurizer, logistic(d, np.ones(len(d)), l2, bias=False), mean, scale)


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardised L2 logistic regression with a bias: returns (w, mean, scale); w[-1] is the bias."""
    mean, scale = x.mean(0), x.std(0) + 1e-6
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    return logistic(z, 2 * y - 1, l2, bias=True), mean, scale


@dataclass
class LinearPairwise:
    """A pairwise preference model with a frozen backbone: a logistic head on the features of the
    "which response is better, A or B?" request, trained on both orders of every pair and asked in both
    orders (averaged), like :class:`~rlhf_nb.rewards.judge.LogProbJudge`."""

    featurizer: Featurizer
    w: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    max_chars: int = 4000

    def _requests(self, prompts: Sequence[str], a: Sequence[str], b: Sequence[str]) -> list[str]:
        c = lambda t: t if len(t) <= self.max_chars else t[: self.max_chars] + " [...]"  # noqa: E731
        return [PAIRWISE.format(prompt=c(p), a=c(x), b=c(y)) for p, x, y in zip(prompts, a, b)]

    def _p_first(self, features: np.ndarray) -> np.ndarray:
        z = np.hstack([(features - self.mean) / self.scale, np.ones((len(features), 1))])
        return 1 / (1 + np.exp(-(z @ self.w)))

    def prefer_many(self, prompts: Sequence[str], a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """P(a better than b), both presentation orders averaged."""
        prompts = [_as_text(p) for p in prompts]
        f = self.featurizer.requests(self._requests(prompts, a, b) + self._requests(prompts, b, a))
        n = len(prompts)
        return (self._p_first(f[:n]) + 1 - self._p_first(f[n:])) / 2

    def prefer(self, prompt: str, a: str, b: str) -> float:
        return float(self.prefer_many([prompt], [a], [b])[0])


def fit_linear_pairwise(featurizer: Featurizer, pairs: Sequence[PreferencePair], l2: float = 1.0) -> LinearPairwise:
    """Fit :class:`LinearPairwise` on ``pairs`` shown in both orders (label: is A the chosen one?)."""
    prompts = [_as_text(p.prompt) for p in pairs]
    head = LinearPairwise(featurizer, np.zeros(0), np.zeros(0), np.ones(0))
    chosen, rejected = [p.chosen for p in pairs], [p.rejected for p in pairs]
    f = featurizer.requests(head._requests(prompts, chosen, rejected) + head._requests(prompts, rejected, chosen))
    y = np.r_[np.ones(len(pairs)), np.zeros(len(pairs))]
    head.w, head.mean, head.scale = _fit_logistic(f, y, l2)
    return head


def pairwise_records(pairs: Sequence[PreferencePair]) -> list[dict[str, Any]]:
    """SFT records teaching a model to answer A/B, each pair in both orders (cancels position bias)."""
    records = []
    for p in pairs:
        prompt = _as_text(p.prompt)
        records.append({"prompt": PAIRWISE.format(prompt=prompt, a=p.chosen, b=p.rejected), "completion": "A"})
        records.append({"prompt": PAIRWISE.format(prompt=prompt, a=p.rejected, b=p.chosen), "completion": "B"})
    return records


def train_pairwise_pm(loaded: Any, pairs: Sequence[PreferencePair], config: SFTConfig | None = None,
                      callbacks: Sequence[Any] = ()) -> TrainResult:
    """Pairwise preference model: SFT on "which is better? A/B" in both orders (causal-LM ``loaded``)."""
    return train_sft(loaded, pairwise_records(pairs), config, callbacks)


def pair_outcomes(scorer: BTScorer | LinearBT | LinearPairwise | LogProbJudge, pairs: Sequence[PreferencePair]) -> np.ndarray:
    """Per pair: 1 when the model prefers ``chosen``, 0 when it prefers ``rejected``, 0.5 on a tie."""
    if not pairs:
        return np.zeros(0)
    if isinstance(scorer, (BTScorer, LinearBT)):
        p = scorer.prefer_many(pairs)
    else:
        p = scorer.prefer_many([_as_text(x.prompt) for x in pairs], [x.chosen for x in pairs],
                               [x.rejected for x in pairs])
    return preference_outcomes(p)


def length_outcomes(pairs: Sequence[PreferencePair]) -> np.ndarray:
    """The outcomes of a length-only baseline that prefers the longer reply (in characters), on the same pairs: how
    much of a reward model's accuracy length alone would explain."""
    return preference_outcomes([0.5 + 0.5 * np.sign(len(p.chosen) - len(p.rejected)) for p in pairs])


def pair_accuracy(scorer: BTScorer | LinearBT | LinearPairwise | LogProbJudge, pairs: Sequence[PreferencePair],
                  seed: int = 0) -> Estimate:
    """Fraction of held-out pairs where the model prefers ``chosen`` (ties count half), bootstrap CI."""
    return bootstrap_ci(pair_outcomes(scorer, pairs), seed=seed)


def run_from_settings(settings: dict[str, Any]) -> TrainResult:
    settings = dict(settings)
    loaded = model_from_settings(settings, head="reward")
    pairs = pairs_from_spec(settings.pop("data"))
    return train_reward_model(loaded, pairs, settings_from(RewardConfig, settings))


def main(argv: list[str] | None = None) -> None:
    script_main("Bradley-Terry reward model on preference pairs (rlhf-nb)", run_from_settings, argv)


if __name__ == "__main__":
    main()
