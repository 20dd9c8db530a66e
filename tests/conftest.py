"""Shared fixtures. The fast tier runs offline on models the tests build themselves."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Algorithm tests on the tiny random model run in fp32: its outputs are sensitive enough to bf16 rounding that a
# toy learning curve may change shape. tests/test_precision.py covers bf16 against fp32 explicitly.
os.environ.setdefault("RLHF_NB_PRECISION", "fp32")

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"


def bundled(name: str) -> Path:
    """A public data file the project ships in data/ (see data/README.md); a missing one fails, never skips."""
    path = DATA / name
    assert path.is_file(), f"{path} is missing: data/ ships it (restore it with `git checkout -- data/`)"
    return path


def assert_report_recomputes(results: dict) -> None:
    """What a notebook run saved as a cache, its claims, findings, tables and metrics, is what ``rlhf-nb report``
    recomputes from the run's saved data with the current code (a reader that the notebook and the report call
    differently shows here)."""
    from rlhf_nb.run import report

    assert [c.to_dict() for c in report.claims_of(results) or []] == results["claims"]
    assert report.findings_of(results) == results["findings"]
    assert list(report.tables_of(results).items()) == list(results["tables"].items())  # the report's order too
    assert report.metrics_of(results) == results["metrics"]


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    import torch

    torch.set_num_threads(1)


@pytest.fixture()
def project(tmp_path, monkeypatch) -> Path:
    """A scratch copy of the project (notebooks/, params/, data/) so runs never touch the repo's runs/."""
    for name in ("notebooks", "params"):
        shutil.copytree(REPO / name, tmp_path / name)
    (tmp_path / "data").symlink_to(REPO / "data")  # the bundled public data files
    monkeypatch.setenv("RLHF_NB_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path
