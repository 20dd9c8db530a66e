"""05 · RLHF Workflow (Xiong, Dong et al. 2024): reward models, then online iterative DPO vs offline DPO."""
