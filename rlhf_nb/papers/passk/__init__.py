"""02 · pass@k vs model size on HumanEval(+): preference-tuned vs untuned, the CodeT5+ sampling protocol."""

NOTEBOOK = "02_passk_model_size"  # notebooks/02_passk_model_size.ipynb, params/02_passk_model_size.yaml
