"""Notebook 06: diverse feedback (RLHF-Blender) on the gold-reward testbed."""

NOTEBOOK = "06_feedback_blender"  # notebooks/06_feedback_blender.ipynb, params/06_feedback_blender.yaml
