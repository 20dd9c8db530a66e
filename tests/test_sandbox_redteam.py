"""Red team: programs that try to make the verifier say "pass" without solving the task, or to harm or
stall the evaluator. Every one must score failed or timed out, and the evaluator must stay healthy.

The task: ``square(x)`` must return ``x * x``; the test asserts ``square(2) == 4`` and ``square(3) == 9`` (a few
attacks target a test of another shape: a list-valued answer, or a test that calls ``abs`` or ``math.isclose``).

Each attack has a positive control: run with the sandbox off (``sandbox_controls.run_plain``: a plain subprocess
with the same job protocol, in a folder the test creates, against files and a socket the test creates), it does
what it is meant to do: the harness reports a pass, a forged line reaches the result channel, the harness dies
without a verdict, the run outlives the timeout, output floods, or a file or socket outside the job is reached.
Three are never run without the sandbox (:data:`NO_CONTROL`: they would take the shared machine's processes or
memory). An attack that failed even there would prove nothing about the sandbox.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest
from conftest import REPO
from sandbox_controls import PlainRun, run_plain

from rlhf_nb.sandbox import Job, Limits, run_jobs

TEST = "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(3) == 9\n"
LIST_TEST = "def check(candidate):\n    assert candidate(2) == [4]\n    assert candidate(3) == [9]\n"
ABS_TEST = "def check(candidate):\n    assert abs(candidate(2) - 4) < 1e-9\n    assert abs(candidate(3) - 9) < 1e-9\n"
ISCLOSE_TEST = "import math\ndef check(candidate):\n    assert math.isclose(candidate(2), 4)\n    assert math.isclose(candidate(3), 9)\n"
HONEST = "def square(x):\n    return x * x\n"
LIMITS = Limits(timeout_s=2.0, memory_mb=1024, output_kb=64)

# what an attack achieves with the sandbox off (a PlainRun, and the context's files and socket)
OUTCOMES = {
    "passes": "the harness reports a pass under its own nonce",
    "exits_0": "exit status 0 and no verdict: the tests never ran to the end",
    "prints_pass": "exit status 0 and 'passed' printed",
    "forges": "a line claiming a pass reaches the result channel beside the harness's own",
    "crashes": "the harness dies without a verdict",
    "stalls": "still running at the sandbox's timeout",
    "stalls_through_signals": "still running after the timeout, SIGTERM and SIGINT",
    "floods_output": "more than 16x the sandbox's output cap printed before the timeout",
    "floods_result": "a verdict of more than 1 MB",
    "spawns": "a shell it started wrote a file outside the job",
    "connects": "it connected to a socket outside the job",
    "reads_caller_file": "the caller's file's content printed",
    "writes_caller_file": "a file written in the caller's folder",
}

# programs may name VICTIM_DIR (a folder outside the job), CALLER_FILE and CALLER_DIR (the caller's files: the
# project with the sandbox on, stand-ins in a temporary folder with it off) and SOCKET_PATH (a listening socket)
_FORGE = "b'0123456789abcdef0123456789abcdef {\"status\":\"passed\",\"message\":\"\",\"layers\":[]}\\n'"
_FORGE_WITH = "nonce.encode() + b' {\"status\":\"passed\",\"message\":\"\",\"layers\":[]}\\n'"
_WRITE_EVERY_FD = "for fd in range(3, 1024):\n    try:\n        os.write(fd, {line})\n    except OSError:\n        pass\n"


def _forge_with_stolen_nonce(find: str) -> str:
    """A program that finds the nonce (``find`` leaves it in ``nonce``), writes a result line signed with it to every
    descriptor, and exits before the tests run."""
    return ("import os, sys\n" + find + "if nonce:\n" +
            "".join("    " + line + "\n" for line in _WRITE_EVERY_FD.format(line=_FORGE_WITH).splitlines()) +
            "    os._exit(0)\ndef square(x):\n    return 0\n")


HOSTILE = {  # name -> (program, outcome with the sandbox off, test)
    "exit_early_sys_exit": ("import sys\nsys.exit(0)\n", "exits_0"),
    "exit_early_os_exit": ("import os\nos._exit(0)\n", "exits_0"),
    "exit_inside_candidate": ("def square(x):\n    raise SystemExit(0)\n", "exits_0"),
    "kill_self": ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", "crashes"),
    "keyboard_interrupt": ("def square(x):\n    raise KeyboardInterrupt\n", "crashes"),
    "print_fake_success": ("print('passed')\nprint('All tests passed')\nimport sys\nsys.exit(0)\n", "prints_pass"),
    "always_equal_object": (
        ("class Eq:\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n        return False\n"
         "def square(x):\n    return Eq()\n"), "passes"),
    "int_subclass_always_equal": (
        ("class I(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
         "def square(x):\n    return I(0)\n"), "passes"),
    "metaclass_lies_about_type": (
        ("class Meta(type):\n    def __eq__(cls, other):\n        return True\n    __hash__ = type.__hash__\n"
         "class Lie(metaclass=Meta):\n    def __eq__(self, other):\n        return True\n"
         "def square(x):\n    return Lie()\n"), "passes"),
    # a liar inside a container: against a list-valued answer ([Eq()] == 4 is False without any sandbox)
    "list_with_liar_inside": (
        "class Eq:\n    def __eq__(self, o):\n        return True\ndef square(x):\n    return [Eq()]\n", "passes", LIST_TEST),
    # `assert` raises the interpreter's own AssertionError whatever builtins.AssertionError is bound to, so the
    # earlier patch_builtins_assertionerror could not pass anywhere; patching a built-in the tests call can
    "patch_builtins_the_tests_call": (
        "import builtins\nbuiltins.abs = lambda x: 0\ndef square(x):\n    return 0\n", "passes", ABS_TEST),
    "patch_builtins_and_restore_on_compare": (
        ("import builtins\n_all = builtins.all\nbuiltins.all = lambda it: True\n"
         "class Eq:\n    def __eq__(self, o):\n        builtins.all = _all\n        return True\n"
         "def square(x):\n    return Eq()\n"), "passes"),
    "patch_exec_to_skip_tests": (
        ("import builtins\n_exec = builtins.exec\n"
         "def fake(code, ns=None, *a):\n    builtins.exec = _exec\n    if ns is not None:\n        ns['check'] = lambda c: None\n"
         "builtins.exec = fake\ndef square(x):\n    return 0\n"), "passes"),
    # against tests that compare with math.isclose (with `==` tests the patch changed nothing)
    "patch_math_module": (
        "import math\nmath.isclose = lambda *a, **k: True\ndef square(x):\n    return 0\n", "passes", ISCLOSE_TEST),
    "patch_json_encoder": (
        ("import json\njson.dumps = lambda *a, **k: '{\"status\": \"passed\"}'\n"
         "import _json\n_json.encode_basestring_ascii = lambda s: '\"passed\"'\ndef square(x):\n    return 0\n"), "passes"),
    "forge_result_line_on_every_fd": (
        "import os\n" + _WRITE_EVERY_FD.format(line=_FORGE) + "def square(x):\n    return 0\n", "forges"),
    # the nonce-stealing programs use what they find: a result line signed with it (they only stole it before)
    "steal_nonce_via_traceback_frames": (_forge_with_stolen_nonce(
        "try:\n    raise ValueError\nexcept ValueError as e:\n    f = e.__traceback__.tb_frame\nnonce = None\n"
        "while f is not None and not nonce:\n    nonce = f.f_locals.get('nonce')\n    f = f.f_back\n"), "passes"),
    "steal_nonce_via_getframe": (_forge_with_stolen_nonce("nonce = sys._getframe(1).f_locals.get('nonce')\n"),
                                 "passes"),
    "steal_nonce_via_gc": (_forge_with_stolen_nonce(  # closures keep it in a cell (strings are not tracked)
        "import gc\nnonce = None\nfor o in gc.get_objects():\n    if type(o).__name__ == 'cell':\n        try:\n"
        "            v = o.cell_contents\n        except ValueError:\n            continue\n"
        "        if type(v) is str and len(v) == 32 and set(v) <= set('0123456789abcdef'):\n            nonce = v\n"
        "            break\n"), "passes"),
    # a trace function that returns None changes nothing; one that rebinds check's argument makes it test another
    # function than the candidate
    "trace_hook_swaps_the_candidate": (
        ("import sys\ndef tracer(frame, event, arg):\n    if event == 'call' and frame.f_code.co_name == 'check':\n"
         "        frame.f_locals['candidate'] = lambda x: x * x\n    return None\nsys.settrace(tracer)\n"
         "def square(x):\n    return 0\n"), "passes"),
    "background_thread_forges_late": (
        "import threading, time, os\ndef later():\n    time.sleep(0.05)\n" +
        "".join("    " + line + "\n" for line in _WRITE_EVERY_FD.format(line=_FORGE).splitlines()) +
        "threading.Thread(target=later).start()\ndef square(x):\n    return 0\n", "forges"),
    "fork_bomb": ("import os\nwhile True:\n    os.fork()\n", None),
    "subprocess_shell": (
        ("import subprocess\nsubprocess.run(['sh', '-c', 'echo pwned > ' + VICTIM_DIR + '/pwned_subprocess_shell'])\n"
         "def square(x):\n    return x * x\n"), "spawns"),
    "posix_spawn_via_os_system": (
        "import os\nos.system('echo pwned > ' + VICTIM_DIR + '/pwned_posix_spawn_via_os_system')\ndef square(x):\n    return x * x\n",
        "spawns"),
    # string_at(0, n) reads nothing (a NULL source makes CPython allocate an empty buffer); address 1 faults
    "ctypes_memory_poke": ("import ctypes\nctypes.string_at(1, 1)\n", "crashes"),
    # a local (AF_UNIX) socket the test listens on: the positive control never touches the network
    "socket_connect": (
        ("import socket\ns = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\ns.connect(SOCKET_PATH)\n"
         "s.sendall(b'pwned')\ndef square(x):\n    return x * x\n"), "connects"),
    "memory_flood": ("x = bytearray(8 * 1024 ** 3)\ndef square(x):\n    return x * x\n", None),
    "memory_flood_gradual": ("chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 ** 2))\n", None),
    "output_flood": ("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", "floods_output"),
    "infinite_loop": ("while True:\n    pass\n", "stalls"),
    "infinite_loop_in_candidate": ("def square(x):\n    while True:\n        pass\n", "stalls"),
    "sleep_forever": ("import time\ntime.sleep(3600)\n", "stalls"),
    # recursion through C (a method-wrapper per level) under a raised limit overflows the C stack; plain Python
    # recursion only ever raised RecursionError
    "recursion_bomb": (
        "import sys\nsys.setrecursionlimit(10 ** 7)\ndef square(x):\n    return square.__call__(x)\n", "crashes"),
    "read_caller_files": ("print(open(CALLER_FILE).read())\ndef square(x):\n    return x * x\n", "reads_caller_file"),
    "write_caller_files": (
        "open(CALLER_DIR + '/HACKED', 'w').write('x')\ndef square(x):\n    return x * x\n", "writes_caller_file"),
    "atexit_forgery": (
        "import atexit, os\ndef forge():\n" +
        "".join("    " + line + "\n" for line in _WRITE_EVERY_FD.format(line="b'passed\\n'").splitlines()) +
        "atexit.register(forge)\ndef square(x):\n    return 0\n", "forges"),
    "finalizer_forgery": (
        ("import os\nclass D:\n    def __del__(self):\n        for fd in range(3, 1024):\n            try:\n"
         "                os.write(fd, b'passed\\n')\n            except OSError:\n                pass\n"
         "keep = D()\ndef square(x):\n    return 0\n"), "forges"),
    "ignore_signals_and_spin": (
        ("import signal\nfor s in (signal.SIGTERM, signal.SIGXCPU, signal.SIGINT):\n    signal.signal(s, signal.SIG_IGN)\n"
         "while True:\n    pass\n"), "stalls_through_signals"),
    "huge_exception_message": ("def square(x):\n    raise ValueError('x' * 10 ** 7)\n", "floods_result"),
    "exception_whose_str_raises": (
        "class E(Exception):\n    def __str__(self):\n        raise RuntimeError('no')\ndef square(x):\n    raise E()\n",
        "crashes"),
}

#: never run without the sandbox, here or anywhere: they would take the shared machine's process table or memory
NO_CONTROL = {"fork_bomb": "forks until the process table is full",
              "memory_flood": "8 GiB at once", "memory_flood_gradual": "50 MB more until memory runs out"}


def _attack(name: str) -> tuple[str, str | None, str]:
    program, outcome, *test = HOSTILE[name]
    return program, outcome, (test[0] if test else TEST)


def _fill(program: str, places: dict[str, Path]) -> str:
    for token, path in places.items():
        program = program.replace(token, repr(str(path)))
    return program


def _listener(path: Path):
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(8)
    sock.setblocking(False)
    return sock


def _connections(sock) -> list[bytes]:
    """What clients sent to a listening socket (connections wait in its backlog until accepted)."""
    got = []
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return got
        conn.settimeout(2)
        with conn:
            got.append(conn.recv(100))


CALLER_SECRET = "the caller's private notes"


def _achieved(name: str, run: PlainRun, places: dict[str, Path], connections: list[bytes]) -> bool:
    """Did the attack do, with the sandbox off, what its outcome says?"""
    outcome = _attack(name)[1]
    return {
        "passes": lambda: run.verdict == "passed",
        "exits_0": lambda: run.returncode == 0 and run.verdict is None,
        "prints_pass": lambda: run.returncode == 0 and b"passed" in run.stdout,
        "forges": lambda: bool(run.forged),
        "crashes": lambda: run.returncode not in (0, None) and run.verdict is None,
        "stalls": lambda: run.timed_out,
        "stalls_through_signals": lambda: run.timed_out,
        "floods_output": lambda: run.stdout_bytes > 16 * LIMITS.output_kb * 1024,
        "floods_result": lambda: run.result_bytes > 1 << 20,
        "spawns": lambda: (places["VICTIM_DIR"] / f"pwned_{name}").is_file(),
        "connects": lambda: b"pwned" in connections,
        "reads_caller_file": lambda: CALLER_SECRET.encode() in run.stdout,
        "writes_caller_file": lambda: (places["CALLER_DIR"] / "HACKED").is_file(),
    }[outcome]()


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    """Every attack in the sandbox: its files and socket outside the job in a temporary folder, the caller's files
    the project's own."""
    victim = tmp_path_factory.mktemp("redteam-victim")
    places = {"VICTIM_DIR": victim, "CALLER_FILE": REPO / "README.md", "CALLER_DIR": REPO, "SOCKET_PATH": victim / "s"}
    jobs = []
    for name in HOSTILE:
        program, _, test = _attack(name)
        jobs.append(Job(program=_fill(program, places), test=test, entry_point="square", key=name))
    jobs.append(Job(program=HONEST, test=TEST, entry_point="square", key="honest"))
    listener = _listener(places["SOCKET_PATH"])
    try:
        results = {v.key: v for v in run_jobs(jobs, LIMITS, workers=4)}
        connections = _connections(listener)
    finally:
        listener.close()
    return results, places, connections


