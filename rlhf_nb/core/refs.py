"""Functions named by a string (``"package.module:function"``), as parameters and configs name routines."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def import_ref(ref: str) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)
