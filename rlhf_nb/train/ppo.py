"""PPO for causal language models, in one file (trl removed its PPOTrainer after 1.12).

Read top to bottom, one iteration is:

1. **rollout** - sample a response for each of ``batch_size`` prompts from the current policy;
2. **score** - the reward is any callable ``fn(prompts, completions, meta) -> list[float]`` (a reward
   model, a verifier, or a :class:`~rlhf_nb.rewards.hybrid.HybridReward` whose components are logged);
3. **per-token rewards** - ``-kl_coef * (log pi - log pi_ref)`` at every response token, plus the score
   at the last one; the reference is the same network with its LoRA adapter switched off;
4. **GAE** - advantages and returns from a value head on the policy's last hidden state;
5. **update** - ``ppo_epochs`` passes over minibatches with the clipped policy loss and the clipped
   value loss; optionally an adaptive KL coefficient (Ziegler et al. 2019).

The policy must be a peft LoRA model (``models.load(name, lora=...)``), so no second copy of the
network is needed for the reference.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rlhf_nb.train.common import TrainResult

RewardFn = Callable[[Sequence[Any], Sequence[str], Sequence[dict]], Sequence[float]]


@dataclass
class PPOConfig:
    steps: int = field(default=20, metadata={"help": "PPO iterations (a rollout, then updates on it)"})
    batch_size: int = field(default=8, metadata={"help": "prompts per rollout"})
    minibatch_size: int = field(default=4, metadata={"help": "rollout rows per gradient step"})
    ppo_epochs: int = field(default=2, metadata={"help": "passes over each rollout"})
    max_new_tokens: int = field(default=32, metadata={"help": "token cap of a sampled response"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the rollouts"})
    top_p: float = 1.0
    learning_rate: float = field(default=1e-5, metadata={"help": "AdamW learning rate of policy and value head"})
    kl_coef: float = field(default=0.05, metadata={"help": "weight of the per-token KL penalty from the reference "
                                                           "(the reward is score - kl_coef x log-ratio)"})
    adaptive_kl: bool = field(default=False, metadata={"help": "adapt kl_coef towards target_kl (Ziegler et al.)"})
    target_kl: float = 6.0  # per-sequence KL the adaptive controller aims at
    kl_horizon: int = 10_000
    gamma: float = 1.0
    lam: float = 0.95
    clip_range: float = 0.2
    clip_range_value: float = 0.2
    vf_coef: float = 0.1
    whiten_rewards: bool = False
    max_grad_norm: float = 1.0
    seed: int = 0
    output_dir: str | None = None  # where checkpoints go (with save_steps > 0)
    save_steps: int = 0
    resume: bool = False
    progress: bool = True


# ----------------------------------------------------------------------------------------------
# the maths, on plain tensors ([batch, response tokens], mask 1 where a token belongs to the response)
# ----------------------------------------------------------------------------------------------


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp_min(1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    return out if shift_mean else out + mean


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float):
    """Generalised advantage estimation backwards over response tokens; returns (advantages, returns)."""
    advantages = torch.zeros_like(rewards)
    last = torch.zeros(rewards.shape[0], dtype=rewards.dtype, device=rewards.device)
    for t in reversed(range(rewards.shape[1])):
        next_value = values[:, t + 1] * mask[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last * (mask[:, t + 1] if t + 1 < rewards.shape[1] else 0)
        advantages[:, t] = last * mask[:, t]
    return advantages, (advantages + values) * mask


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip: float):
    """Clipped surrogate objective (to minimise); also the clip fraction and an approximate KL."""
    ratio = torch.exp(logp - old_logp)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - clip, 1 + clip)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    clipfrac = masked_mean((clipped > unclipped).float(), mask)
    approx_kl = 0.5 * masked_mean((logp - old_logp) ** 2, mask)
    return loss, clipfrac, approx_kl


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip: float):
    """Clipped value loss (PPO2 style); also the fraction of tokens where clipping bound."""
    clipped_values = old_values + torch.clamp(values - old_values, -clip, clip)
    losses = torch.max((values - returns) ** 2, (clipped_values - returns) ** 2)
    return 0.5 * masked_mean(losses, mask), masked_mean(((clipped_values - returns) ** 2 > (values - returns) ** 2).float(), mask)


class AdaptiveKL:
    """Ziegler et al. (2019): move the KL coefficient so that the observed KL tracks ``target``."""

    def __init__(self, coef: float, target: float, horizon: int):
        self.coef, self.target, self.horizon = coef, target, horizon

    def update(self, kl: float, n_steps: int) -> None:
        error = max(-0.2, min(0.2, kl / self.target - 1))
        self.coef *= 1 + error * n_steps / self.horizon


# ----------------------------------------------------------------------------------------------
# model pieces
# ----------------------------------------------------------------------------------------------


class ValueHead(nn.Module):
    def __init__(self, hidden_size: int):
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.linear.weight, std=1 / math.sqrt(hidden_size + 1))
        nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden.to(self.linear.weight.dtype)).squeeze(-1)


def _forward(model: nn.Module, value_head: ValueHead | None, seq: torch.Tensor, attn: torch.Tensor, n_query: int,
             temperature: float):
    """Log-probs of the response tokens (and entropy, values) for sequences ``seq`` = query + response."""
    position_ids = (attn.cumsum(-1) - 1).clamp_min(0)  # left padding: positions as generate() used them
    out = model(input_ids=seq, attention_mask=attn, position_ids=position_ids,
                output_hidden_states=value_head is not None)
    logits = out.logits[:, n_query - 1 : -1].float() / temperature
    logp_all = F.log_softmax(logits, dim=-1)
    logp = torch.gather(logp_all, 2, seq[:, n_query:].unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    values = value_head(out.hidden_states[-1][:, n_query - 1 : -1]) if value_head is not None else None
    return logp, entropy, values


def _pad_responses(rows: list[tuple[list[int], bool]], eos_id: int | None, pad_id: int | None,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Sampled responses as one right-padded tensor and its mask: 1 on every response token and on the EOS
    that ended it (the policy chose to stop there), 0 on padding."""
    ended = [ids + ([eos_id] if finished and eos_id is not None else []) for ids, finished in rows]
    width = max(1, max(len(ids) for ids in ended))
    response = torch.full((len(ended), width), pad_id if pad_id is not None else 0, dtype=torch.long, device=device)
    mask = torch.zeros((len(ended), width), dtype=torch.float, device=device)
    for i, ids in enumerate(ended):
        if ids:
            response[i, : len(ids)] = torch.tensor(ids, device=device)
            mask[i, : len(ids)] = 1.0
    return response, mask


