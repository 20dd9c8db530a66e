"""00 · Quickstart: the spine end to end on a few HumanEval tasks (no paper claims)."""
