"""The precision policy (rlhf_nb.lm.device), the CPU log-prob head, and bf16 against fp32 on the tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_train import LORA, digit_fraction, polite_pairs

from rlhf_nb.lm import device, models
from rlhf_nb.train import ppo
from rlhf_nb.train.dpo import DPOConfig, train_dpo
from rlhf_nb.train.reward import BTScorer, RewardConfig, pair_accuracy, train_reward_model
from rlhf_nb.train.sft import SFTConfig, train_sft


@pytest.fixture()
def precision():
    """Set the process-wide precision for one test, restore afterwards."""
    yield device.set_precision
    device.set_precision(None)


def test_auto_precision_follows_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert device.resolve("auto", "cpu").name == "bf16"
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    assert device.resolve("auto", "cpu").reason.startswith("CPU has amx_bf16")
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset({"avx2"}))
    assert device.resolve("auto", "cpu").name == "fp32"
    assert device.resolve("auto", "cuda").name == "bf16"
    assert device.resolve("fp32", "cuda").name == "fp32"  # an explicit choice wins


def test_auto_on_a_bf16_cpu_serves_frozen_models_in_bf16_and_trains_mixed_on_fp32_weights(monkeypatch, precision):
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    precision("auto")
    monkeypatch.setenv("RLHF_NB_PRECISION", "auto")
    auto = device.resolve("auto", "cpu")
    assert auto.name == "bf16" and auto.train_bf16 and auto.fp32_adapter_sums
    assert device.describe()["training"] == "mixed"
    assert {p.dtype for p in models.load("tiny").model.parameters()} == {torch.bfloat16}  # sampling, judging
    policy = models.load("tiny", lora=LORA)  # will train, or carries a trained adapter
    assert {p.dtype for p in policy.model.parameters()} == {torch.float32}
    assert {p.dtype for p in models.load("tiny", head="reward", lora=LORA).model.parameters()} == {torch.float32}
    assert DPOConfig(output_dir="unused").bf16 is True and RewardConfig(output_dir="unused").bf16 is True  # autocast
    assert DPOConfig(output_dir="unused", precision="fp32").bf16 is False
    # the frozen arm that trained arms are compared with gets their precision: arms differ in training, not rounding
    assert {p.dtype for p in models.load("tiny", baseline=True).model.parameters()} == {torch.float32}
    precision("bf16")  # an explicit choice applies to training too
    assert device.resolve(device.requested(), "cpu").train_bf16 and DPOConfig(output_dir="unused").bf16 is True
    assert {p.dtype for p in models.load("tiny", baseline=True).model.parameters()} == {torch.bfloat16}
    assert device.resolve("auto", "cuda").train_bf16  # on CUDA, training autocasts as before


def _adapter_shifts(scale: float) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Change of the next-token log-probs that a LoRA adapter with B ~ N(0, scale) makes, read with the adapter
    attached and after merging it, in fp32 and in bf16 weights."""
    ids = torch.randint(3, 250, (8, 24), generator=torch.Generator().manual_seed(1))
    shifts = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        torch.manual_seed(0)
        loaded = models.load("tiny", lora=LORA, dtype=dtype)
        for param_name, param in loaded.model.named_parameters():
            if "lora_B" in param_name:
                with torch.no_grad():
                    param.copy_(torch.randn_like(param) * scale)
        with torch.no_grad():
            on = torch.log_softmax(loaded.model(ids).logits.float(), -1)
            with loaded.model.disable_adapter():
                off = torch.log_softmax(loaded.model(ids).logits.float(), -1)
            folded = torch.log_softmax(models.merged(loaded).model(ids).logits.float(), -1)
        shifts[name] = (on - off, folded - off)
    return shifts


