"""Does an SFT term on the chosen reply keep 04's sequence-level arm from looping? A probe for R1c's premise.

04's R1c (Precise RLAIF against DPO on whole-answer pairs, the gold as the oracle) reads *not tested*: the two arms'
held-out replies are cut off at the cap at different rates (dd8dfd9's run, seed 0: Precise 36%, sequence-level 55%),
and most of the sequence-level arm's cut-off replies are loops (a reply that repeats itself until the cap). A loop is
the trained policy's failure, not the cap's, but the premise cannot tell them apart. DPO's known remedy for a policy
that drifts into degenerate text is a likelihood term on the chosen replies (trl's ``loss_type: [sigmoid, sft]``, the
RPO / Iterative-RPO recipe). This probe rebuilds 04's training pairs from the shipped results (the same code as the
notebook: :func:`steps.choose_answers`, the degraded records, the gold-ordered sequence pairs), trains chosen arms on
each seed given with each loss on this machine, reads the 150 held-out prompts greedily as the notebook does, and reports
the gold, the cut-off share, and how many cut-off replies loop (:func:`loops`: a repeated-4-gram share over 0.3).

It decides nothing about R1c: it asks whether the design change is worth a rerun of 04. Each (arm, loss) is one
training and one read, side by side in one process on one machine (the shipped arms ran on another machine, so they
are shown as context only).

    python benchmarks/r1c_loss_probe.py [--seeds 1] [--arms sequence] [--losses sigmoid,sigmoid+sft] [--out F.json]
    python benchmarks/r1c_loss_probe.py --analyse F.json [G.json ...] [--loss sigmoid+sft]

``--results`` names the run whose pairs are rebuilt (default: the shipped one), read with that run's own parameters;
with ``--analyse`` it is the run whose start R1b is read against (no R1b without it).
The rows in ``benchmarks/results/r1c_loss_probe/`` came from dd8dfd9's run (04's cpu profile at seed 0, plain DPO);
to redo or analyse them after another run is shipped, pass that run:
``git show dd8dfd9:results/04_precise_rlaif/cpu/results.json.gz > dd8dfd9.json.gz`` and ``--results dd8dfd9.json.gz``.

``--analyse`` reads the rows of earlier calls and, for one loss, tests R1c's comparison on the seeds both arms have
(Precise minus sequence-level, paired over the 150 held-out prompts, seeds and items resampled together: the claim's
own ``superiority`` test), with R1c's truncation premise and the minimum effect of 04's ``cpu`` profile, and R1b's
(Precise minus the start of the run named with ``--results``). What the evidence rule would read is printed as a
probe's reading, not a verdict: the arms ran here, the run's start wherever it ran, and none of it is a notebook run.
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "04_precise_rlaif" / "cpu" / "results.json.gz"


def loops(text: str, n: int = 4, share: float = 0.3) -> bool:
    """Whether ``text`` repeats itself: the share of its word ``n``-grams that occurred earlier in it exceeds
    ``share``."""
    words = text.split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return bool(grams) and 1 - len(set(grams)) / len(grams) > share


def rebuild_pairs(P, data: dict) -> tuple[object, dict[str, list]]:
    """04's held-out prompts and training pair sets, rebuilt from a run's saved data with the current code."""
    from rlhf_nb.papers.precise_rlaif import readers, steps
    from rlhf_nb.tasks.data import PreferencePair
    from rlhf_nb.tasks.gold import GoldSamples

    prompts = steps.make_prompts(P)
    if prompts.ids() != data["prompt_ids"]:
        raise SystemExit("04's prompts rebuilt from the run's parameters differ from its saved ones: the probe needs "
                         "the run's code")
    answers = GoldSamples(**data["answers"])
    chosen = {c.prompt_index: c.text for c in steps.choose_answers(answers, P)}
    if len(chosen) != data["chosen"]:
        raise SystemExit(f"{len(chosen)} chosen answers against the run's {data['chosen']}")
    kept = readers.main_arm_records({"params": P.model_dump(), "data": data})
    precise = [pair for name, records in kept.items()  # _pairs keeps the records at the stage it is given
               for pair in steps._pairs(prompts, chosen, records, data["degraded"][name]["yields"][-1]["stage"],
                                        f"precise-{name}")]
    sequence = []
    for j in data["sequence"]["judged"]:
        i, a, b = j["prompt_index"], j["a"], j["b"]
        first, second = (a, b) if j["p_a"] >= 0.5 else (b, a)
        sequence.append(PreferencePair(f"{prompts.train[i].id}-q{a}{b}", prompts.train[i].messages(),
                                       answers.texts[i][first], answers.texts[i][second], "sequence"))
    return prompts, {"precise-all": precise, "sequence": sequence}


def _value(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def train_and_read(P, prompts, pairs: list, arm: str, seed: int, loss: str) -> dict:
    """One arm trained as the notebook trains it (``steps.train_arm``'s DPO, LoRA and seed) under trl loss types
    ``loss`` ('+' joins several; '|key=value' adds a trl DPO argument), then its greedy held-out replies read as the
    notebook reads them."""
    import numpy as np
    import torch

    from rlhf_nb.lm.models import load, reading
    from rlhf_nb.papers.precise_rlaif import readers, steps
    from rlhf_nb.train.dpo import train_dpo

    spec, *options = loss.split("|")  # e.g. "sigmoid+sft" or "sigmoid|ld_alpha=0.5"
    types = spec.split("+")
    extra = {k: _value(v) for k, v in (o.split("=", 1) for o in options)}
    torch.manual_seed(seed)
    started = time.perf_counter()
    policy = load(P.policy, lora=P.lora.spec())
    with tempfile.TemporaryDirectory() as out:
        # the loss is the one named here, not the run's: the run's other extra arguments stay
        dpo = P.dpo.model_copy(update={"extra": {k: v for k, v in P.dpo.extra.items() if k not in readers.LOSS_KEYS}})
        train_dpo(policy, pairs, dpo.build(out, seed=seed, loss_type=types if len(types) > 1 else types[0], **extra))
    trained = time.perf_counter() - started
    with reading(policy):
        ev = steps.evaluate(policy, prompts, P, arm, seed)
    del policy
    gc.collect()
    return {"arm": arm, "seed": seed, "loss": loss, "gold": float(np.mean(ev.gold)),
            "cut_off": 1 - float(np.mean(ev.finished)),
            "loops": sum(loops(x) for x, f in zip(ev.texts, ev.finished) if not f),
            "tokens": float(np.mean(ev.tokens)), "train_s": round(trained), "read_s": ev.seconds["held-out"],
            "gold_items": ev.gold, "finished": ev.finished}


def run_params(shipped: dict):
    """04's parameters as the run in ``shipped`` had them (its seed, sizes and loss), not today's profile."""
    from rlhf_nb.notebook.config import validate

    return validate("04_precise_rlaif", shipped["params"], "cpu")


def analyse(paths: list[Path], loss: str, results: Path | None = None) -> None:
    """R1c's test on the rows of earlier calls and, given ``results`` (the run the rows were trained on), R1b's
    against that run's start (see the module docstring). The minimum effect is 04's cpu profile's."""
    import gzip

    import numpy as np

    from rlhf_nb.evidence import claims as C
    from rlhf_nb.notebook.config import load_params

    rows = [r for path in paths for r in json.loads(path.read_text()) if r.get("loss") == loss and "gold_items" in r]
    by = {(r["arm"], r["seed"]): r for r in rows}
    seeds = sorted({s for a, s in by if (("sequence", s) in by and ("precise-all", s) in by)})
    if not seeds:
        raise SystemExit(f"no seed has both arms under loss {loss!r} in {', '.join(map(str, paths))}")
    stack = (lambda arm, key: np.array([by[(arm, s)][key] for s in seeds], dtype=float))
    precise, sequence = stack("precise-all", "gold_items"), stack("sequence", "gold_items")
    run = json.loads(gzip.open(results).read()) if results else None
    params = run_params(run) if run else load_params("04_precise_rlaif", "cpu", check_inputs=False)[1]
    minimum = float(params.min_effect)
    tests = [("R1c: Precise - sequence-level", sequence, precise, stack("sequence", "finished"),
              stack("precise-all", "finished"))]
    if results is None:
        print("R1b: not read (pass --results with the run the rows were trained on: its start is R1b's baseline)")
    else:
        start = run["data"]["arms"]["start"]
        tests.append(("R1b: Precise - start (of --results, read on its own machine)",
                      np.array([start["gold"]], dtype=float), precise,
                      np.array([start["finished"]], dtype=float), stack("precise-all", "finished")))
    for name, a, b, fa, fb in tests:
        test = C.superiority(100 * a, 100 * b)
        premise = C.truncation_not_the_effect(name.split(":")[0], 100 * a, 100 * b, fa.astype(bool), fb.astype(bool))
        reading = ("not tested (premise)" if not premise.holds else "not reproduced" if test.ci[1] < minimum
                   else "reproduced if its Holm-adjusted p < 0.05" if test.ci[0] > 0 else "inconclusive")
        print(f"{name}, loss {loss}, seeds {seeds}: {C.describe(test)}; MDE {test.mde:.2f} vs minimum {minimum:g}; "
              f"{premise.name}: {'holds' if premise.holds else 'fails'} ({premise.detail}); the rule would read: "
              f"{reading}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1", help="comma-separated trainer seeds (a run's: its seed + 0, 1, 2)")
    parser.add_argument("--arms", default="sequence", help="comma-separated: sequence, precise-all")
    parser.add_argument("--losses", default="sigmoid,sigmoid+sft",
                        help="comma-separated trl loss types, '+' joins, '|key=value' adds a DPO argument "
                             "(e.g. 'sigmoid|ld_alpha=0.5')")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    parser.add_argument("--analyse", type=Path, nargs="+", help="test R1c / R1b on the rows of earlier calls")
    parser.add_argument("--loss", default="sigmoid+sft", help="with --analyse: the loss whose arms are tested")
    parser.add_argument("--results", type=Path,
                        help="04's cpu results whose pairs are rebuilt (default: the shipped run) and, with --analyse, "
                             "whose start R1b reads (default: R1b not read)")
    args = parser.parse_args()
    if args.analyse:
        return analyse(args.analyse, args.loss, args.results)

    import gzip

    import numpy as np
    import torch

    from rlhf_nb.lm import device

    torch.set_num_threads(2)
    shipped = json.loads(gzip.open(args.results or RESULTS).read())
    P = run_params(shipped)
    prompts, sets = rebuild_pairs(P, shipped["data"])
    print(f"pairs: {', '.join(f'{k} {len(v)}' for k, v in sets.items())}; {device.describe()['reason']}; "
          f"probe {device.machine_probe()}", flush=True)
    context = {(t["arm"], t["seed"]): t for t in shipped["data"]["arms"]["trained"]}
    start = shipped["data"]["arms"]["start"]
    rows = [{"arm": "start (run)", "seed": None, "loss": "-", "gold": float(np.mean(start["gold"])),
             "cut_off": 1 - float(np.mean(start["finished"])),
             "loops": sum(loops(t) for t, f in zip(start["texts"], start["finished"]) if not f)}]
    for seed in [int(x) for x in args.seeds.split(",")]:
        for arm in args.arms.split(","):
            if (arm, seed) in context:
                t = context[(arm, seed)]
                rows.append({"arm": f"{arm} (run)", "seed": seed, "loss": "the run's",
                             "gold": float(np.mean(t["gold"])), "cut_off": 1 - float(np.mean(t["finished"])),
                             "loops": sum(loops(x) for x, f in zip(t["texts"], t["finished"]) if not f)})
            for loss in args.losses.split(","):
                rows.append(train_and_read(P, prompts, sets[arm], arm, seed, loss))
                print({k: v for k, v in rows[-1].items() if k not in ("gold_items", "finished")}, flush=True)
    print("\n| arm | seed | loss | held-out gold | cut off | cut-off replies that loop |\n|---|---|---|---|---|---|")
    for r in rows:
        cut = round(r["cut_off"] * 150)
        print(f"| {r['arm']} | {'-' if r.get('seed') is None else r['seed']} | {r['loss']} | {100 * r['gold']:.1f} | "
              f"{100 * r['cut_off']:.0f}% | {r['loops']} / {cut} |")
    if args.out:
        args.out.write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
