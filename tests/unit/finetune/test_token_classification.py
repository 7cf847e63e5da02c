"""Token classification: reading CoNLL and JSON lines, tags on first sub-words, the gathered forward that the
perturbation core sees, and every core method on a tiny tagger."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from alum.adversarial import METHODS, Target, build_method
from alum.errors import UserError
from alum.finetune import tagged_data as T
from alum.finetune.token_classification import gold_rows, tag_metrics
from alum.training.head_forwards import tag_forward
from support.data import tagger_task, write_jsonl
from support.trainers import RecordingTrainer

CONLL = """-DOCSTART- -X- -X- O

John NNP B-NP B-PER
Johnson NNP I-NP I-PER
lives VBZ B-VP O

in IN B-PP O
New NNP B-NP B-LOC
Yorker NNP I-NP I-LOC
"""  # no blank line at the end: the last sentence still ends there


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_conll_sentences_tags_from_the_last_column_and_lines(tmp_path):
    split = T.read_tagged(write(tmp_path, "train.conll", CONLL), tagger_task(), "train")
    assert split.words == [["John", "Johnson", "lives"], ["in", "New", "Yorker"]]
    assert split.tags == [["B-PER", "I-PER", "O"], ["O", "B-LOC", "I-LOC"]]
    assert split.lines == [[3, 4, 5], [7, 8, 9]]
    other = T.read_tagged(write(tmp_path, "t.txt", CONLL), tagger_task(tag_column=2), "train")
    assert other.tags[0] == ["B-NP", "I-NP", "B-VP"]


def test_a_line_with_other_columns_is_named(tmp_path):
    path = write(tmp_path, "bad.conll", "a B-PER\nb\n")
    with pytest.raises(UserError, match=r"bad.conll:2: 1 columns, but line 1 has 2"):
        T.read_tagged(path, tagger_task(), "train")
    with pytest.raises(UserError, match=r"one.conll:1: a CoNLL line needs a token and a tag"):
        T.read_tagged(write(tmp_path, "one.conll", "lonely\n"), tagger_task(), "train")
    (tmp_path / "x.conll").write_bytes(b"a O\n\nb \xff\n")
    with pytest.raises(UserError, match=r"x.conll:3: not UTF-8 text \(byte 0xff\)"):
        T.read_tagged(tmp_path / "x.conll", tagger_task(), "train")


@pytest.mark.parametrize("fields, message", [
    ({"name": "sst2"}, "type: 'sst2' is a GLUE sequence-classification preset"),
    ({"format": "tsv"}, "format: a token-classification task reads conll, jsonl, parquet or arrow files, not tsv"),
    ({"metric": "accuracy"}, "metric: 'accuracy' does not fit a token-classification task"),
    ({"text_columns": ["a", "b"]}, "text_columns: a token-classification task reads one column"),
    ({"labels": ["O", "O"]}, "labels: a label is listed twice"),
])
def test_task_fields_that_do_not_fit_tagging_are_refused(fields, message):
    with pytest.raises(UserError, match=message):
        tagger_task(**fields)


def test_file_formats_of_a_tagging_task():
    task = tagger_task()
    assert (task.text_columns, task.label_column, task.metric) == (["tokens"], "ner_tags", "entity_f1")
    assert [task.file_format(p) for p in ("eng.train", "train.txt", "a.conll", "a.jsonl", "a.json")] == \
        ["conll", "conll", "conll", "jsonl", "jsonl"]


def test_labels_inferred_o_first_then_sorted_and_checked(tmp_path):
    task = tagger_task()
    train = T.read_tagged(write(tmp_path, "train.conll", CONLL), task, "train")
    T.infer_tags(task, train)
    assert task.labels == ["O", "B-LOC", "B-PER", "I-LOC", "I-PER"]
    assert T.tag_ids(task, train) == [[2, 4, 0], [0, 1, 3]]
    dev = T.read_tagged(write(tmp_path, "dev.conll", "Paris B-LOC\nis O\nhere B-MISC\n"), task, "dev")
    with pytest.raises(UserError, match=r"dev.conll:3: tag 'B-MISC' is not one of the task's labels"):
        T.tag_ids(task, dev)
    bad = T.read_tagged(write(tmp_path, "bad.conll", "a B-PER\nb PER\n"), tagger_task(), "train")
    with pytest.raises(UserError, match=r"bad.conll:2: tag 'PER' is neither O nor"):
        T.infer_tags(tagger_task(), bad)


def test_json_lines_with_tag_ids_or_names(tmp_path):
    rows = [{"tokens": ["EU", "rejects"], "ner_tags": [3, 0]}, {"tokens": ["Peter"], "ner_tags": [1]}]
    path = write_jsonl(tmp_path / "t.jsonl", rows)
    task = tagger_task(labels=["O", "B-PER", "I-PER", "B-ORG"])
    split = T.read_tagged(path, task, "train")
    assert T.tag_ids(task, split) == [[3, 0], [1]]
    with pytest.raises(UserError, match=r"t.jsonl:1: tag 'EU'|t.jsonl:1: tag 3 is an id; integer tags need task.labels"):
        T.infer_tags(tagger_task(), split)
    named = write_jsonl(tmp_path / "n.jsonl", [{"tokens": ["Peter"], "ner_tags": ["B-PER"]}])
    assert T.tag_ids(task, T.read_tagged(named, task, "dev")) == [[1]]
    short = write_jsonl(tmp_path / "s.jsonl", [{"tokens": ["a", "b"], "ner_tags": ["O"]}])
    with pytest.raises(UserError, match=r"s.jsonl:1: 2 words in 'tokens' but 1 tags"):
        T.read_tagged(short, task, "dev")
    with pytest.raises(UserError, match=r"t.jsonl:1: tag id 3 is outside task.labels"):
        T.tag_ids(tagger_task(labels=["O", "B-PER"]), split)


def wordpiece(tmp_path):
    from transformers import BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "john", "##son", "lives", "in", "new", "york", "##er"]
    return BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)})


def test_wordpiece_tags_go_on_the_first_sub_word(tmp_path):
    tok = wordpiece(tmp_path)
    split = T.TaggedSplit(tmp_path, [["Johnson", "lives", "in", "New", "Yorker"]], [[]], [[]])
    aligned = T.align(split, [[1, 0, 0, 2, 3]], tok, max_len=32)
    row = aligned.encoded[0]
    assert tok.convert_ids_to_tokens(row["input_ids"]) == \
        ["[CLS]", "john", "##son", "lives", "in", "new", "york", "##er", "[SEP]"]
    assert row["labels"] == [-100, 1, -100, 0, 0, 2, 3, -100, -100]
    assert aligned.cut_words == 0
    # cut at 5 sub-words ([CLS] + 3 + [SEP]): "in", "New", "Yorker" fall off and are counted
    cut = T.align(split, [[1, 0, 0, 2, 3]], tok, max_len=5)
    assert cut.encoded[0]["labels"] == [-100, 1, -100, 0, -100]
    assert (cut.cut_sentences, cut.cut_words) == (1, 3)


def test_byte_level_bpe_gets_its_prefix_space(tokenizer_dir):
    from transformers import AutoTokenizer, RobertaTokenizerFast

    plain = AutoTokenizer.from_pretrained(str(tokenizer_dir))  # the tokenizer stage's kind: no prefix space
    roberta = RobertaTokenizerFast(tokenizer_object=plain.backend_tokenizer, add_prefix_space=False)
    words = ["the", "history", "of", "the", "world"]
    for tok in (plain, roberta):
        aligned = T.align(T.TaggedSplit(tokenizer_dir, [words], [[]], [[]]), [[0, 1, 0, 0, 2]], tok, 32)
        ids, labels = aligned.encoded[0]["input_ids"], aligned.encoded[0]["labels"]
        pieces = tok.convert_ids_to_tokens(ids)
        # as inside running text, every word is preceded by a space ("\u0120" in byte-level BPE)
        assert ids[1:-1] == tok(" " + " ".join(words), add_special_tokens=False)["input_ids"]
        first = [i for i, label in enumerate(labels) if label != -100]
        assert [labels[i] for i in first] == [0, 1, 0, 0, 2] and labels[0] == labels[-1] == -100
        assert all(pieces[i].startswith("\u0120") for i in first)
        assert sum(p.startswith("\u0120") for p in pieces) == len(words)  # no other piece opens a word
    assert plain(words, is_split_into_words=True)["input_ids"] != ids  # the tokenizer itself is left as it was


def test_a_slow_tokenizer_is_refused():
    class Slow:
        is_fast = False
        name_or_path = "tok-dir"

    with pytest.raises(UserError, match="tok-dir: token classification needs a fast tokenizer"):
        T.word_tokenizer(Slow())


def test_the_collator_pads_labels_with_ignore(tmp_path):
    tok = wordpiece(tmp_path)
    split = T.TaggedSplit(tmp_path, [["john", "lives"], ["in"]], [[]], [[]])
    encoded = T.align(split, [[1, 0], [0]], tok, 16).encoded
    batch = T.TagCollator(tok)([encoded[0], encoded[1]])
    assert batch["labels"].tolist() == [[-100, 1, 0, -100], [-100, 0, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]


def tiny_tagger(num_labels=5, seed=0):
    from transformers import AutoModelForTokenClassification

    from support.models import tiny_config

    torch.manual_seed(seed)
    return AutoModelForTokenClassification.from_config(tiny_config("bert", num_labels))


def tag_batch(seed=0, batch=3, length=8, num_labels=5):
    """Padding in every row but the first, first-sub-word labels on some real positions only."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 90, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    labels = torch.randint(0, num_labels, (batch, length), generator=g)
    labels[:, 0] = -100  # [CLS]
    labels[:, 3] = -100  # a later sub-word
    for row in range(1, batch):
        ids[row, length - 2 * row:] = 0
        mask[row, length - 2 * row:] = 0
        labels[row, length - 2 * row:] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def test_the_forward_returns_rows_at_the_labelled_positions():
    model = tiny_tagger().eval()
    batch = tag_batch()
    out = tag_forward(model)(model, batch)
    picked = batch["labels"] != -100
    full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert out.logits.shape == (int(picked.sum()), 5)
    assert torch.equal(out.logits, full[picked])
    expected = F.cross_entropy(full.float().reshape(-1, 5), batch["labels"].reshape(-1), ignore_index=-100)
    torch.testing.assert_close(out.loss, expected)
    nothing = {**batch, "labels": torch.full_like(batch["labels"], -100)}
    assert float(tag_forward(model)(model, nothing).loss.detach()) == 0.0  # not NaN