# ----------------------------------------------------------------------------------------------
# the loop
# ----------------------------------------------------------------------------------------------


def batch_indices(n_prompts: int, step: int, batch_size: int, seed: int) -> list[int]:
    """Prompts of a step: consecutive slices of a per-epoch shuffle, a pure function of the step (resumable)."""
    out = []
    for position in range(step * batch_size, (step + 1) * batch_size):
        epoch, within = divmod(position, n_prompts)
        order = list(range(n_prompts))
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
        out.append(order[within])
    return out


def train_ppo(loaded: Any, prompts: Sequence[Any], reward_fn: RewardFn, config: PPOConfig = PPOConfig(),
              meta: Sequence[dict] | None = None, on_step: Callable[[dict[str, float]], None] | None = None) -> TrainResult:
    """Optimise a LoRA policy against ``reward_fn`` on ``prompts`` (chat messages or strings)."""
    from tqdm.auto import tqdm

    from rlhf_nb.lm.generation import SamplingConfig, decode_batch, eos_ids, render_prompt

    tokenizer, model = loaded
    if not hasattr(model, "disable_adapter"):
        raise ValueError("train_ppo needs a peft LoRA policy (models.load(name, lora=...)): "
                         "the reference policy is the same model with the adapter disabled")
    meta = list(meta) if meta is not None else [{} for _ in prompts]
    device = next(model.parameters()).device
    torch.manual_seed(config.seed)
    value_head = ValueHead(model.config.hidden_size).to(device)
    params = [p for p in model.parameters() if p.requires_grad] + list(value_head.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, eps=1e-5)
    kl_ctl = AdaptiveKL(config.kl_coef, config.target_kl, config.kl_horizon)
    history: list[dict[str, float]] = []
    start = 0
    state_path = Path(config.output_dir) / "ppo_state.pt" if config.output_dir else None
    if config.resume and state_path and state_path.is_file():
        start = _load_state(state_path, model, value_head, optimizer, kl_ctl, history)
    texts = [render_prompt(tokenizer, p) for p in prompts]
    eos = eos_ids(model, tokenizer)
    eos_id = tokenizer.eos_token_id
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    model.eval()  # no dropout: the ratio must be exactly 1 before the first update
    old_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    bar = tqdm(range(start, config.steps), desc="ppo", disable=not config.progress)
    try:
        for step in bar:
            # 1. rollout ---------------------------------------------------------------------
            idx = batch_indices(len(prompts), step, config.batch_size, config.seed)
            enc = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            n_query = enc["input_ids"].shape[1]
            torch.manual_seed(config.seed * 100_003 + step)  # minibatch order: a pure function of the step
            generator = torch.Generator(device=device).manual_seed(config.seed * 100_003 + step)
            sampling = SamplingConfig(temperature=config.temperature, top_p=config.top_p,
                                      max_new_tokens=config.max_new_tokens)
            with torch.inference_mode():
                rows = decode_batch(model, enc["input_ids"], enc["attention_mask"], sampling, eos, None, generator)
            response, mask = _pad_responses(rows, eos_id, pad_id, device)
            seq = torch.cat([enc["input_ids"], response], dim=1)
            attn = torch.cat([enc["attention_mask"], mask.long()], dim=1)
            completions = [tokenizer.decode(ids, skip_special_tokens=True) for ids, _ in rows]

            # 2. score -----------------------------------------------------------------------
            scores = torch.tensor([float(s) for s in reward_fn([prompts[i] for i in idx], completions,
                                                               [meta[i] for i in idx])], device=device)

            # 3. per-token rewards: KL penalty everywhere, the score at the last response token
            with torch.no_grad():
                old_logp, entropy, old_values = _forward(model, value_head, seq, attn, n_query, config.temperature)
                with model.disable_adapter():
                    ref_logp, _, _ = _forward(model, None, seq, attn, n_query, config.temperature)
            kl = (old_logp - ref_logp) * mask
            rewards = -kl_ctl.coef * kl
            last = (mask.sum(1).long() - 1).clamp_min(0)
            rewards[torch.arange(len(idx)), last] += scores
            if config.whiten_rewards:
                rewards = masked_whiten(rewards, mask, shift_mean=False) * mask

            # 4. advantages ------------------------------------------------------------------
            advantages, returns = gae(rewards, old_values * mask, mask, config.gamma, config.lam)
            advantages = masked_whiten(advantages, mask) * mask

            # 5. update ----------------------------------------------------------------------
            stats: dict[str, list[float]] = {"pg_loss": [], "vf_loss": [], "clipfrac": [], "vf_clipfrac": [],
                                             "approx_kl": []}
            for _ in range(config.ppo_epochs):
                perm = torch.randperm(len(idx))
                for mb_start in range(0, len(idx), config.minibatch_size):
                    mb = perm[mb_start : mb_start + config.minibatch_size]
                    logp, _, values = _forward(model, value_head, seq[mb], attn[mb], n_query, config.temperature)
                    pg, clipfrac, approx_kl = policy_loss(logp, old_logp[mb], advantages[mb], mask[mb], config.clip_range)
                    vf, vf_clipfrac = value_loss(values, old_values[mb], returns[mb], mask[mb], config.clip_range_value)
                    loss = pg + config.vf_coef * vf
                    optimizer.zero_grad()
                    loss.backward()
                    nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                    optimizer.step()
                    for key, value in (("pg_loss", pg), ("vf_loss", vf), ("clipfrac", clipfrac),
                                       ("vf_clipfrac", vf_clipfrac), ("approx_kl", approx_kl)):
                        stats[key].append(value.detach().item())

            mean_kl = float(kl.sum(1).mean())
            row = {"step": step + 1, "reward": float(scores.mean()), "kl": mean_kl, "kl_coef": kl_ctl.coef,
                   "entropy": float(masked_mean(entropy, mask)), "response_length": float(mask.sum(1).mean()),
                   "non_score_reward": float(rewards.sum(1).mean() - scores.mean()),
                   **{k: sum(v) / len(v) for k, v in stats.items()}}
            for name, values in getattr(reward_fn, "last_components", {}).items():
                present = [v for v in values if v is not None]
                if present:
                    row[f"reward/{name}"] = sum(present) / len(present)
            if config.adaptive_kl:
                kl_ctl.update(mean_kl, config.batch_size)
            history.append(row)
            bar.set_postfix(reward=f"{row['reward']:.3f}", kl=f"{mean_kl:.3f}")
            if on_step:
                on_step(row)
            if state_path and config.save_steps > 0 and (step + 1) % config.save_steps == 0:
                _save_state(state_path, step + 1, model, value_head, optimizer, kl_ctl, history, config)
    finally:
        tokenizer.padding_side = old_side
        bar.close()
    summary = {k: history[-1][k] for k in ("reward", "kl", "entropy")} if history else {}
    if config.output_dir:
        model.save_pretrained(config.output_dir)
        torch.save(value_head.state_dict(), Path(config.output_dir) / "value_head.pt")
    result = TrainResult(model, history, config.output_dir or "", summary)
    result.value_head = value_head  # type: ignore[attr-defined]
    return result


