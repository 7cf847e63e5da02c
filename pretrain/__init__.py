"""Stage 2: masked-LM pretraining that switches to ALUM (or any core method) for the final steps."""
