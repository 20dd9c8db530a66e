"""The runner end to end: papermill, results layout, atomic swap, figures from saved results, report, CLI."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, assert_report_recomputes

from rlhf_nb.core.errors import ParamError
from rlhf_nb.run import report as report_module
from rlhf_nb.run import runner


def test_quickstart_smoke_via_papermill_then_figures_and_report(project):
    outcome = runner.run("00_quickstart", "smoke", progress=False)
    assert outcome.status == "ok", outcome.error
    out = project / "runs" / "00_quickstart" / "smoke"
    assert outcome.out_dir == out
    for name in ("00_quickstart.ipynb", "params.yaml", "env.json", "results.json", "samples.jsonl",
                 "pass_rate.png", "lengths.png"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    env = json.loads((out / "env.json").read_text())
    assert env["seed"] == 0 and env["packages"]["torch"].startswith("2.13.0") and env["profile"] == "smoke"
    probe = env["machine_probe"]  # the machine's speed at the start and the end: a wall time is read against it
    assert set(probe) == {"start", "end"} and all(set(p) == {"copy_gb_s", "fp32_gflop_s", "bf16_gflop_s"}
                                                  and min(p.values()) > 0 for p in probe.values())
    assert results["metrics"]["samples"] == 3 * 2  # 3 tasks x sampling.n
    assert 0.0 <= results["metrics"]["pass@1"] <= 1.0
    assert [r["task_id"] for r in results["tables"]["per_task"]] == ["HumanEval/0", "HumanEval/23", "HumanEval/53"]
    executed = json.loads((out / "00_quickstart.ipynb").read_text())
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in executed["cells"])
    spent = report_module.timings(out / "00_quickstart.ipynb", least_s=0.0)  # where the run's time went, cell by cell
    code_cells = [c for c in executed["cells"] if c["cell_type"] == "code"]
    assert len(spent) == len(code_cells) and all(r["seconds"] >= 0 for r in spent)
    assert spent[0]["source"] == "".join(code_cells[0]["source"]).strip().splitlines()[0]
    bars = [b for r in spent for b in r["bars"]]
    assert any("100%" in b for b in bars), bars  # the sampling bar's last state, read from the widget state

    # figures are redrawn from results.json alone: no model library is even imported
    for png in out.glob("*.png"):
        png.unlink()
    code = ("import sys; from rlhf_nb.run.report import figures; n = len(figures(profile='smoke')); "
            "print(n, 'torch' in sys.modules, 'transformers' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=project)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["4", "False", "False"]  # 2 figures x (run folder + runs/smoke-figures/)
    assert (out / "pass_rate.png").is_file() and (project / "runs" / "smoke-figures" / "00_quickstart" / "lengths.png").is_file()
    assert not (project / "figures").exists()  # a smoke run never overwrites the committed figures

    report = report_module.report(profile="smoke", allow_dirty=True)
    assert report == project / "runs" / "REPORT-smoke.md" and not (project / "REPORT.md").exists()
    text = report.read_text()
    assert "pass@1" in text and "smoke-figures/00_quickstart/pass_rate.png" in text
    assert re.search(r"machine at start / end: copy \d+ / \d+ GB/s, fp32 matmul [\d,]+ / [\d,]+ GFLOP/s", text)
    assert "`01_hh_preference_models`: no saved `smoke` run" in text  # a missing run is said, not skipped

    assert "## All claims" not in text  # the quickstart makes no claims
    elsewhere = report_module.report(profile="smoke", allow_dirty=True, out=project / "elsewhere" / "R.md")
    assert elsewhere.read_text() == text  # figure links do not depend on where the report is written
    # findings and tables are recomputed from the saved data, as claims are: a stale cached text never shows
    saved = json.loads((out / "results.json").read_text())
    assert_report_recomputes(saved)
    stale = {**saved, "findings": ["a finding an older reader wrote"], "tables": {"per_task": [{"task_id": "old"}]}}
    (out / "results.json").write_text(json.dumps(stale))
    assert report_module.report(profile="smoke", allow_dirty=True, out=project / "elsewhere" / "R.md").read_text() \
        == text
    (out / "results.json").write_text(json.dumps(saved))

    # rerun only what changed: the saved run carries the fingerprint of its params, code and data
    assert runner._up_to_date(project, "00_quickstart", "smoke")
    [check] = runner.dry_run(runner.select_notebooks("quickstart"), "smoke")  # the selection reproduce makes
    assert not check.problems and check.notes[0].startswith("saved run is up to date")
    with pytest.raises(ParamError, match="no notebook matches 'quikstart'"):  # the dry run fails as reproduce does
        runner.select_notebooks("quikstart")
    [skipped] = runner.reproduce("smoke", "00_quickstart", progress=False)
    assert skipped.status == "up to date" and json.loads((out / "results.json").read_text()) == results
    [check] = runner.dry_run(["00_quickstart"], "smoke", {"sampling.n": 3})  # an override is another run
    assert not any("up to date" in n for n in check.notes)
    params = project / "params" / "00_quickstart.yaml"
    params.write_text(params.read_text() + "\n# an edited params file\n")
    assert not runner._up_to_date(project, "00_quickstart", "smoke")


def test_same_params_and_seed_give_the_same_numbers(project):
    first = runner.run("00_quickstart", "smoke", {"sampling.n": 3}, progress=False)
    a = json.loads((first.out_dir / "results.json").read_text())
    second = runner.run("00_quickstart", "smoke", {"sampling.n": 3}, progress=False)
    b = json.loads((second.out_dir / "results.json").read_text())
    assert a["data"] == b["data"] and a["tables"] == b["tables"] and a["metrics"] == b["metrics"]
    samples = (second.out_dir / "samples.jsonl").read_text()
    assert samples and json.loads(samples.splitlines()[0])["task_id"] == "HumanEval/0"


def test_a_failing_run_keeps_earlier_results(project):
    good = project / "runs" / "00_quickstart" / "smoke"
    good.mkdir(parents=True)
    (good / "results.json").write_text('{"earlier": true}')
    # valid params (a folder with a config.json), but not a model: the notebook itself fails mid-way
    not_a_model = project / "empty-folder"
    not_a_model.mkdir()
    (not_a_model / "config.json").write_text("{}")
    outcome = runner.run("00_quickstart", "smoke", {"model": str(not_a_model)}, progress=False)
    assert outcome.status == "failed" and "empty-folder" in outcome.error
    assert json.loads((good / "results.json").read_text()) == {"earlier": True}
    assert (project / "runs" / "00_quickstart" / "smoke.failed" / "00_quickstart.ipynb").is_file()
    assert not list((project / "runs" / "00_quickstart").glob(".*staging*"))


def test_invalid_params_fail_before_any_work(project):
    with pytest.raises(ParamError, match="sampling.n"):
        runner.run("00_quickstart", "smoke", {"sampling.n": -1}, progress=False)
    assert not (project / "runs").exists()


def test_reproduce_keeps_going_and_reports_failures(project):
    # the broken notebook sorts before the quickstart, so reproduce must go on past it; --only keeps the other
    # notebooks out (each has its own smoke test), which keeps this test to one real run
    papers = _add_paper(project, "00_broken")
    (project / "params" / "00_broken.yaml").write_text("notebook: 00_broken\nprofiles: {smoke: {}, cpu: {}, gpu: {}}\n")
    done = subprocess.run([sys.executable, "-m", "rlhf_nb.run.cli", "reproduce", "--profile", "smoke", "--only", "00_*",
                           "--quiet"], capture_output=True, text=True, cwd=project,
                          env={**os.environ, "RLHF_NB_PAPERS": str(papers)})
    assert done.returncode == 1
    order = [line.split("|")[1].strip() for line in done.stdout.splitlines() if line.startswith("| 0")]
    assert order == ["00_broken", "00_quickstart"], done.stdout[-2000:]
    rows = {line.split("|")[1].strip(): line.split("|")[3].strip() for line in done.stdout.splitlines()
            if line.startswith("| 0")}
    assert rows == {"00_broken": "failed", "00_quickstart": "ok"}
    assert (project / "runs" / "REPORT-smoke.md").is_file()
    assert (project / "runs" / "00_quickstart" / "smoke" / "results.json").is_file()


def _add_paper(project: Path, notebook: str) -> Path:
    """A new paper beside the package (``$RLHF_NB_PAPERS``): a copy of the quickstart's package naming ``notebook``,
    and its notebook; the caller writes its YAML."""
    folder = project / "more_papers" / notebook.split("_", 1)[1]
    shutil.copytree(REPO / "rlhf_nb" / "papers" / "quickstart", folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "__init__.py").write_text(f'NOTEBOOK = "{notebook}"\n')
    nb = json.loads((project / "notebooks" / "00_quickstart.ipynb").read_text())
    for cell in nb["cells"]:
        cell["source"] = [line.replace('"00_quickstart"', f'"{notebook}"') for line in cell["source"]]
    (project / "notebooks" / f"{notebook}.ipynb").write_text(json.dumps(nb))
    return folder.parent


def test_a_new_paper_is_picked_up_everywhere_without_another_edit(project, monkeypatch):
    """One folder, one notebook, one YAML: the registry, the runner's list, the parameters, the CLI, the report's
    order and the GPU check all see it."""
    import importlib.util

    from rlhf_nb.notebook import registry
    from rlhf_nb.notebook.config import load_params

    papers = _add_paper(project, "07_new_paper")
    yaml = (project / "params" / "00_quickstart.yaml").read_text()
    (project / "params" / "07_new_paper.yaml").write_text(yaml.replace("notebook: 00_quickstart", "notebook: 07_new_paper"))
    monkeypatch.setenv("RLHF_NB_PAPERS", str(papers))
    assert registry.papers()["07_new_paper"] == "rlhf_nb.papers.new_paper"
    assert runner.notebooks(project)[-1] == "07_new_paper"
    assert runner.resolve_notebook("07", project) == "07_new_paper"
    assert load_params("07_new_paper", "smoke", {}, project, check_inputs=False)[0] == "smoke"
    listed = subprocess.run([sys.executable, "-m", "rlhf_nb.run.cli", "list"], capture_output=True, text=True,
                            cwd=project, env={**os.environ, "RLHF_NB_PAPERS": str(papers)})
    assert "07_new_paper" in listed.stdout, listed.stderr[-2000:]
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    assert gpu_check.check_order({"notebooks": {"00_quickstart": {}}})[-1] == "07_new_paper"


def test_notebook_names_resolve():
    assert runner.resolve_notebook("00", REPO) == "00_quickstart"
    assert runner.resolve_notebook("quickstart", REPO) == "00_quickstart"
    assert runner.resolve_notebook("notebooks/00_quickstart.ipynb", REPO) == "00_quickstart"
    with pytest.raises(ParamError, match="unknown notebook"):
        runner.resolve_notebook("nope", REPO)
    with pytest.raises(ParamError, match="did you mean 'quickstart'"):
        runner.resolve_notebook("quikstart", REPO)


def test_committed_notebooks_have_no_outputs_and_a_parameters_cell():
    for path in (REPO / "notebooks").glob("*.ipynb"):
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert not any(c.get("outputs") for c in code), f"{path.name} has outputs"
        params = [c for c in code if "parameters" in c["metadata"].get("tags", [])]
        assert len(params) == 1 and 'profile = "auto"' in "".join(params[0]["source"]), path.name


def test_cli_list_and_models_table(project):
    done = subprocess.run([sys.executable, "-m", "rlhf_nb.run.cli", "list"], capture_output=True, text=True, cwd=project)
    assert done.returncode == 0 and "00_quickstart" in done.stdout
    done = subprocess.run([sys.executable, "-m", "rlhf_nb.run.cli", "models", "--no-prepare"], capture_output=True,
                          text=True, cwd=project)
    assert "smollm2-135m-instruct" in done.stdout and "qwen2.5-coder-1.5b-instruct" in done.stdout


@pytest.mark.parametrize("how", ["Ctrl-C", "SIGTERM"])
def test_an_interrupted_run_ends_at_once_with_one_line_and_keeps_earlier_results(project, how):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) or a scheduler's SIGTERM to the runner:
    the kernel is killed, the staged run removed, earlier results kept, and one line says so, with no traceback."""
    import os
    import signal
    import time

    final = project / "runs" / "00_quickstart" / "smoke"
    final.mkdir(parents=True)
    (final / "results.json").write_text('{"earlier": true}')
    proc = subprocess.Popen([sys.executable, "-m", "rlhf_nb.run.cli", "run", "00_quickstart", "--profile", "smoke",
                             "--quiet"], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    started = time.time()
    while not list(final.parent.glob(".smoke.staging-*/*.ipynb")) and time.time() - started < 120:
        time.sleep(0.1)  # papermill writes the staged notebook as the kernel starts
    time.sleep(2)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    kernels = _children(proc.pid)  # the kernel papermill started, mid-cell
    assert kernels, "no kernel process to interrupt"
    if how == "Ctrl-C":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines() == [f"interrupted; earlier results kept at {final}"], err[-2000:]
    assert not [pid for pid in kernels if _alive(pid)]  # the kernel was killed, not left to finish its cell
    assert json.loads((final / "results.json").read_text()) == {"earlier": True}
    assert not list(final.parent.glob(".smoke.staging-*")) and not (final.parent / "smoke.failed").exists()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if f"\nPPid:\t{pid}\n" in status:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_cpu_without_fast_bf16_is_told_what_that_means_for_the_budgets(monkeypatch):
    from rlhf_nb.lm import device

    monkeypatch.setattr(device, "default_device", lambda: "cpu")
    monkeypatch.setattr(device, "cpu_bf16", lambda: None)
    assert "no fast bf16" in runner.machine_note("cpu") and runner.machine_note("smoke") == ""
    monkeypatch.setattr(device, "cpu_bf16", lambda: "amx_bf16")
    assert runner.machine_note("cpu") == ""


def test_stale_staging_folders_of_dead_runs_are_removed(project):
    stale = project / "runs" / "00_quickstart" / ".smoke.staging-999999999"
    stale.mkdir(parents=True)
    runner.run("00_quickstart", "smoke", {"sampling.n": 1}, progress=False)
    assert not stale.exists()


def test_kernel_sockets_live_in_the_runtime_folder_not_in_the_notebooks():
    """Runs talk to their kernel over IPC sockets; a killed run must not leave socket files in notebooks/."""
    from jupyter_client.connect import jupyter_runtime_dir

    manager = runner._local_kernel_manager()()
    assert manager.transport == "ipc"
    assert Path(manager.ip).is_absolute() and Path(manager.ip).parent == Path(jupyter_runtime_dir())


def test_an_interactive_start_stages_beside_scratch_and_freezes_what_exists_until_finish(project, monkeypatch):
    """start() outside papermill writes nowhere near the batch results, and takes the objects that exist at the
    start (the imported libraries) out of the cycle collector's walks, which each gc.collect() between trainings
    would otherwise repeat; finish() gives them back, so cyclic garbage among them does not outlive the run."""
    import gc
    import weakref

    from rlhf_nb.lm import device
    from rlhf_nb.notebook import experiment

    class Node:
        pass

    monkeypatch.setattr(device, "_requested", device._requested)  # start() sets the process precision
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cycle = Node()
    cycle.me = cycle  # garbage only the cycle collector can free, made before the run
    alive = weakref.ref(cycle)
    before = gc.get_freeze_count()
    try:
        exp = experiment.start("00_quickstart", "smoke")
        assert gc.get_freeze_count() > before
        assert exp.out_dir.parent == project / "runs" / "00_quickstart"
        assert exp.out_dir.name.startswith(".smoke.scratch")
        assert not (project / "runs" / "00_quickstart" / "smoke").exists()
        del cycle
        gc.collect()
        assert alive() is not None  # frozen during the run: collections skip it
        exp.finish()
        assert gc.get_freeze_count() == 0
        gc.collect()
        assert alive() is None  # after the run it is freed
        assert (project / "runs" / "00_quickstart" / "smoke.scratch" / "results.json").is_file()
    finally:
        gc.unfreeze()  # the rest of this test process collects as before


def test_a_report_header_gives_the_peak_memory_a_run_recorded():
    from rlhf_nb.run.report import memory_note

    assert memory_note({}) == "" and memory_note({"peak_memory": {}}) == ""  # runs from before it was recorded
    cpu = {"peak_memory": {"rss_mb": 11980.8, "cuda_allocated_mb": None, "cuda_reserved_mb": None}}
    assert memory_note(cpu) == " · peak memory: RSS 11.7 GB"
    gpu = {"peak_memory": {"rss_mb": 3072.0, "cuda_allocated_mb": 20480.0, "cuda_reserved_mb": 22528.0}}
    assert memory_note(gpu) == " · peak memory: RSS 3.0 GB, GPU 20.0 GB allocated (22.0 reserved)"


def test_peak_memory_is_the_process_own_not_its_parents_at_fork():
    """A kernel's peak RSS: getrusage would report the runner's RSS at fork for every kernel it started."""
    ballast = bytearray(1 << 30)  # 1 GiB, touched, in this (parent) process
    ballast[:: 4096] = b"\1" * len(ballast[:: 4096])
    code = "import json; from rlhf_nb.notebook.experiment import peak_memory; print(json.dumps(peak_memory()))"
    child = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                                      check=True).stdout)
    assert 50 < child["rss_mb"] < 900 and child["cuda_allocated_mb"] is None
    del ballast


