"""Reading SQuAD files (finetune/qa/reading.py): the official JSON of v1.1 and v2.0 and the `datasets`
JSON-lines shape give the same examples; bad input is one line naming the file and the key or line;
answers that do not match their context are counted, kept as gold texts and give no positions."""

from __future__ import annotations

import json

import pytest

from alum.errors import UserError
from alum.finetune.qa.reading import read
from support.qa import SQUAD_V2_DEV

CONTEXT = "The Normans gave their name to Normandy, a region in France."


def squad(qas, version="1.1"):
    return {"version": version, "data": [{"title": "Normans", "paragraphs": [{"context": CONTEXT, "qas": qas}]}]}


def write(tmp_path, obj, name="f.json"):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj), encoding="utf-8")
    return path


def test_v1_json_with_several_dev_answers(tmp_path):
    qas = [{"id": "q1", "question": "Where is Normandy?", "answers": [
        {"text": "France", "answer_start": 53}, {"text": "a region in France", "answer_start": 41}]}]
    data = read(write(tmp_path, squad(qas)))
    (ex,) = data.examples
    assert data.version == "v1.1" and data.warning is None
    assert ex.answers == ["France", "a region in France"] and ex.spans == [(53, 59), (41, 59)]
    assert ex.title == "Normans" and not ex.is_impossible


def test_json_lines_give_the_same_examples(tmp_path):
    rows = [{"id": "q1", "title": "Normans", "context": CONTEXT, "question": "Where is Normandy?",
             "answers": {"text": ["France"], "answer_start": [53]}},
            {"id": "q2", "title": "Normans", "context": CONTEXT, "question": "Who ruled Mars?",
             "answers": {"text": [], "answer_start": []}}]
    lines = read(write(tmp_path, "\n".join(json.dumps(r) for r in rows) + "\n", "f.jsonl"))
    as_json = read(write(tmp_path, squad([
        {"id": "q1", "question": "Where is Normandy?", "answers": [{"text": "France", "answer_start": 53}]},
        {"id": "q2", "question": "Who ruled Mars?", "answers": [], "is_impossible": True}], "v2.0")))
    assert lines.examples == as_json.examples and lines.version == as_json.version == "v2.0"


def test_the_v2_sample_reads_with_its_unanswerable_questions():
    data = read(SQUAD_V2_DEV)
    assert data.version == "v2.0" and data.misaligned == 0 and data.warning is None
    assert len(data.examples) == 626 and sum(ex.is_impossible for ex in data.examples) == 333


def test_misaligned_answers_are_counted_kept_as_gold_and_give_no_span(tmp_path):
    qas = [{"id": "q1", "question": "Where?", "answers": [{"text": "France", "answer_start": 50},  # off by 3
                                                          {"text": "France", "answer_start": 53}]},
           {"id": "q2", "question": "Who?", "answers": [{"text": "Vikings", "answer_start": 4}]}]
    data = read(write(tmp_path, squad(qas)))
    assert data.misaligned == 2
    assert "2 answer(s) do not match the context" in data.warning and str(tmp_path) in data.warning
    q1, q2 = data.examples
    assert q1.answers == ["France", "France"] and q1.spans == [(53, 59)]
    assert q2.answers == ["Vikings"] and q2.spans == []


BAD = [
    ("{\"data\": [", "not valid JSON (line 1"),
    ({"data": {}}, ": data: expected a list, got dict"),
    ({"data": [{"paragraphs": [{"qas": []}]}]}, "data[0].paragraphs[0]: missing 'context'"),
    (squad([{"id": "q", "question": "Q?", "answers": [{"text": "x"}]}]), "data[0].paragraphs[0].qas[0].answers[0]: missing 'answer_start'"),
    (squad([{"id": "q", "question": "Q?", "answers": [{"text": "x", "answer_start": "3"}]}]), "answer_start: expected an integer, got str"),
    (squad([{"id": "q", "question": "Q?", "answers": []}]), "qas[0]: an answerable question with no answers"),
    (squad([{"id": "q", "question": "Q?", "answers": [{"text": "x", "answer_start": 0}], "is_impossible": True}]),
     "is_impossible is true but the question has answers"),
    (squad([{"id": "q", "question": "Q?", "answers": [], "is_impossible": True}] * 2), "question id 'q' occurs twice"),
    ({"data": []}, "no questions in the file"),
    ("", "the file is empty"),
    ('{"id": "a", "context": "c", "question": "q", "answers": {"text": ["c"], "answer_start": [0]}}\n{"id": "b"',
     ":2: not valid JSON"),
    ('{"id": "a", "context": "c", "question": "q", "answers": {"text": ["c"], "answer_start": [0]}}\n'
     '{"id": "b", "context": "c", "question": "q", "answers": {"text": ["c"], "answer_start": []}}',
     ":2: answers.text has 1 entries, answers.answer_start 0"),
    ('{"id": "a", "context": "c", "question": "q"}\n{"id": "b"}', "line 1: missing 'answers'"),
]


@pytest.mark.parametrize("content, message", BAD, ids=[m for _, m in BAD])
def test_bad_input_is_one_line_naming_the_file_and_where(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(UserError) as err:
        read(path)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        read(tmp_path / "absent.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00data")
    with pytest.raises(UserError, match="not UTF-8"):
        read(tmp_path / "bin.json")
