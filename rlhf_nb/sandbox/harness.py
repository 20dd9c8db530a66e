"""Trusted side of the sandbox: a fork server that runs untrusted programs, one child process each.

``rlhf_nb.sandbox`` starts this file as ``python -I -B harness.py`` with an empty environment, in a
fresh process session, and talks to it over stdin/stdout (length-prefixed messages). Standard library
only; nothing here imports rlhf_nb.

The server (``serve``) imports what children need once, moves itself into a new user + network
namespace (no network at all) and under a Landlock ruleset (read-only access to the Python installation
and system libraries, read-write access to its own scratch folder only, no TCP, no signals out), then
forks one child per job, enforces the wall-clock timeout, kills the child's process group, and relays
the child's result bytes to the parent unchanged.

A child (``run_child``) closes the server's channels, stacks a second Landlock ruleset that narrows
writes to its own scratch folder, applies rlimits (address space, CPU seconds, file size, open files,
no core files), installs an audit hook that refuses process creation, sockets, ctypes, new audit
hooks, tracing/profiling hooks and frame/gc introspection, then runs the program and its tests
(``check(candidate)`` or calls on given inputs). The candidate is wrapped so that any return value not
made of plain built-in types fails (objects that claim equality with anything cannot pass). Finally it
verifies integrity (no background threads, no trace hooks, built-ins and common modules untouched) and
only then writes ``<nonce> <json>`` to its result pipe and ``_exit``s.

The parent trusts nothing else: not the exit code, not the printed text, not a result line that lacks
the nonce. The nonce lives only in local variables of ``run_child`` and never reaches the program.
"""

import sys

_SAFE_TYPES = (int, float, bool, str, bytes, complex, type(None), list, tuple, dict, set, frozenset)
_WATCHED_MODULES = ("math", "re", "string", "itertools", "collections", "functools", "operator", "heapq",
                    "bisect", "random", "hashlib", "fractions", "decimal", "statistics", "typing", "copy")
_BLOCKED_EVENTS = ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill",
                   "os.killpg", "subprocess.Popen", "pty.spawn", "socket.", "ctypes.", "sys.addaudithook",
                   "sys.settrace", "sys.setprofile", "sys._getframe", "sys._current_frames",
                   "sys._current_exceptions", "gc.get_objects", "gc.get_referrers", "gc.get_referents",
                   "object.__getattr__", "code.__new__", "cpython.run_", "cpython.remote_debugger",
                   "os.chroot", "os.setuid", "os.setgid", "os.mount", "mmap.__new__", "resource.setrlimit",
                   "resource.prlimit", "winreg.")
_WARM_UP = """
import math
from typing import List
class Box:
    def __init__(self, value: float) -> None:
        self.value = value
def f(xs: List[int], k: int = 2) -> list:
    assert isinstance(xs, list), f"{xs!r}"
    out = [x * k for x in xs if x % 2 == 0] + list({x: x for x in xs}.values())
    try:
        return sorted(out, key=lambda v: -v)[: max(1, len(out))]
    except (TypeError, ValueError) as err:
        raise RuntimeError(str(err)) from err
while f([1, 2, 3])[0] < 0:
    pass
Box(math.sqrt(4.0))
"""
_BLOCKED_IMPORTS = ("ctypes", "_ctypes", "_posixsubprocess", "_xxsubinterpreters", "_testcapi", "_testinternalcapi")


def _snapshot():
    """What tests rely on, taken in the server (which never runs untrusted code) and inherited by children."""
    import builtins

    modules = sys.modules
    watched = [(name, modules[name], dict(vars(modules[name]))) for name in _WATCHED_MODULES if name in modules]
    return watched, dict(vars(builtins))


