"""Language models: the device and precision policy, loading (offline packages and the hub, LoRA, 4-bit), sampling
and greedy decoding."""
