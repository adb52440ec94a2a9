"""Reading typed values out of vendor JSON, with errors that name the record and field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from judge.importers.errors import RecordContext
from judge.importers.native import json_type


def unix_time(ctx: RecordContext, value: Any, field: str) -> datetime | None:
    """A Unix timestamp in seconds (number or digit string) or an ISO 8601 string, or ``None``.

    >>> from pathlib import Path
    >>> unix_time(RecordContext(Path("x"), 1, None), 1772445600, "created_at").isoformat()
    '2026-03-02T10:00:00+00:00'
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ctx.error(f"expected a Unix timestamp, got {json_type(value)}", field)
    if isinstance(value, str):
        if not value.strip().isdigit():
            return iso_time(ctx, value, field)
        value = int(value)
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ctx.error(f"timestamp out of range: {value!r}", field) from exc


def iso_time(ctx: RecordContext, value: Any, field: str) -> datetime | None:
    """An ISO 8601 timestamp string (naive means UTC), or ``None``.

    Zendesk's older examples write ``2011/09/25 22:35:44 -0700``; that form is read too.

    >>> from pathlib import Path
    >>> iso_time(RecordContext(Path("x"), 1, None), "2011/09/25 22:35:44 -0700", "t").isoformat()
    '2011-09-25T22:35:44-07:00'
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ctx.error(f"expected an ISO 8601 timestamp string, got {json_type(value)}", field)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = datetime.strptime(value, "%Y/%m/%d %H:%M:%S %z")
        except ValueError as exc:
            raise ctx.error(
                f"not an ISO 8601 timestamp: {value!r}; use e.g. 2026-03-01T10:00:00Z", field
            ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def obj(ctx: RecordContext, value: Any, field: str) -> dict[str, Any]:
    """``value`` as an object; ``None`` is an empty object; anything else is an error."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ctx.error(f"expected an object, got {json_type(value)}", field)
    return value


def array(ctx: RecordContext, value: Any, field: str) -> list[Any]:
    """``value`` as a list; ``None`` is an empty list; anything else is an error."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ctx.error(f"expected an array, got {json_type(value)}", field)
    return value


def text(ctx: RecordContext, value: Any, field: str) -> str:
    """A string field; ``None`` is empty; a number or object is an error."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ctx.error(f"expected a string, got {json_type(value)}", field)
    return value


def flag(ctx: RecordContext, value: Any, field: str) -> bool | None:
    """A boolean field (``None`` when absent)."""
    if value is None or isinstance(value, bool):
        return value
    raise ctx.error(f"expected true or false, got {json_type(value)}", field)
