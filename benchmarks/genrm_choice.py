"""Which judge can notebook 03's GenRM use? Candidate judges' ranking of a saved run's responses against the gold.

Reads a saved 03 run (its items' responses and their gold: the math checker, the tests in the sandbox), scores the
mixed items' responses with each candidate judge as both GenRMs (with the reference answer and without), and prints
per judge, domain and GenRM the mean within-item AUC against the gold (50 = chance) with its 95% interval (paired
bootstrap over items, the claims' own test), then D1-D3 with their verdicts (Holm-adjusted over these three only;
the notebook adjusts over all its claims), and the seconds taken.
A judge passes D1's premise when the interval of its AUC with the reference lies above 50.

    python benchmarks/genrm_choice.py [--run runs/03_data_scaling_rlhf/cpu]
                                      [--judges qwen2.5-coder-0.5b-instruct qwen2.5-coder-1.5b-instruct]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("runs/03_data_scaling_rlhf/cpu"))
    ap.add_argument("--judges", nargs="+", default=["qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"])
    args = ap.parse_args()
    results_file = args.run / "results.json"
    if not results_file.is_file():
        raise SystemExit(f"{results_file} does not exist: run `rlhf-nb run 03 --profile cpu` first, or pass --run")

    from rlhf_nb.evidence import claims as C
    from rlhf_nb.lm import models
    from rlhf_nb.papers.data_scaling import claims, readers, steps
    from rlhf_nb.papers.data_scaling.params import Params

    saved = json.loads(results_file.read_text())
    P = Params.model_validate(saved["params"])
    items = steps.make_items(P)
    records = [steps.Record(r["domain"], r["id"], r["responses"], r["tokens"], r["finished"], r["gold"])
               for r in saved["data"]["records"]]
    print(f"{args.run}: {len(records)} items, judged: mixed\n")
    print("| judge | domain | GenRM | items | AUC vs gold [95% CI] |")
    print("|---|---|---|---|---|")
    summary = []
    for name in args.judges:
        started = time.time()
        judge = steps.judge_of(models.load(name))
        scored = steps.score(judge, items, records, judged="mixed")
        seconds = time.time() - started
        results = dict(saved, data=dict(saved["data"], records=steps.as_dicts(scored)))
        rows = [r for r in readers.item_rows(results) if r["mixed"]]
        for domain in ("math", "code", "all"):
            mine = [r for r in rows if domain in ("all", r["domain"])]
            for key, label in (("genrm_gt", "with GT"), ("genrm", "without GT")):
                if len(mine) < 2:
                    continue
                test = C.superiority([50.0] * len(mine), [r[f"auc_{key}"] for r in mine])
                print(f"| {name} | {domain} | {label} | {len(mine)} | {50 + test.effect:.1f} "
                      f"[{50 + test.ci[0]:.1f}, {50 + test.ci[1]:.1f}] |", flush=True)
        part1 = C.finalize([claims.gt_separates_close(results), claims.gt_beats_chance(results),
                            claims.gt_spreads_close(results)])
        summary.append(f"{name}: {seconds:.0f} s ({seconds / max(len(rows), 1):.1f} s an item, load included)\n"
                       + "\n".join(f"  {c.id} {c.verdict}: {c.our_value}" for c in part1))
        del judge
    print("\n" + "\n".join(summary))


if __name__ == "__main__":
    main()
