"""Which judge can notebook 04 trust? Candidate judges' agreement with the gold, and their cost, side by side.

Reads a saved 04 run (its training prompts' answers and their gold scores), picks up to ``--pairs`` pairs of finished
answers to the same prompt whose gold differs (the same seeded pairs ``steps.validate_judge`` picks), and asks each
candidate judge which answer is better (under each comparison question: ``helpful``, the general one, and
``instructions``, about following the request's instructions), both orders averaged (``--combine``: their
probabilities, as notebook 04 does by default, or their log-odds). Prints per judge, question and averaging: the
pairs, the ties (the judge within the tie margin of 0.5, counted half), agreement with the gold and its 95% interval,
whether it passes R1c's premise (interval bottom above 50%), how length goes with the gold and with the judge,
and the seconds (the first averaging mode pays for the
forward passes; the others reuse them).

``--answers N`` first draws N fresh answers per training prompt from the run's policy, as notebook 04 would with
``answers.n: N`` (more answers, more pairs whose gold differs, a narrower interval), instead of reading the run's.

    python benchmarks/judge_choice.py [--run runs/04_precise_rlaif/cpu] [--pairs 200] [--answers N]
                                      [--judges smollm2-135m-instruct qwen2.5-coder-0.5b-instruct]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("runs/04_precise_rlaif/cpu"))
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--answers", type=int, default=None,
                    help="draw this many fresh answers per training prompt (as `answers.n`) instead of the run's")
    ap.add_argument("--judges", nargs="+", default=["smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct"])
    ap.add_argument("--questions", nargs="+", default=["helpful", "instructions"],
                    help="the judge's comparison question(s): rlhf_nb.rewards.judge.PAIRWISE_TEMPLATES")
    ap.add_argument("--combine", nargs="+", default=["probability", "log-odds"],
                    help="how both presentation orders are averaged (rlhf_nb.rewards.judge.COMBINE); every mode "
                         "reads the same forward passes")
    args = ap.parse_args()
    results_file = args.run / "results.json"
    if not results_file.is_file():
        raise SystemExit(f"no saved 04 run at {results_file}: run `rlhf-nb run 04 --profile cpu` first, or pass --run")

    from rlhf_nb.evidence import claims as C
    from rlhf_nb.lm.device import describe
    from rlhf_nb.lm.models import load
    from rlhf_nb.notebook.config import load_params
    from rlhf_nb.papers.precise_rlaif import judging, steps
    from rlhf_nb.tasks.gold import GoldSamples

    results = json.loads(results_file.read_text())
    P = load_params("04_precise_rlaif", results["profile"], {}, check_inputs=False)[1]
    P = P.model_copy(update={"seed": results["params"]["seed"], "prompts": P.prompts.model_validate(
        results["params"]["prompts"])})
    prompts = steps.make_prompts(P)
    if prompts.ids() != results["data"]["prompt_ids"]:
        raise SystemExit("the saved run's prompts differ from what this code builds from its parameters")
    answers = GoldSamples(**results["data"]["answers"])
    if args.answers:
        P = P.model_copy(update={"answers": P.answers.model_copy(update={"n": args.answers})})
        loaded = load(P.policy)
        start = time.perf_counter()
        answers = steps.sample_with_gold(loaded, prompts.train, P.answers.config(P.seed), "answers")
        print(f"{args.answers} fresh answers per prompt from {P.policy} in {time.perf_counter() - start:.0f} s")
        del loaded
    print(f"{describe()}; {len(answers.texts)} training prompts from {args.run}")
    rows = []
    for name in args.judges:
        loaded = load(name)
        for question in args.questions:
            cache: dict[tuple, Any] = {}  # the modes differ only in how they average the same log-probabilities
            for combine in args.combine:
                judge = steps.judge_of(loaded, question, combine)  # as notebook 04 builds it
                forward = judge.option_logprobs

                def cached(messages, options, forward=forward, cache=cache):
                    key = (tuple(messages), tuple(options))
                    if key not in cache:
                        cache[key] = forward(messages, options)
                    return cache[key]

                judge.option_logprobs = cached  # type: ignore[method-assign]
                start = time.perf_counter()
                judged = steps.validate_judge(judge, prompts, answers, args.pairs, P.seed)
                seconds = time.perf_counter() - start
                outcomes = judging.judge_agreement(judged)
                longer = _lengths(judged, answers)
                ties = sum(o == 0.5 for o in outcomes)
                test = C.proportion(outcomes, 0.5) if outcomes else None
                acc, low, high = ((50 + 100 * test.effect, 50 + 100 * test.ci[0], 50 + 100 * test.ci[1]) if test
                                  else (0.0, 0.0, 0.0))
                rows.append((name, question, combine, len(outcomes), ties, acc, low, high,
                             judging.judge_premise(outcomes).holds, *longer, seconds))
        del loaded
    print("| judge | question | orders averaged as | pairs | ties | agrees with gold % | 95% CI | R1c premise | "
          "gold-better is the shorter % | judge picks the longer % | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, question, combine, n, ties, acc, low, high, holds, shorter, longer, s in rows:
        print(f"| {name} | {question} | {combine} | {n} | {ties} | {acc:.1f} | [{low:.1f}, {high:.1f}] | "
              f"{'holds' if holds else 'fails'} | {shorter:.0f} | {longer:.0f} | {s:.0f} |")


def _lengths(judged: list[dict[str, Any]], answers: Any) -> tuple[float, float]:
    """Length as a confound, over the judged pairs of different lengths: % where the gold-better answer is the
    shorter one, and % where the judge (off a tie) picks the longer one."""
    shorter, longer, n, decided = 0, 0, 0, 0
    for r in judged:
        la, lb = (len(answers.texts[r["prompt_index"]][k]) for k in (r["a"], r["b"]))
        if la == lb:
            continue
        n += 1
        shorter += (la < lb) == (r["gold_a"] > r["gold_b"])
        if r["p_a"] != 0.5:
            decided += 1
            longer += (r["p_a"] > 0.5) == (la > lb)
    return 100 * shorter / max(n, 1), 100 * longer / max(decided, 1)


if __name__ == "__main__":
    main()
