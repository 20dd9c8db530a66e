"""Notebook 04 (Precise RLAIF): sentence surgery, the degradation filters, the same-budget control, its claims on
constructed results, the offline En->Fr set, and a smoke run through papermill."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import assert_report_recomputes

from rlhf_nb.evidence import claims as C
from rlhf_nb.notebook.config import load_params
from rlhf_nb.papers.precise_rlaif import claims, judging, readers, steps
from rlhf_nb.run import runner
from rlhf_nb.tasks import gold, parallel
from rlhf_nb.tasks.gold import GoldSamples

ANSWER = ("Here are two ideas.\n- Eat slowly and savour each bite. Put the fork down between bites!\n"
          "2. Drink water before meals, because it helps you notice fullness.\n")


# --- sentences ---------------------------------------------------------------------------------


def test_sentences_split_lines_and_ends_and_keep_list_markers_outside():
    assert steps.sentences(ANSWER) == ["Here are two ideas.", "Eat slowly and savour each bite.",
                                       "Put the fork down between bites!",
                                       "Drink water before meals, because it helps you notice fullness."]
    assert steps.degradable(ANSWER, 5) == [1, 2, 3]
    assert steps.degradable("Use this:\nif (n == 3) { return x; }\nThis is point 1*\nIt works well here.", 3) == [3]


def test_meta_replies_and_fragments_are_not_rewrites(monkeypatch):
    rewrites = ["Here is the rewritten sentence:", "(Rewritten sentence) None", "Put the fork on the floor, loudly!"]
    P, prompts, _ = _setting(monkeypatch, rewrites)
    out = steps.degrade(None, FakeJudge(), prompts, [steps.Chosen(0, 0, ANSWER)], "all", P, seed=0)
    assert [r["stage"] for r in out.records][:2] == ["rewritten", "rewritten"]


def test_splice_changes_one_sentence_and_every_other_byte_stays():
    edited = steps.splice(ANSWER, 2, "Throw the fork away.")
    assert edited == ANSWER.replace("Put the fork down between bites!", "Throw the fork away.")
    assert steps.only_one_changed(ANSWER, edited, 2)
    assert not steps.only_one_changed(ANSWER, steps.splice(ANSWER, 2, "Throw it. Then shout."), 2)  # now two
    assert not steps.only_one_changed(ANSWER, ANSWER, 2)  # nothing changed


def test_clean_rewrite_takes_one_sentence_without_labels_or_quotes():
    assert steps.clean_rewrite('Rewritten sentence: "Eat fast and never stop." Then more.\nextra') == \
        "Eat fast and never stop."
    assert steps.clean_rewrite("\n\n  **Worse version:** Eat in a hurry.") == "Eat in a hurry."
    assert steps.clean_rewrite("   ") == ""


# --- degradation filters and the control -------------------------------------------------------


class FakeJudge:
    """P(first better): the answer that says 'slowly' and 'water' more often wins; a tie is 0.5."""

    def prefer_many(self, prompts, a, b):
        def score(text):
            return text.count("slowly") + text.count("water")

        return np.array([0.9 if score(x) > score(y) else 0.1 if score(x) < score(y) else 0.5 for x, y in zip(a, b)])


def _setting(monkeypatch, rewrites):
    P = load_params("04_precise_rlaif", "smoke", {"degrade.per_answer": 3, "degrade.min_words": 5,
                                                  "degrade.min_edit": 0.2}, check_inputs=False)[1]
    prompt = SimpleNamespace(id="p0", text="Give tips on mindful eating.",
                             messages=lambda: [{"role": "user", "content": "Give tips on mindful eating."}])
    prompts = steps.Prompts([prompt], [])
    calls = []

    def fake_sample(loaded, requests, config, label):
        calls.append(requests)
        return SimpleNamespace(first=rewrites[: len(requests)])

    monkeypatch.setattr(steps, "sample", fake_sample)
    return P, prompts, calls


def test_degrade_counts_every_filter_and_keeps_only_verified_pairs(monkeypatch):
    # sentence 1: unchanged; 2: too small an edit; 3: a real one-sentence degradation
    rewrites = ["Eat slowly and savour each bite.", "Put the fork down between bites.",
                "Drink soda before meals, as it hides fullness."]
    P, prompts, calls = _setting(monkeypatch, rewrites)
    chosen = [steps.Chosen(0, 0, ANSWER)]
    out = steps.degrade(None, FakeJudge(), prompts, chosen, "all", P, seed=0)
    assert len(calls[0]) == 3 and "less truthful" in calls[0][0][0]["content"]
    assert [r["stage"] for r in out.records] == ["a sentence", "changed", "judge prefers original"]
    assert {y["stage"]: y["count"] for y in out.yields()} == {
        "candidates": 3, "rewritten": 3, "a sentence": 3, "changed": 2, "edited enough": 1, "one sentence changed": 1,
        "judge prefers original": 1}
    (pair,) = out.pairs
    assert pair.chosen == ANSWER and pair.rejected == steps.splice(ANSWER, 3, rewrites[2])


def test_the_judge_filter_drops_pairs_it_does_not_prefer(monkeypatch):
    rewrites = ["Eat quickly and finish before everyone else.", "Put the plate on the floor instead of the table.",
                "Drink soda before meals, as it hides fullness."]
    P, prompts, _ = _setting(monkeypatch, rewrites)
    out = steps.degrade(None, FakeJudge(), prompts, [steps.Chosen(0, 0, ANSWER)], "helpfulness", P, seed=0)
    kept = {r["sentence"] for r in out.records if r["stage"] == "judge prefers original"}
    assert kept == {1, 3}  # the judge saw nothing worse in sentence 2's rewrite
    assert len(out.pairs) == 2 and [r["p_original"] for r in out.records] == [0.9, 0.5, 0.9]


def test_without_a_judge_every_verified_degradation_is_kept_and_says_so(monkeypatch):
    rewrites = ["Eat quickly and finish before everyone else.", "Put the plate on the floor instead of the table.",
                "Drink soda before meals, as it hides fullness."]
    P, prompts, _ = _setting(monkeypatch, rewrites)
    out = steps.degrade(None, None, prompts, [steps.Chosen(0, 0, ANSWER)], "helpfulness", P, seed=0)
    assert len(out.pairs) == 3 and not out.judged and [r["p_original"] for r in out.records] == [None] * 3
    assert {r["stage"] for r in out.records} == {"one sentence changed"}  # no record claims a judge preferred it
    results = {"data": {"degraded": {"helpfulness": {"yields": out.yields(), "judged": out.judged}},
                        "judge_filter": {"mode": "if-validated", "applied": False, "validated": False,
                                         "detail": "48% [40, ...] on 120 labelled pairs (chance 50%)"}}}
    (row,) = readers.yield_rows(results)
    assert row["one sentence changed"] == "3 (100%)" and "judge prefers original" not in row
    assert "3 pairs kept" in readers.finding_degradation(results)
    assert "judge filter was off (the judge is not validated: 48% [40" in readers.finding_degradation(results)


@pytest.mark.parametrize("agree, mode, applied", [(0.9, "if-validated", True), (0.5, "if-validated", False),
                                                  (0.5, "always", True), (0.9, "never", False)])
def test_the_judge_filter_applies_only_as_its_mode_and_the_validation_say(agree, mode, applied):
    P = load_params("04_precise_rlaif", "smoke", {"degrade.judge_filter": mode}, check_inputs=False)[1]
    n = 60  # pairs whose gold differs; the judge prefers the better one on a share `agree` of them
    validation = [{"p_a": 0.8 if k < agree * n else 0.2, "gold_a": 1.0, "gold_b": 0.0} for k in range(n)]
    rule = steps.judge_filter(P, validation)
    assert rule["applied"] is applied and rule["validated"] is (agree > 0.5)
    assert rule["validated"] == claims.judge_validated({"data": {"judge_validation": validation}})[0].holds


def test_sequence_control_matches_the_precise_budget_and_validates_the_judge():
    P = load_params("04_precise_rlaif", "smoke", {}, check_inputs=False)[1]
    prompts = steps.Prompts([SimpleNamespace(id=f"p{i}", text=f"q{i}", messages=lambda i=i: [{"role": "user",
                                                                                            "content": f"q{i}"}])
                             for i in range(3)], [])
    texts = [["eat slowly", "eat fast", "eat"], ["slowly a", "b", "c"], ["x", "y", "z"]]
    answers = GoldSamples(["p0", "p1", "p2"], texts, [[1.0, 0.0, 0.5], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
                          [[5, 5, 5]] * 3, [[True, True, True], [True, True, False], [True] * 3], 0.0)
    precise = steps.Degraded("all", [], [SimpleNamespace(id="p0-s1"), SimpleNamespace(id="p0-s2"),
                                         SimpleNamespace(id="p1-s0"), SimpleNamespace(id="p1-s3")])
    out = steps.sequence_pairs(FakeJudge(), prompts, answers, precise.pairs, P, seed=0)
    assert len(out.pairs) == 4  # the budget: p0 gives 2, p1 has only one pair of finished answers, p2 tops up
    per_prompt = [p.id.split("-")[0] for p in out.pairs]
    assert per_prompt.count("p0") >= 2 and per_prompt.count("p1") == 1  # the rest from leftovers (p0 or p2)
    for pair in out.pairs:
        if "slowly" in pair.chosen + pair.rejected:
            assert "slowly" in pair.chosen  # ordered by the judge
    agreement = judging.judge_agreement(out.judged)
    assert agreement and all(a == 1.0 for a in agreement[:1])
    validation = steps.validate_judge(FakeJudge(), prompts, answers, limit=10, seed=0)
    # every pair of finished answers whose gold differs: p0 has 3, p1 one (its third answer is cut off), p2 none
    assert [(r["prompt_index"], r["a"], r["b"]) for r in validation] == [(0, 0, 1), (0, 0, 2), (0, 1, 2), (1, 0, 1)]
    assert judging.judge_agreement(validation) == [1.0, 1.0, 0.5, 1.0]  # "eat fast" vs "eat": the judge ties
    assert len(steps.validate_judge(FakeJudge(), prompts, answers, limit=2, seed=0)) == 2


def test_programmatic_degradations_break_one_followed_instruction_in_one_sentence_verified_by_the_gold():
    P = load_params("04_precise_rlaif", "smoke", {"labeller": "gold", "degrade.method": "programmatic",
                                                  "degrade.per_answer": 2, "degrade.min_words": 3},
                    check_inputs=False)[1]
    prompt = gold.IFPrompt("p0", "Tell me about tea.", "Tell me about tea.",
                           ("punctuation:no_comma", "change_case:english_lowercase"), ({}, {}))
    text = "tea is a drink made from leaves. people drink it hot or cold. it comes from many countries."
    prompts = steps.Prompts([prompt], [])
    out = steps.degrade_programmatic(prompts, [steps.Chosen(0, 0, text)], P, seed=0)
    kept = [r for r in out.records if r["stage"] == "gold lower"]
    assert len(out.pairs) == len(kept) == 2 and len({r["sentence"] for r in kept}) == 2  # different sentences
    for pair, r in zip(out.pairs, kept):
        assert pair.chosen == text and steps.only_one_changed(text, pair.rejected, r["sentence"])
        assert gold.if_score(prompt, pair.rejected) < gold.if_score(prompt, text) == 1.0
        assert r["gold"] == [1.0, 0.5] and r["instruction"] in prompt.instructions
    assert [y["stage"] for y in out.yields()] == ["candidates", "gold lower"]
    # the gold labeller chooses the best finished answer that follows something; a failing one is never chosen
    answers = GoldSamples(["p0"], [["IT FAILS, BADLY. YES.", text]], [[0.0, 1.0]], [[5, 5]], [[True, True]], 0.0)
    assert [c.sample_index for c in steps.choose_answers(answers, P)] == [1]
    answers.gold = [[0.0, 0.0]]
    assert steps.choose_answers(answers, P) == []


def test_with_the_gold_as_labeller_the_sequence_control_takes_pairs_whose_gold_differs_ordered_by_it():
    P = load_params("04_precise_rlaif", "smoke", {"labeller": "gold"}, check_inputs=False)[1]
    prompts = steps.Prompts([SimpleNamespace(id=f"p{i}", text=f"q{i}", messages=lambda i=i: [{"role": "user",
                                                                                            "content": f"q{i}"}])
                             for i in range(3)], [])
    texts = [["a", "b", "c"], ["d", "e", "f"], ["g", "h", "i"]]
    scores = [[1.0, 0.0, 0.5], [0.5, 0.5, 0.5], [0.0, 1.0, 1.0]]
    answers = GoldSamples(["p0", "p1", "p2"], texts, scores, [[5] * 3] * 3, [[True] * 3] * 3, 0.0)

    class NoCalls:
        def prefer_many(self, *args):
            raise AssertionError("the judge was called")

    out = steps.sequence_pairs(NoCalls(), prompts, answers, [SimpleNamespace(id="p0-s1")] * 4, P, seed=0)
    assert len(out.pairs) == 4 and [r["p_a"] in (0.0, 1.0) for r in out.judged] == [True] * 4  # p0: 3, p2: 1; p1 ties
    gold_of = {t: g for row_t, row_g in zip(texts, scores) for t, g in zip(row_t, row_g)}
    assert all(gold_of[p.chosen] > gold_of[p.rejected] for p in out.pairs)
    assert not any(p.id.startswith("p1") for p in out.pairs)


def test_the_sequence_control_is_skipped_without_a_judge_call_when_its_judge_failed_validation():
    P = load_params("04_precise_rlaif", "smoke", {"sequence_control": "if-validated"}, check_inputs=False)[1]
    assert load_params("04_precise_rlaif", "cpu", {}, check_inputs=False)[1].sequence_control == "if-validated"

    class NoCalls:
        def prefer_many(self, *args):
            raise AssertionError("the judge was called")

    failed = {"validated": False, "detail": "agrees on 35% [28, 43] of 171 pairs"}
    out = steps.sequence_pairs(NoCalls(), None, None, None, P, seed=0, judge_filter=failed)
    assert out.pairs == [] and "failed its validation" in out.skipped and "35%" in out.skipped
    never = load_params("04_precise_rlaif", "smoke", {"sequence_control": False}, check_inputs=False)[1]
    assert "false" in steps.sequence_pairs(NoCalls(), None, None, None, never, seed=0).skipped
    with pytest.raises(Exception, match="sequence_control"):
        load_params("04_precise_rlaif", "smoke", {"sequence_control": "sometimes"}, check_inputs=False)


# --- claims on constructed results ------------------------------------------------------------


def _results(precise_gain: float, n: int = 120, judge_right: float = 0.9, seeds: int = 3, bleu: float = 20.0,
             bleu_cut_after: float = 0.02, labeller: str = "judge"):
    rng = np.random.default_rng(0)
    start = rng.integers(1, 4, n) / 4  # 0.25, 0.5 or 0.75: room to move either way

    def policy(arm, seed, shift):
        g = np.clip(start + shift * (rng.random(n) < 0.5) + 0.25 * rng.choice([-1, 0, 1], n), 0, 1)
        return {"arm": arm, "seed": seed, "gold": g.tolist(), "tokens": [50] * n, "finished": [True] * n,
                "texts": [""] * n, "pairs": 100, "history": [],
                "forgetting": {"bleu": (bleu + rng.normal(0, 1, 50)).tolist()}, "translations": [],
                "forgetting_cut_off": {"bleu": bleu_cut_after}, "dtype": "float32"}

    judged = [{"prompt_index": i, "a": 0, "b": 1, "p_a": 0.9 if rng.random() < judge_right else 0.1, "gold_a": 1.0,
               "gold_b": 0.0} for i in range(60)]
    trained = [policy("precise-all", s, precise_gain) for s in range(seeds)]
    trained += [policy("sequence", s, 0.0) for s in range(seeds)]
    start_policy = {"arm": "start", "seed": None, "gold": start.tolist(), "tokens": [50] * n, "finished": [True] * n,
                    "texts": [""] * n, "pairs": 0, "history": [],
                    "forgetting": {"humaneval": [0.0] * 40, "bleu": (bleu + rng.normal(0, 1, 50)).tolist()},
                    "translations": [], "forgetting_cut_off": {"humaneval": 0.05, "bleu": 0.02}, "dtype": "float32"}
    params = load_params("04_precise_rlaif", "cpu", {"labeller": labeller}, check_inputs=False)[1].model_dump()
    return {"params": params, "data": {"arms": {"start": start_policy, "base": None, "trained": trained},
                                       "sequence": {"judged": judged, "pairs": 100}, "degraded": {}}}


def _verdicts(results):
    return {c.id: c.verdict for c in claims.claims(results)}


def test_claims_reproduced_when_precise_clearly_wins():
    v = _verdicts(_results(0.5))
    assert v["R1b"] == C.REPRODUCED and v["R1c"] == C.REPRODUCED
    assert v["R1a"] == C.NOT_TESTED  # no base checkpoint
    assert v["R2i"] == C.NOT_TESTED  # no per-principle arms
    assert v["R3h"] == C.NOT_TESTED  # HumanEval at the floor
    assert v["R3b"] == C.REPRODUCED  # BLEU kept within 2 points
    assert v["R3g"] == C.NOT_TESTED  # not measured


def test_claims_not_reproduced_when_a_powered_design_sees_no_gain():
    v = _verdicts(_results(0.0, n=600))
    assert v["R1b"] == C.NOT_REPRODUCED and v["R1c"] == C.NOT_REPRODUCED


def test_the_start_policy_sampled_at_another_precision_leaves_its_comparisons_untested():
    results = _results(0.5)
    results["data"]["arms"]["start"]["dtype"] = "bfloat16"  # start in bf16, trained arms in fp32: rounding differs
    v = _verdicts(results)
    assert v["R1b"] == C.NOT_TESTED and v["R3b"] == C.NOT_TESTED
    assert v["R1c"] == C.REPRODUCED  # two trained arms, both fp32: unaffected
    results["data"]["arms"]["start"].pop("dtype")  # a saved run from before the dtype was recorded
    assert _verdicts(results)["R1b"] == C.NOT_TESTED


def test_a_sequence_level_control_on_fewer_pairs_leaves_r1c_untested():
    """Where the control's pairs came out short (too few distinct gold-ordered answers), a Precise win could be the
    budget: R1c's premise "the same pair budget" fails and the claim reads not tested; R1b does not need the control."""
    results = _results(0.5)
    for policy in results["data"]["arms"]["trained"]:
        if policy["arm"] == "sequence":
            policy["pairs"] = 90
    out = {c.id: c for c in claims.claims(results)}
    budget = next(p for p in out["R1c"].premises if p.name == "the same pair budget")
    assert not budget.holds and budget.detail == "Precise 100 vs sequence-level 90 pairs"
    assert out["R1c"].verdict == C.NOT_TESTED and out["R1b"].verdict == C.REPRODUCED


