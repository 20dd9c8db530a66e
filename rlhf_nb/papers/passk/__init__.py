"""02 · pass@k vs model size on HumanEval(+): preference-tuned vs untuned, the CodeT5+ sampling protocol."""
