"""Notebook parameters: ``params/NN_name.yaml`` -> validated, typed parameters for one profile.

A params file looks like::

    notebook: 00_quickstart
    common:            # shared by every profile
      seed: 0
    profiles:
      smoke: {model: tiny, n_samples: 2}
      cpu:   {model: smollm2-135m-instruct}
      gpu:   {model: HuggingFaceTB/SmolLM2-135M-Instruct, load_in_4bit: true}

Each notebook's schema is its paper's ``Params`` (``rlhf_nb/papers/<paper>/params.py``, built from
:mod:`rlhf_nb.notebook.params`); the YAML holds only overrides of its defaults. Validation is strict (no unknown
keys, no silent type coercion) and fast (no torch import unless the profile is ``auto``), and every
error names the notebook, the profile and the key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from rlhf_nb.core.errors import ParamError
from rlhf_nb.core.paths import project_root
from rlhf_nb.core.text import did_you_mean

PROFILES = ("smoke", "cpu", "gpu")


def default_profile() -> str:
    """``$RLHF_NB_PROFILE`` if set, else ``gpu`` when CUDA is available, else ``cpu``."""
    if env := os.environ.get("RLHF_NB_PROFILE"):
        if env not in PROFILES:
            raise ParamError(f"RLHF_NB_PROFILE={env!r} is not a profile ({', '.join(PROFILES)})")
        return env
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def resolve_profile(profile: str | None) -> str:
    if profile in (None, "", "auto"):
        return default_profile()
    if profile not in PROFILES:
        raise ParamError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)} (or 'auto')")
    return profile


def params_file(notebook: str, root: Path | None = None) -> Path:
    return (root or project_root()) / "params" / f"{notebook}.yaml"


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if "." in key:  # dotted override reaches into a nested mapping
            head, rest = key.split(".", 1)
            out[head] = _merge(dict(out.get(head) or {}), {rest: value})
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def raw_params(notebook: str, profile: str, overrides: dict[str, Any] | None = None, root: Path | None = None) -> dict[str, Any]:
    """The merged mapping common + profile + overrides, before validation."""
    path = params_file(notebook, root)
    if not path.is_file():
        raise ParamError(f"{notebook}: no parameters file {path}")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ParamError(f"{path}: not valid YAML ({err})") from err
    unknown = set(doc) - {"notebook", "description", "common", "profiles"}
    if unknown:
        raise ParamError(f"{path}: unknown top-level key(s) {sorted(unknown)} (allowed: notebook, description, common, profiles)")
    if doc.get("notebook") != notebook:
        raise ParamError(f"{path}: 'notebook' is {doc.get('notebook')!r}, expected {notebook!r}")
    profiles = doc.get("profiles") or {}
    missing = [p for p in PROFILES if p not in profiles]
    if missing or set(profiles) - set(PROFILES):
        raise ParamError(f"{path}: profiles must be exactly {', '.join(PROFILES)} (missing {missing}, "
                         f"unknown {sorted(set(profiles) - set(PROFILES))})")
    return _merge(_merge(doc.get("common") or {}, profiles[profile] or {}), overrides or {})


def _describe(err: dict[str, Any], fields: list[str]) -> str:
    key = ".".join(str(p) for p in err["loc"]) or "(root)"
    if err["type"] == "extra_forbidden":
        hint = did_you_mean(str(err["loc"][-1]), fields) or f" (known: {', '.join(fields)})"
        return f"unknown parameter {key!r}{hint}"
    if not err["loc"]:  # a rule across several parameters
        return str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "missing":
        return f"parameter {key!r} is required"
    return f"parameter {key!r}: {err['msg']} (got {err.get('input')!r})"


def validate(notebook: str, raw: dict[str, Any], profile: str) -> BaseModel:
    from rlhf_nb.notebook.registry import notebooks, params_class

    if notebook not in notebooks():
        raise ParamError(f"notebook {notebook!r} has no parameter schema (known: {', '.join(notebooks())})")
    schema = params_class(notebook)
    try:
        return schema.model_validate(_merge(_section_defaults(schema), raw))
    except ValidationError as err:
        lines = [_describe(e, _fields_at(schema, e["loc"])) for e in err.errors()]
        raise ParamError(f"{notebook} [profile {profile}]: " + "; ".join(lines)) from None


def _section_defaults(schema: type[BaseModel]) -> dict[str, Any]:
    """Defaults of nested sections as mappings, so that a YAML override of one key (``sampling: {n: 20}``) keeps
    the section's other defaults instead of replacing the whole section."""
    out = {}
    for name, field in schema.model_fields.items():
        if isinstance(field.default, BaseModel):
            out[name] = field.default.model_dump(exclude_unset=False)
    return out


def _fields_at(schema: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (nested) model an error location points into, for "did you mean"."""
    model: Any = schema
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            break
        annotation = field.annotation
        inner = getattr(annotation, "__args__", None)
        candidates = [annotation, *(inner or ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), model)
    return list(getattr(model, "model_fields", {}))


def _set(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b[2].c`` in a nested mapping (as produced by :func:`rlhf_nb.notebook.params.fields_of_kind`)."""
    import re

    parts = [p for p in re.split(r"\.|\[(\d+)\]", dotted) if p]
    node: Any = raw
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    last = parts[-1]
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value


def load_params(
    notebook: str, profile: str | None = None, overrides: dict[str, Any] | None = None, root: Path | None = None,
    check_inputs: bool = True,
) -> tuple[str, BaseModel]:
    """Resolve the profile and return ``(profile, params)``; with ``check_inputs`` also check that
    data files exist and models are available (cheap checks, nothing is loaded)."""
    from rlhf_nb.notebook.params import data_fields

    profile = resolve_profile(profile)
    root = root or project_root()
    raw = raw_params(notebook, profile, overrides, root)
    params = validate(notebook, raw, profile)
    relative = [(key, value) for key, value in data_fields(params)
                if value not in ("hub", "package", "bundled") and not Path(value).expanduser().is_absolute()]
    if relative:  # data paths in params files are relative to the project root, wherever the kernel runs
        raw = params.model_dump()
        for key, value in relative:
            _set(raw, key, str((root / value).resolve()))
        params = validate(notebook, raw, profile)
    if check_inputs:
        preflight(notebook, profile, params)
    return profile, params


def preflight(notebook: str, profile: str, params: BaseModel) -> None:
    """Existence of data files and availability of models named in the params."""
    from rlhf_nb.core.errors import DataError
    from rlhf_nb.lm.models import ModelError, check_available
    from rlhf_nb.notebook.params import data_fields, model_fields

    problems = []
    for key, value in data_fields(params):
        if value not in ("hub", "package", "bundled") and not Path(value).expanduser().is_file():
            problems.append(f"parameter {key!r}: data file {value!r} does not exist (use a local copy, or 'hub')")
    for key, value in model_fields(params):
        try:
            check_available(value)
        except (ModelError, DataError) as err:
            problems.append(f"parameter {key!r}: {err}")
    check = getattr(params, "check", None)  # a paper's own cheap cross-checks (e.g. task ids exist)
    if callable(check):
        problems += check()
    if problems:
        raise ParamError(f"{notebook} [profile {profile}]: " + "; ".join(problems))