def test_r1c_says_how_many_control_pairs_share_the_precise_prompts():
    """The control's pairs are topped up from other training prompts where a Precise prompt has too few distinct
    gold-ordered answers: R1c counts those on the prompts Precise trained on (its kept records only)."""
    results = _results(0.5)
    stage = {"stage": "gold lower"}
    results["data"]["degraded"] = {"programmatic": {"yields": [{"stage": "candidates"}, stage], "records": [
        {"prompt_index": i, **stage} for i in (0, 1, 1)] + [{"prompt_index": 7, "stage": "candidates"}]},
        "helpfulness": {"yields": [stage], "records": [{"prompt_index": 3, **stage}]}}  # not the main arm's (all)
    results["data"]["sequence"]["judged"] = results["data"]["sequence"]["judged"][:5]  # prompts 0-4
    text = ("; sequence-level: 2 of its 5 pairs on the 2 prompts Precise trained on (top-ups included), the rest from "
            "other training prompts")
    assert readers.control_prompts(results) == text
    assert text in {c.id: c for c in claims.claims(results)}["R1c"].our_value
    results["data"]["degraded"] = {}
    assert readers.control_prompts(results) == ""


def test_with_the_gold_as_labeller_no_judge_premise_applies_and_the_claims_say_so():
    out = {c.id: c for c in claims.claims(_results(0.5, judge_right=0.5, labeller="gold"))}
    assert out["R1c"].verdict == C.REPRODUCED and out["R1b"].verdict == C.REPRODUCED
    assert "gold as the preference oracle" in out["R1c"].statement
    assert not any("judge" in p.name for p in out["R1c"].premises)
    assert "tokens, cut off" in out["R1c"].our_value  # the length next to the gold comparison


