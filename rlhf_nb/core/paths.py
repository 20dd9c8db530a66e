"""Where the project is: the folder holding ``params/`` and ``notebooks/``."""

from __future__ import annotations

import os
from pathlib import Path

from rlhf_nb.core.errors import ParamError


def project_root(start: Path | None = None) -> Path:
    """The folder holding ``params/`` and ``notebooks/``: ``$RLHF_NB_ROOT``, else searched upwards from cwd."""
    if env := os.environ.get("RLHF_NB_ROOT"):
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "params").is_dir() and (folder / "notebooks").is_dir():
            return folder
    package_parent = Path(__file__).resolve().parent.parent  # editable install / source checkout
    if (package_parent / "params").is_dir():
        return package_parent
    raise ParamError(f"no rlhf-nb project (a folder with params/ and notebooks/) at or above {here}")