def run_child(job, result_fd, layers, snapshot):  # noqa: C901 - one linear story, kept in one place on purpose
    """Runs in a freshly forked child; never returns."""
    import _hashlib
    import _json
    import _thread
    import builtins
    import os
    import resource
    import signal

    nonce = job.pop("nonce")

    # Every name used after the program starts is captured here, as a local: the program can rebind
    # built-ins and module attributes, but not the objects this frame already holds.
    write, exit_now, quote = os.write, os._exit, _json.encode_basestring_ascii
    exec_, compile_, repr_, type_, id_, len_, list_, str_, vars_ = exec, compile, repr, type, id, len, list, str, vars
    enumerate_ = enumerate
    base_exception, type_error, set_, int_, float_ = BaseException, TypeError, set, int, float
    count_threads, gettrace, getprofile = _thread._count, sys.gettrace, sys.getprofile
    sha256, hex_, big, inf = _hashlib.openssl_sha256, hex, 10 ** 1000, float("inf")

    def report(status, message="", outputs=None, layers=()):
        """Stream ``<nonce> <json>\\n`` to the result channel in chunks (outputs can be large), then exit."""
        pending = []

        def flush():
            view = memoryview("".join(pending).encode("utf-8", "surrogatepass"))
            pending.clear()
            while view:
                view = view[write(result_fd, view):]

        def put(text):
            pending.append(text)
            if len_(pending) > 4096:
                flush()

        def emit(obj):  # JSON from captured C primitives only: the json module is patchable
            kind = type_(obj)
            if kind is str_:
                put(quote(obj))
            elif obj is None or obj is True or obj is False:
                put("null" if obj is None else ("true" if obj else "false"))
            elif kind is int_ or kind is float_:
                put(repr_(obj))
            elif kind is dict:
                put("{")
                for i, (key, value) in enumerate_(obj.items()):
                    put(("," if i else "") + quote(key) + ":")
                    emit(value)
                put("}")
            else:
                put("[")
                for i, value in enumerate_(obj):
                    if i:
                        put(",")
                    emit(value)
                put("]")

        put(nonce + ' {"status":')
        emit(status)
        put(',"message":')
        emit(message[:2000])
        put(',"layers":')
        emit(list_(layers))
        if outputs is not None:
            put(',"outputs":')
            emit(outputs)
        put("}\n")
        flush()
        exit_now(0)

    layers = list_(layers)
    limits = job["limits"]
    mem = limits["memory_bytes"]
    for res, value in ((resource.RLIMIT_AS, mem), (resource.RLIMIT_DATA, mem),
                       (resource.RLIMIT_CPU, limits["cpu_seconds"]), (resource.RLIMIT_FSIZE, limits["output_bytes"]),
                       (resource.RLIMIT_NOFILE, 64), (resource.RLIMIT_CORE, 0)):
        try:
            resource.setrlimit(res, (value, value))
        except (ValueError, OSError):
            pass
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the output cap fails instead of killing us
    layers.append("rlimits")

    modules = sys.modules
    watched, builtins_before = snapshot
    builtins_dict = vars(builtins)
    threads_before = count_threads()
    safe_types = _SAFE_TYPES
    blocked_events, blocked_imports = _BLOCKED_EVENTS, _BLOCKED_IMPORTS

    def audit(event, args):
        if event == "object.__getattr__" and not args[1].endswith("_frame"):
            return  # __code__ and gi_code are fine; tb_frame, gi_frame, cr_frame, ag_frame lead to our frame
        if event.startswith(blocked_events) or (event == "import" and args[0] in blocked_imports):
            if event == "sys._getframe":  # stdlib helpers (namedtuple, enum, typing) tolerate ValueError
                raise ValueError("sandbox: the call stack is not available")
            if event == "object.__getattr__":
                raise AttributeError(f"sandbox: {args[1]} is not available")
            raise PermissionError(f"sandbox: {event} is not allowed")

    sys.addaudithook(audit)
    layers.append("audit-hook")

    def plain(value, depth, seen):
        """True if value is built only of plain built-in types (exact types, no subclasses)."""
        kind = type_(value)
        for safe in safe_types:  # identity, never ==: a metaclass can make == lie
            if kind is safe:
                break
        else:
            return False
        if depth > 100:
            return False
        if kind is list or kind is tuple or kind is set or kind is frozenset or kind is dict:
            if id_(value) in seen:
                return False
            seen.add(id_(value))
            for item in (list_(value.items()) if kind is dict else list_(value)):
                if kind is dict:
                    if not plain(item[0], depth + 1, seen) or not plain(item[1], depth + 1, seen):
                        return False
                elif not plain(item, depth + 1, seen):
                    return False
        return True

    def guard(fn):
        def candidate(*args, **kwargs):
            out = fn(*args, **kwargs)
            if not plain(out, 0, set_()):
                raise type_error(f"candidate returned a {type_(out).__name__}, not a plain built-in value")
            return out
        return candidate

    def tag(value):
        """Type-tagged JSON-ready copy, so tuples, sets, special floats and huge values survive the trip."""
        kind = type_(value)
        if kind is float_:
            return value if value == value and value not in (inf, -inf) else {"f": repr_(value)}
        if kind is int_ and (value > big or value < -big):  # decimal repr is capped; hex is not
            return {"x": hex_(value)}
        if kind is str_ and len_(value) > 4096:  # long strings travel as a digest (equal iff equal)
            return {"h": sha256(value.encode("utf-8", "surrogatepass")).hexdigest()}
        if kind is complex or kind is bytes:
            return {"r": repr_(value)}
        if kind is dict:
            return {"d": [[tag(k), tag(v)] for k, v in list_(value.items())]}
        if kind is list or kind is tuple or kind is set or kind is frozenset:
            key = "l" if kind is list else "t" if kind is tuple else "s" if kind is set else "z"
            return {key: [tag(v) for v in list_(value)]}
        return value  # int, bool, str, None

    ns = {"__name__": "__candidate__"}
    outputs = None
    program, tests, entry, inputs = job["program"], job.get("test"), job.get("entry_point"), job.get("inputs")
    sys.modules["__main__"] = type_(sys)("__main__")  # the program never sees this module
    sys.path[:] = job["sys_path"]  # the standard library (and packages granted to this job), nothing else
    sys.setrecursionlimit(10_000)
    sys.set_int_max_str_digits(0)
    try:
        exec_(compile_(program, "<program>", "exec"), ns)
        if tests:
            # the tests run in a copy of the program's namespace: the candidate's globals never hold check()
            # (whose constants are the expected answers)
            test_ns = dict(ns)
            exec_(compile_(tests, "<tests>", "exec"), test_ns)
            if entry:
                test_ns["check"](guard(ns[entry]))
        if inputs is not None:
            fn = guard(ns[entry])
            outputs = []
            for args in inputs:
                try:
                    outputs.append({"ok": tag(fn(*args))})
                except base_exception as err:  # the program's exception is its output for this input
                    outputs.append({"error": type_(err).__name__})
    except base_exception as err:
        report("failed", f"{type_(err).__name__}: {err}"[:500], layers=layers)

    problems = []
    if count_threads() != threads_before:
        problems.append("background threads left running")
    if gettrace() is not None or getprofile() is not None:
        problems.append("trace or profile hook installed")
    if len_(builtins_dict) != len_(builtins_before):
        problems.append("built-ins modified")
    else:
        for key, value in list_(builtins_before.items()):
            if builtins_dict.get(key) is not value:
                problems.append("built-ins modified")
                break
    for name, module, before in watched:
        live = vars_(module) if modules.get(name) is module else None
        if live is None or len_(live) < len_(before):
            problems.append(f"module {name} modified")
            continue
        for key, value in list_(before.items()):
            if live.get(key) is not value:
                problems.append(f"module {name} modified")
                break
    if problems:
        report("failed", "tampering: " + ", ".join(problems), layers=layers)
    report("passed", outputs=outputs, layers=layers)


