"""Stage 2: masked-LM pretraining that switches to ALUM (or any core method) for the final steps.

The stage's entries, which the commands wrap: `alum.pretrain.prepare.run(PrepareConfig)` (`alum prepare`),
`alum.pretrain.train.run(PretrainConfig)` (`alum pretrain`), `alum.pretrain.export.export_checkpoint` (`alum
export`). See pretrain/README.md.
"""
