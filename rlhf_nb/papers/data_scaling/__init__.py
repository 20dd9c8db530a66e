"""Notebook 03: Shen et al. (2025), Exploring Data Scaling Trends and Effects in RLHF."""

NOTEBOOK = "03_data_scaling_rlhf"  # notebooks/03_data_scaling_rlhf.ipynb, params/03_data_scaling_rlhf.yaml
