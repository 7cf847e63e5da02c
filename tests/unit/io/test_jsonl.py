import pytest

from alum.errors import UserError
from alum.io.jsonl import json_objects


def test_objects_come_with_their_line_numbers_and_blank_lines_are_skipped():
    text = '{"a": 1}\n\n   \n{"a": 2}\n'
    assert list(json_objects("f.jsonl", text, "a")) == [(1, {"a": 1}), (4, {"a": 2})]


def test_a_line_that_is_not_json_is_named_with_its_column():
    with pytest.raises(UserError, match=r"^f.jsonl:2: not valid JSON \(Expecting value, column 7\)$"):
        list(json_objects("f.jsonl", '{"a": 1}\n{"a": }\n', "a"))


def test_a_line_that_is_not_an_object_says_what_was_expected():
    with pytest.raises(UserError, match=r"^f.jsonl:1: expected a JSON object with 'tokens' and 'ner_tags'$"):
        list(json_objects("f.jsonl", "[1, 2]\n", "'tokens' and 'ner_tags'"))
