"""The one list of notebooks: every package under ``rlhf_nb/papers/`` names its notebook (``NOTEBOOK`` in its
``__init__.py``), and that is the registry the runner, the CLI, the report, the GPU check and the tests read. Adding a
paper means one folder there, one notebook in ``notebooks/`` and one YAML file in ``params/``; nothing else lists it.

Papers are found by scanning ``rlhf_nb.papers``'s path and imported by name: the notebook layer reads the papers
through this module without importing them statically. ``$RLHF_NB_PAPERS`` (folders separated by ``os.pathsep``)
adds paper packages that live outside the package, e.g. a lab's own papers beside a clone.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable
from types import ModuleType
from typing import Any

PAPERS = "rlhf_nb.papers"
_added: list[str] = []  # folders $RLHF_NB_PAPERS put on the papers' search path


def papers() -> dict[str, str]:
    """notebook name -> its paper package (``rlhf_nb.papers.<name>``), in notebook order."""
    root = importlib.import_module(PAPERS)
    wanted = [f for f in os.environ.get("RLHF_NB_PAPERS", "").split(os.pathsep) if f]
    for folder in [f for f in _added if f not in wanted]:  # the search path follows the variable as it is now
        root.__path__.remove(folder)
        _added.remove(folder)
    for folder in wanted:
        if folder not in root.__path__:
            root.__path__.append(folder)
            _added.append(folder)
    found: dict[str, str] = {}
    for info in pkgutil.iter_modules(root.__path__):
        if not info.ispkg:
            continue
        package = f"{PAPERS}.{info.name}"
        notebook = getattr(importlib.import_module(package), "NOTEBOOK", None)
        if not isinstance(notebook, str):
            raise ValueError(f"{package} names no notebook: its __init__.py needs NOTEBOOK = '<NN_name>'")
        if notebook in found:
            raise ValueError(f"{package} and {found[notebook]} both name notebook {notebook!r}")
        found[notebook] = package
    return dict(sorted(found.items()))


def notebooks() -> list[str]:
    return list(papers())


def paper_module(notebook: str, part: str) -> ModuleType:
    registered = papers()
    if notebook not in registered:
        raise KeyError(f"no paper package names notebook {notebook!r} (known: {', '.join(registered)})")
    return importlib.import_module(f"{registered[notebook]}.{part}")


def params_class(notebook: str) -> type:
    """The notebook's ``Params`` model (imports only the light ``params`` module)."""
    return paper_module(notebook, "params").Params


def _paper_function(notebook: str, part: str, name: str) -> Callable[[dict[str, Any]], Any] | None:
    """Function ``name`` of the paper's module ``part``, or None where the paper has no such module or function."""
    try:
        module = paper_module(notebook, part)
    except ModuleNotFoundError as err:
        if err.name and err.name.endswith(f".{part}"):
            return None
        raise
    return getattr(module, name, None)


def claims_function(notebook: str) -> Callable[[dict[str, Any]], list[Any]] | None:
    """The notebook's pure ``claims(results)``, or None for notebooks that make no claims (the quickstart)."""
    return _paper_function(notebook, "claims", "claims")


def readers_function(notebook: str, name: str) -> Callable[[dict[str, Any]], Any] | None:
    """The notebook's pure ``findings(results)``, ``tables(results)`` or ``metrics(results)`` (``name``) from its
    paper's ``readers`` module: what the notebook showed, recomputed from saved results. None where the paper has no
    such function."""
    return _paper_function(notebook, "readers", name)


def figures(notebook: str) -> dict[str, Callable[[dict[str, Any]], Any]]:
    """The notebook's figures by name."""
    return paper_module(notebook, "figures").FIGURES