def test_the_claims_say_when_the_arms_were_not_trained_by_the_papers_plain_dpo():
    """A run whose arms trained with another loss than the paper's plain DPO (e.g. an SFT term on the chosen reply,
    trl loss_type [sigmoid, sft], or a loss argument under ``extra``) says so in every claim on a trained arm; plain
    DPO (cpu's) reads as the paper's algorithm, and trl's ld_alpha alone, 0 included, as LD-DPO."""
    results = _results(0.5, labeller="gold")
    assert readers.loss_words(results) == "" and results["params"]["dpo"]["loss_type"] is None  # cpu: plain DPO
    results["params"]["dpo"]["extra"] = {"ld_alpha": 1.0}  # every token at full weight: plain DPO
    assert readers.loss_words(results) == ""
    for alpha in (0.5, 0.0):
        results["params"]["dpo"]["extra"] = {"ld_alpha": alpha}
        assert readers.loss_words(results) == (f", every arm trained by length-desensitised DPO (trl's ld_alpha "
                                               f"{alpha:g}; not the paper's plain DPO)")
    results["params"]["dpo"]["extra"] = {}
    results["params"]["dpo"]["loss_type"] = ["sft", "sigmoid"]
    out = {c.id: c for c in claims.claims(results)}
    for cid in ("R1b", "R1c", "R2i", "R3h", "R3b"):
        assert out[cid].statement.endswith("with an SFT term on the chosen reply (not the paper's plain DPO)"), cid
    assert "plain DPO" not in out["R1a"].statement  # no trained arm in it
    results["params"]["dpo"]["extra"] = {"ld_alpha": 0.5, "label_smoothing": 0.1}
    assert readers.loss_words(results) == (", every arm trained by DPO with an SFT term on the chosen reply, ld_alpha "
                                           "0.5, label_smoothing 0.1 (not the paper's plain DPO)")


