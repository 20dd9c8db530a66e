"""Training routines on toy tasks with known answers (tiny local model, CPU, seconds each)."""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO

from rlhf_nb.lm import models
from rlhf_nb.rewards.judge import LogProbJudge
from rlhf_nb.tasks.data import PreferencePair
from rlhf_nb.train import ppo
from rlhf_nb.train.dpo import DPOConfig, train_dpo
from rlhf_nb.train.grpo import GRPOConfig, RLOOConfig, train_grpo, train_rloo
from rlhf_nb.train.online_dpo import IterativeDPOConfig, best_vs_worst, iterative_dpo, length_lean
from rlhf_nb.train.reward import (
    BTScorer,
    Featurizer,
    RewardConfig,
    fit_linear_bt,
    fit_linear_pairwise,
    length_outcomes,
    pair_accuracy,
    train_pairwise_pm,
    train_reward_model,
)
from rlhf_nb.train.sft import SFTConfig, train_sft

LORA = {"r": 16, "alpha": 32, "dropout": 0.0}


def polite_pairs(n: int, offset: int = 0, seed: int = 0) -> list[PreferencePair]:
    """Separable pairs: a helpful reply is always preferred to a rude one."""
    rng = random.Random(seed)
    return [PreferencePair(str(i), [{"role": "user", "content": f"request {offset + i}"}],
                           rng.choice(["yes, glad to help", "sure, here it is", "happy to help"]),
                           rng.choice(["no. go away", "never. stop asking", "no way, bye"]))
            for i in range(n)]


def digit_fraction(prompts, completions, meta):
    return [len(re.findall(r"\d", c)) / max(1, len(c)) for c in completions]


# --- DPO -------------------------------------------------------------------------------------


def test_dpo_margin_and_accuracy_rise(tmp_path):
    result = train_dpo(models.load("tiny", lora=LORA), polite_pairs(32),
                       DPOConfig(output_dir=str(tmp_path), learning_rate=5e-3, per_device_train_batch_size=8, num_train_epochs=2, disable_tqdm=True))
    margins, accuracy = result.series("rewards/margins"), result.series("rewards/accuracies")
    assert margins[-1] > margins[0] + 0.3 and accuracy[-1] == 1.0
    assert all("kl/chosen" in row for row in result.history if "rewards/chosen" in row)
    assert (tmp_path / "adapter_model.safetensors").is_file()


def test_dpo_loss_variants_are_exposed(tmp_path):
    result = train_dpo(models.load("tiny", lora=LORA), polite_pairs(8),
                       DPOConfig(output_dir=str(tmp_path), loss_type="ipo", max_steps=2, per_device_train_batch_size=4, disable_tqdm=True))
    assert len(result.series("loss")) == 2
    both = train_dpo(models.load("tiny", lora=LORA), polite_pairs(8),  # DPO with an SFT term (04's probe, RPO-like)
                     DPOConfig(output_dir=str(tmp_path / "rpo"), loss_type=["sigmoid", "sft"], max_steps=2,
                               per_device_train_batch_size=4, disable_tqdm=True))
    assert len(both.series("loss")) == 2 and both.series("loss") != result.series("loss")


class _Crash(Exception):
    pass


def test_dpo_resumes_from_its_checkpoint_to_the_same_result(tmp_path):
    from transformers import TrainerCallback

    class KillAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 5:
                raise _Crash

    def run(out, callbacks=(), resume=False):
        torch.manual_seed(0)
        config = DPOConfig(output_dir=str(out), learning_rate=5e-3, per_device_train_batch_size=4, max_steps=8,
                           save_strategy="steps", save_steps=2,
                           logging_steps=1, resume=resume, disable_tqdm=True)
        return train_dpo(models.load("tiny", lora=LORA), polite_pairs(32), config, callbacks=callbacks)

    full = run(tmp_path / "full")
    with pytest.raises(_Crash):
        run(tmp_path / "killed", callbacks=[KillAt()])
    assert (tmp_path / "killed" / "checkpoint-4").is_dir()
    resumed = run(tmp_path / "killed", resume=True)
    assert resumed.series("loss")[-4:] == pytest.approx(full.series("loss")[-4:], rel=1e-5)
    a = {n: p for n, p in full.model.named_parameters() if "lora" in n and ".default." in n}
    b = dict(resumed.model.named_parameters())
    assert all(torch.allclose(p, b[n], atol=1e-6) for n, p in a.items())