def _new_namespaces():
    """unshare a new user + network (+ mount) namespace: no network interfaces up, private mounts.

    Returns the set of namespaces entered ("net", "mnt"); empty if the host allows none.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
    except Exception:  # noqa: BLE001 - the layers are optional; the report says which are active
        return set()
    import os

    uid, gid = os.getuid(), os.getgid()
    user, net, mnt = 0x10000000, 0x40000000, 0x00020000
    if libc.unshare(user | net | mnt) == 0:
        entered = {"net", "mnt"}
    elif libc.unshare(user | net) == 0:
        entered = {"net"}
    else:
        return set()
    # map our own ids into the namespace (files created in the jail need an owner the kernel can represent)
    for path, text in (("/proc/self/setgroups", "deny"), ("/proc/self/uid_map", f"{uid} {uid} 1"),
                       ("/proc/self/gid_map", f"{gid} {gid} 1")):
        try:
            with open(path, "w") as f:
                f.write(text)
        except OSError:
            pass
    return entered


_MS = {"rdonly": 1, "nosuid": 2, "nodev": 4, "noexec": 8, "remount": 32, "bind": 4096, "rec": 16384,
       "private": 1 << 18, "noatime": 1024, "nodiratime": 2048, "relatime": 1 << 21}


def _locked_flags(path):
    """Mount flags a bind remount inside a user namespace must keep (the kernel locks them)."""
    import os

    f = os.statvfs(path).f_flag
    out = 0
    for bit, name in ((2, "nosuid"), (4, "nodev"), (8, "noexec"), (1024, "noatime"), (2048, "nodiratime"),
                      (4096, "relatime")):
        if f & bit:
            out |= _MS[name]
    return out


GRANTED = "/granted"  # inside the mount jail, packages granted by name appear here (and only these)


def _jail(root, read_paths, hidden, write_paths, grants=()):
    """Build a new root from bind mounts of exactly ``read_paths`` (read-only) and ``write_paths`` (read-write),
    cover ``hidden`` paths inside them with empty read-only tmpfs, then chroot into it. Needs a private mount
    namespace (see :func:`_new_namespaces`); nothing else of the host's file system exists inside, /proc included.
    """
    import ctypes
    import os

    libc = ctypes.CDLL(None, use_errno=True)

    def mount(source, target, fstype, flags, data=None):
        enc = lambda v: None if v is None else v.encode()  # noqa: E731
        if libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
            raise OSError(ctypes.get_errno(), f"mount {source} on {target}")

    def place(source, writable):
        target = root + source
        if os.path.isdir(source):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "a").close()
        mount(source, target, None, _MS["bind"])
        if not writable:
            mount(None, target, None, _MS["remount"] | _MS["bind"] | _MS["rdonly"] | _locked_flags(source))

    mount(None, "/", None, _MS["rec"] | _MS["private"])  # nothing we do here propagates to the host
    os.makedirs(root, exist_ok=True)
    mount("tmpfs", root, "tmpfs", _MS["nosuid"], "mode=0755,size=1m")
    for path in read_paths:
        if os.path.exists(path):
            place(path, writable=False)
    for path in hidden:
        if os.path.isdir(root + path):
            mount("tmpfs", root + path, "tmpfs", _MS["nosuid"] | _MS["nodev"] | _MS["rdonly"], "mode=0555,size=4k")
    for path in write_paths:
        place(path, writable=True)
    for source in grants:  # a granted package, bound alone under /granted: its siblings stay invisible
        target = root + GRANTED + "/" + os.path.basename(source)
        if os.path.isdir(source):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "a").close()
        mount(source, target, None, _MS["bind"])
        mount(None, target, None, _MS["remount"] | _MS["bind"] | _MS["rdonly"] | _locked_flags(source))
    mount(None, root, None, _MS["remount"] | _MS["rdonly"] | _MS["nosuid"])  # the skeleton itself is read-only
    if libc.chroot(root.encode()) != 0:
        raise OSError(ctypes.get_errno(), "chroot")
    os.chdir("/")


class _Landlock:
    """Landlock rulesets through raw syscalls (ctypes): built once in the server, stamped per job.

    ``rules`` are packed once for the read-only paths; ``ruleset(write_paths)`` adds the job's
    read-write folder and returns a ruleset fd that ``enforce`` applies in the child.
    """

    CREATE, ADD_RULE, RESTRICT = 444, 445, 446  # same numbers on x86_64 and aarch64
    READ_ONLY = (1 << 0) | (1 << 2) | (1 << 3)  # execute, read_file, read_dir
    FILE_BITS = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 14)  # rights that apply to a single file

    def __init__(self, read_paths, grant_paths=(), listable=()):
        import ctypes
        import os
        import struct

        self.ctypes, self.os, self.struct = ctypes, os, struct
        libc = ctypes.CDLL(None, use_errno=True)
        self.libc, self.syscall = libc, libc.syscall
        self.syscall.restype = ctypes.c_long
        self.abi = self.syscall(self.CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
        if self.abi < 1:
            self.abi = 0
            return
        fs_all = (1 << 13) - 1  # execute .. make_sym (ABI 1)
        fs_all |= (1 << 13) if self.abi >= 2 else 0  # refer
        fs_all |= (1 << 14) if self.abi >= 3 else 0  # truncate
        fs_all |= (1 << 15) if self.abi >= 5 else 0  # ioctl_dev
        self.fs_all = fs_all
        if self.abi >= 6:  # + deny TCP bind/connect, scope signals and abstract unix sockets
            attr = struct.pack("QQQ", fs_all, 0b11, 0b11)
        elif self.abi >= 4:
            attr = struct.pack("QQ", fs_all, 0b11)
        else:
            attr = struct.pack("Q", fs_all)
        self.attr = ctypes.create_string_buffer(attr, len(attr))
        self.rules = []  # (buffer, fd) kept alive for the server's lifetime: every job's base rules
        self.grants = {}  # package path -> (buffer, fd): added to the rulesets of the jobs granted that package
        for path in read_paths:
            self._keep(path, self.READ_ONLY)
        for path in grant_paths:
            rule = self._rule(path, self.READ_ONLY)
            if rule:
                self.grants[path] = rule
        self.listable = [r for r in (self._rule(p, 1 << 3) for p in listable) if r]  # read_dir only: names, not files
        for path in ("/dev/null", "/dev/zero", "/dev/urandom"):
            self._keep(path, (1 << 1) | (1 << 2))
        if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS, inherited by every child
            self.abi = 0

    def _rule(self, path, access):
        os = self.os
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            return None
        if not os.path.isdir(path):
            access &= self.FILE_BITS
        packed = self.struct.pack("=Qi", access, fd)
        return self.ctypes.create_string_buffer(packed, len(packed)), fd

    def _keep(self, path, access):
        rule = self._rule(path, access)
        if rule:
            self.rules.append(rule)

    def ruleset(self, write_paths, grants=None):
        """A new ruleset fd: the read-only rules, the granted package paths (``None``: all of them), and
        read-write access to ``write_paths``; -1 if unavailable."""
        if not self.abi:
            return -1
        c = self.ctypes
        fd = self.syscall(self.CREATE, self.attr, c.c_size_t(len(self.attr)), c.c_uint32(0))
        if fd < 0:
            return -1
        extra = [r for r in (self._rule(p, self.fs_all) for p in write_paths) if r]
        granted = list(self.grants.values()) if grants is None else [self.grants[g] for g in grants if g in self.grants]
        granted += self.listable if granted else []
        for buf, _ in self.rules + granted + extra:
            self.syscall(self.ADD_RULE, fd, c.c_int(1), buf, c.c_uint32(0))
        for _, path_fd in extra:
            self.os.close(path_fd)
        return fd

    def enforce(self, ruleset_fd):
        """Restrict the calling process (and its future children); True on success."""
        if ruleset_fd < 0:
            return False
        ok = self.syscall(self.RESTRICT, ruleset_fd, self.ctypes.c_uint32(0)) == 0
        self.os.close(ruleset_fd)
        return ok


def _read_message(fd):
    import json

    header = _read_exact(fd, 4)
    if header is None:
        return None
    return json.loads(_read_exact(fd, int.from_bytes(header, "big")))


def _read_exact(fd, n):
    import os

    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _send(fd, data):
    import os

    view = memoryview(len(data).to_bytes(4, "big") + data)
    while view:
        view = view[os.write(fd, view):]


def serve():
    """Fork server loop: one job message in, one header + one raw result out, until stdin closes."""
    import json
    import os
    import select
    import shutil
    import signal
    import time

    for name in _WATCHED_MODULES:  # children start with these loaded (and snapshot them)
        try:
            __import__(name)
        except ImportError:
            pass
    import _hashlib  # noqa: F401 - preloaded for children
    import _json  # noqa: F401
    import resource  # noqa: F401

    setup = _read_message(0)
    scratch = setup["scratch"]
    layers, problems = [], []
    entered = _new_namespaces()
    grants = setup["grant_paths"]
    if "net" in entered:
        layers.append("netns")
    if "mnt" in entered:
        try:
            _jail(os.path.join(scratch, ".jail"), setup["jail_paths"], setup["hidden"], [scratch] + setup["devices"],
                  grants)
            layers.append("mount-jail")
        except OSError as err:
            problems.append(f"mount jail: {err}")
    jailed = "mount-jail" in layers
    # where a granted package is found from inside: /granted/<name> in the jail, else its own folder (whose parent,
    # site-packages, then needs to be listable; Landlock still lets nothing but the granted package be read)
    where = {g: (GRANTED + "/" + os.path.basename(g)) if jailed else g for g in grants}
    os.chdir(scratch)
    listable = [GRANTED] if jailed and grants else sorted({os.path.dirname(g) for g in grants})
    landlock = _Landlock(setup["read_paths"], list(where.values()), listable)
    if landlock.enforce(landlock.ruleset([scratch])):
        layers.append(f"landlock-v{landlock.abi}")
    else:
        problems.append("landlock: not available on this kernel")
    exec(compile(_WARM_UP, "<warm-up>", "exec"), {"__name__": "__warm_up__"})  # compiler state, once
    snapshot = _snapshot()
    _send(1, json.dumps({"layers": layers, "problems": problems}).encode())
    cap = setup["result_cap"]
    counter = 0
    while True:
        job = _read_message(0)
        if job is None:
            return
        counter += 1
        workdir = os.path.join(scratch, f"job-{counter}")
        os.mkdir(workdir, 0o700)
        job["workdir"] = workdir
        job_grants = [where[g] for g in job.get("grants") or [] if g in where]
        job["sys_path"] = setup["sys_path"] + sorted({os.path.dirname(g) for g in job_grants})
        out_path = os.path.join(workdir, ".output")
        # stacked on the server's: writes to this folder only, reads of the packages granted to this job only
        job_rules = landlock.ruleset([workdir], job_grants)
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: drop the server's channels before anything else
            try:
                os.setsid()
                os.close(read_fd)
                out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.dup2(out, 1)
                os.dup2(out, 2)
                child_layers = layers + (["landlock-job"] if landlock.enforce(job_rules) else [])
                os.closerange(3, write_fd)
                os.closerange(write_fd + 1, 1 << 16)
                os.chdir(workdir)
                os.environ.clear()
                os.environ.update({"TMPDIR": workdir, "HOME": workdir, "LANG": "C.UTF-8"})
                run_child(job, write_fd, child_layers, snapshot)
            finally:
                os._exit(70)
        os.close(write_fd)
        if job_rules >= 0:
            os.close(job_rules)
        deadline = time.monotonic() + job["limits"]["timeout_s"]
        chunks, size, timed_out = [], 0, False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([read_fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(read_fd, 1 << 20)
            if not chunk:
                break
            size += len(chunk)
            if size <= cap:
                chunks.append(chunk)
        try:
            os.killpg(pid, signal.SIGKILL)  # the whole tree, whatever it did
        except OSError:
            pass
        _, status = os.waitpid(pid, 0)
        os.close(read_fd)
        try:
            with open(out_path, "rb") as f:
                printed = f.read(2000).decode("utf-8", "replace")
        except OSError:
            printed = ""
        shutil.rmtree(workdir, ignore_errors=True)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        _send(1, json.dumps({"timed_out": timed_out, "returncode": code, "printed": printed}).encode())
        _send(1, b"".join(chunks))


if __name__ == "__main__":
    serve()