def test_a_judge_at_chance_leaves_the_sequence_comparison_untested():
    v = _verdicts(_results(0.5, judge_right=0.5))
    assert v["R1c"] == C.NOT_TESTED and v["R1b"] == C.REPRODUCED
    skipped = _results(0.5, judge_right=0.5)  # the control was then not trained at all (sequence_control default)
    data = skipped["data"]
    data["arms"]["trained"] = [p for p in data["arms"]["trained"] if p["arm"] != "sequence"]
    data["sequence"] = {"judged": [], "pairs": 0, "skipped": "the judge ... failed its validation (35%)"}
    data["judge_validation"] = [{"p_a": 0.1, "gold_a": 1.0, "gold_b": 0.0}] * 30 + [{"p_a": 0.9, "gold_a": 1.0,
                                                                                       "gold_b": 0.0}] * 30
    r1c = next(c for c in claims.claims(skipped) if c.id == "R1c")
    assert r1c.verdict == C.NOT_TESTED and "judge (agreement with the gold)" in r1c.reason
    assert "not trained: the judge" in r1c.our_value


def test_forgetting_off_the_floor_only():
    v = _verdicts(_results(0.5, bleu=1.0))
    assert v["R3b"] == C.NOT_TESTED


def test_forgetting_is_compared_only_between_replies_cut_off_alike_and_recorded():
    """A trained policy that talks past the token cap loses items to it; R3 reads that as lost skill only when
    start and trained replies were cut off about equally often, and a run that did not record it is not tested."""
    by_id = {c.id: c for c in claims.claims(_results(0.5, bleu_cut_after=0.30))}
    assert by_id["R3b"].verdict == C.NOT_TESTED and "truncated alike" in by_id["R3b"].reason
    assert "cut off at the cap: start 2%, Precise 30%" in by_id["R3b"].our_value
    old = _results(0.5)
    for p in [old["data"]["arms"]["start"], *old["data"]["arms"]["trained"]]:
        del p["forgetting_cut_off"]
    r3b = next(c for c in claims.claims(old) if c.id == "R3b")
    assert r3b.verdict == C.NOT_TESTED and "not recorded" in r3b.reason
    rows = readers.forgetting_rows(_results(0.5, bleu_cut_after=0.30))
    [bleu_row] = [r for r in rows if r["task"] == readers.TASKS["bleu"]]
    assert (bleu_row["cut off start %"], bleu_row["cut off after %"]) == (2.0, 30.0)


