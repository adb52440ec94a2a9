"""One error type for every problem in an input file, naming the file, line and field."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError


class InputFileError(Exception):
    """An input file cannot be read as outcomes; the message says where and what is wrong.

    Parameters
    ----------
    path
        The file being read.
    reason
        What is wrong, in words a user can act on.
    line
        1-based line number, when known (JSONL files; JSON documents that fail to parse).
    field
        Dotted location of the offending field (pydantic ``loc`` style, e.g.
        ``conversation.0.role``), when known.
    record
        Where the record sits in a JSON document (e.g. ``tickets.3``), when there are no lines.

    Examples
    --------
    >>> err = InputFileError(Path("data/tickets.jsonl"), "Input should be 'customer'", line=12,
    ...                      field="conversation.0.role")
    >>> str(err)
    "tickets.jsonl line 12, field 'conversation.0.role': Input should be 'customer'"
    """

    def __init__(
        self,
        path: Path,
        reason: str,
        *,
        line: int | None = None,
        field: str | None = None,
        record: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.reason = reason
        self.line = line
        self.field = field
        self.record = record
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.path.name or str(self.path)
        if self.line is not None:
            where += f" line {self.line}"
        if self.record is not None:
            where += (
                f", record {self.record}" if self.line is not None else f" record {self.record}"
            )
        if self.field:
            where += f", field '{self.field}'"
        return f"{where}: {self.reason}"


def dotted(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """Join a pydantic/JSON location into the dotted form used in messages.

    >>> dotted(("conversation", 0, "role"))
    'conversation.0.role'
    """
    return ".".join(str(part) for part in loc)


def from_validation_error(
    path: Path,
    exc: ValidationError,
    *,
    line: int | None = None,
    record: str | None = None,
    field_prefix: str = "",
) -> InputFileError:
    """Turn the first error of a pydantic ``ValidationError`` into an :class:`InputFileError`."""
    first = exc.errors(include_url=False)[0]
    loc = dotted(first.get("loc", ()))
    field = ".".join(part for part in (field_prefix, loc) if part) or None
    message = str(first.get("msg", "invalid value"))
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    extra = len(exc.errors()) - 1
    if extra > 0:
        message += f" (and {extra} more problem{'s' if extra > 1 else ''} in this record)"
    return InputFileError(path, message, line=line, field=field, record=record)


class RecordContext:
    """Where the record being converted sits (file, line, record path), for error messages."""

    def __init__(self, path: Path, line: int | None, record: str | None) -> None:
        self.path, self.line, self.record = path, line, record

    def error(self, reason: str, field: str | None = None) -> InputFileError:
        return InputFileError(self.path, reason, line=self.line, record=self.record, field=field)
