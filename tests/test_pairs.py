"""Offline preference-pair builders: labels come from verifiers and references, never from the test."""

from __future__ import annotations

import json

from conftest import bundled
from rlhf_nb.data import MathTask, PreferencePair, Prompt, load_gsm8k, load_humaneval, load_ultrafeedback
from rlhf_nb.pairs import code_pairs, fits, fits_tokens, hh_pairs, math_pairs, pair_chars, prompt_of, reference_pairs


def test_math_pairs_prefer_the_reference_solution_to_a_wrong_answer_only():
    task = MathTask("m1", "Tom has 3 apples and buys 4 more. How many?", "7",
                    "3 + 4 = <<3+4=7>>7 apples.\n#### 7")
    pairs = math_pairs([task, task], ["3 + 4 = 8\n#### 8", "He has 7 apples.\n#### 7"])
    assert len(pairs) == 1  # the right own answer gives no pair
    pair = pairs[0]
    assert pair.rejected.endswith("#### 8") and "<<" not in pair.chosen and pair.chosen.endswith("#### 7")
    assert pair.prompt == prompt_of(task) and pair.source == "math"


def test_math_pairs_on_real_gsm8k_problems():
    tasks = load_gsm8k(str(bundled("gsm8k_train.jsonl.gz")), split="train", limit=5)
    pairs = math_pairs(tasks, ["I do not know."] * 5)
    assert len(pairs) == 5 and all(p.chosen.strip().splitlines()[-1].startswith("####") for p in pairs)


def test_code_pairs_use_the_sandbox_verdict():
    task = next(t for t in load_humaneval() if t.task_id == "HumanEval/53")  # add(x, y)
    right = "```python\ndef add(x: int, y: int):\n    return x + y\n```"
    wrong = "```python\ndef add(x: int, y: int):\n    return x - y\n```"
    pairs = code_pairs([task, task], [right, wrong])
    assert [p.rejected for p in pairs] == [wrong]
    assert pairs[0].chosen.startswith("```python") and "return x + y" in pairs[0].chosen
    assert isinstance(pairs[0], PreferencePair) and pairs[0].source == "code"


def test_reference_pairs_skip_missing_and_identical_answers():
    prompts = [Prompt("a", "Name a colour.", reference="Blue."), Prompt("b", "Say hi.", reference=None),
               Prompt("c", "Say yes.", reference="Yes.")]
    pairs = reference_pairs(prompts, ["Dog.", "hi", " Yes. "])
    assert [(p.chosen, p.rejected) for p in pairs] == [("Blue.", "Dog.")]


def test_length_filters():
    short = PreferencePair("s", [{"role": "user", "content": "q"}], "a" * 10, "b" * 20)
    long = PreferencePair("l", [{"role": "user", "content": "q" * 100}], "a" * 500, "b")
    assert pair_chars(short) == 21 and fits([short, long], 100) == [short]

    class CharTokenizer:  # one token per character of the rendered conversation
        def apply_chat_template(self, messages, tokenize=False):
            return "".join(m["content"] for m in messages)

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": list(text)}

    assert fits_tokens([short, long], CharTokenizer(), 21) == [short]
    assert fits_tokens([short, long], CharTokenizer(), 20) == []


def test_hh_pairs_are_seeded_and_fit_the_budget():
    path = str(bundled("hh_rlhf_harmless_base_test.jsonl.gz"))
    a, b = hh_pairs(path, 10, seed=1, max_chars=800), hh_pairs(path, 10, seed=1, max_chars=800)
    assert a == b and len(a) == 10 and all(pair_chars(p) <= 800 for p in a)
    assert hh_pairs(path, 10, seed=2, max_chars=800) != a


def test_ultrafeedback_from_a_local_file(tmp_path):
    rows = [{"prompt": "Hi?", "prompt_id": "p1", "chosen": [{"role": "user", "content": "Hi?"},
                                                           {"role": "assistant", "content": "Hello!"}],
             "rejected": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Go away."}]},
            {"prompt": "Same", "prompt_id": "p2", "chosen": [{"role": "user", "content": "Same"},
                                                            {"role": "assistant", "content": "x"}],
             "rejected": [{"role": "user", "content": "Same"}, {"role": "assistant", "content": "x"}]}]
    path = tmp_path / "uf.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    [pair] = load_ultrafeedback(str(path))  # the tie is dropped
    assert pair.prompt == [{"role": "user", "content": "Hi?"}] and (pair.chosen, pair.rejected) == ("Hello!", "Go away.")
