"""Stage 3: fine-tuning with SMART (or any core method), evaluation, and robustness under an embedding attack.

    alum finetune --config configs/finetune/sst2.yaml --model DIR --seeds 3
    alum evaluate --model runs/finetune/sst2/best --file contrast.tsv

`alum.finetune.train` holds the loop; `alum.finetune.hf_trainer.AdversarialTrainer` is the drop-in for
`transformers.Trainer` scripts. See finetune/README.md.
"""