# --- the offline En->Fr set --------------------------------------------------------------------

PAGE = """<page xmlns="http://projectmallard.org/1.0/" id="{id}">
  <info><credit type="author"><name>Someone Else</name></credit><desc>{desc}</desc></info>
  <title>{title}</title>
  <p>{p1}</p>
  <p>{p2}</p>
</page>"""


def _help(root, name, en, fr):
    for lang, text in (("C", en), ("fr", fr)):
        folder = root / lang / "gnome-help"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(PAGE.format(id=name, **text))


def test_gnome_pairs_align_paragraphs_of_pages_with_the_same_structure(tmp_path, monkeypatch):
    _help(tmp_path, "a.page", dict(desc="Change the size of the text.", title="Text size",
                                   p1="You can make the text on the screen larger in the settings panel.",
                                   p2="Open the <gui>Settings</gui> panel and press the switch."),
          dict(desc="Modifier la taille du texte.", title="Taille du texte",
               p1="Vous pouvez agrandir le texte de l’écran dans le panneau des paramètres.",
               p2="Ouvrez le panneau <gui>Paramètres</gui> et appuyez sur l’interrupteur."))
    _help(tmp_path, "b.page", dict(desc="One.", title="Two", p1="Three short words here today friend.", p2="Four."),
          dict(desc="Un.", title="Deux", p1="Trois mots.", p2="Quatre. <p>extra</p>"))
    (tmp_path / "fr" / "gnome-help" / "b.page").write_text(
        PAGE.format(id="b", desc="Un.", title="Deux", p1="Trois.", p2="Quatre.").replace("</page>",
                                                                                      "<p>Cinq.</p></page>"))
    monkeypatch.setenv("RLHF_NB_GNOME_HELP", str(tmp_path))
    pairs = parallel.gnome_pairs(min_words=3)
    assert ("Open the Settings panel and press the switch.",
            "Ouvrez le panneau Paramètres et appuyez sur l’interrupteur.") in pairs
    assert ("Change the size of the text.", "Modifier la taille du texte.") in pairs
    assert all("Someone" not in e for e, _ in pairs)  # credits are not prose
    assert not any(e.startswith("Three") for e, _ in pairs)  # b.page's French has another paragraph: not aligned
    assert parallel.load_en_fr("gnome-user-docs", 2, seed=1) == parallel.load_en_fr("gnome-user-docs", 2, seed=1)
    with pytest.raises(parallel.DataError, match="fewer than"):
        parallel.load_en_fr("gnome-user-docs", 50)


