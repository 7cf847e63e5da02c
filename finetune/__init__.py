"""Stage 3: fine-tuning with SMART (or any core method), evaluation, and robustness under an embedding attack.

    alum finetune --config configs/finetune/sst2.yaml --model DIR --seeds 3
    alum evaluate --model runs/finetune/sst2/best --file contrast.tsv

The stage's entries, which the commands wrap: `alum.finetune.run.run(FinetuneConfig)` and
`alum.finetune.evaluate.run(EvaluateConfig)`. `alum.finetune.train` holds the loop. For `transformers.Trainer`
scripts, `from alum import AdversarialTrainer` is the drop-in (alum/training/hf_trainer.py: it needs the core
alone, none of this stage). See finetune/README.md.
"""
