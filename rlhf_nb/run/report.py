"""Figures, claims and the report, from saved results only (no model): ``rlhf-nb figures``, ``rlhf-nb claims`` and
``rlhf-nb report`` recompute every verdict, finding and table with the current code. For the ``cpu`` profile the saved results are the
shipped ones in ``results/``, so REPORT.md is always what the code computes from them."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from rlhf_nb.core.errors import ParamError
from rlhf_nb.core.io import atomic_write
from rlhf_nb.core.layout import ENV, RESULTS
from rlhf_nb.core.paths import project_root
from rlhf_nb.notebook.config import resolve_profile

#: the profile whose batch runs are shipped in ``results/`` (and read from there by the report and figures)
from rlhf_nb.run.runner import SHIPPED_PROFILE, SHIPPED_RESULTS, notebook_title, notebooks

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

    from rlhf_nb.notebook.registry import figures as registry

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


def _reader(results: dict[str, Any], name: str) -> Any:
    """The saved run's paper's ``readers.<name>`` (None: a notebook no paper names, or a paper without it)."""
    from rlhf_nb.notebook.registry import notebooks, readers_function

    return readers_function(results["notebook"], name) if results["notebook"] in notebooks() else None


def claims_of(results: dict[str, Any]) -> list[Any] | None:
    """The notebook's claims recomputed from saved results with the current code (None: it makes no claims)."""
    from rlhf_nb.notebook.registry import claims_function, notebooks

    fn = claims_function(results["notebook"]) if results["notebook"] in notebooks() else None
    return None if fn is None else fn(results)


def findings_of(results: dict[str, Any]) -> list[str]:
    """The notebook's findings recomputed from saved results with the current code (its paper's
    ``readers.findings(results)``); the saved ones where the paper has no such function."""
    fn = _reader(results, "findings")
    return list(results.get("findings", [])) if fn is None else fn(results)


def tables_of(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The notebook's tables recomputed from saved results with the current code (its paper's
    ``readers.tables(results)``, as ``results.json`` keeps them); the saved ones where the paper has no such
    function."""
    from rlhf_nb.notebook.experiment import table_records

    fn = _reader(results, "tables")
    return dict(results.get("tables", {})) if fn is None else {k: table_records(v) for k, v in fn(results).items()}


def metrics_of(results: dict[str, Any]) -> dict[str, Any]:
    """The notebook's logged metrics recomputed from saved results (its paper's ``readers.metrics(results)``); the
    saved ones where the paper has no such function."""
    from rlhf_nb.core.io import to_jsonable

    fn = _reader(results, "metrics")
    return dict(results.get("metrics", {})) if fn is None else to_jsonable(fn(results))


class DirtyRunError(ParamError):
    """A report was asked for runs made from uncommitted code."""


def _md_table(rows: list[dict[str, Any]], floatfmt: str = ".3g") -> str:
    from tabulate import tabulate

    if not rows:
        return "_(empty)_"
    return tabulate([list(r.values()) for r in rows], headers=list(rows[0].keys()), tablefmt="github",
                    floatfmt=floatfmt)


def _claim_rows(claims: list[Any]) -> list[dict[str, Any]]:
    from rlhf_nb.notebook.display import _fmt

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
    """The machine's speed at the run's start and end (``rlhf_nb.lm.device.machine_probe``), for a report header."""
    probe = env.get("machine_probe") or {}
    start, end = probe.get("start"), probe.get("end")
    if not start or not end:
        return ""
    return (f" · machine at start / end: copy {start['copy_gb_s']:.0f} / {end['copy_gb_s']:.0f} GB/s, fp32 matmul "
            f"{start['fp32_gflop_s']:,.0f} / {end['fp32_gflop_s']:,.0f} GFLOP/s, bf16 {start['bf16_gflop_s']:,.0f} / "
            f"{end['bf16_gflop_s']:,.0f}")


def memory_note(env: dict[str, Any]) -> str:
    """The run's peak memory (``rlhf_nb.notebook.experiment.peak_memory``) for a report header; empty for older runs."""
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
    findings, tables and claims (all recomputed with the current code from the saved data; what the run stored is
    only a cache) and figures. Figure links are relative to the default report's folder, whatever ``out`` is.

    Runs made from a dirty tree are refused unless ``allow_dirty`` (then marked as such).
    """
    from rlhf_nb.evidence.claims import VERDICTS

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
             f"Generated by `rlhf-nb report` from {source}. Every number is computed; findings, "
             "tables and claims are recomputed from the saved data with the current code, the verdicts by one rule "
             "(`rlhf_nb.evidence.claims.decide`), in this order: *not tested at this scale* when a premise fails; "
             "*not reproduced* when the 95% interval's top is below the paper's minimum effect, whatever its sign; "
             "*reproduced* when the Holm-adjusted p < 0.05 (Holm over all of a notebook's claims, an untested one at "
             "p = 1) and the interval excludes 0; otherwise *inconclusive*. A learned scorer is compared with the "
             "strongest trivial rule on the same items (with several rules, the interval's top is at the Bonferroni "
             "level over them, as its text says), items that share a prompt count once, and a claim about a "
             "trained policy needs one that training moved (README, *Reading a claim*). Each section's header names "
             "the commit and the machine its run was made on.", ""]
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
        findings = findings_of(results)
        part += [f"- {text}" for text in findings] + ([""] if findings else [])
        if metrics := metrics_of(results):
            part += ["**Metrics**", "", _md_table([{"metric": k, "value": v} for k, v in metrics.items()]), ""]
        for name, rows in tables_of(results).items():
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