def test_each_arm_is_a_stage_and_a_cached_start_still_says_which_forgetting_tasks_are_measured(monkeypatch):
    """run_arms asks ``stage`` for the start, then every arm and seed in order; the main arm's forgetting suite
    measures only the tasks the start is off the floor on, also when the start comes from the cache."""
    P = load_params("04_precise_rlaif", "smoke", {"seeds": 2}, check_inputs=False)[1]
    cached_start = steps.Policy("start", None, [0.5], [10], [True], ["x"],
                                forgetting={"humaneval": [50.0], "gsm8k": [0.0], "bleu": [20.0]})
    monkeypatch.setattr(steps, "start_arm", lambda *a: pytest.fail("the start should come from the cache"))
    trained = []

    def train_arm(P, prompts, pairs, arm, seed, out_dir, forgetting=None):
        trained.append((arm, seed, list(forgetting.tasks_off_floor) if forgetting is not None else None))
        return steps.Policy(arm, seed, [0.5], [10], [True], ["y"])

    monkeypatch.setattr(steps, "train_arm", train_arm)
    asked = []

    def stage(name, fn, *args):
        asked.append(name)
        return cached_start if name == "start arm" else fn(*args)

    pair = steps.PreferencePair("p", "prompt", "a", "b")
    sets = {"precise-all": [pair], "precise-helpfulness": [], "sequence": [pair]}
    arms = steps.run_arms(P, None, None, sets, SimpleNamespace(tasks_off_floor=[]), "out", stage=stage)
    assert asked == ["start arm", "precise-all seed 0", "sequence seed 0", "precise-all seed 1", "sequence seed 1"]
    assert trained == [("precise-all", 0, ["humaneval", "bleu"]), ("sequence", 0, None),
                       ("precise-all", 1, ["humaneval", "bleu"]), ("sequence", 1, None)]
    assert arms.start is cached_start and [(p.arm, p.seed) for p in arms.trained] == [a[:2] for a in trained]