def _fake_run(folder: Path, notebook: str = "00_quickstart", profile: str = "cpu", dirty: bool = False,
              overrides: dict | None = None) -> bytes:
    """A batch run folder as a finished notebook leaves it (no notebook runs): its results.json bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    scored = [{"task_id": "HumanEval/0", "n_tokens": 9, "finished": True, "passed": passed} for passed in (True, False)]
    results = {"notebook": notebook, "profile": profile, "metrics": {"pass@1": 0.5}, "tables": {},
               "data": {"scored": scored}, "params": {"sampling": {"max_new_tokens": 16}}, "figures": [],
               "findings": ["a finding"], "claims": []}
    data = json.dumps(results, indent=2).encode()
    (folder / "results.json").write_bytes(data)
    (folder / "params.yaml").write_text(f"notebook: {notebook}\nprofile: {profile}\noverrides: {json.dumps(overrides or {})}\n")
    (folder / "env.json").write_text(json.dumps({"git_commit": "0123456789abcdef", "git_dirty": dirty, "device": "cpu",
                                                 "cpu_count": 2, "precision": {"resolved": "bf16", "training": "mixed",
                                                                               "cpu_bf16": "amx_bf16"}}))
    (folder / f"{notebook}.ipynb").write_text("{}")
    (folder / "pass_rate.png").write_bytes(b"png")
    return data


def test_ship_copies_a_clean_cpu_run_into_results_and_refuses_a_dirty_one(project):
    """`rlhf-nb ship` gzips results.json deterministically (mtime 0) beside params.yaml and env.json in the tracked
    results/<notebook>/cpu/; the cpu report reads only that; a run from a dirty tree is refused in one line."""
    run_path = project / "runs" / "00_quickstart" / "cpu"
    data = _fake_run(run_path)
    done = subprocess.run([sys.executable, "-m", "rlhf_nb.run.cli", "ship", "00"], capture_output=True, text=True,
                          cwd=project)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == ["00_quickstart [cpu]: shipped to results/00_quickstart/cpu/ "
                                                "(commit it with the code)"]
    shipped = project / "results" / "00_quickstart" / "cpu"
    assert sorted(p.name for p in shipped.iterdir()) == ["env.json", "params.yaml", "results.json.gz"]
    packed = (shipped / "results.json.gz").read_bytes()
    assert gzip.decompress(packed) == data and packed[4:8] == b"\0\0\0\0"  # gzip's mtime field: 0
    assert (shipped / "env.json").read_bytes() == (run_path / "env.json").read_bytes()
    assert runner.ship(project, "00_quickstart") == shipped and (shipped / "results.json.gz").read_bytes() == packed
    assert not [p for p in shipped.parent.iterdir() if p.name != "cpu"]  # no staging or old folder left behind
    assert report_module.saved_runs(project, "cpu") == [shipped] and report_module.load_results(shipped)["findings"] == ["a finding"]
    assert report_module.results_home(project, "cpu") == project / "results"
    assert report_module.results_home(project, "smoke") == project / "runs"

    shutil.rmtree(project / "runs")  # the cpu report and figures need nothing but the shipped results
    text = report_module.report(profile="cpu").read_text()
    assert "from the shipped results in `results/`" in text and "- a finding" not in text  # recomputed, not cached
    assert "- 2 samples over 1 tasks: pass@1 50%, 0% cut off at the 16-token cap." in text
    assert "on cpu (2 cores, AMX-BF16; bf16, training mixed) · commit `0123456789`" in text
    assert "`01_hh_preference_models`: no shipped `cpu` run" in text
    assert report_module.figures(profile="cpu") == [] and not (shipped / "pass_rate.png").exists()

    _fake_run(run_path, dirty=True)
    with pytest.raises(runner.ShipError, match="dirty tree"):
        runner.ship(project, "00_quickstart")
    done = subprocess.run([sys.executable, "-m", "rlhf_nb.run.cli", "ship", "quickstart"], capture_output=True,
                          text=True, cwd=project)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "dirty tree" in done.stderr
    assert (shipped / "results.json.gz").read_bytes() == packed  # the shipped results are untouched


def test_a_clean_batch_run_of_the_shipped_profile_ships_itself_and_a_dirty_one_says_it_is_not(project, monkeypatch,
                                                                                               capsys):
    """runner.run ships a successful batch run of the shipped profile (cpu; smoke here, and papermill faked, so no
    notebook runs), and says in one line that a run made from a dirty tree is not shipped."""
    import papermill

    dirty = {"value": False}

    def fake_execute(_input, _output, parameters, **_):
        _fake_run(Path(parameters["out_dir"]), profile=parameters["profile"], dirty=dirty["value"],
                  overrides=parameters["overrides"])

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    monkeypatch.setattr(runner, "SHIPPED_PROFILE", "smoke")
    outcome = runner.run("00_quickstart", "smoke", progress=False)
    shipped = project / "results" / "00_quickstart" / "smoke"
    assert outcome.status == "ok" and outcome.note == "shipped to results/00_quickstart/smoke/"
    assert capsys.readouterr().out.strip().splitlines() == ["00_quickstart [smoke]: shipped to results/00_quickstart/smoke/"]
    packed = (shipped / "results.json.gz").read_bytes()
    assert gzip.decompress(packed) == (outcome.out_dir / "results.json").read_bytes()

    dirty["value"] = True
    outcome = runner.run("00_quickstart", "smoke", progress=False)
    assert outcome.status == "ok" and "not shipped" in outcome.note and "dirty tree" in outcome.note
    [line] = capsys.readouterr().out.strip().splitlines()
    assert line.startswith("00_quickstart [smoke]: not shipped to results/")
    assert (shipped / "results.json.gz").read_bytes() == packed

    dirty["value"] = False  # a clean run with overrides is a pilot: the shipped results stay the profile's own
    outcome = runner.run("00_quickstart", "smoke", {"seed": 3}, progress=False)
    assert outcome.status == "ok" and "overrides the profile's parameters (seed)" in outcome.note
    capsys.readouterr()
    assert (shipped / "results.json.gz").read_bytes() == packed
    with pytest.raises(runner.ShipError, match="ship --pilot"):  # `rlhf-nb ship` keeps the rule too: one gate
        runner.ship(project, "00_quickstart", "smoke")
    runner.ship(project, "00_quickstart", "smoke", pilot=True)  # ... unless asked on purpose
    assert '"seed": 3' in (shipped / "params.yaml").read_text()

    monkeypatch.setattr(runner, "SHIPPED_PROFILE", "cpu")  # other profiles are never shipped
    shutil.rmtree(project / "results")
    assert runner.run("00_quickstart", "smoke", progress=False).note == "" and not (project / "results").exists()