def test_dpo_seeds_on_the_same_pairs_compute_reference_log_probs_once_with_the_same_result(tmp_path, monkeypatch):
    import trl
    from peft import get_peft_model_state_dict

    from rlhf_nb.train import dpo

    calls: list[int] = []
    compute = trl.DPOTrainer.compute_ref_log_probs
    monkeypatch.setattr(trl.DPOTrainer, "compute_ref_log_probs",
                        lambda self, model, batch: calls.append(1) or compute(self, model, batch))
    pairs = polite_pairs(12, offset=500)

    def run(seed, data=pairs, batch=4, max_length=1024, reference=None):
        torch.manual_seed(seed)  # the fresh adapters' A differ by seed
        config = DPOConfig(output_dir=str(tmp_path / f"seed{seed}"), learning_rate=5e-3, max_steps=3, seed=seed,
                           per_device_train_batch_size=batch, max_length=max_length, disable_tqdm=True,
                           disable_dropout=False)  # live dropout: a reused pass must leave the random state alone
        loaded = models.load("tiny", lora={**LORA, "dropout": 0.05})  # the package's default LoRA dropout
        return train_dpo(loaded, data, config, reference_adapter=reference)

    monkeypatch.setattr(dpo, "_REFERENCE_LOGPS", {})
    alone = run(1)  # seed 1 computing its own reference log-probs
    assert len(calls) == 3  # 12 pairs, 4 a batch
    monkeypatch.setattr(dpo, "_REFERENCE_LOGPS", {})
    first = run(0)
    shared = run(1)
    assert len(calls) == 6  # seed 0 computed them; seed 1 reused them
    assert shared.series("loss") == alone.series("loss")  # and trains as if it had computed them itself
    run(1, batch=3)  # other batches, other pairs, another truncation: computed anew
    run(1, data=polite_pairs(12, offset=600))
    run(1, max_length=24)
    assert len(calls) == 6 + 4 + 3 + 3
    trained = {k: v.detach().clone() for k, v in get_peft_model_state_dict(first.model).items()}
    run(1, reference=trained)  # a reference that adds something: computed anew
    assert len(calls) == 19


def test_reference_fingerprint_leaves_out_the_trained_adapter_and_a_zero_reference():
    from rlhf_nb.train.dpo import reference_fingerprint

    torch.manual_seed(0)
    a = models.load("tiny", lora=LORA).model
    torch.manual_seed(1)
    b = models.load("tiny", lora=LORA).model
    assert reference_fingerprint(a) == reference_fingerprint(b)  # fresh adapters differ in A only
    with torch.no_grad():
        next(p for n, p in b.named_parameters() if "lora_B" in n).add_(1.0)  # the trained adapter moved
    assert reference_fingerprint(a) == reference_fingerprint(b)
    b.add_adapter("ref", b.peft_config["default"])  # trl's frozen copy of the adapter at the start
    for name, param in b.named_parameters():
        if ".default." in name:
            b.get_parameter(name.replace(".default.", ".ref.")).data.copy_(param.data)
    assert reference_fingerprint(a) != reference_fingerprint(b)  # a reference adapter that adds something
    with torch.no_grad():
        next(p for n, p in a.named_parameters() if "lora" not in n).mul_(1.5)  # other frozen weights
    assert reference_fingerprint(a) != reference_fingerprint(models.load("tiny", lora=LORA).model)


def test_dpo_script_runs_data_parallel_on_two_cpu_processes(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"q{i}: good?", "chosen": "yes good", "rejected": "no bad"}) + "\n"
                             for i in range(16)))
    config = tmp_path / "dpo.yaml"
    config.write_text(f"model: tiny\nlora: {{r: 4, alpha: 8, dropout: 0.0}}\n"
                      f"data: {{kind: jsonl, path: {pairs}}}\noutput_dir: {tmp_path / 'out'}\n"
                      "learning_rate: 0.005\nper_device_train_batch_size: 2\nmax_steps: 3\ndisable_tqdm: true\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    done = subprocess.run([torchrun, "--nproc_per_node=2", f"--master_port={port}", "-m", "rlhf_nb.train.dpo",
                           "--config", str(config)], capture_output=True, text=True, cwd=REPO, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    # 3 steps x 2 per device x 2 processes = 12 of 16 pairs: 0.75 epoch (one process would be at 0.375)
    assert "epoch: 0.75" in done.stdout
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()


# --- reward models ---------------------------------------------------------------------------