def test_bf16_rounds_a_small_lora_update_away_which_is_why_trained_models_are_read_in_fp32():
    """The reason for the rule above: a LoRA output added to a base output that sits on the bf16 grid is lost
    when it is under half a unit in the last place, and so is a merge into bf16 weights. Measured as the share
    of the fp32 adapter's effect that survives (projection onto it; 1 = all of it)."""
    def kept(shift: torch.Tensor, reference: torch.Tensor) -> float:
        return float((shift * reference).sum() / (reference * reference).sum())

    small = _adapter_shifts(2e-4)  # a few small optimizer steps' worth
    ref = small["fp32"][0]
    assert float(ref.abs().mean()) > 0 and abs(kept(small["fp32"][1], ref) - 1) < 0.05  # fp32: merged == attached
    assert kept(small["bf16"][0], ref) < 0.5 and kept(small["bf16"][1], ref) < 0.5  # bf16 loses most of it
    large = _adapter_shifts(1e-2)  # a large update survives bf16: the loss is of small updates only
    assert abs(kept(large["bf16"][0], large["fp32"][0]) - 1) < 0.1


def test_mixed_precision_trains_under_autocast_on_fp32_weights(monkeypatch):
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    mixed = device.resolve("mixed", "cpu")
    assert mixed.name == "bf16" and mixed.train_bf16 and mixed.fp32_adapter_sums
    assert mixed.training_dtype() == torch.float32 and DPOConfig(output_dir="unused", precision="mixed").bf16 is True
    auto = device.resolve("auto", "cpu")
    assert (auto.name, auto.training) == ("bf16", "mixed")  # what auto trains in on this CPU
    assert not device.resolve("bf16", "cpu").fp32_adapter_sums and not device.resolve("auto", "cuda").fp32_adapter_sums
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset({"avx2"}))  # no fast bf16: plain fp32
    slow = device.resolve("mixed", "cpu")
    assert slow.name == "fp32" and not slow.train_bf16 and not slow.fp32_adapter_sums


