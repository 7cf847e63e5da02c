"""Training, as the stages share it: the DeepSpeed engine, its config and its C++ ops, the optimizer,
checkpoints, logging, and the adapters that lend a perturbation method a trainer's backward and step
(EngineTrainer for DeepSpeed, AdversarialTrainer for transformers.Trainer)."""
