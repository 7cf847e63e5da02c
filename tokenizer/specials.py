"""Special-token styles: which tokens, their ids, their roles for transformers, and how they frame inputs.

Special tokens take the first ids (0..n-1, in the order listed), so they are the same whatever the corpus.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpecialTokens:
    name: str
    tokens: tuple[str, ...]  # in id order
    roles: dict[str, str]  # transformers keyword -> token, e.g. "mask_token": "<mask>"
    single: str  # TemplateProcessing template for one sequence
    pair: str  # and for a pair; "$B:1" gives the second sequence token_type_id 1
    model_input_names: tuple[str, ...]
    lstrip: frozenset[str] = frozenset()  # tokens that absorb the space before them

    @property
    def unk(self) -> str:
        return self.roles["unk_token"]

    def added_tokens(self) -> list:
        """The tokens as `tokenizers.AddedToken`s: never normalised or split, skipped by decode on request."""
        from tokenizers import AddedToken

        return [
            AddedToken(token, lstrip=token in self.lstrip, rstrip=False, normalized=False, special=True)
            for token in self.tokens
        ]


ROBERTA = SpecialTokens(
    name="roberta",
    tokens=("<s>", "<pad>", "</s>", "<unk>", "<mask>"),
    roles=dict(bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>", pad_token="<pad>",
               unk_token="<unk>", mask_token="<mask>"),
    single="<s> $A </s>",
    pair="<s> $A </s> </s> $B </s>",
    # RoBERTa has one segment embedding: no token_type_ids.
    model_input_names=("input_ids", "attention_mask"),
    # As in RoBERTa: in "a <mask> b" the mask takes the space before it, so it stands for a word with its
    # leading space ("Ġword"), the form a word has after a space.
    lstrip=frozenset({"<mask>"}),
)

BERT = SpecialTokens(
    name="bert",
    tokens=("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"),
    # No bos/eos: BERT has none.
    roles=dict(cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]", mask_token="[MASK]"),
    single="[CLS] $A [SEP]",
    pair="[CLS] $A [SEP] $B:1 [SEP]:1",
    model_input_names=("input_ids", "token_type_ids", "attention_mask"),
)

STYLES = {style.name: style for style in (ROBERTA, BERT)}
