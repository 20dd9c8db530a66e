"""benchmarks/gpu_check.py: the one prepared call that runs every notebook's `gpu` path on a lent GPU machine.

CI has no GPU, so what is tested here is what the call depends on: every notebook is in the check, its parameters
validate with nothing left on the hub, the carried wheels are complete, and a run through the script works end to
end on the tiny model."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from rlhf_nb.lm.models import classify
from rlhf_nb.notebook.config import load_params
from rlhf_nb.notebook.params import data_fields, model_fields
from rlhf_nb.run.runner import notebooks

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_swap(spec):
    return {hub_id: "tiny" for shape in spec["shapes"].values() for hub_id in shape["ids"]}


def test_every_notebook_is_checked_and_none_of_its_gpu_models_or_data_is_left_on_the_hub(check, tmp_path):
    spec = check.load_spec()
    assert set(spec["notebooks"]) == set(notebooks(ROOT))  # a new notebook must join the check
    check.write_standins(spec, tmp_path)
    for notebook in spec["notebooks"]:
        _, gpu = load_params(notebook, "gpu", root=ROOT, check_inputs=False)
        hub_models = {v for _, v in model_fields(gpu) if classify(v) == "hub"}
        assert hub_models, notebook  # the gpu profile names hub models, each of which has a shape to build
        assert hub_models <= set(_tiny_swap(spec)), notebook
        overrides = check.overrides_for(notebook, spec, _tiny_swap(spec), tmp_path, ROOT)
        _, params = load_params(notebook, "gpu", overrides, ROOT)  # validates, and finds every data file
        assert {v for _, v in model_fields(params)} == {"tiny"}, notebook
        assert "hub" not in {v for _, v in data_fields(params)}, notebook


def test_counts_come_from_smoke_and_models_and_adapters_from_gpu(check, tmp_path):
    spec = check.load_spec()
    check.write_standins(spec, tmp_path)
    smoke = check.smoke_counts("02_passk_model_size", ROOT, ["lora"])
    assert "sizes" not in smoke and "lora" not in smoke and smoke["eval_tasks"] == 3  # smoke's sizes name tiny models
    overrides = check.overrides_for("02_passk_model_size", spec, _tiny_swap(spec), tmp_path, ROOT)
    assert overrides["eval_tasks"] == 3 and overrides["sampling"]["n"] == 2  # smoke's counts
    assert [s["untuned_format"] for s in overrides["sizes"]] == ["completion"] * 4  # gpu's base checkpoints
    assert overrides["mbpp"] == f"{tmp_path}/mbpp.jsonl" and overrides["pass1_sampling"]["n"] == 2
    _, smoke01 = load_params("01_hh_preference_models", "smoke", root=ROOT, check_inputs=False)
    overrides = check.overrides_for("01_hh_preference_models", spec, _tiny_swap(spec), tmp_path, ROOT)
    _, params = load_params("01_hh_preference_models", "gpu", overrides, ROOT)
    assert smoke01.lora.r == 4 and params.lora.r != 4  # the adapter keeps its gpu shape
    assert params.harmless_train == smoke01.harmless_train and params.pm_sizes == ["tiny", "tiny"]
    swap = {hub_id: str(tmp_path / "models" / name)
            for name, shape in spec["shapes"].items() for hub_id in shape["ids"]}
    with pytest.raises(Exception, match="models/qwen2.5-0.5b"):  # shape folders are built on the GPU machine first
        check.overrides_for("02_passk_model_size", spec, swap, tmp_path, ROOT)


def test_a_missing_stand_in_is_named_before_anything_runs(check, tmp_path):
    spec = check.load_spec()
    check.write_standins(spec, tmp_path)
    del spec["notebooks"]["05_online_iterative_dpo"]["hh"]
    with pytest.raises(ValueError, match=r"05_online_iterative_dpo: hh would come from the hub"):
        check.overrides_for("05_online_iterative_dpo", spec, _tiny_swap(spec), tmp_path, ROOT)
    spec = check.load_spec()
    swap = _tiny_swap(spec)
    del swap["Qwen/Qwen2.5-1.5B-Instruct"]
    with pytest.raises(ValueError, match="parameter 'policy': model 'Qwen/Qwen2.5-1.5B-Instruct' is a Hugging Face"):
        check.overrides_for("05_online_iterative_dpo", spec, swap, tmp_path, ROOT)


#: parameters (billions) the model cards give: Qwen2.5 0.49 / 1.54 / 3.09 / 7.61, SmolLM2-135M 0.1345 (its GGUF here)
PUBLISHED_B = {"smollm2-135m": 0.1345, "qwen2.5-0.5b": 0.49, "qwen2.5-1.5b": 1.54, "qwen2.5-3b": 3.09,
               "qwen2.5-7b": 7.61}


def test_each_shape_has_its_published_parameter_count(check):
    """The shapes are typed in from the models' configs: a wrong number would check another model's memory."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    shapes = check.load_spec()["shapes"]
    assert set(shapes) == set(PUBLISHED_B)
    for name, shape in shapes.items():
        with torch.device("meta"):  # no memory: shapes only
            model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**shape["config"]))
        billions = sum(p.numel() for p in model.parameters()) / 1e9
        assert abs(billions / PUBLISHED_B[name] - 1) < 0.01, (name, billions)


