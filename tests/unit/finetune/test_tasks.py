"""Task specs (alum/finetune/tasks.py): the GLUE presets, their fields overridden, and the one-line errors of
a generic task."""

from __future__ import annotations

import pytest

from alum.errors import UserError
from alum.finetune.tasks import GLUE, task_from
from support.data import generic


@pytest.mark.parametrize("name", sorted(GLUE))
def test_every_glue_preset_resolves_with_its_metric(name):
    task = task_from(name)
    assert task.text_columns and task.label_column and task.metric
    assert task.regression == (name == "stsb")
    assert task.num_labels == {"stsb": 1, "mnli": 3}.get(name, 2)


def test_preset_fields_can_be_overridden_and_names_are_forgiving():
    task = task_from({"name": "SST-2", "metric": "f1"})
    assert task.name == "sst2" and task.metric == "f1" and task.labels == ["0", "1"]
    assert task.id2label() == {0: "negative", 1: "positive"}


@pytest.mark.parametrize(
    "fields, message",
    [
        ({}, "task.text_columns: a generic task needs"),
        ({"text_columns": ["a"]}, "task.label_column"),
        ({"text_columns": ["a", "b", "c"], "label_column": "y"}, "at most two"),
        ({"text_columns": ["a"], "label_column": "y", "metric": "pearson"}, "does not fit a classification task"),
        ({"text_columns": ["a"], "label_column": "y", "labels": ["x", "x"]}, "listed twice"),
    ],
)
def test_generic_task_errors_name_the_key(fields, message):
    with pytest.raises(UserError, match=message):
        generic(**fields)