def _save_state(path: Path, step: int, model, value_head, optimizer, kl_ctl, history, config) -> None:
    import io

    from peft import get_peft_model_state_dict

    from rlhf_nb.core.io import atomic_write_bytes

    buffer = io.BytesIO()
    torch.save({
        "step": step, "adapter": get_peft_model_state_dict(model), "value_head": value_head.state_dict(),
        "optimizer": optimizer.state_dict(), "kl_coef": kl_ctl.coef, "history": history,
        "config": asdict(config),
    }, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _load_state(path: Path, model, value_head, optimizer, kl_ctl, history) -> int:
    from peft import set_peft_model_state_dict

    state = torch.load(path, weights_only=False)
    set_peft_model_state_dict(model, state["adapter"])
    value_head.load_state_dict(state["value_head"])
    optimizer.load_state_dict(state["optimizer"])
    kl_ctl.coef = state["kl_coef"]
    history.extend(state["history"])
    return int(state["step"])


def run_from_settings(settings: dict[str, Any]) -> TrainResult:
    from rlhf_nb.train.common import model_from_settings, prompts_from_spec, reward_from_settings, settings_from

    settings = dict(settings)
    loaded = model_from_settings(settings)
    prompts, meta = prompts_from_spec(settings.pop("prompts"))
    reward = reward_from_settings(settings.pop("reward"))
    return train_ppo(loaded, prompts, reward, settings_from(PPOConfig, settings), meta=meta)


def main(argv: list[str] | None = None) -> None:
    """``python -m rlhf_nb.train.ppo --config ppo.yaml``: model, lora, prompts, reward ("module:function"), PPOConfig."""
    from rlhf_nb.train.common import script_main

    script_main("PPO against a reward callable (rlhf-nb)", run_from_settings, argv)


if __name__ == "__main__":
    main()
