"""rlhf_nb.lm.models: aliases, the tiny model, sha checks, clear errors, LoRA and 4-bit."""

from __future__ import annotations

import hashlib

import pytest
import torch

from rlhf_nb.core.packages import PACKAGED_MODELS, PackagedModel, Part
from rlhf_nb.lm import models


def test_classify_names():
    assert models.classify("tiny") == "tiny"
    assert models.classify("smollm2-135m-instruct") == "packaged"
    assert models.classify("Qwen/Qwen2.5-0.5B-Instruct") == "hub"
    with pytest.raises(models.ModelError, match="unknown model 'smollm3'.*smollm2-135m-instruct"):
        models.classify("smollm3")


def test_tiny_model_loads_chats_and_is_identical_across_loads():
    tok, model = models.load("tiny")
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert text.endswith("<|im_start|>assistant\n")
    ids = tok(text, return_tensors="pt")
    _, again = models.load("tiny")
    with torch.no_grad():
        assert torch.equal(model(**ids).logits, again(**ids).logits)
    assert models.count_parameters(model)["total"] < 200_000


def test_hub_id_offline_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.ModelError, match="hub id, but the hub cannot be reached.*packaged alias"):
        models.load("some-org/some-model-that-is-not-cached")


def _fake_model(tmp_path, content: bytes, sha: str) -> PackagedModel:
    pkg = tmp_path / "fake_model_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "model.gguf").write_bytes(content)
    return PackagedModel("fake-model", "org/fake", (Part("fake_model_pkg", "fake-model-pkg==1.0", "model.gguf"),),
                         sha, 1, "test")


def test_corrupted_gguf_fails_with_the_model_name_and_a_fix(tmp_path, monkeypatch):
    spec = _fake_model(tmp_path, b"not the real weights", "0" * 64)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(PACKAGED_MODELS, spec.alias, spec)
    monkeypatch.setenv("RLHF_NB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(models.ModelError, match=r"'fake-model': sha256 mismatch.*rlhf-nb models fetch fake-model --force"):
        models.prepare("fake-model", install=False)
    assert not (tmp_path / "cache" / "models" / "fake-model").exists(), "nothing half-converted is left behind"


def test_split_gguf_parts_are_hashed_as_one_file(tmp_path):
    parts = [tmp_path / "a.bin", tmp_path / "b.bin"]
    parts[0].write_bytes(b"hello ")
    parts[1].write_bytes(b"world")
    spec = PackagedModel("x", "o/x", (), hashlib.sha256(b"hello world").hexdigest(), 1, "")
    joined = tmp_path / "joined"
    assert models.verify_gguf(spec, parts, copy_to=joined) == spec.gguf_sha256
    assert joined.read_bytes() == b"hello world"


def test_missing_package_says_how_to_fetch(monkeypatch):
    spec = PackagedModel("ghost", "o/ghost", (Part("no_such_module_xyz", "ghost==1", "f.gguf"),), "0" * 64, 1, "")
    monkeypatch.setitem(PACKAGED_MODELS, "ghost", spec)
    with pytest.raises(models.ModelError, match="rlhf-nb models fetch ghost"):
        models.prepare("ghost", install=False)


def test_lora_adapter_trains_only_the_adapter_and_can_be_disabled():
    tok, model = models.load("tiny", lora={"r": 4, "alpha": 8})
    counts = models.count_parameters(model)
    assert 0 < counts["trainable"] < counts["total"] / 5
    ids = tok("def add(a, b):", return_tensors="pt")
    with torch.no_grad():
        for p in model.parameters():  # move the adapter away from its zero init
            if p.requires_grad:
                p.add_(0.1)
        with_adapter = model(**ids).logits
        with model.disable_adapter():
            base = model(**ids).logits
    assert not torch.allclose(with_adapter, base), "the reference pass (adapter off) differs from the policy"


def test_merged_lora_computes_what_the_adapter_did():
    loaded = models.load("tiny", lora={"r": 4, "alpha": 8})
    ids = loaded.tokenizer("def add(a, b):", return_tensors="pt")
    loaded.model.eval()  # no LoRA dropout
    with torch.no_grad():
        for p in loaded.model.parameters():
            if p.requires_grad:
                p.add_(0.1)
        before = loaded.model(**ids).logits.float()
        folded = models.merged(loaded)
        after = folded.model(**ids).logits.float()
    assert folded.info["merged_lora"]
    assert not hasattr(folded.model, "disable_adapter"), "the adapter is folded in, not kept beside the weights"
    assert torch.allclose(before, after, atol=2e-2, rtol=1e-2)
    assert models.merged(folded) is folded  # nothing left to merge


def test_merged_while_reads_a_policy_in_training_merged_then_gives_the_adapter_back():
    loaded = models.load("tiny", lora={"r": 4, "alpha": 8})
    ids = loaded.tokenizer("def add(a, b):", return_tensors="pt")
    loaded.model.eval()
    with torch.no_grad():
        for p in loaded.model.parameters():
            if p.requires_grad:
                p.add_(0.1)
        base = {n: p.detach().clone() for n, p in loaded.model.named_parameters() if "base_layer" in n}
        before = loaded.model(**ids).logits.float()
        with models.merged_while(loaded) as folded:
            assert folded is loaded and all(m.merged for m in loaded.model.modules() if hasattr(m, "merged"))
            inside = loaded.model(**ids).logits.float()
        after = loaded.model(**ids).logits.float()
    assert torch.allclose(before, inside, atol=2e-2, rtol=1e-2)  # the same model, read merged
    assert not any(m.merged for m in loaded.model.modules() if hasattr(m, "merged"))  # unfolded again
    assert any(p.requires_grad for p in loaded.model.parameters())  # still trainable
    for name, p in loaded.model.named_parameters():
        if name in base:  # the base weights are back, up to a unit in the last place
            assert torch.allclose(p, base[name], rtol=1e-6, atol=1e-6), name
    assert torch.allclose(before, after, atol=1e-4)
    plain = models.load("tiny")
    with models.merged_while(plain) as same:
        assert same is plain  # nothing to merge


def test_reward_head_outputs_one_score_per_sequence():
    tok, rm = models.load("tiny", head="reward")
    batch = tok(["a good answer", "bad"], return_tensors="pt", padding=True)
    assert rm(**batch).logits.shape == (2, 1)


def test_qlora_keeps_gradients_after_an_evaluation_pass():
    """DESIGN.md: on AVX512-BF16 CPUs a no-grad forward repacks 4-bit weights and later gradients vanish."""
    pytest.importorskip("bitsandbytes")
    tok, model = models.load("tiny", load_in_4bit=True, lora={"r": 4})
    import bitsandbytes as bnb

    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    ids = tok("def add(a, b): return a + b", return_tensors="pt").to(next(model.parameters()).device)
    model.eval()
    with torch.no_grad():
        model(**ids)  # the evaluation pass that used to break training
    model.train()
    loss = model(**ids, labels=ids["input_ids"]).loss
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.slow
def test_packaged_smollm2_is_verified_converted_and_generates():
    tok, model = models.load("smollm2-135m-instruct")
    spec = PACKAGED_MODELS["smollm2-135m-instruct"]
    rows = {r["model"]: r for r in models.status_rows(verify=True)}
    assert rows["smollm2-135m-instruct"]["sha256"] == "ok"
    assert abs(models.count_parameters(model)["total"] - spec.n_params) / spec.n_params < 0.01
    ids = tok.apply_chat_template([{"role": "user", "content": "What is 2 + 2?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=24, do_sample=False)
    assert "4" in tok.decode(out[0, ids["input_ids"].shape[1]:])
