"""Read outcomes from every supported input format into the native :class:`~judge.models.Outcome`.

Formats: ``native`` (Outcome JSONL, streamed line by line), ``taubench`` (tau-bench trajectory
lists), ``zendesk`` (Zendesk ticket exports with comments and users), ``intercom`` (Intercom
conversation exports); ``auto`` detects which from the first record.

Every problem is an :class:`InputFileError` that names the file, the line (or record) and the
field, e.g. ``tickets.jsonl line 12, field 'conversation.0.role': Input should be ...``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from judge.importers.context import ImportContext, parse_ai_authors
from judge.importers.detect import FORMATS, detect_format
from judge.importers.errors import InputFileError
from judge.importers.native import Located
from judge.importers.report import FileReport
from judge.models import Outcome

__all__ = [
    "FORMATS",
    "FileReport",
    "InputFileError",
    "detect_format",
    "parse_ai_authors",
    "read_outcomes",
    "validate_file",
]

Reader = Callable[[Path, ImportContext], Iterator[Located]]


def _reader(fmt: str) -> Reader:
    if fmt == "native":
        from judge.importers.native import iter_native

        return lambda path, _ctx: iter_native(path)
    if fmt == "taubench":
        from judge.importers.taubench import iter_taubench

        return lambda path, _ctx: iter_taubench(path)
    if fmt == "zendesk":
        from judge.importers.zendesk import iter_zendesk

        return iter_zendesk
    if fmt == "connector":
        from judge.importers.connector import iter_connector

        return iter_connector
    if fmt == "mapping":
        from judge.importers.mapping import iter_mapping

        return iter_mapping
    from judge.importers.intercom import iter_intercom

    return iter_intercom


def resolve_format(path: Path, format: str = "auto", *, mapping: Any = None) -> str:
    """Check ``format`` and the file up front; return the concrete format (detected for auto).

    Raises
    ------
    InputFileError
        For an unknown format name, a missing file, or (auto) a file in no known format.
    """
    path = Path(path)
    if mapping is not None:
        if format not in ("auto", "mapping"):
            raise InputFileError(
                path, f"--mapping reads the file with the mapping; drop --format {format}"
            )
        format = "mapping"
    elif format == "mapping":
        raise InputFileError(path, "--format mapping needs --mapping FILE")
    if format not in ("auto", "mapping") and format not in FORMATS:
        raise InputFileError(
            path, f"unknown format {format!r}; use one of: auto, {', '.join(FORMATS)}"
        )
    if not path.exists():
        raise InputFileError(path, "no such file")
    if not path.is_file():
        raise InputFileError(path, "not a regular file")
    return detect_format(path) if format == "auto" else format


def _where(located: Located) -> str:
    if located.line is not None:
        return f"line {located.line}"
    return f"record {located.record}" if located.record is not None else "an earlier record"


def _finish(
    path: Path, located: Iterator[Located], tenant: str | None, report: FileReport
) -> Iterator[Outcome]:
    seen: dict[tuple[str, str], str] = {}
    count = 0
    for item in located:
        outcome = item.outcome
        if tenant is not None:
            if outcome.tenant is not None and outcome.tenant != tenant:
                raise InputFileError(
                    path,
                    f"tenant {outcome.tenant!r} differs from the requested tenant {tenant!r}; "
                    "remove the tenant from the file or pass the matching --tenant",
                    line=item.line,
                    record=item.record,
                    field="tenant",
                )
            outcome.tenant = tenant
        key = (outcome.tenant or "", outcome.id)
        if key in seen:
            raise InputFileError(
                path,
                f"duplicate outcome id {outcome.id!r} (first seen at {seen[key]}); ids must be "
                "unique per tenant",
                line=item.line,
                record=item.record,
                field="id",
            )
        seen[key] = _where(item)
        count += 1
        report.record(outcome)
        yield outcome
    if count == 0:
        raise InputFileError(path, "the file is empty: no outcomes to read")


def read_outcomes(
    path: Path,
    *,
    format: str = "auto",
    tenant: str | None = None,
    ai_authors: frozenset[str] = frozenset(),
    mapping: Any = None,
    report: FileReport | None = None,
) -> Iterator[Outcome]:
    """Iterate the outcomes in ``path``, converted to the native contract.

    Native JSONL is streamed one line at a time (lines are capped at
    ``get_settings().max_line_bytes``); JSON documents (tau-bench, Zendesk and Intercom exports)
    are parsed whole, while their JSON Lines variants are streamed. The format, the file and the
    tenant are checked when this is called; records are checked as they are read.

    Parameters
    ----------
    path
        The input file.
    format
        ``"auto"`` (detect from the first record) or one of :data:`FORMATS`.
    tenant
        Stamp this tenant on every outcome; a record that names a different tenant is an error.
    ai_authors
        Case-folded names, ids or emails of authors that are an AI agent (``--ai-authors``).
    mapping
        A loaded declarative mapping (:func:`judge.importers.mapping_schema.load_mapping`).
    report
        Filled as records are read: counts, degenerate conversations, unmapped fields.

    Raises
    ------
    InputFileError
        Naming file, line or record, and field, for the first problem found.
    """
    path = Path(path)
    if tenant is not None and not (1 <= len(tenant) <= 100):
        raise ValueError("tenant must be 1 to 100 characters")
    fmt = resolve_format(path, format, mapping=mapping)
    report = report if report is not None else FileReport(path=path)
    report.format = fmt
    ctx = ImportContext(report=report, ai_authors=ai_authors, mapping=mapping)
    return _finish(path, _reader(fmt)(path, ctx), tenant, report)


def validate_file(path: Path, *, format: str = "auto") -> int:
    """Read the whole file, checking every record; return how many outcomes it holds.

    Raises
    ------
    InputFileError
        The first problem found (nothing is returned for a partly valid file).
    """
    return sum(1 for _ in read_outcomes(path, format=format))
