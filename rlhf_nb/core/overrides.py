"""``key=value`` overrides as the command line and the training scripts take them."""

from __future__ import annotations

from typing import Any

import yaml

from rlhf_nb.core.errors import ParamError


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` from the command line; the value is read as YAML (``n=3`` -> int, ``x=[1,2]`` -> list)."""
    if "=" not in text:
        raise ParamError(f"override {text!r} is not of the form key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError as err:
        raise ParamError(f"override {key}: value {raw!r} is not valid YAML ({err})") from err
    return key.strip(), value
