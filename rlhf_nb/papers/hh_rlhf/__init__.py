"""01 · Bai et al. 2022: helpful / harmless preference models, RLHF against a PM, reward vs sqrt(KL)."""
