"""Tell the input formats apart by the shape of their first record."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from judge.importers.connector import looks_connector
from judge.importers.errors import InputFileError
from judge.importers.intercom import looks_intercom
from judge.importers.native import first_line_value, load_document, looks_native
from judge.importers.zendesk_collect import looks_zendesk

FORMATS: tuple[str, ...] = ("native", "taubench", "zendesk", "intercom", "connector")
"""Concrete input formats; ``read_outcomes`` also accepts ``"auto"`` (and ``--mapping``)."""

PARSE_WHOLE_BYTES = 64 * 1024 * 1024
"""JSON documents up to this size are parsed to detect their format; larger ones are sniffed."""

_SNIFF_BYTES = 256 * 1024
_UNKNOWN_HINT = (
    "expected native Outcome JSONL (objects with 'id', 'kind' and 'conversation' or 'report'), "
    "a tau-bench trajectory list ('task_id', 'reward', 'traj'), a Zendesk export (tickets, "
    "audits, comments, ticket events, satisfaction ratings or ticket metrics pages), an Intercom "
    "conversation or ticket ('conversation_parts' / 'ticket_parts'), or connector records "
    "(Airbyte/Singer lines with 'stream' and 'data'); "
    "pass --format with one of: " + ", ".join(FORMATS) + ", or --mapping FILE for another help desk"
)


def classify(value: Any) -> str | None:
    """The format of one parsed JSON value (a record, a page or a whole document), or ``None``."""
    from judge.importers.taubench import looks_taubench

    if isinstance(value, list):
        return classify(value[0]) if value else None
    if looks_connector(value):
        return "connector"
    if looks_native(value):
        return "native"
    if looks_taubench(value):
        return "taubench"
    if looks_intercom(value):
        return "intercom"
    if looks_zendesk(value):
        return "zendesk"
    return None


def _sniff(path: Path) -> str | None:
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES).decode("utf-8", errors="replace")
    patterns = (
        ("connector", r'"stream"\s*:\s*"[^"]*"\s*,\s*"(data|record)"\s*:'),
        ("taubench", r'"traj"\s*:'),
        ("intercom", r'"conversation_parts"\s*:|"type"\s*:\s*"conversation(\.list)?"'),
        ("zendesk", r'"requester_id"\s*:|"tickets"\s*:|"audits"\s*:|"ticket_events"\s*:'),
    )
    hits = [(m.start(), name) for name, rx in patterns if (m := re.search(rx, head))]
    return min(hits)[1] if hits else None


def detect_format(path: Path) -> str:
    """Return the format of ``path`` (one of :data:`FORMATS`) from its first record.

    Raises
    ------
    InputFileError
        When the file is missing, empty, unreadable or in none of the supported formats.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "no such file")
    first = first_line_value(path)
    if first is None:
        # A JSON document rather than JSON Lines.
        if path.stat().st_size <= PARSE_WHOLE_BYTES:
            try:
                document = load_document(path)
            except InputFileError as exc:
                raise InputFileError(
                    path,
                    f"cannot tell the format: the file is neither JSON Lines nor a JSON document "
                    f"({exc.reason}); {_UNKNOWN_HINT}",
                    line=exc.line,
                ) from exc
            found = classify(document)
        else:
            found = _sniff(path)
        if found is None:
            raise InputFileError(path, f"cannot tell the format: {_UNKNOWN_HINT}")
        return found
    number, value = first
    found = classify(value)
    if found is None:
        raise InputFileError(path, f"cannot tell the format: {_UNKNOWN_HINT}", line=number)
    return found
