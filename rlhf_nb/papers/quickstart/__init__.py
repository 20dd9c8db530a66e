"""00 · Quickstart: the spine end to end on a few HumanEval tasks (no paper claims)."""

NOTEBOOK = "00_quickstart"  # notebooks/00_quickstart.ipynb, params/00_quickstart.yaml
