"""The objects of a JSON-lines text, each with the line it stands on, for readers whose errors name the line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from alum.errors import UserError


def json_objects(path: str | Path, text: str, expected: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line; a line that is not a JSON object stops the reading with
    one line naming it (`expected` says what the object should hold)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}:{number}: not valid JSON ({err.msg}, column {err.colno})") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}:{number}: expected a JSON object with {expected}")
        yield number, row
