"""Where the core's messages go once a stage runs (alum/training/metrics.py): one console line each, above
the progress bar, from rank 0 only."""

from __future__ import annotations

import logging

from alum.training import metrics


def test_core_messages_print_once_as_one_line(capsys):
    metrics.route_core_messages()  # a second call must not add a second handler
    logging.getLogger("alum").warning("smart's delta mostly rounds away in bfloat16")
    out = capsys.readouterr()
    assert out.out.splitlines() == ["alum: smart's delta mostly rounds away in bfloat16"]
    assert out.err == ""