# --- the notebook --------------------------------------------------------------------------------


def test_precise_rlaif_notebook_smoke(project):
    pairs = project / "en_fr.jsonl"
    pairs.write_text("".join(json.dumps({"en": f"The cat number {i} sleeps.", "fr": f"Le chat numéro {i} dort."}) + "\n"
                             for i in range(6)))
    outcome = runner.run("04_precise_rlaif", "smoke", {"forgetting.translation": str(pairs),
                                                       "forgetting.translation_pairs": 4}, progress=False)
    assert outcome.status == "ok", outcome.error
    results = json.loads((outcome.out_dir / "results.json").read_text())
    ids = results["data"]["prompt_ids"]
    assert not set(ids["train"]) & set(ids["eval"])
    data = results["data"]
    assert set(data["degraded"]) == {"all", "helpfulness"}
    rule = data["judge_filter"]  # validated before it filters; the default filters only when validated
    assert rule["mode"] == "if-validated" and rule["applied"] == rule["validated"]
    assert all(d["judged"] == rule["applied"] for d in data["degraded"].values())
    arms = {(p["arm"], p["seed"]) for p in data["arms"]["trained"]}
    if not arms:  # why nothing trained, said rather than skipped: a random model wrote no answer worth degrading
        assert data["chosen"] == 0 and all(d["records"] == [] for d in data["degraded"].values())
    for arm in {a for a, _ in arms}:
        assert {s for a, s in arms if a == arm} == {0, 1}  # every arm, both seeds
    assert {p["dtype"] for p in [data["arms"]["start"], *data["arms"]["trained"]]} == {"float32"}
    main = [p for p in data["arms"]["trained"] if p["arm"] == "precise-all"]
    seq = [p for p in data["arms"]["trained"] if p["arm"] == "sequence"]
    if main and seq:  # a random model writes no prose to degrade: smoke usually trains no arm
        assert main[0]["pairs"] == seq[0]["pairs"]  # the same budget
        assert {"held-out", "train"} <= set(main[0]["seconds"])
    assert {"held-out", "forgetting humaneval", "forgetting bleu"} <= set(data["arms"]["start"]["seconds"])
    if not rule["validated"]:  # the control's pairs would be ordered by a judge at chance: not built (the default)
        assert data["sequence"]["pairs"] == 0 and "failed its validation" in data["sequence"]["skipped"]
    assert len(data["arms"]["start"]["forgetting"]["bleu"]) == 4
    assert {c["id"] for c in results["claims"]} == {"R1a", "R1b", "R1c", "R2i", "R2h", "R2t", "R3h", "R3g", "R3b"}
    assert set(results["figures"]) == {"yields", "win_rates", "forgetting"}
    log = json.loads((outcome.out_dir / "env.json").read_text())["stages"]  # each arm a stage: a stop loses one arm
    assert "start arm" in log and {f"{a} seed {s}" for a, s in arms} <= set(log)
    assert_report_recomputes(results)


