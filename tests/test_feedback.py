"""rlhf_nb.train.feedback (events, append-only log, translator, learners) and the panel, driven without a browser."""

from __future__ import annotations

import numpy as np
import pytest

from rlhf_nb.notebook.feedback_panel import FeedbackPanel, Item
from rlhf_nb.tasks import gold
from rlhf_nb.train.feedback import Event, FeedbackError, FeedbackLog, Targets, fit, fit_ensemble, translate


def _log(tmp_path) -> FeedbackLog:
    return FeedbackLog(tmp_path / "fb" / "feedback.jsonl")


def test_log_appends_survives_a_restart_and_undo_appends_a_retraction(tmp_path):
    log = _log(tmp_path)
    first = log.append(Event("rating", "p1", ("p1/r0",), {"value": 7}, annotator="ann"))
    log.append(Event("comparison", "p1", ("p1/r0", "p1/r1"), {"preferred": "p1/r1"}, annotator="ann"))
    before = log.path.read_text()
    again = _log(tmp_path)  # a new kernel
    assert [e.type for e in again.events()] == ["rating", "comparison"] and again.events()[0].id == first.id
    taken = again.undo("ann")
    assert taken.type == "comparison"
    assert log.path.read_text().startswith(before)  # nothing rewritten, only appended
    assert [e.type for e in log.events()] == ["rating"] and [e.type for e in log.raw()][-1] == "retract"
    assert len(log) == 1


@pytest.mark.parametrize("event, field", [
    (Event("rating", "p", ("r",), {"value": 11}), "value"),
    (Event("rating", "p", ("r",), {"value": "high"}), "value"),
    (Event("comparison", "p", ("a", "b"), {"preferred": "c"}), "preferred"),
    (Event("ranking", "p", ("a", "b", "c"), {"order": ["a", "a", "b"]}), "order"),
    (Event("correction", "p", ("a",), {"text": "same", "original": "same"}), "identical"),
    (Event("demonstration", "p", ("a", "b"), {"text": "  "}), "text"),
    (Event("descriptive", "p", ("a",), {"features": {"runs": "yes"}}), "features"),
    (Event("praise", "p", ("a",), {}), "unknown feedback type"),
])
def test_bad_events_name_the_problem_and_write_nothing(tmp_path, event, field):
    log = _log(tmp_path)
    log.append(Event("text", "p", ("a",), {"text": "kept"}))
    before = log.path.read_text()
    with pytest.raises(FeedbackError, match=field):
        log.append(event)
    assert log.path.read_text() == before


def test_translate_standardises_deduplicates_and_drops_retracted(tmp_path):
    log = _log(tmp_path)
    log.append(Event("rating", "p", ("r0",), {"value": 2}, annotator="x"))
    log.append(Event("rating", "p", ("r0",), {"value": 8}, annotator="x"))  # changed mind: replaces the first
    log.append(Event("rating", "p", ("r1",), {"value": 5}, annotator="y"))
    log.append(Event("comparison", "p", ("r0", "r1"), {"preferred": "tie"}))
    log.append(Event("ranking", "p", ("r0", "r1", "r2"), {"order": ["r2", "r0", "r1"]}))
    fixed = log.append(Event("correction", "p", ("r1",), {"text": "better", "original": "worse"}))
    log.append(Event("demonstration", "p", ("r0", "r1"), {"text": "ideal"}))
    log.append(Event("descriptive", "p", ("r2",), {"features": {"a": True, "b": False}}))
    log.append(Event("text", "p", ("r0",), {"text": "too long"}))
    log.append(Event("comparison", "p", ("r1", "r2"), {"preferred": "r2"}, annotator="z"))
    log.undo("z")
    t = translate(log.events())
    assert t.duplicates == 1
    assert sorted(t.values["rating"]) == [("r0", 0.8), ("r1", 0.5)]
    assert "comparison" not in t.pairs  # a tie teaches no order; the other comparison was retracted
    assert t.pairs["ranking"] == [("r2", "r0"), ("r2", "r1"), ("r0", "r1")]
    new = f"correction:{fixed.id}"
    assert t.pairs["correction"] == [(new, "r1")] and t.texts[new] == ("p", "better")
    demo = [k for k in t.texts if k.startswith("demonstration:")][0]
    assert t.pairs["demonstration"] == [(demo, "r0"), (demo, "r1")]
    assert t.values["descriptive"] == [("r2", 0.5)] and t.comments == [("p", "too long")]


def test_each_learner_recovers_a_planted_direction():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 16))
    quality = x[:, 0] - 0.5 * x[:, 1]
    feats = {f"r{i}": x[i] for i in range(200)}
    values = Targets(values={"rating": [(f"r{i}", float(quality[i] > 0)) for i in range(100)]})
    order = [(f"r{i}", f"r{i + 1}") if quality[i] > quality[i + 1] else (f"r{i + 1}", f"r{i}") for i in range(0, 100, 2)]
    pairs = Targets(pairs={"comparison": order})
    held = x[100:]
    for kind, targets in (("rating", values), ("comparison", pairs)):
        model = fit(kind, targets, feats, l2=1.0)
        assert np.corrcoef(model.score(held), quality[100:])[0, 1] > 0.7, kind
    both = Targets(values=values.values, pairs=pairs.pairs)
    ens = fit_ensemble(both, feats, x, l2=1.0, bootstraps=3)
    assert set(ens.members) == {"rating", "comparison"}
    assert np.corrcoef(ens.score(held), quality[100:])[0, 1] > 0.7
    assert fit("rating", Targets(values={"rating": [("r0", 0.5), ("r1", 0.5)]}), feats) is None  # nothing varies


