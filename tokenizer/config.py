"""The tokenizer stage's config: a typed schema read with `alum.config.load_config`.

Presets live in configs/tokenizer/*.yaml; every key has a default here, so a preset only names what it
changes. Checks that need only the config (not the corpus) run when it is loaded, before any file is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from alum.tokenizer.specials import STYLES

# The byte-level pre-tokenizer maps every byte to one of 256 printable characters; all of them start in the
# vocabulary, which is what makes every string encodable with no unknown token.
BYTE_ALPHABET = 256


@dataclass
class CorpusConfig:
    files: list[str] = field(default_factory=list)  # files, globs or directories
    text_column: str = "text"  # for JSON lines, CSV/TSV, parquet, arrow and save_to_disk folders
    split: str = "train"  # the split read from a save_to_disk folder that holds a DatasetDict
    sample: float = 1.0  # keep this fraction of the lines (seeded), to train on a part of a large corpus
    seed: int = 0
    strict: bool = False  # stop at the first undecodable line instead of skipping and counting it

    def validate(self) -> None:
        if not 0.0 < self.sample <= 1.0:
            raise ValueError(f"sample must be in (0, 1], got {self.sample}")


@dataclass
class BPEConfig:
    # byte-level: RoBERTa/GPT-2 style, any text round-trips exactly, no unknown token.
    # classic: Sennrich et al. learn-bpe/apply-bpe, words split on whitespace and punctuation, the last
    # piece of a word marked with `end_of_word_suffix`; characters outside the alphabet become the unk token.
    algorithm: Literal["byte-level", "classic"] = "byte-level"
    vocab_size: int = 30000
    min_frequency: int = 2  # a pair seen fewer times is never merged
    limit_alphabet: int | None = None  # classic only: keep the N most frequent characters
    end_of_word_suffix: str = "</w>"  # classic only
    add_prefix_space: bool = False  # byte-level only: treat the first word like one after a space

    def validate(self) -> None:
        if self.vocab_size < 1:
            raise ValueError(f"vocab_size must be positive, got {self.vocab_size}")
        if self.min_frequency < 0:
            raise ValueError(f"min_frequency must be 0 or more, got {self.min_frequency}")
        if self.limit_alphabet is not None and self.limit_alphabet < 1:
            raise ValueError(f"limit_alphabet must be positive, got {self.limit_alphabet}")
        if self.algorithm == "classic" and not self.end_of_word_suffix:
            raise ValueError("end_of_word_suffix must not be empty for classic BPE")


@dataclass
class NormalizeConfig:
    # Normalising changes the text, so decode(encode(x)) gives the normalised text, not x.
    unicode: Literal["none", "nfc", "nfd", "nfkc", "nfkd"] = "none"
    lowercase: bool = False

    @property
    def active(self) -> bool:
        return self.unicode != "none" or self.lowercase


@dataclass
class OutputConfig:
    dir: str | None = None
    overwrite: bool = False  # replace an existing non-empty directory (only once training has succeeded)


@dataclass
class TokenizerConfig:
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    bpe: BPEConfig = field(default_factory=BPEConfig)
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    special_tokens: Literal["roberta", "bert"] = "roberta"
    model_max_length: int = 512  # what transformers truncates to; the model's max positions
    padding_side: Literal["right", "left"] = "right"
    output: OutputConfig = field(default_factory=OutputConfig)
    progress: bool = True

    def validate(self) -> None:
        if self.model_max_length < 1:
            raise ValueError(f"model_max_length must be positive, got {self.model_max_length}")
        specials = len(STYLES[self.special_tokens].tokens)
        bpe = self.bpe
        if bpe.algorithm == "byte-level":
            if bpe.limit_alphabet is not None:
                raise ValueError("bpe.limit_alphabet applies to classic BPE only (byte-level BPE keeps all 256 bytes)")
            floor, what = BYTE_ALPHABET + specials, f"the byte-level alphabet ({BYTE_ALPHABET})"
        else:
            # The corpus decides the classic alphabet (a limit is only an upper bound), so here the floor is
            # one character; the trained vocabulary is checked against the real alphabet after reading.
            floor, what = 1 + specials, "one character"
        if bpe.vocab_size < floor:
            raise ValueError(
                f"bpe.vocab_size {bpe.vocab_size} is smaller than {what} plus {specials} special tokens ({floor})"
            )