def test_bradley_terry_rm_beats_chance_on_held_out_pairs(tmp_path):
    rm = models.load("tiny", head="reward", lora=LORA)
    scorer = BTScorer(rm.model, rm.tokenizer)
    result = train_reward_model(rm, polite_pairs(48), RewardConfig(output_dir=str(tmp_path), learning_rate=5e-3,
                                                                   per_device_train_batch_size=8, num_train_epochs=2, disable_tqdm=True))
    accuracy = pair_accuracy(scorer, polite_pairs(32, offset=1000, seed=1))
    assert result.series("loss")[-1] < result.series("loss")[0]
    assert accuracy.low > 0.5, accuracy


def test_pairwise_preference_model_beats_chance_on_held_out_pairs(tmp_path):
    pm = models.load("tiny")  # full fine-tune: the tiny model's tied head is too small for LoRA to steer A/B
    train_pairwise_pm(pm, polite_pairs(48), SFTConfig(output_dir=str(tmp_path), learning_rate=3e-3, per_device_train_batch_size=8,
                                                      num_train_epochs=4, max_length=1024, disable_tqdm=True))
    accuracy = pair_accuracy(LogProbJudge(pm.model, pm.tokenizer), polite_pairs(32, offset=1000, seed=1))
    assert accuracy.low > 0.5, accuracy


def test_linear_bt_recovers_a_preference_direction():
    rng = np.random.default_rng(0)
    direction = rng.normal(size=16)
    x = rng.normal(size=(400, 16))
    y = rng.normal(size=(400, 16))
    better = (x @ direction > y @ direction)[:, None]
    chosen, rejected = np.where(better, x, y), np.where(better, y, x)
    head = fit_linear_bt(chosen[:300], rejected[:300], l2=0.1)
    held_out = head.prefer_features(chosen[300:], rejected[300:])
    assert (held_out > 0.5).mean() > 0.9
    cosine = head.w @ (direction / head.scale) / np.linalg.norm(head.w) / np.linalg.norm(direction / head.scale)
    assert cosine > 0.9
    assert (fit_linear_bt(rejected[:300], chosen[:300], l2=0.1).prefer_features(chosen[300:], rejected[300:]) < 0.5).mean() > 0.9


def test_length_baseline_prefers_the_longer_reply_and_ties_half():
    pairs = [PreferencePair("a", [], "a longer reply", "short"), PreferencePair("b", [], "short", "a longer reply"),
             PreferencePair("c", [], "same", "size")]
    assert length_outcomes(pairs).tolist() == [1.0, 0.0, 0.5]
    assert length_outcomes([]).size == 0


def test_linear_bt_on_frozen_features_beats_chance_on_held_out_pairs():
    lm = models.load("tiny")
    featurize = Featurizer(lm.model, lm.tokenizer)
    train, test = polite_pairs(48), polite_pairs(32, offset=1000, seed=1)
    head = fit_linear_bt(featurize([p.prompt for p in train], [p.chosen for p in train]),
                         featurize([p.prompt for p in train], [p.rejected for p in train]), featurizer=featurize)
    assert featurize(["hi"], ["there"]).shape == (1, lm.model.config.hidden_size)
    assert pair_accuracy(head, test).low > 0.5
    assert head(["hi"], ["sure, here it is"])[0] > head(["hi"], ["never. stop asking"])[0]


def test_featurizer_keeps_the_reply_when_a_conversation_is_too_long():
    """Past max_length a conversation loses its beginning, not the reply that tells two responses apart."""
    lm = models.load("tiny")
    featurize = Featurizer(lm.model, lm.tokenizer, max_length=32)
    prompt = "a long shared history " * 40
    a, b = featurize([prompt, prompt], ["yes, gladly", "no, never"])
    assert not np.allclose(a, b)
    assert featurize.tokenizer.truncation_side == "right"  # restored


def test_linear_pairwise_pm_beats_chance_and_is_order_symmetric():
    lm = models.load("tiny")
    pm = fit_linear_pairwise(Featurizer(lm.model, lm.tokenizer), polite_pairs(48))
    test = polite_pairs(32, offset=1000, seed=1)
    assert pair_accuracy(pm, test).low > 0.5
    prompts, a, b = [p.prompt for p in test], [p.chosen for p in test], [p.rejected for p in test]
    np.testing.assert_allclose(pm.prefer_many(prompts, a, b), 1 - pm.prefer_many(prompts, b, a), atol=1e-9)