def test_the_divergence_is_the_mean_of_per_token_kls():
    """KL over the gathered rows, as the core takes it, equals a per-token KL computed position by position."""
    model = tiny_tagger().double().train()  # float64: the two computations agree to rounding of 1e-16
    batch = tag_batch(1)
    forward = tag_forward(model)
    target = Target(model, forward)
    torch.manual_seed(0)
    a = target(batch)
    torch.manual_seed(1)
    b = target(batch)  # another dropout draw: different outputs
    per_token = []
    full_a = a.logits.detach().double()
    full_b = b.logits.detach().double()
    for i in range(full_a.shape[0]):
        p, q = full_a[i].softmax(-1), full_b[i].softmax(-1)
        per_token.append(float((p * (p.log() - q.log())).sum()))
    expected = sum(per_token) / len(per_token)
    measured = target.divergence.moving_from_fixed(a, b).detach()
    assert measured.dtype == torch.float64
    assert float(measured) == pytest.approx(expected, rel=1e-9)
    assert float(target.divergence(a.logits, b.logits).detach()) == pytest.approx(expected, rel=1e-9)
    assert expected > 0


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_takes_one_update_on_a_tagger(name):
    model = tiny_tagger().train()
    target = Target(model, tag_forward(model))
    method = build_method(name)
    method.setup(target, total_updates=4)
    before = [p.detach().clone() for p in model.parameters()]
    trainer = RecordingTrainer(model, lr=0.05)
    torch.manual_seed(0)
    report = method.step(target, tag_batch(2), trainer)
    if trainer.steps == 0:
        trainer.optimizer_step()
    assert report.skipped == 0 and np.isfinite(report.loss)
    assert trainer.backwards >= 1 and all(np.isfinite(v) for v in trainer.losses)
    if method.perturbs:
        assert method.last_delta is not None and method.last_delta.shape[:2] == (3, 8)
    assert any(not torch.equal(x, y) for x, y in zip(before, model.parameters()))
    method.on_optimizer_step(target, 1)  # SMART's teacher follows the weights