@pytest.fixture(scope="module")
def controls(tmp_path_factory):
    """Every attack but :data:`NO_CONTROL` with the sandbox off: each in its own working folder, the caller's files
    stand-ins in a temporary folder, killed with everything it started at the sandbox's timeout (stalls) or 60 s."""
    from concurrent.futures import ThreadPoolExecutor

    root = tmp_path_factory.mktemp("redteam-control")
    victim, caller = root / "victim", root / "caller"
    victim.mkdir()
    caller.mkdir()
    (caller / "notes.txt").write_text(CALLER_SECRET + "\n")
    places = {"VICTIM_DIR": victim, "CALLER_FILE": caller / "notes.txt", "CALLER_DIR": caller,
              "SOCKET_PATH": victim / "s"}

    def control(name: str) -> tuple[str, PlainRun]:
        program, outcome, test = _attack(name)
        workdir = root / f"job-{name}"
        workdir.mkdir()
        stalls = outcome in ("stalls", "stalls_through_signals", "floods_output")
        return name, run_plain(_fill(program, places), test, "square", workdir,
                               timeout_s=LIMITS.timeout_s if stalls else 60.0,
                               term_first=outcome == "stalls_through_signals")

    listener = _listener(places["SOCKET_PATH"])
    try:
        with ThreadPoolExecutor(4) as pool:
            runs = dict(pool.map(control, [name for name in HOSTILE if name not in NO_CONTROL]))
        connections = _connections(listener)
    finally:
        listener.close()
    return runs, places, connections


