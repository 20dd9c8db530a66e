"""One folder per paper, each with the same four modules:

* ``params.py`` - ``Params``: the notebook's parameters (pydantic, nested sections built from the routines'
  configs, see :mod:`rlhf_nb.params`); ``params/NN_name.yaml`` holds only overrides of its defaults.
* ``steps.py`` - the experiment's steps: functions that take parameters and data and return typed results,
  never mutating their inputs.
* ``claims.py`` - ``claims(results) -> list[Claim]``: pure, reads only a saved ``results.json`` (no model), so
  ``rlhf-nb claims`` and ``rlhf-nb report`` recompute every verdict with the current code.
* ``figures.py`` - ``FIGURES``: figures registered by name, drawn from ``results.json`` alone.

Adding a paper means one folder here, one notebook, one YAML file, and one line in :data:`NOTEBOOKS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

#: notebook name -> package under rlhf_nb.papers
NOTEBOOKS: dict[str, str] = {
    "00_quickstart": "quickstart",
    "01_hh_preference_models": "hh_rlhf",
    "02_passk_model_size": "passk",
    "03_data_scaling_rlhf": "data_scaling",
    "04_precise_rlaif": "precise_rlaif",
    "05_online_iterative_dpo": "rlhf_workflow",
    "06_feedback_blender": "feedback_blender",
}


def _module(notebook: str, part: str) -> ModuleType:
    if notebook not in NOTEBOOKS:
        raise KeyError(f"no paper package for notebook {notebook!r} (known: {', '.join(NOTEBOOKS)})")
    return importlib.import_module(f"rlhf_nb.papers.{NOTEBOOKS[notebook]}.{part}")


def params_class(notebook: str) -> type:
    """The notebook's ``Params`` model (imports only the light ``params`` module)."""
    return _module(notebook, "params").Params


def claims_function(notebook: str) -> Callable[[dict[str, Any]], list[Any]] | None:
    """The notebook's pure ``claims(results)``, or None for notebooks that make no claims (the quickstart)."""
    try:
        return _module(notebook, "claims").claims
    except ModuleNotFoundError as err:
        if err.name and err.name.endswith(".claims"):
            return None
        raise


def figures(notebook: str) -> dict[str, Callable[[dict[str, Any]], Any]]:
    """The notebook's figures by name."""
    return _module(notebook, "figures").FIGURES
