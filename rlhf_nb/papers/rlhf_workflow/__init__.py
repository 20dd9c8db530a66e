"""05 · RLHF Workflow (Xiong, Dong et al. 2024): reward models, then online iterative DPO vs offline DPO."""

NOTEBOOK = "05_online_iterative_dpo"  # notebooks/05_online_iterative_dpo.ipynb, params/05_online_iterative_dpo.yaml
