"""04 · Precise RLAIF: sentence-level AI feedback for DPO, against a same-budget sequence-level control."""
