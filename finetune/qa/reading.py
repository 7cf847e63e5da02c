"""SQuAD files as examples: the official JSON (v1.1 and v2.0: `data[].paragraphs[].qas[]`) and the JSON-lines
shape of Hugging Face `datasets` (`id, title, context, question, answers: {text: [], answer_start: []}`),
which is also the shape of `datasets` rows (`squad`, `squad_v2`; `read_rows`).

Bad input is a one-line `UserError` naming the file and the key path (`data[3].paragraphs[0].qas[2].id`) or
the line. An answer whose text is not the context's text at its `answer_start` is neither refused nor
repaired: it is counted, kept as a gold text (the official evaluation compares texts only) and left out of
the answer spans that training positions come from; the reader returns a warning naming the count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from alum.errors import UserError
from alum.io.jsonl import json_objects


@dataclass
class QAExample:
    id: str
    question: str
    context: str
    answers: list[str] = field(default_factory=list)  # gold texts, as written ([] when unanswerable)
    # (start, end) character spans of the answers that match the context, end exclusive
    spans: list[tuple[int, int]] = field(default_factory=list)
    is_impossible: bool = False
    title: str = ""


@dataclass
class QAData:
    examples: list[QAExample]
    version: str  # "v1.1" or "v2.0": whether unanswerable questions occur
    misaligned: int = 0  # answers whose text is not the context's at answer_start
    warning: str | None = None


def read(path: str | Path) -> QAData:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (byte {err.start})") from None
    if not text.strip():
        raise UserError(f"{path}: the file is empty")
    try:
        whole = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg != "Extra data":  # several JSON values: JSON lines
            raise UserError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
        whole = None
    if isinstance(whole, dict) and "data" in whole:
        examples = _squad_json(path, whole)
    else:
        examples = _flat(path, json_objects(path, text, "id, context, question, answers"), "line")
    return _summarise(path, examples)


def read_rows(rows, name: str) -> QAData:
    """The rows of a `datasets` dataset in the `squad` shape; `name` says which in messages."""
    if rows is None or not len(rows):
        raise UserError(f"{name}: no questions in the rows")
    return _summarise(name, _flat(name, enumerate(rows), "row"))


def _summarise(path: Path, examples: list[QAExample]) -> QAData:
    if not examples:
        raise UserError(f"{path}: no questions in the file")
    ids = set()
    for ex in examples:
        if ex.id in ids:
            raise UserError(f"{path}: question id {ex.id!r} occurs twice")
        ids.add(ex.id)
    misaligned = sum(len(ex.answers) - len(ex.spans) for ex in examples if not ex.is_impossible)
    warning = None
    if misaligned:
        warning = (f"{path}: {misaligned} answer(s) do not match the context at their answer_start; they count "
                   "as gold texts but give no training positions")
    version = "v2.0" if any(ex.is_impossible for ex in examples) else "v1.1"
    return QAData(examples, version, misaligned, warning)


def _need(obj: object, key: str, kind: type | tuple, where: str, path: Path):
    """obj[key], refused in one line unless it is a `kind` ("" for `where` is the top level)."""
    if not isinstance(obj, dict):
        raise UserError(f"{path}: {where or 'the top level'} is not a JSON object")
    if key not in obj:
        raise UserError(f"{path}: {where or 'the top level'}: missing '{key}'")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:  # JSON true is no position
        expected = _JSON_NAMES[kind if isinstance(kind, type) else kind[0]]
        raise UserError(f"{path}: {where + '.' if where else ''}{key}: expected {expected}, got {type(value).__name__}")
    return value


_JSON_NAMES = {str: "a string", list: "a list", int: "an integer", dict: "an object"}


def _squad_json(path: Path, whole: dict) -> list[QAExample]:
    out = []
    for a, article in enumerate(_need(whole, "data", list, "", path)):
        where_a = f"data[{a}]"
        title = article.get("title", "") if isinstance(article, dict) else ""
        for p, para in enumerate(_need(article, "paragraphs", list, where_a, path)):
            where_p = f"{where_a}.paragraphs[{p}]"
            context = _need(para, "context", str, where_p, path)
            for q, qa in enumerate(_need(para, "qas", list, where_p, path)):
                where = f"{where_p}.qas[{q}]"
                impossible = qa.get("is_impossible", False) if isinstance(qa, dict) else False
                if not isinstance(impossible, bool):
                    raise UserError(f"{path}: {where}.is_impossible: expected true or false")
                pairs = []
                for i, ans in enumerate(_need(qa, "answers", list, where, path)):
                    pairs.append((_need(ans, "text", str, f"{where}.answers[{i}]", path),
                                  _need(ans, "answer_start", int, f"{where}.answers[{i}]", path)))
                out.append(_example(path, where, str(_need(qa, "id", (str, int), where, path)),
                                    _need(qa, "question", str, where, path), context, pairs, impossible, title))
    return out


def _flat(path: Path | str, objects, unit: str) -> list[QAExample]:
    """Questions one per object, `(number, object)` pairs: JSON lines (`unit` line), or `datasets` rows (row)."""
    out = []
    for n, row in objects:
        where = f"{unit} {n}"
        place = f"{path}:{n}" if unit == "line" else f"{path} row {n}"
        answers = _need(row, "answers", dict, where, path)
        texts = _need(answers, "text", list, f"{where}.answers", path)
        starts = _need(answers, "answer_start", list, f"{where}.answers", path)
        if len(texts) != len(starts):
            raise UserError(f"{place}: answers.text has {len(texts)} entries, answers.answer_start {len(starts)}")
        if not all(isinstance(t, str) for t in texts) or not all(type(s) is int for s in starts):
            raise UserError(f"{place}: answers.text must hold strings and answers.answer_start integers")
        # the `datasets` shape marks an unanswerable question (squad_v2) by empty answer lists
        out.append(_example(path, where, str(_need(row, "id", (str, int), where, path)),
                            _need(row, "question", str, where, path), _need(row, "context", str, where, path),
                            list(zip(texts, starts)), not texts, row.get("title", "") or ""))
    return out


def _example(path: Path, where: str, qid: str, question: str, context: str, pairs: list[tuple[str, int]],
             impossible: bool, title: str) -> QAExample:
    if impossible and pairs and where.startswith("data"):
        raise UserError(f"{path}: {where}: is_impossible is true but the question has answers")
    if not impossible and not pairs:
        raise UserError(f"{path}: {where}: an answerable question with no answers (set is_impossible for v2.0)")
    if not question.strip():
        raise UserError(f"{path}: {where}: the question is empty")
    spans = [(s, s + len(t)) for t, s in pairs if t and 0 <= s and context[s:s + len(t)] == t]
    return QAExample(qid, question, context, [t for t, _ in pairs], spans, impossible, title)