def _wheel(path: Path, requires: list[str], libs: list[str] = ()) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pkg-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n"
                    + "".join(f"Requires-Dist: {r}\n" for r in requires))
        for lib in libs:
            zf.writestr(f"bitsandbytes/{lib}", b"\0" * 100)
    return path


def test_bitsandbytes_keeps_only_its_cpu_and_cuda_13_0_libraries(check, tmp_path):
    libs = [f"libbitsandbytes_{v}.so" for v in ("cpu", "cuda118", "cuda128", "cuda130", "cuda132", "rocm64")]
    wheel = _wheel(tmp_path / "bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl", [], libs)
    check._trim_bitsandbytes(wheel)
    with zipfile.ZipFile(wheel) as zf:
        kept = sorted(n.split("/")[-1] for n in zf.namelist() if n.endswith(".so"))
        assert zf.read("pkg-1.0.dist-info/METADATA").startswith(b"Metadata-Version")
    assert kept == ["libbitsandbytes_cpu.so", "libbitsandbytes_cuda130.so"]


def test_requirements_are_read_for_python_3_12_on_linux_and_unmet_ones_named(check, tmp_path):
    a = _wheel(tmp_path / "alpha-1.0-py3-none-any.whl",
               ["beta>=1", "tomli; python_version < '3.11'", "pywin32; sys_platform == 'win32'",
                "pytest; extra == 'dev'", "numpy>=2", "gamma_pkg"])
    b = _wheel(tmp_path / "beta-1.0-py3-none-any.whl", [])
    assert check.requirements_of(a) == ["beta", "numpy", "gamma-pkg"]
    assert check.unmet([a, b]) == {a.name: ["gamma-pkg"]}  # beta is carried, numpy is in the image


def test_the_carried_wheels_are_pinned_to_the_stack_installed_here(check):
    """The check must run the stack the tests ran on: its pins are read from this environment, not typed in."""
    from importlib import metadata

    pinned = dict(pin.split("==") for pin in check.pins(check.WHEELS + check.SOURCE_ONLY))
    assert pinned["trl"] == metadata.version("trl") and pinned["transformers"] == "5.23.0"  # pyproject's pin
    assert len(pinned) == len(check.WHEELS + check.SOURCE_ONLY)
    assert check.check_installed() == []  # every carried package's own requirements are met here


def test_one_notebook_runs_through_the_check_end_to_end_on_cpu(project, tmp_path):
    out = tmp_path / "check.jsonl"
    done = subprocess.run([sys.executable, str(SCRIPT), "--shapes", "tiny", "--only", "00", "--root", str(project),
                           "--work", str(tmp_path / "work"), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    first, row = [json.loads(line) for line in out.read_text().splitlines()]
    env = first["environment"]
    assert env["unmet_requirements"] == [] and env["packages"]["trl"] == "1.16.0" and env["device"] == "cpu"
    assert env["sandbox_layers"]  # what isolates model-written code on the machine the check ran on
    assert row["notebook"] == "00_quickstart" and row["status"] == "ok" and row["error"] is None
    assert row["peak_memory"]["rss_mb"] > 100 and row["peak_memory"]["cuda_allocated_mb"] is None
    assert row["slowest"] and all(cell["seconds"] >= 1 for cell in row["slowest"])
    params = (project / "runs" / "00_quickstart" / "gpu" / "params.yaml").read_text()
    assert "load_in_4bit: true" in params and "model: tiny" in params  # gpu's 4-bit path, on the tiny model
    assert "00_quickstart: ok in" in done.stdout


@pytest.mark.slow
def test_every_notebook_runs_its_gpu_path_through_the_check_on_cpu(project, tmp_path):
    """All seven notebooks' gpu profiles, tiny models, smoke counts: 3-5 min on 2 cores."""
    out = tmp_path / "check.jsonl"
    done = subprocess.run([sys.executable, str(SCRIPT), "--shapes", "tiny", "--root", str(project),
                           "--work", str(tmp_path / "work"), "--out", str(out)],
                          capture_output=True, text=True, timeout=1200)
    rows = {row["notebook"]: row for row in map(json.loads, out.read_text().splitlines()) if "notebook" in row}
    assert set(rows) == set(notebooks(ROOT))
    assert {nb: (r["status"], r["error"]) for nb, r in rows.items()} == {nb: ("ok", None) for nb in rows}
    assert done.returncode == 0
