"""Where a run's files live: ``runs/<notebook>/<profile>/`` holds the executed notebook, ``params.yaml``,
``env.json``, ``results.json`` and the figures; a run is staged beside it and swapped in whole; finished stages are kept
in ``runs/<notebook>/<profile>.stages/``. :func:`fingerprint` says what a run's numbers depend on."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

RESULTS = "results.json"
PARAMS = "params.yaml"
ENV = "env.json"
STAGES = "stages"  # runs/<notebook>/<profile>.stages/: finished stages' outputs, kept across runs


def run_dir(root: Path, notebook: str, profile: str) -> Path:
    return root / "runs" / notebook / profile


def swap_in(staging: Path, final: Path) -> None:
    """Replace ``final`` by ``staging`` with two renames; the old results survive until the new ones are in."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        final.rename(old)
    staging.rename(final)
    shutil.rmtree(old, ignore_errors=True)


_source_hash: str | None = None


def source_hash() -> str:
    """A hash of the package's own source (every ``.py`` under ``rlhf_nb/``): a stage made by other code is never
    reused."""
    global _source_hash
    if _source_hash is None:
        digest = hashlib.sha256()
        package = Path(__file__).resolve().parents[1]
        for path in sorted(package.rglob("*.py")):
            digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
        _source_hash = digest.hexdigest()
    return _source_hash


def fingerprint(root: Path, notebook: str, params: dict[str, Any]) -> str:
    """What a run's numbers depend on: the resolved parameters, the library's code, the notebook, its params file
    and the bundled data (file contents, not git state, so copies and dirty trees fingerprint alike)."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    digest.update(source_hash().encode())  # the code that is imported
    files = [root / "notebooks" / f"{notebook}.ipynb", root / "params" / f"{notebook}.yaml"]
    files += sorted((root / "data").glob("*")) if (root / "data").is_dir() else []
    for path in files:
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:20]
