"""Positive controls for the sandbox's red-team tests: the same job, run with the sandbox off.

An attack that the sandbox "blocks" proves nothing if it would also fail without one (a wrong path, a pid range
that misses the real pids, a cheat that cannot fool even a naive check). So every attack also runs here, in a
plain subprocess of this interpreter with the sandbox's job protocol and none of its layers: the program is
executed, the tests run in a copy of its namespace and ``check(candidate)`` is called, and the verdict is written
as ``<nonce> <json>`` to a result pipe, as ``rlhf_nb/sandbox/harness.py`` does. What is missing on purpose: the
mount jail, namespaces, Landlock, rlimits, the audit hook, the type guard on return values, the integrity check,
captured built-ins, closing inherited descriptors (``pass_fds``) and ``os._exit`` after the verdict.

The attack programs are hostile input: they only ever run in these subprocesses (each in its own session, killed
as a group at its deadline), never in the test process, in a working folder the test creates, against files and
sockets the test creates in its own temporary folders.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

#: the unprotected harness (run as ``python -I -B -c RUNNER <result fd>``, the job as JSON on stdin)
RUNNER = r'''
import json, os, resource, sys

resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # host hygiene only: a crashing attack leaves no core file


def run(job, result_fd):
    nonce = job.pop("nonce")

    def report(status, message=""):
        os.write(result_fd, (nonce + " " + json.dumps({"status": status, "message": message}) + "\n").encode())

    ns = {"__name__": "__candidate__"}
    try:
        exec(compile(job["program"], "<program>", "exec"), ns)
        test_ns = dict(ns)
        exec(compile(job["test"], "<tests>", "exec"), test_ns)
        test_ns["check"](ns[job["entry_point"]])
    except Exception as err:
        report("failed", f"{type(err).__name__}: {err}")
        return
    report("passed")


job = json.loads(sys.stdin.read())
run(job, int(sys.argv[1]))
'''

_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1"}


@dataclass
class PlainRun:
    """What a plain, unsandboxed run of one job produced."""

    nonce: str
    returncode: int | None  # negative: killed by that signal; None: still running at the deadline (then killed)
    stdout: bytes  # the first ``cap`` bytes
    stdout_bytes: int  # all bytes the program printed before the deadline
    result: bytes  # the result pipe: the first ``cap`` bytes
    result_bytes: int
    seconds: float

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    @property
    def lines(self) -> list[bytes]:
        return [line for line in self.result.split(b"\n") if line]

    @property
    def verdict(self) -> str | None:
        """The status the harness reported under its nonce on the first result line (None: no such line)."""
        if not self.lines or not self.lines[0].startswith(self.nonce.encode() + b" "):
            return None
        try:
            return json.loads(self.lines[0][len(self.nonce) + 1:])["status"]
        except (ValueError, KeyError, TypeError):
            return None

    @property
    def forged(self) -> list[bytes]:
        """Result lines that claim a pass and are not the harness's own report."""
        own = self.nonce.encode() + b" "
        return [line for line in self.lines if b"passed" in line and not line.startswith(own)]


def _exited(pid: int) -> bool:
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def run_plain(program: str, test: str, entry_point: str, workdir: Path, timeout_s: float,
              pass_fds: tuple[int, ...] = (), cap: int = 1 << 20, term_first: bool = False) -> PlainRun:
    """Run one job with the sandbox off, in ``workdir`` (a fresh folder), killed with its whole session at
    ``timeout_s``. ``pass_fds``: descriptors it inherits (a harness that does not close them). ``term_first``: at the
    deadline send SIGTERM and SIGINT and wait a moment before SIGKILL (does the program survive them?)."""
    nonce = secrets.token_hex(16)
    read_fd, write_fd = os.pipe()
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-I", "-B", "-c", RUNNER, str(write_fd)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=workdir, env=dict(_ENV),
                            pass_fds=(write_fd, *pass_fds), start_new_session=True)
    os.close(write_fd)
    got: dict[str, tuple[bytes, int]] = {}

    def drain(name: str, fd: int) -> None:  # keep the first cap bytes, count the rest
        kept, total = [], 0
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:
                break
            if not chunk:
                break
            if total < cap:
                kept.append(chunk[: cap - total])
            total += len(chunk)
        got[name] = (b"".join(kept), total)

    readers = [threading.Thread(target=drain, args=("stdout", proc.stdout.fileno()), daemon=True),
               threading.Thread(target=drain, args=("result", read_fd), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        proc.stdin.write(json.dumps({"nonce": nonce, "program": program, "test": test,
                                     "entry_point": entry_point}).encode())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    # wait without reaping: while the exited leader is a zombie its pid (the session's group id) cannot be reused,
    # so the group kill below reaches only what this run started
    deadline = started + timeout_s
    while not _exited(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    stalled = not _exited(proc.pid)
    if stalled and term_first:
        for sig in (signal.SIGTERM, signal.SIGINT):
            os.killpg(proc.pid, sig)
        time.sleep(0.5)
        stalled = not _exited(proc.pid)  # it did stop: report that it ended, not that it stalled
    seconds = time.monotonic() - started
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole session: anything it started goes too
    except ProcessLookupError:
        pass
    returncode = proc.wait()
    if stalled:
        returncode = None
    for reader in readers:
        reader.join(timeout=5)
    os.close(read_fd)
    proc.stdout.close()
    stdout, stdout_bytes = got.get("stdout", (b"", 0))
    result, result_bytes = got.get("result", (b"", 0))
    return PlainRun(nonce, returncode, stdout, stdout_bytes, result, result_bytes, seconds)
