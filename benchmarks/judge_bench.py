"""Judge passes per second: the one-token LogProbJudge as notebook 03 runs it, before and after its two changes.

Workload: notebook 03's reference-guided GenRM prompts (a GSM8K problem or a HumanEval task, its reference answer, a
response) in the order the notebook builds them (items in turn, five responses each), responses of mixed lengths.
Variants, measured side by side in one process, alternating, ``--reps`` times each:

* ``before``: batches in the callers' order, the model returns logits for every position (the former path);
* ``sorted``: batches of similar length (sorted by characters, results put back in order);
* ``sorted + last logits``: also ``logits_to_keep=1`` (only the answer position goes through the vocabulary
  projection: 152k columns for Qwen2.5).

Prints prompts/s, tokens/s, the speed-ups, and the largest difference between the variants' probabilities.

    python benchmarks/judge_bench.py [--model qwen2.5-coder-0.5b-instruct] [--items 8] [--reps 2] [--batch 8]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time


def workload(n_items: int, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """Five responses per item of mixed lengths: the reference's first lines cut at random points, and padding."""
    from rlhf_nb.rewards.math import clean_solution
    from rlhf_nb.tasks.data import load_gsm8k, load_humaneval

    rng = random.Random(seed)
    math = load_gsm8k("bundled", "test")[: n_items // 2]
    code = load_humaneval("package")[: n_items - len(math)]
    items = [(t.question, clean_solution(t.solution)) for t in math]
    items += [(f"Complete this Python function:\n{t.prompt}", t.prompt + t.canonical_solution) for t in code]
    questions, responses, references = [], [], []
    for q, ref in items:
        for _ in range(5):
            cut = ref[: rng.randint(20, len(ref))]
            questions.append(q)
            references.append(ref)
            responses.append(cut + "\n" + "Let me check that again. " * rng.randint(0, 12))
    return questions, responses, references


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--items", type=int, default=8)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()

    import numpy as np

    from rlhf_nb.lm.device import describe
    from rlhf_nb.lm.models import load
    from rlhf_nb.rewards.judge import REFERENCE, LogProbJudge

    loaded = load(args.model)
    q, r, ref = workload(args.items)
    tok = loaded.tokenizer
    n_tokens = sum(len(tok(REFERENCE.format(prompt=a, reference=c, response=b))["input_ids"])
                   for a, b, c in zip(q, r, ref))
    print(f"model {args.model}; precision {describe()}; {len(q)} judge prompts, {n_tokens} tokens; batch {args.batch}")

    class Before(LogProbJudge):  # the former path: callers' order, logits at every position
        def option_probs(self, user_messages, options):
            import torch

            texts = [tok.apply_chat_template([{"role": "user", "content": m}], add_generation_prompt=True,
                                             tokenize=False) for m in user_messages]
            ids = [self._option_ids(o) for o in options]
            tok.padding_side = "left"
            out = []
            for s in range(0, len(texts), self.batch_size):
                enc = tok(texts[s : s + self.batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
                with torch.no_grad():
                    logits = self.model(**enc).logits[:, -1, :].float()
                probs = torch.softmax(logits, -1)
                mass = torch.stack([probs[:, i].sum(-1) for i in ids], -1)
                out.append((mass / mass.sum(-1, keepdim=True)).numpy())
            return np.concatenate(out)

    class SortedOnly(LogProbJudge):  # sorted batches, full logits
        def option_probs(self, user_messages, options):
            model = self.model
            forward = model.forward

            def full(*a, **k):
                k.pop("logits_to_keep", None)
                return forward(*a, **k)

            model.forward = full
            try:
                return super().option_probs(user_messages, options)
            finally:
                del model.forward

    variants = {"before": Before(loaded.model, tok, args.batch, sort_by_length=False),
                "sorted": SortedOnly(loaded.model, tok, args.batch),
                "sorted + last logits": LogProbJudge(loaded.model, tok, args.batch)}
    times: dict[str, list[float]] = {k: [] for k in variants}
    values: dict[str, np.ndarray] = {}
    variants["sorted + last logits"].reference_scores(q[:2], r[:2], ref[:2])  # warm-up
    for _ in range(args.reps):
        for name, judge in variants.items():
            t0 = time.perf_counter()
            values[name] = judge.reference_scores(q, r, ref)
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["before"])
    print(f"\n{'variant':<22} {'s':>7} {'prompts/s':>10} {'tokens/s':>9} {'speed-up':>9} {'max |dP|':>9}")
    for name, ts in times.items():
        t = statistics.median(ts)
        diff = float(np.abs(values[name] - values["before"]).max())
        print(f"{name:<22} {t:>7.1f} {len(q) / t:>10.2f} {n_tokens / t:>9.0f} {base / t:>8.2f}x {diff:>9.1e}")


if __name__ == "__main__":
    main()
