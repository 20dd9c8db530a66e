"""Notebook 03: Shen et al. (2025), Exploring Data Scaling Trends and Effects in RLHF."""