def test_the_red_team_is_big_enough():
    assert len(HOSTILE) >= 20


def test_every_attack_has_a_positive_control_or_a_stated_reason():
    outcomes = {name: _attack(name)[1] for name in HOSTILE}
    assert {name for name, outcome in outcomes.items() if outcome is None} == set(NO_CONTROL)
    assert {o for o in outcomes.values() if o is not None} <= set(OUTCOMES)


@pytest.mark.parametrize("name", [name for name in HOSTILE if name not in NO_CONTROL])
def test_each_attack_works_with_the_sandbox_off(controls, name):
    runs, places, connections = controls
    run = runs[name]
    outcome = _attack(name)[1]
    assert _achieved(name, run, places, connections), (
        f"{name} does not achieve '{OUTCOMES[outcome]}' even without a sandbox: returncode {run.returncode}, "
        f"result {run.result[:300]!r}, printed {run.stdout[:300]!r}")


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_program_never_passes(verdicts, name):
    results, _, _ = verdicts
    verdict = results[name]
    assert not verdict.passed, f"{name} passed: {verdict}"
    assert verdict.result == "timed out" or verdict.result.startswith("failed"), verdict.result
    assert len(verdict.result) < 2100 and len(verdict.output) <= 2000  # no flood reaches the caller


def test_the_honest_solution_still_passes_among_them(verdicts):
    results, _, _ = verdicts
    assert results["honest"].passed, results["honest"]