def test_sft_learns_the_completion(tmp_path):
    loaded = models.load("tiny")
    records = [{"prompt": f"question {i}", "completion": "yes"} for i in range(32)]
    result = train_sft(loaded, records, SFTConfig(output_dir=str(tmp_path), learning_rate=1e-2, per_device_train_batch_size=8,
                                                  num_train_epochs=3, disable_tqdm=True))
    losses = result.series("loss")
    assert losses[-1] < losses[0] / 3


# --- PPO -------------------------------------------------------------------------------------


def test_gae_matches_hand_computation():
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.2, 0.1]])
    mask = torch.ones(1, 3)
    adv, ret = ppo.gae(rewards, values, mask, gamma=0.9, lam=0.8)
    d2 = 1.0 - 0.1
    d1 = 0.0 + 0.9 * 0.1 - 0.2
    d0 = 0.0 + 0.9 * 0.2 - 0.5
    a2, a1 = d2, d1 + 0.9 * 0.8 * d2
    a0 = d0 + 0.9 * 0.8 * a1
    assert adv.tolist()[0] == pytest.approx([a0, a1, a2])
    assert ret.tolist()[0] == pytest.approx([a0 + 0.5, a1 + 0.2, a2 + 0.1])
    # tokens after the end of a response contribute nothing and bootstrap nothing
    adv_m, _ = ppo.gae(torch.tensor([[0.0, 1.0, 5.0]]), torch.tensor([[0.0, 0.0, 9.0]]), torch.tensor([[1.0, 1.0, 0.0]]),
                       gamma=1.0, lam=1.0)
    assert adv_m.tolist()[0] == pytest.approx([1.0, 1.0, 0.0])


def test_clipped_losses_match_hand_computation():
    logp = torch.log(torch.tensor([[1.5, 0.5]]))  # ratios 1.5 and 0.5 against old log-prob 0
    old = torch.zeros(1, 2)
    adv = torch.tensor([[1.0, -1.0]])
    loss, clipfrac, _ = ppo.policy_loss(logp, old, adv, torch.ones(1, 2), clip=0.2)
    # token 1: max(-1*1.5, -1*1.2) = -1.2 (clipped); token 2: max(1*0.5, 1*0.8) = 0.8 (clipped)
    assert loss.item() == pytest.approx((-1.2 + 0.8) / 2)
    assert clipfrac.item() == pytest.approx(1.0)
    v_loss, _ = ppo.value_loss(torch.tensor([[2.0]]), torch.tensor([[1.0]]), torch.tensor([[3.0]]), torch.ones(1, 1), 0.5)
    assert v_loss.item() == pytest.approx(0.5 * max((2 - 3) ** 2, (1.5 - 3) ** 2))


def test_adaptive_kl_controller_moves_towards_target():
    ctl = ppo.AdaptiveKL(0.1, target=6.0, horizon=100)
    ctl.update(12.0, n_steps=10)
    assert ctl.coef == pytest.approx(0.1 * (1 + 0.2 * 10 / 100))
    ctl = ppo.AdaptiveKL(0.1, target=6.0, horizon=100)
    ctl.update(3.0, n_steps=10)
    assert ctl.coef < 0.1


def test_ppo_raises_a_verifier_reward_with_the_kl_penalty_accounted():
    torch.manual_seed(0)
    policy = models.load("tiny", lora=LORA)
    config = ppo.PPOConfig(steps=50, batch_size=16, minibatch_size=8, ppo_epochs=4, max_new_tokens=12,
                           learning_rate=1e-2, kl_coef=0.01, progress=False, seed=1)
    result = ppo.train_ppo(policy, [f"count {i}" for i in range(16)], digit_fraction, config)
    rewards = result.series("reward")
    assert np.mean(rewards[-10:]) > np.mean(rewards[:10]) + 0.2
    kls = result.series("kl")
    assert kls[0] == pytest.approx(0.0, abs=1e-5) and all(np.isfinite(kls)) and max(kls) < 100
    for row in result.history:  # the penalty paid is exactly kl_coef * KL
        assert row["non_score_reward"] == pytest.approx(-config.kl_coef * row["kl"], rel=1e-3, abs=1e-5)
    for key in ("entropy", "response_length", "clipfrac", "vf_loss", "pg_loss", "approx_kl"):
        assert key in result.history[-1]


