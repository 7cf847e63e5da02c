"""What the pretrain and finetune stages share: the DeepSpeed engine, checkpoints, logging and plots."""
