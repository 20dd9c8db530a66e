"""04 · Precise RLAIF: sentence-level AI feedback for DPO, against a same-budget sequence-level control."""

NOTEBOOK = "04_precise_rlaif"  # notebooks/04_precise_rlaif.ipynb, params/04_precise_rlaif.yaml