def test_ppo_logs_each_hybrid_component():
    from rlhf_nb.rewards.hybrid import Component, HybridReward

    reward = HybridReward({"digits": Component(digit_fraction), "length": Component(
        lambda p, c, m: [len(x) / 10 for x in c], weight=0.1)})
    result = ppo.train_ppo(models.load("tiny", lora=LORA), ["a", "b"], reward,
                           ppo.PPOConfig(steps=2, batch_size=2, minibatch_size=2, max_new_tokens=4, progress=False))
    assert {"reward/digits", "reward/length"} <= set(result.history[-1])


def test_ppo_resume_reaches_the_same_state(tmp_path):
    prompts = [f"count {i}" for i in range(8)]

    def run(out, steps, resume=False):
        torch.manual_seed(0)
        config = ppo.PPOConfig(steps=steps, batch_size=4, minibatch_size=2, max_new_tokens=6, learning_rate=5e-3,
                               output_dir=str(out), save_steps=2, resume=resume, progress=False)
        return ppo.train_ppo(models.load("tiny", lora=LORA), prompts, digit_fraction, config)

    full = run(tmp_path / "full", 6)
    run(tmp_path / "part", 4)  # as if killed after the checkpoint at step 4
    resumed = run(tmp_path / "part", 6, resume=True)
    assert [r["step"] for r in resumed.history] == list(range(1, 7))
    assert resumed.series("reward") == pytest.approx(full.series("reward"), abs=1e-6)
    assert resumed.series("kl") == pytest.approx(full.series("kl"), abs=1e-4)


def test_ppo_refuses_a_policy_without_an_adapter():
    with pytest.raises(ValueError, match="LoRA"):
        ppo.train_ppo(models.load("tiny"), ["x"], digit_fraction, ppo.PPOConfig(steps=1, progress=False))


# --- online iterative DPO, GRPO, RLOO -------------------------------------------------------


def test_best_vs_worst_skips_ties():
    pairs = best_vs_worst(["p1", "p2"], [["a", "b", "c"], ["x", "y", "z"]], [[0.1, 0.9, 0.5], [1.0, 1.0, 1.0]])
    assert len(pairs) == 1 and pairs[0].chosen == "b" and pairs[0].rejected == "a"


def test_length_lean_counts_pairs_whose_chosen_reply_is_shorter_or_longer():
    pairs = best_vs_worst(["p1", "p2", "p3", "p4"], [["short", "a longer one"], ["a longer one", "short"],
                                                    ["same1", "same2"], ["tiny", "a much longer reply"]],
                          [[1, 0], [1, 0], [1, 0], [1, 0]])
    assert length_lean(pairs) == (2, 1)  # equal lengths count in neither


def test_iterative_dpo_improves_the_reward_across_iterations(tmp_path):
    def says_yes(prompts, completions, meta):
        return [float(c.strip().startswith("y")) for c in completions]

    gains, refs = [], []
    for seed in range(3):  # a toy learning curve is noisy: judge the average over three seeds
        torch.manual_seed(seed)
        rng = random.Random(seed)
        loaded = models.load("tiny")  # warm start: SFT on an even mix of "yes" and "no"
        train_sft(loaded, [{"prompt": f"question {i}", "completion": rng.choice(["yes", "no"])} for i in range(64)],
                  SFTConfig(output_dir=str(tmp_path / f"sft{seed}"), learning_rate=1e-2, per_device_train_batch_size=16, num_train_epochs=6,
                            disable_tqdm=True))
        loaded.model = models.add_lora(loaded.model, models.LoraSpec(**LORA))
        config = IterativeDPOConfig(iterations=3, k=4, max_new_tokens=4, sample_batch_size=64, seed=seed,
                                    dpo=DPOConfig(output_dir=str(tmp_path / f"dpo{seed}"), learning_rate=5e-3,
                                                  per_device_train_batch_size=8, num_train_epochs=1, disable_tqdm=True))
        result = iterative_dpo(loaded, [f"question {i}" for i in range(100, 164)], says_yes, config)
        rewards = [row["sample_reward"] for row in result.history]
        assert len(rewards) == 3 and all(row["pairs"] > 0 for row in result.history)
        assert all(row["pairs/chosen_shorter"] + row["pairs/chosen_longer"] <= row["pairs"] for row in result.history)
        gains.append(rewards[-1] - rewards[0])
        refs.append("ref" in loaded.model.peft_config)  # the pinned initial adapter served as the reference
    assert np.mean(gains) > 0.05 and sum(g > 0 for g in gains) >= 2, gains
    assert all(refs)


