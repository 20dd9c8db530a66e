"""Notebook 06: diverse feedback (RLHF-Blender) on the gold-reward testbed."""