def test_every_fix_makes_its_instruction_hold():
    prompts = gold.synthetic_prompts(150, seed=5, per_prompt=(2, 3))
    reply = "Sure, here it is. The answer is simple, and it is really very short.\n- one\n- two\nThat is it."
    seen = set()
    for p in prompts:
        for i, name in enumerate(p.instructions):
            assert gold.followed(p, gold.fix(p, reply, i))[i], (name, p.kwargs[i])
            seen.add(name)
    assert seen == set(gold.POOL)


def test_a_system_line_reaches_every_use_of_a_prompt():
    from rlhf_nb.lm.generation import render_prompt
    from rlhf_nb.lm.models import load

    plain, brief = gold.synthetic_prompts(3, seed=2), gold.synthetic_prompts(3, seed=2, system="Be brief.")
    assert [p.text for p in plain] == [p.text for p in brief]  # the same requests and instructions
    assert plain[0].messages() == [{"role": "user", "content": plain[0].text}]
    assert brief[0].messages() == [{"role": "system", "content": "Be brief."}, *plain[0].messages()]
    pairs = gold.gold_pairs(brief, [["a b", "a c"]] * 3, [[1.0, 0.0]] * 3)  # DPO and the PMs read pair.prompt
    assert pairs and all(p.prompt[0]["content"] == "Be brief." for p in pairs)
    tokenizer = load("tiny").tokenizer
    assert "Be brief." in render_prompt(tokenizer, brief[0].messages())
    assert "Be brief." not in render_prompt(tokenizer, plain[0].messages())


def _panel(tmp_path, **kw) -> FeedbackPanel:
    items = [Item("p1", "Say hi.", [("p1/r0", "hi"), ("p1/r1", "hello there")], ["follows: lowercase"]),
             Item("p2", "Say bye.", [("p2/r0", "bye"), ("p2/r1", "Bye!"), ("p2/r2", "ciao")])]
    return FeedbackPanel(items, _log(tmp_path), **kw)


def test_panel_records_each_type_and_shows_errors_without_writing(tmp_path):
    seen = []
    panel = _panel(tmp_path, on_event=lambda: seen.append(1) or "status line")
    panel.compare["a"].click()
    panel.rating.value = 9
    panel.rate.click()
    panel.target.value = "B"
    panel.correction.value = "Hello there."
    panel.correct.click()
    panel.flags.children[0].value = True
    panel.describe.click()
    assert [e.type for e in panel.log.events()] == ["comparison", "rating", "correction", "descriptive"]
    assert panel.log.events()[0].content == {"preferred": "p1/r0"}
    assert panel.log.events()[2].response_ids == ("p1/r1",) and panel.status.value == "status line"
    assert panel.log.events()[3].content == {"features": {"follows: lowercase": True}}
    before = panel.log.path.read_text()
    panel.go(+1)
    panel.order.value = "A, A, C"
    panel.rank.click()
    assert "Not recorded" in panel.message.value and "ranking" in panel.message.value
    panel.order.value = "Z"
    panel.rank.click()
    assert "unknown response" in panel.message.value
    panel.demonstrate.click()  # empty text
    assert "empty" in panel.message.value
    assert panel.log.path.read_text() == before and len(seen) == 4
    panel.order.value = "C > A > B"
    panel.rank.click()
    assert panel.log.events()[-1].content == {"order": ["p2/r2", "p2/r0", "p2/r1"]}
    assert "2 of 2 prompts have feedback" in panel.progress.value


def test_panel_keys_undo_and_restart(tmp_path):
    panel = _panel(tmp_path, types=("comparison", "rating"))
    assert [panel.tabs.get_title(i) for i in range(2)] == ["comparison", "rating"]
    panel.keys.value = "b"
    panel.keys.value = "7"
    panel.keys.value = "42"  # off the 0-10 scale
    assert "Not recorded" in panel.message.value
    assert [(e.type, e.content) for e in panel.log.events()] == [("comparison", {"preferred": "p1/r1"}),
                                                               ("rating", {"value": 7})]
    panel.keys.value = "u"
    assert [e.type for e in panel.log.events()] == ["comparison"]
    restarted = _panel(tmp_path)
    assert "1 of 2 prompts have feedback" in restarted.progress.value
    with pytest.raises(ValueError, match="unknown feedback type"):
        _panel(tmp_path, types=("rating", "vibes"))


def test_panel_hotkeys_over_the_responses(tmp_path):
    panel = _panel(tmp_path, types=("comparison", "rating"))
    assert panel.hotkeys is not None and panel.hotkeys.watched_events == ["keydown"]
    press = lambda key, **mods: panel._on_key({"type": "keydown", "key": key, **mods})  # noqa: E731
    press("a")
    press("c", ctrlKey=True)  # a copy, not feedback
    press("Shift")
    press("ArrowRight")
    press("t")
    assert [(e.type, e.prompt_id, e.content) for e in panel.log.events()] == [
        ("comparison", "p1", {"preferred": "p1/r0"}), ("comparison", "p2", {"preferred": "tie"})]