@pytest.mark.parametrize("trainer", [train_grpo, train_rloo])
def test_grpo_and_rloo_take_the_same_reward_callables(tmp_path, trainer):
    seen = []

    def reward(prompts, completions, meta):
        seen.extend(m["domain"] for m in meta)
        return digit_fraction(prompts, completions, meta)

    config_cls = GRPOConfig if trainer is train_grpo else RLOOConfig
    result = trainer(models.load("tiny", lora=LORA), [f"count {i}" for i in range(8)], reward,
                     config_cls(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, num_generations=4,
                                max_completion_length=6, disable_tqdm=True, beta=0.05), meta=[{"domain": "toy"}] * 8)
    assert len(result.series("reward")) == 2 and set(seen) == {"toy"}


def test_grpo_meta_keeps_every_key_when_rows_differ_in_keys():
    from rlhf_nb.train.grpo import _dataset, trl_reward

    meta = [{"domain": "code", "id": "HumanEval/0"}, {"domain": "math", "answer": "7"}]  # the first row lacks "answer"
    data = _dataset(["write code", "add 3 and 4"], meta)
    seen = []
    reward = trl_reward(lambda prompts, texts, m: seen.extend(m) or [0.0] * len(texts))
    rows = list(data)  # trl hands the reward each column as a list over the batch
    columns = {k: [r[k] for r in rows] for k in data.column_names if k != "prompt"}
    reward([r["prompt"] for r in rows], ["x", "y"], **columns)
    assert seen == [{"domain": "code", "id": "HumanEval/0", "answer": None},
                    {"domain": "math", "id": None, "answer": "7"}]


@pytest.mark.parametrize("every, at_last, expected", [(2, True, [2, 4, 5]), (2, False, [2, 4]), (0, True, [])])
def test_every_steps_calls_back_in_eval_mode_on_its_steps(every, at_last, expected):
    from types import SimpleNamespace

    import torch

    from rlhf_nb.train.grpo import every_steps

    model, seen = torch.nn.Linear(1, 1), []
    callback = every_steps(every, lambda m, step: seen.append((step, m.training)), at_last=at_last)
    for step in range(1, 6):
        callback.on_step_end(None, SimpleNamespace(global_step=step, max_steps=5), None, model=model)
    assert seen == [(s, False) for s in expected] and model.training  # training mode restored


# --- slow tier: the real small model ---------------------------------------------------------


@pytest.mark.slow
def test_dpo_and_ppo_steps_on_smollm2(tmp_path):
    policy = models.load("smollm2-135m-instruct", lora={"r": 8, "alpha": 16, "dropout": 0.0})
    result = train_dpo(policy, polite_pairs(8), DPOConfig(output_dir=str(tmp_path / "dpo"), learning_rate=1e-4,
                                                          per_device_train_batch_size=4, max_steps=2, disable_tqdm=True))
    assert len(result.series("loss")) == 2 and np.isfinite(result.series("loss")).all()
    ppo_result = ppo.train_ppo(policy, ["Write a number.", "Say hi."], digit_fraction,
                               ppo.PPOConfig(steps=2, batch_size=2, minibatch_size=2, max_new_tokens=8, progress=False))
    assert len(ppo_result.history) == 2 and np.isfinite(ppo_result.series("kl")).all()


@pytest.mark.parametrize("module, settings", [
    ("rlhf_nb.train.ppo", {"steps": 2, "batch_size": 2, "minibatch_size": 2, "max_new_tokens": 4, "progress": False}),
    ("rlhf_nb.train.online_dpo", {"iterations": 1, "k": 2, "max_new_tokens": 4,
                                  "dpo": {"max_steps": 1, "per_device_train_batch_size": 2, "disable_tqdm": True}}),
    ("rlhf_nb.train.grpo", {"algorithm": "rloo", "max_steps": 1, "per_device_train_batch_size": 4, "num_generations": 4,
                            "max_completion_length": 4, "disable_tqdm": True}),
])
def test_online_routines_run_as_scripts(tmp_path, module, settings):
    import yaml

    out = {"output_dir": str(tmp_path / "out")}
    if "dpo" in settings:
        settings = {**settings, "dpo": {**settings["dpo"], **out}}
    else:
        settings = {**settings, **out}
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"model": "tiny", "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
                                      "prompts": {"kind": "gsm8k", "limit": 4},
                                      "reward": "rlhf_nb.rewards.math:math_reward", **settings}))
    done = subprocess.run([sys.executable, "-m", module, "--config", str(config)], capture_output=True, text=True,
                          cwd=REPO, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "summary:" in done.stdout and "output_dir:" in done.stdout
