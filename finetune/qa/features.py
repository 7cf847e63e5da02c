"""(question, context) pairs as fixed-length windows of tokens, with the answer's start and end token in each.

A context longer than a window is cut into overlapping windows (`stride` tokens shared by neighbours, the
`stride` of HF tokenizers and of `run_qa.py`; Google's BERT `doc_stride` is the step instead). Only the
context is cut (`truncation="only_second"`); a question longer than `max_query_length` tokens is cut first,
as BERT's SQuAD code does, so a window always has room for context. A window whose context does not hold
the whole answer, and every window of an unanswerable question, points both positions at the CLS token,
which is how the head says "no answer here". Each window keeps the example it came from and the character
offsets of its context tokens (None elsewhere), which is all post-processing needs.

Offsets come from the fast tokenizer, so this works alike for WordPiece (BERT: token_type_ids) and
byte-level BPE (RoBERTa: no token_type_ids, offsets trimmed of the leading space).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from alum.errors import UserError
from alum.finetune.qa.reading import QAExample

Offsets = list[tuple[int, int] | None]


@dataclass
class QAFeatures:
    input_ids: list[list[int]]
    attention_mask: list[list[int]]
    token_type_ids: list[list[int]] | None
    start_positions: list[int]
    end_positions: list[int]
    example_index: list[int]  # the example (position in the list encoded) each window came from
    offsets: list[Offsets]  # character span of each context token in its example's context; None elsewhere
    cls_index: list[int]
    dropped: list[str] = field(default_factory=list)  # ids of training examples with no usable answer span

    def __len__(self) -> int:
        return len(self.input_ids)

    def tensors(self, rows: list[int] | slice | None = None) -> dict[str, torch.Tensor]:
        """The windows `rows` (all by default) as the batch `forward.qa_forward` reads: the model inputs,
        `span_mask` (1 at context tokens and CLS: the positions an answer can start or end at) and the
        gold positions."""
        idx = range(len(self))[rows] if isinstance(rows, slice) else (range(len(self)) if rows is None else rows)
        pick = lambda column: torch.tensor([column[i] for i in idx], dtype=torch.long)  # noqa: E731
        batch = {"input_ids": pick(self.input_ids), "attention_mask": pick(self.attention_mask),
                 "start_positions": pick(self.start_positions), "end_positions": pick(self.end_positions)}
        if self.token_type_ids is not None:
            batch["token_type_ids"] = pick(self.token_type_ids)
        mask = torch.zeros_like(batch["input_ids"])
        for row, i in enumerate(idx):
            mask[row, self.cls_index[i]] = 1
            for t, span in enumerate(self.offsets[i]):
                if span is not None:
                    mask[row, t] = 1
        batch["span_mask"] = mask
        return batch


def encode(examples: list[QAExample], tokenizer, max_length: int = 384, stride: int = 128,
           max_query_length: int = 64, training: bool = False) -> QAFeatures:
    """Windows of every example. With `training`, an answerable example none of whose answers matches its
    context (see `reading`) gives no window: its id is listed in `dropped`."""
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(f"question answering needs a fast tokenizer (offsets); {type(tokenizer).__name__} is not")
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    room = max_length - max_query_length - specials  # the context tokens a window holds at the least
    if room <= stride:
        raise UserError(f"max_length {max_length} leaves {room} context tokens after a {max_query_length}-token "
                        f"question and {specials} special tokens: that must exceed the stride ({stride})")
    if tokenizer.cls_token_id is None:
        raise UserError(f"question answering needs a tokenizer with a CLS token (the no-answer position); "
                        f"{type(tokenizer).__name__} has none")
    dropped = [ex.id for ex in examples if training and not ex.is_impossible and not ex.spans]
    skip = set(dropped)
    kept = [i for i, ex in enumerate(examples) if ex.id not in skip]
    questions = _cut_questions([examples[i].question for i in kept], tokenizer, max_query_length)
    enc = tokenizer(questions, [examples[i].context for i in kept], truncation="only_second",
                    max_length=max_length, stride=stride, return_overflowing_tokens=True,
                    return_offsets_mapping=True, padding="max_length")
    out = QAFeatures([], [], [] if "token_type_ids" in enc else None, [], [], [], [], [], dropped)
    for w, ids in enumerate(enc["input_ids"]):
        example = examples[kept[enc["overflow_to_sample_mapping"][w]]]
        sequence = enc.sequence_ids(w)
        offsets = [tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][w], sequence)]
        cls = ids.index(tokenizer.cls_token_id)
        start, end = _positions(example, offsets, cls)
        out.input_ids.append(ids)
        out.attention_mask.append(enc["attention_mask"][w])
        if out.token_type_ids is not None:
            out.token_type_ids.append(enc["token_type_ids"][w])
        out.start_positions.append(start)
        out.end_positions.append(end)
        out.example_index.append(kept[enc["overflow_to_sample_mapping"][w]])
        out.offsets.append(offsets)
        out.cls_index.append(cls)
    return out


def _cut_questions(questions: list[str], tokenizer, max_query_length: int) -> list[str]:
    """Questions without leading whitespace (some SQuAD questions have much of it, which would only take room),
    cut after their first `max_query_length` tokens."""
    questions = [q.lstrip() for q in questions]
    enc = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    return [q[: offs[max_query_length - 1][1]] if len(offs) > max_query_length else q
            for q, offs in zip(questions, enc["offset_mapping"])]


def _positions(example: QAExample, offsets: Offsets, cls: int) -> tuple[int, int]:
    """The first and last token of the example's first matching answer inside this window, or (cls, cls)."""
    if example.is_impossible or not example.spans:
        return cls, cls
    first_char, end_char = example.spans[0]
    context = [t for t, span in enumerate(offsets) if span is not None]
    if not context or offsets[context[0]][0] > first_char or offsets[context[-1]][1] < end_char:
        return cls, cls  # the answer is not wholly inside this window
    start = next(t for t in reversed(context) if offsets[t][0] <= first_char)
    end = next(t for t in context if offsets[t][1] >= end_char)
    return start, end
