"""Reading verdict and label files: JSON Lines, each line one object, errors with their line.

Kept apart from :mod:`calibration.join` so the readers of other tools' verdict tables
(:mod:`calibration.tool_verdicts`) and the join share it without importing one another.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["CalibrationInputError", "read_records"]


class CalibrationInputError(ValueError):
    """Verdict or label input that cannot be used; the message names file, line and field."""


def read_records(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSONL file.

    Raises
    ------
    CalibrationInputError
        When the file is missing or a line is not a JSON object (with its line number).
    """
    p = Path(path)
    if not p.is_file():
        raise CalibrationInputError(f"file not found: {p}")
    with p.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CalibrationInputError(
                    f"{p}: line {lineno}: invalid JSON ({exc.msg} at column {exc.colno}); "
                    "expected one JSON object per line"
                ) from None
            if not isinstance(obj, dict):
                raise CalibrationInputError(f"{p}: line {lineno}: expected a JSON object")
            yield lineno, obj
