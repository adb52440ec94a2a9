"""Reading JSON and JSON Lines safely, and the native Outcome JSONL format.

The line reader is shared by every importer: it streams one line at a time (a file is never
loaded whole), caps the line length, and turns every problem (invalid UTF-8, malformed JSON, an
over-long line) into an :class:`~judge.importers.errors.InputFileError` naming the line.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError

from judge.importers.errors import InputFileError, from_validation_error
from judge.models import Outcome

BOM = b"\xef\xbb\xbf"
MAX_DOCUMENT_BYTES = 512 * 1024 * 1024
"""Largest JSON *document* (not JSONL) accepted; JSON documents must be parsed whole."""


class LineTooLongError(InputFileError):
    """A line over the length cap (a subclass so a one-line JSON document can be told apart)."""


class Located(NamedTuple):
    """An imported outcome and where it came from (for error messages)."""

    outcome: Outcome
    line: int | None
    record: str | None


class JsonValue(NamedTuple):
    """A parsed JSON value and its 1-based line (JSONL) or ``None`` (whole document)."""

    value: Any
    line: int | None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (use null or a number)")


def _loads(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        # The C parser recurses per nesting level: a hostile line must be an error, not a crash.
        raise ValueError("nested too deeply for the JSON parser; flatten the record") from None


def json_type(value: Any) -> str:
    """JSON's own name for a parsed value's type (for messages).

    >>> json_type([1]), json_type({}), json_type("x"), json_type(None)
    ('array', 'object', 'string', 'null')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "string" if isinstance(value, str) else type(value).__name__


def _max_line_bytes() -> int:
    from config.settings import get_settings

    return get_settings().max_line_bytes


def iter_lines(
    path: Path, *, max_line_bytes: int | None = None
) -> Generator[tuple[int, str], None, None]:
    """Yield ``(line_number, text)`` for each non-blank line, streaming, with a length cap.

    Raises
    ------
    InputFileError
        For a line longer than the cap or a line that is not valid UTF-8.
    """
    cap = max_line_bytes if max_line_bytes is not None else _max_line_bytes()
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputFileError(path, f"cannot open the file: {exc.strerror or exc}") from exc
    with handle:
        number = 0
        while True:
            raw = handle.readline(cap + 1)
            if not raw:
                return
            number += 1
            if len(raw) > cap and not raw.endswith(b"\n"):
                raise LineTooLongError(
                    path,
                    f"line is longer than the {cap:,}-byte limit "
                    "(raise OUTCOME_JUDGE_MAX_LINE_BYTES if this record is legitimate)",
                    line=number,
                )
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM) :]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputFileError(
                    path,
                    f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the "
                    "line); save the file as UTF-8",
                    line=number,
                ) from exc
            if text.strip():
                yield number, text


def parse_line(path: Path, number: int, text: str) -> Any:
    """Parse one JSONL line, raising :class:`InputFileError` with the line on malformed JSON."""
    try:
        return _loads(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(
            path, f"not valid JSON: {exc.msg} (column {exc.colno})", line=number
        ) from exc
    except ValueError as exc:
        raise InputFileError(path, f"not valid JSON: {exc}", line=number) from exc


def load_document(path: Path) -> Any:
    """Parse a whole JSON document (tau-bench and exports are JSON arrays/objects)."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputFileError(path, f"cannot open the file: {exc.strerror or exc}") from exc
    if size > MAX_DOCUMENT_BYTES:
        raise InputFileError(
            path,
            f"JSON document is {size:,} bytes, over the {MAX_DOCUMENT_BYTES:,}-byte limit; "
            "split it or export it as JSON Lines (one record per line)",
        )
    data = path.read_bytes()
    if data.startswith(BOM):
        data = data[len(BOM) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputFileError(path, "not valid UTF-8; save the file as UTF-8", line=line) from exc
    if not text.strip():
        raise InputFileError(path, "the file is empty: no outcomes to read")
    try:
        return _loads(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(
            path, f"not valid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno
        ) from exc
    except ValueError as exc:
        raise InputFileError(path, f"not valid JSON: {exc}") from exc


def first_char(path: Path) -> str:
    """The first non-whitespace character of the file (after a UTF-8 BOM), or ``""``."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputFileError(path, f"cannot open the file: {exc.strerror or exc}") from exc
    with handle:
        chunk = handle.read(4096)
        if chunk.startswith(BOM):
            chunk = chunk[len(BOM) :]
        while chunk:
            stripped = chunk.lstrip()
            if stripped:
                return chunk_text(stripped[:1])
            chunk = handle.read(65536)
    return ""


def chunk_text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def first_line_value(path: Path) -> tuple[int, Any] | None:
    """``(line, value)`` when the file is JSON Lines, ``None`` when it is one JSON document.

    A file is read as JSON Lines when its first non-blank line is a complete JSON object that
    fits the line cap; a file starting with ``[``, a pretty-printed document, or a one-line
    document over the line cap is a JSON document.

    Raises
    ------
    InputFileError
        For an empty file.
    """
    head = first_char(path)
    if not head:
        raise InputFileError(path, "the file is empty: no outcomes to read")
    if head == "[":
        return None
    lines = iter_lines(path)
    try:
        first = next(lines, None)
    except LineTooLongError:
        return None
    finally:
        lines.close()
    if first is None:
        raise InputFileError(path, "the file is empty: no outcomes to read")
    number, text = first
    try:
        return number, _loads(text)
    except ValueError:
        return None


def iter_json_values(path: Path) -> Iterator[JsonValue]:
    """Yield the JSON values of a JSON Lines file, or the single value of a JSON document.

    See :func:`first_line_value` for how the two are told apart. JSON Lines are streamed.
    """
    if first_line_value(path) is None:
        try:
            document = load_document(path)
        except InputFileError as exc:
            # A JSONL file whose first line is over the cap is not a document: say so.
            lines = iter_lines(path)
            try:
                next(lines, None)
            except LineTooLongError as too_long:
                raise too_long from exc
            finally:
                lines.close()
            raise
        yield JsonValue(document, None)
        return
    for number, text in iter_lines(path):
        yield JsonValue(parse_line(path, number, text), number)


def iter_native(path: Path) -> Iterator[Located]:
    """Stream native Outcome JSONL, one line at a time.

    Raises
    ------
    InputFileError
        Naming the line and the field (e.g. ``conversation.0.role``) of the first bad record.
    """
    for number, text in iter_lines(path):
        value = parse_line(path, number, text)
        if not isinstance(value, dict):
            raise InputFileError(
                path,
                f"expected a JSON object (one outcome per line), got {json_type(value)}",
                line=number,
            )
        try:
            outcome = Outcome.model_validate(value)
        except ValidationError as exc:
            raise from_validation_error(path, exc, line=number) from exc
        yield Located(outcome, number, None)


def looks_native(value: Any) -> bool:
    """True when a parsed JSON object has the shape of a native Outcome.

    >>> looks_native({"id": "T-1", "kind": "support_ticket", "conversation": []})
    True
    >>> looks_native({"id": 1, "subject": "Help"})
    False
    """
    return isinstance(value, dict) and (
        value.get("kind") in ("support_ticket", "report")
        or "conversation" in value
        or ("report" in value and "id" in value)
    )
