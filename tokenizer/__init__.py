"""Stage 1: train a BPE tokenizer from a corpus, saved as a Hugging Face tokenizer directory.

    config.py    the config schema (presets in configs/tokenizer/)
    specials.py  the special-token styles (RoBERTa, BERT)
    pipeline.py  the `tokenizers` pipeline and trainer for byte-level and classic BPE
    train.py     checks, streaming training, and the output directory: `run(cfg)`, the stage's entry
    interruptible.py  the trainer off the main thread, so Ctrl-C stops it at once
    output.py    writing that directory whole or not at all
    export.py    the Hugging Face files in it
    progress.py  the progress bar
    stats.py     measuring any tokenizer on a corpus: `corpus_stats(...)`

See tokenizer/README.md for the commands.
"""

from alum.tokenizer.config import TokenizerConfig
from alum.tokenizer.train import run

__all__ = ["TokenizerConfig", "run"]
