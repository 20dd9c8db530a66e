"""01 · Bai et al. 2022: helpful / harmless preference models, RLHF against a PM, reward vs sqrt(KL)."""

NOTEBOOK = "01_hh_preference_models"  # notebooks/01_hh_preference_models.ipynb, params/01_hh_preference_models.yaml