def test_fp32_adapter_sums_keep_a_small_lora_update_under_autocast():
    """Under bf16 autocast peft adds the adapter's output to a bf16 base output and rounds the sum to bf16; with
    :func:`device.keep_adapter_sums_fp32` the sum stays fp32 and the forward pass sees the adapter."""
    ids = torch.randint(3, 250, (8, 24), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    model = models.load("tiny", lora=LORA, dtype=torch.float32).model
    for name, param in model.named_parameters():
        if "lora_B" in name:
            with torch.no_grad():
                param.copy_(torch.randn_like(param) * 2e-4)  # a few small optimizer steps' worth

    def shift(autocast: bool) -> torch.Tensor:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            on = torch.log_softmax(model(ids).logits.float(), -1)
            with model.disable_adapter():
                off = torch.log_softmax(model(ids).logits.float(), -1)
        return on - off

    def kept(s: torch.Tensor) -> float:
        return float((s * ref).sum() / (ref * ref).sum())

    ref = shift(autocast=False)
    plain = kept(shift(autocast=True))
    assert plain < 0.5  # plain autocast loses most of it (0.21 here)
    layers = device.keep_adapter_sums_fp32(model)
    assert layers == sum(1 for n, _ in model.named_modules() if n.endswith("lora_A")) > 0
    assert device.keep_adapter_sums_fp32(model) == 0  # once per layer
    summed = kept(shift(autocast=True))  # 0.68: what is left is the rounding of the next matmul's bf16 input
    assert summed > 0.6 and summed > plain + 0.3
    torch.testing.assert_close(shift(autocast=False), ref)  # on fp32 weights without autocast: no change


def test_mixed_precision_dpo_installs_the_fp32_sums_and_learns(tmp_path, precision):
    precision("mixed")
    if not device.resolve().train_bf16:
        pytest.skip("no fast bf16 on this CPU: mixed is fp32 here")
    run = _dpo(tmp_path, "mixed")
    assert any(getattr(m, "_rlhf_nb_fp32_sum", False) for m in run.model.modules())
    margins = run.series("rewards/margins")
    assert np.mean(margins[-3:]) > np.mean(margins[:3])
    # after training the policy reads as it did before it (accelerate's autocast wrapper is gone): the head, which
    # carries no adapter, computes in fp32 again
    seen = {}
    head = run.model.get_output_embeddings()
    hook = head.register_forward_hook(lambda module, inputs, output: seen.update(dtype=output.dtype))
    with torch.no_grad():
        run.model(input_ids=torch.tensor([[1, 2, 3]]))
    hook.remove()
    assert seen["dtype"] == torch.float32 and "_original_forward" not in run.model.__dict__


def test_precision_is_set_by_environment_or_call(monkeypatch, precision):
    monkeypatch.setenv("RLHF_NB_PRECISION", "bf16")
    assert device.requested() == "bf16"
    precision("fp32")
    assert device.requested() == "fp32" and device.describe()["resolved"] == "fp32"
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        precision("fp16")
    monkeypatch.setenv("RLHF_NB_PRECISION", "half")
    precision(None)
    with pytest.raises(ValueError, match="RLHF_NB_PRECISION"):
        device.requested()


def test_bf16_weights_stay_frozen_and_trainable_parameters_become_fp32():
    loaded = models.load("tiny", precision="bf16", lora=LORA)
    dtypes = {p.dtype for p in loaded.model.parameters() if not p.requires_grad}
    assert dtypes == {torch.bfloat16}
    assert {p.dtype for p in loaded.model.parameters() if p.requires_grad} == {torch.float32}  # peft keeps LoRA fp32
    full = models.load("tiny", precision="bf16", full_finetune=True)
    assert {p.dtype for p in full.model.parameters()} == {torch.float32}  # master weights for the optimizer
    rm = models.load("tiny", precision="bf16", head="reward", lora=LORA)
    moved = device.upcast_trainable(rm.model)  # the reward head (modules_to_save) is trainable and was bf16
    assert moved >= 1 and all(p.dtype == torch.float32 for p in rm.model.parameters() if p.requires_grad)


@pytest.mark.parametrize("softcap, scale, temperature, bias", [(None, 1.0, 0.7, False), (30.0, 0.5, 1.0, True),
                                                               (None, 1.0, 1.0, False), (2.0, 1.0, 1.0, False),
                                                               (2.0, 0.5, 0.7, True)])
def test_cpu_log_prob_head_matches_trls_kernel(monkeypatch, softcap, scale, temperature, bias):
    """Every output and the gradients (of the log-probs, the entropy or both, to the hidden states, the head's weight
    and bias), with the rows split into blocks of 7 (BLOCK_ELEMENTS) and trl's kernel in tiles of 64; a soft cap of 2
    bends these logits (at temperature 1 and below it)."""
    from trl.kernels import ChunkedLogProbFunction

    from rlhf_nb.train import cpu_head

    monkeypatch.setattr(cpu_head, "BLOCK_ELEMENTS", 300 * 7)
    torch.manual_seed(0)
    hidden = torch.randn(40, 32, requires_grad=True)
    weight = (torch.randn(300, 32) * 0.2).requires_grad_()
    b = (torch.randn(300) * 0.1).requires_grad_() if bias else None
    targets = torch.randint(0, 300, (40,))
    wanted = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1")
    args = (hidden, weight, b, targets, temperature, 64, softcap, scale, wanted)
    theirs, ours = ChunkedLogProbFunction.apply(*args), cpu_head.HeadLogProbs.apply(*args)
    for a, c in zip(theirs, ours):
        assert torch.allclose(a.float(), c.float(), atol=1e-5)
    inputs = [hidden, weight] + ([b] if bias else [])
    weights = torch.linspace(0, 1, 40)
    for objective in (lambda o: o[0].sum(), lambda o: (o[0] * weights).sum() + 0.3 * o[1].sum(),
                      lambda o: (o[1] * weights).sum()):  # log-probs, both, the entropy alone
        g_theirs = torch.autograd.grad(objective(ChunkedLogProbFunction.apply(*args)), inputs)
        g_ours = torch.autograd.grad(objective(cpu_head.HeadLogProbs.apply(*args)), inputs)
        for x, y in zip(g_theirs, g_ours):
            assert torch.allclose(x, y, atol=1e-5)


def test_cpu_log_prob_head_under_autocast_projects_in_bf16_both_ways():
    """Under bf16 autocast the projection (forward and the backward's recomputation) runs in bf16 even though the
    backward itself runs outside autocast: the gradient matches plain autograd over a bf16 projection."""
    from rlhf_nb.train import cpu_head

    torch.manual_seed(0)
    hidden = torch.randn(12, 32, requires_grad=True)
    weight, targets = torch.randn(100, 32) * 0.2, torch.randint(0, 100, (12,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = cpu_head.HeadLogProbs.apply(hidden, weight, None, targets, 1.0, 64, None, 1.0, ("log_probs",))[0]
    g_ours, = torch.autograd.grad(ours.sum(), hidden)
    z = (hidden.to(torch.bfloat16) @ weight.to(torch.bfloat16).t()).float()
    plain = torch.log_softmax(z, -1).gather(-1, targets[:, None])[:, 0]
    g_plain, = torch.autograd.grad(plain.sum(), hidden)
    assert torch.allclose(ours, plain, atol=1e-5)
    assert torch.allclose(g_ours, g_plain, atol=2e-2, rtol=2e-2)  # the backward's bf16 product
    assert not torch.allclose(g_ours, torch.autograd.grad(torch.log_softmax(hidden @ weight.t(), -1).gather(
        -1, targets[:, None]).sum(), hidden)[0], atol=1e-4)  # and not the fp32 one


def _dpo(tmp_path, name):
    torch.manual_seed(0)
    config = DPOConfig(output_dir=str(tmp_path / name), learning_rate=5e-3, per_device_train_batch_size=4, max_steps=8, logging_steps=1,
                       disable_tqdm=True)
    return train_dpo(models.load("tiny", lora=LORA), polite_pairs(32), config)


def test_bf16_dpo_and_reward_stay_within_noise_of_fp32_and_repeat_exactly(tmp_path, precision):
    runs = {}
    for name in ("fp32", "bf16", "bf16 again"):
        precision(name.split()[0])
        dpo = _dpo(tmp_path, name.replace(" ", "_"))
        torch.manual_seed(0)
        rm = models.load("tiny", head="reward", lora=LORA)
        train_reward_model(rm, polite_pairs(48), RewardConfig(output_dir=str(tmp_path / f"rm_{name}"), learning_rate=5e-3,
                                                              per_device_train_batch_size=8, num_train_epochs=2, disable_tqdm=True))
        acc = pair_accuracy(BTScorer(rm.model, rm.tokenizer), polite_pairs(32, offset=1000, seed=1))
        runs[name] = (dpo.series("loss"), dpo.series("rewards/accuracies"), acc.value)
    fp32, bf16, again = runs["fp32"], runs["bf16"], runs["bf16 again"]
    assert bf16 == again  # same settings, same numbers
    assert np.max(np.abs(np.array(fp32[0]) - np.array(bf16[0]))) < 0.05  # DPO loss curves agree within bf16 noise
    assert fp32[0][-1] < fp32[0][0] - 0.1 and bf16[0][-1] < bf16[0][0] - 0.1  # both learn
    assert abs(fp32[2] - bf16[2]) <= 0.1 and min(fp32[2], bf16[2]) >= 0.8  # held-out RM accuracy


def test_bf16_sft_and_ppo_learn_like_fp32(tmp_path, precision):
    records = [{"prompt": f"say a number {i}", "completion": str(i % 10)} for i in range(64)]
    out = {}
    for name in ("fp32", "bf16"):
        precision(name)
        torch.manual_seed(0)
        sft = train_sft(models.load("tiny", full_finetune=True), records,
                        SFTConfig(output_dir=str(tmp_path / f"sft_{name}"), learning_rate=5e-3, per_device_train_batch_size=16, num_train_epochs=3,
                                  disable_tqdm=True))
        torch.manual_seed(0)
        run = ppo.train_ppo(models.load("tiny", lora=LORA), [f"count {i}" for i in range(16)], digit_fraction,
                            ppo.PPOConfig(steps=50, batch_size=16, minibatch_size=8, ppo_epochs=4, max_new_tokens=12,
                                          learning_rate=1e-2, kl_coef=0.01, progress=False, seed=1))
        out[name] = (sft.series("loss"), run.series("reward"))
    for name, (sft_loss, reward) in out.items():
        assert sft_loss[-1] < 0.5 * sft_loss[0], name
        assert np.mean(reward[-10:]) > np.mean(reward[:10]) + 0.2, name
    assert abs(out["fp32"][0][-1] - out["bf16"][0][-1]) < 0.25 * out["fp32"][0][0]


def test_baseline_of_gives_the_frozen_model_the_training_precision_and_reloads_only_where_it_differs(monkeypatch,
                                                                                                      precision):
    """On a bf16 CPU under ``auto``, a frozen model serves samples and features in bf16; ``baseline_of`` gives the
    fp32 copy whose replies are compared with trained policies. Where the precisions agree it is the same object."""
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    precision("auto")
    monkeypatch.setenv("RLHF_NB_PRECISION", "auto")
    fast = models.load("tiny")
    assert fast.model.dtype == torch.bfloat16
    base = models.baseline_of(fast)
    assert base is not fast and base.model.dtype == torch.float32 and base.info["dtype"] == "float32"
    assert models.baseline_of(base) is base  # already at the training precision: no second load
    ids = torch.randint(3, 250, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # the same weights: the logits agree to bf16 rounding
        a, b = fast.model(ids).logits.float(), base.model(ids).logits
    assert torch.allclose(a, b, atol=0.1 * float(b.abs().max()))
    assert models.baseline_of(models.load("tiny", head="reward")).model.config.num_labels == 1  # the head is kept
    precision("fp32")  # no fast bf16 wanted: everything is fp32 already
    plain = models.load("tiny")
    assert models.baseline_of(plain) is plain
    with pytest.raises(ValueError, match="an adapter"):
        models.baseline_of(models.load("tiny", lora=LORA))


def test_notebooks_compare_trained_policies_with_the_frozen_arm_at_the_training_precision():
    """01's raw model, 04's start policy and 05's initial policy sample their data at the fast precision and are
    compared with the policies trained from them through ``models.baseline_of``; 02's untuned model, which only
    serves the comparison, is loaded with ``baseline=True`` (see the tests above for what both do)."""
    import nbformat
    from conftest import REPO

    for name, lines in [("01_hh_preference_models", ["raw = models.load(P.policy)",
                                                      "baseline = models.baseline_of(raw)",
                                                      'steps.evaluate_policy, baseline, "raw"']),
                        ("04_precise_rlaif", ["policy = models.load(P.policy)",
                                              "steps.run_arms(P, prompts, models.baseline_of(policy)"]),
                        ("05_online_iterative_dpo", ["initial = models.load(P.policy)",
                                                     "steps.run_arms(P, prompts, rms, models.baseline_of(initial)"])]:
        nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
        for line in lines:
            assert any(line in cell.source for cell in nb.cells), (name, line)
    steps = (REPO / "rlhf_nb" / "papers" / "passk" / "steps.py").read_text()
    assert 'untuned = load(size.untuned, baseline=size.tuned in TUNED_HERE)' in steps


def test_training_keeps_freed_memory_on_glibc_unless_the_environment_says_default(monkeypatch):
    import ctypes.util

    monkeypatch.setenv("RLHF_NB_MALLOC", "default")
    with device.freed_memory_kept() as kept:
        assert kept is False
    assert device.describe()["training_keeps_freed_memory"] is False
    monkeypatch.delenv("RLHF_NB_MALLOC")
    glibc = ctypes.util.find_library("c") == "libc.so.6"
    with device.freed_memory_kept() as kept:
        assert kept is glibc  # mallopt accepted both settings (no-op elsewhere)
    assert device.describe()["training_keeps_freed_memory"] is glibc


def test_a_block_inside_another_leaves_the_outer_setting_alone(monkeypatch):
    """Sampling inside a training run: the inner block neither hands pages back nor resets the thresholds."""
    calls = []
    monkeypatch.setattr(device, "trim_heap", lambda: calls.append("trim"))
    with device.freed_memory_kept() as outer:
        with device.freed_memory_kept() as inner:
            assert inner is outer
        assert calls == [] and device._kept_depth == [1, outer]
    assert calls == ["trim"] and device._kept_depth == [0, False]


def test_memory_freed_inside_the_block_goes_back_to_the_system_on_exit():
    def resident() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    if not device.keeps_freed_memory():
        pytest.skip("not glibc")
    with device.freed_memory_kept():
        blocks = [torch.ones(256, 1024 + i) for i in range(200)]  # ~220 MB from the heap
        kept = blocks[::10]
        del blocks
        inside = resident()  # what was freed is still held
    assert resident() < inside - 100e6 and all(float(b[0, 0]) == 1.0 for b in kept)
