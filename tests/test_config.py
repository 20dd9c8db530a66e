"""Parameter validation: every bad key, type or value fails fast with a message naming it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO

from rlhf_nb.core.errors import ParamError
from rlhf_nb.core.overrides import parse_override
from rlhf_nb.notebook.config import PROFILES, load_params, raw_params, validate
from rlhf_nb.run.runner import notebooks


@pytest.mark.parametrize("notebook", notebooks(REPO))
@pytest.mark.parametrize("profile", PROFILES)
def test_every_params_file_validates_for_every_profile(notebook, profile):
    params = validate(notebook, raw_params(notebook, profile, root=REPO), profile)
    assert params.seed >= 0


@pytest.mark.parametrize(
    "override, expected",
    [
        ({"sampling.temprature": 3}, "unknown parameter 'sampling.temprature' (did you mean 'temperature'?)"),
        ({"sampling.n": "3"}, "parameter 'sampling.n': Input should be a valid integer"),
        ({"sampling.n": 0}, "parameter 'sampling.n': Input should be greater than 0"),
        ({"sampling.top_p": 1.5}, "parameter 'sampling.top_p': Input should be less than or equal to 1"),
        ({"sampl": {"n": 2}}, "unknown parameter 'sampl' (did you mean 'sampling'?)"),
        ({"task_ids": []}, "parameter 'task_ids'"),
        ({"task_ids": ["HumanEval/999"]}, "parameter 'task_ids': unknown task id(s): HumanEval/999"),
        ({"model": "gpt-17"}, "parameter 'model': Value error, unknown model 'gpt-17'"),
        ({"humaneval": "no/such/file.jsonl"}, "parameter 'humaneval': data file"),
        ({"model": "no-such-org/no-such-model"}, "is a Hugging Face hub id, but the hub cannot be reached"),
    ],
)
def test_bad_parameters_are_named(override, expected):
    with pytest.raises(ParamError) as err:
        load_params("00_quickstart", "smoke", override, root=REPO)
    assert expected in str(err.value)
    assert str(err.value).startswith("00_quickstart [profile smoke]")


def test_unknown_profile_and_notebook():
    with pytest.raises(ParamError, match="unknown profile 'laptop'"):
        load_params("00_quickstart", "laptop", root=REPO)
    with pytest.raises(ParamError, match="no parameters file"):
        load_params("42_nothing", "cpu", root=REPO)


def test_overrides_are_parsed_as_yaml():
    assert parse_override("sampling.n=8") == ("sampling.n", 8)
    assert parse_override("task_ids=[HumanEval/1]") == ("task_ids", ["HumanEval/1"])
    assert parse_override("temperature=0.2") == ("temperature", 0.2)
    with pytest.raises(ParamError, match="key=value"):
        parse_override("n_samples")


def test_relative_data_paths_resolve_against_the_project_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # wherever the kernel runs
    data = REPO / "notebooks" / ".." / "data" / "HumanEvalPlus.jsonl.gz"  # HumanEval's fields, plus EvalPlus's
    _, params = load_params("00_quickstart", "smoke", {"humaneval": "data/HumanEvalPlus.jsonl.gz"}, root=REPO)
    assert params.humaneval == str(data.resolve())


def test_cli_rejects_bad_params_before_loading_the_ml_stack_and_writes_nothing(project):
    """Parameters are checked before torch, transformers or a notebook kernel is loaded (how fast that is on a
    given machine is a benchmark's business, not a unit test's)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "rlhf_nb.run.cli", "run", "00_quickstart",
                           "--profile", "smoke", "-p", "sampling.m=3"], capture_output=True, text=True, cwd=project,
                          check=False)
    assert done.returncode == 2
    assert "unknown parameter 'sampling.m'" in done.stderr and "00_quickstart" in done.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "json" in imported  # -X importtime did report
    heavy = {m for m in imported if m.split(".")[0] in ("torch", "transformers", "trl", "papermill", "nbclient")}
    assert not heavy, sorted(heavy)
    assert not (project / "runs").exists()


def test_a_yaml_override_of_one_key_keeps_the_sections_other_defaults():
    _, params = load_params("02_passk_model_size", "cpu", {"sampling.n": 4}, root=REPO)
    assert params.sampling.n == 4 and params.sampling.temperature == 0.8 and params.sampling.top_p == 0.95


def test_trl_extras_are_checked_against_trls_config_before_a_run():
    from rlhf_nb.notebook.params import check_trl_extras

    _, params = load_params("02_passk_model_size", "smoke", {"dpo.extra": {"betta": 0.3, "warmup_steps": 2}}, root=REPO)
    problems = check_trl_extras(params)
    assert len(problems) == 1 and "dpo.extra.betta" in problems[0] and "did you mean 'beta'" in problems[0]


def _fields(schema, prefix=""):
    from pydantic import BaseModel

    for name, info in schema.model_fields.items():
        yield f"{prefix}{name}", info
        for inner in (info.annotation, *getattr(info.annotation, "__args__", ())):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                yield from _fields(inner, f"{prefix}{name}.")


@pytest.mark.parametrize("notebook", notebooks(REPO))
def test_every_data_and_model_parameter_is_marked_so_preflight_checks_it(notebook):
    """An optional source written `DataSource | None` loses the mark (the union hides it): its missing file then
    failed only after the kernel had started. Every data or model field must carry its kind at the field level."""
    from rlhf_nb.notebook.registry import params_class

    for key, info in _fields(params_class(notebook)):
        text = repr(info.annotation)
        kind = (info.json_schema_extra or {}).get("kind") if isinstance(info.json_schema_extra, dict) else None
        if "_data_source" in text:
            assert kind == "data", f"{notebook}: {key} is a data source that preflight does not check"
        if "_model_name" in text:
            assert kind == "model", f"{notebook}: {key} is a model that preflight does not check"


def test_a_missing_optional_data_file_fails_before_the_kernel_starts():
    with pytest.raises(ParamError, match="parameter 'hh': data file '/nope/hh.jsonl.gz' does not exist"):
        load_params("05_online_iterative_dpo", "cpu", {"hh": "/nope/hh.jsonl.gz"}, root=REPO)
    with pytest.raises(ParamError, match="parameter 'items.humaneval_plus': data file '/nope/he.jsonl.gz' does not"):
        load_params("03_data_scaling_rlhf", "cpu", {"items.humaneval_plus": "/nope/he.jsonl.gz"}, root=REPO)