def test_the_evaluator_left_nothing_behind(verdicts):
    """Nothing outlives the run, and nothing outside a job was written or reached. (How long the red team takes is
    a benchmark's business: this checks what the sandbox did, not how fast this machine is.)"""
    _, places, connections = verdicts
    assert not psutil.Process().children(recursive=True), "sandbox processes outlived the run"
    assert not (REPO / "HACKED").exists()
    assert sorted(p.name for p in places["VICTIM_DIR"].iterdir()) == ["s"]  # only the test's own socket
    assert connections == []


def test_a_correct_program_that_leaves_a_thread_running_fails():
    """The integrity check: threads still running when the tests end could write after the verdict."""
    program = ("import threading, time\nthreading.Thread(target=time.sleep, args=(5,)).start()\n"
               "def square(x):\n    return x * x\n")
    [verdict] = run_jobs([Job(program=program, test=TEST, entry_point="square")], LIMITS)
    assert not verdict.passed and "background threads" in verdict.result, verdict.result


def test_a_source_with_null_bytes_is_failed_cleanly():
    """Not an attack that can pass anywhere (compile refuses it), but it must come back as a plain failure."""
    [verdict] = run_jobs([Job(program="def square(x):\n    return 0  # \x00\n", test=TEST, entry_point="square")],
                         LIMITS)
    assert not verdict.passed and verdict.result.startswith("failed"), verdict.result


def test_callers_environment_is_not_visible(monkeypatch):
    monkeypatch.setenv("RLHF_NB_TEST_SECRET", "s3cret-token")
    program = "import os\ndef leak():\n    return sorted(os.environ.items())\n"
    [verdict] = run_jobs([Job(program=program, entry_point="leak", inputs=[[]])], LIMITS)
    assert verdict.passed
    env = dict(map(tuple, verdict.outputs[0][1]))
    assert "s3cret-token" not in str(env) and "RLHF_NB_TEST_SECRET" not in env
    assert set(env) <= {"TMPDIR", "HOME", "LANG"}


def test_the_working_directory_is_private_and_removed():
    program = "import os\ndef where():\n    open('scratch.txt', 'w').write('hi')\n    return os.getcwd()\n"
    [verdict] = run_jobs([Job(program=program, entry_point="where", inputs=[[]])], LIMITS)
    cwd = verdict.outputs[0][1]
    assert verdict.passed and cwd.startswith("/") and not os.path.exists(cwd)


def test_isolation_layers_are_reported():
    from rlhf_nb.sandbox import active_layers

    layers = active_layers()
    assert "rlimits" in layers and "audit-hook" in layers  # always; netns/landlock where the kernel has them