def test_gold_rows_mark_each_sentence_start_across_batches():
    labels = torch.tensor([[-100, 2, -100, 4, -100], [-100, 4, 0, -100, -100]])
    gold = gold_rows(labels)
    assert gold.tolist() == [[2, 1], [4, 0], [4, 1], [0, 0]]
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    # gold: [I-PER I-LOC] (PER, LOC) and [I-LOC O] (LOC): three entities, the LOC at the first sentence's end
    # not joined to the one that opens the second
    exact = tag_metrics(np.eye(5)[[2, 4, 4, 0]], gold, names)
    assert exact["entity_f1"] == 1.0 and exact["token_accuracy"] == 1.0
    # predicted [B-PER I-LOC] [I-LOC O]: the same entities (IOB2 spelling), one token differs
    iob2 = tag_metrics(np.eye(5)[[1, 4, 4, 0]], gold, names)
    assert iob2["entity_f1"] == 1.0 and iob2["token_accuracy"] == pytest.approx(3 / 4)
    # predicted [O I-LOC] [O O]: one of three found, one predicted
    half = tag_metrics(np.eye(5)[[0, 4, 0, 0]], gold, names)
    assert half["entity_precision"] == 1.0 and half["entity_recall"] == pytest.approx(1 / 3)


def test_the_attack_climbs_the_taggers_loss():
    from alum.finetune.config import AttackConfig
    from alum.finetune.evaluate import attack_delta

    model = tiny_tagger().eval()
    target = Target(model, tag_forward(model))
    batch = tag_batch(3)
    delta = attack_delta(target, batch, AttackConfig(eps=0.5, steps=3))
    assert delta[batch["attention_mask"] == 0].abs().max() == 0
    with torch.no_grad():
        clean = float(target(batch).loss)
        with target.perturbation.applied(delta):
            attacked = float(target(batch).loss)
    assert attacked > clean
