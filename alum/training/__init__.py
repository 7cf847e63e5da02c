"""What the stages share: the DeepSpeed engine, its config and its C++ ops, the optimizer, checkpoints,
directories published whole, local HF directories read with clear errors, logging and plots."""
