"""The `tokenizers` pipeline for each algorithm: normaliser, pre-tokenizer, model, decoder, trainer, and the
post-processor that adds the special tokens once their ids are known."""

from __future__ import annotations

from alum.tokenizer.config import TokenizerConfig
from alum.tokenizer.specials import STYLES, SpecialTokens


def specials_of(cfg: TokenizerConfig) -> SpecialTokens:
    return STYLES[cfg.special_tokens]


def build_tokenizer(cfg: TokenizerConfig):
    """An untrained `tokenizers.Tokenizer` with every stage but the post-processor set."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    bpe = cfg.bpe
    if bpe.algorithm == "byte-level":
        # No unk token: every byte is in the vocabulary. add_prefix_space=False keeps decode(encode(x)) == x
        # (with True, "x" is encoded as " x" and decodes with the extra space).
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=bpe.add_prefix_space, use_regex=True)
        tokenizer.decoder = decoders.ByteLevel()
    else:
        tokenizer = Tokenizer(models.BPE(unk_token=specials_of(cfg).unk, end_of_word_suffix=bpe.end_of_word_suffix))
        # learn-bpe works on words of tokenised text; splitting punctuation off gives it the same words.
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation("isolated")]
        )
        tokenizer.decoder = decoders.BPEDecoder(suffix=bpe.end_of_word_suffix)
    normalizer = build_normalizer(cfg)
    if normalizer is not None:
        tokenizer.normalizer = normalizer
    return tokenizer


def build_normalizer(cfg: TokenizerConfig):
    from tokenizers import normalizers

    steps = []
    if cfg.normalize.unicode != "none":
        steps.append(getattr(normalizers, cfg.normalize.unicode.upper())())
    if cfg.normalize.lowercase:
        steps.append(normalizers.Lowercase())
    if not steps:
        return None
    return steps[0] if len(steps) == 1 else normalizers.Sequence(steps)


def build_trainer(cfg: TokenizerConfig):
    from tokenizers import pre_tokenizers, trainers

    bpe = cfg.bpe
    options = dict(
        vocab_size=bpe.vocab_size,
        min_frequency=bpe.min_frequency,
        special_tokens=specials_of(cfg).added_tokens(),
        # The stage draws its own bar over the bytes read: the trainer's would count lines of unknown total
        # and draw over it.
        show_progress=False,
    )
    if bpe.algorithm == "byte-level":
        options["initial_alphabet"] = pre_tokenizers.ByteLevel.alphabet()
    else:
        options["end_of_word_suffix"] = bpe.end_of_word_suffix
        if bpe.limit_alphabet is not None:
            options["limit_alphabet"] = bpe.limit_alphabet
    return trainers.BpeTrainer(**options)


def add_post_processor(tokenizer, cfg: TokenizerConfig) -> None:
    """Frame single sequences and pairs with the special tokens (ids looked up in the trained vocabulary)."""
    from tokenizers import processors

    specials = specials_of(cfg)
    framing = processors.TemplateProcessing(
        single=specials.single,
        pair=specials.pair,
        special_tokens=[(token, tokenizer.token_to_id(token)) for token in specials.tokens],
    )
    if cfg.bpe.algorithm == "byte-level":
        # Offsets without the leading space of "Ġword", as RoBERTa's: whole-word masking reads word
        # boundaries from them.
        framing = processors.Sequence([processors.ByteLevel(trim_offsets=True), framing])
    tokenizer.post_processor = framing