def test_precise_rlaif_notebook_with_the_gold_as_labeller(project):
    """cpu's path on tiny: no judge loaded or validated, both degraders with their yields, pairs verified by the gold."""
    outcome = runner.run("04_precise_rlaif", "smoke", {"labeller": "gold", "degrade.method": "both",
                                                       "forgetting.translation": None}, progress=False)
    assert outcome.status == "ok", outcome.error
    results = json.loads((outcome.out_dir / "results.json").read_text())
    data = results["data"]
    assert "judge_validation" not in data and data["judge_filter"]["applied"] is False
    assert results["findings"][1].startswith("No judge in this run (labeller: gold)")
    assert_report_recomputes(results)
    assert set(data["degraded"]) == {"all", "helpfulness", "programmatic"}
    assert all(d["gold_verified"] for d in data["degraded"].values())
    assert all(r["stage"] != "gold lower" or r["gold"][1] < r["gold"][0]
               for d in data["degraded"].values() for r in d["records"])


def test_the_system_line_reaches_every_prompt_of_both_splits():
    """04's prompts carry the profile's system line (smoke's 'Be brief.'; cpu has none since e3c4e0f's trial): the
    answers, the pairs and the held-out reads all start from these messages."""
    brief = load_params("04_precise_rlaif", "smoke", {"prompts.train": 4, "prompts.eval": 3}, check_inputs=False)[1]
    plain = brief.model_copy(update={"system": ""})
    with_line, without = steps.make_prompts(brief), steps.make_prompts(plain)
    for split in ("train", "eval"):
        assert all(p.messages()[0] == {"role": "system", "content": "Be brief."} for p in getattr(with_line, split))
        assert all(p.messages()[0]["role"] == "user" for p in getattr(without, split))
        assert [p.id for p in getattr(with_line, split)] == [p.id for p in getattr(without, split)]  # same requests
    assert load_params("04_precise_rlaif", "cpu", {}, check_inputs=False)[1].system == ""
