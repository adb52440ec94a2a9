"""Verdicts from any tool: the minimum is an outcome id and a decision, in JSONL or CSV.

A verdict written by this project carries ``confidence``, ``rubric`` and ``panel``; another
tool's export often has two columns. :func:`to_tool_verdict` reads such a record into a
:class:`ToolVerdict` (a :class:`~judge.verdict.Verdict` whose confidence may be unknown), with the
column names mapped by :class:`VerdictColumns`.

Rules
-----
- The decision comes from the first of these that the record has: the ``decision`` column
  (``VerdictColumns.decision``, or auto-detected among ``decision``, ``verified``, ``resolved``),
  else the ``score`` column compared with ``threshold`` (``score >= threshold`` is verified).
- Decision values: ``verified``/``not_verified``/``abstain``; booleans; ``true``/``false``,
  ``yes``/``no``, ``1``/``0`` and the binary words of :data:`calibration.agreement.BINARY_LABELS`
  (``resolved``, ``pass``, ``correct``...), case-insensitive. Anything else is an error naming the
  line and the value. An empty cell is an error too (write ``abstain`` for "no decision").
- A score without ``threshold`` is an error that says to pass ``--threshold``; a score that is not
  a finite number is an error.
- ``confidence`` is used when present (a number in [0, 1]), else unknown (``None``): plots that
  need it are skipped and the report says so. ``rubric`` and ``panel`` default to ``""``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from judge.verdict import Verdict

__all__ = ["ToolVerdict", "VerdictColumns", "read_table", "to_tool_verdict"]

#: Columns tried, in order, for the decision when none is named.
DECISION_COLUMNS = ("decision", "verified", "resolved")

_TRUE = {"true", "yes", "y", "1", "t"}
_FALSE = {"false", "no", "n", "0", "f"}


class ToolVerdict(Verdict):
    """A verdict from another tool: confidence may be unknown, rubric and panel empty."""

    confidence: float | None = Field(default=None, ge=0.0, le=1.0)  # type: ignore[assignment]
    rubric: str = ""
    panel: str = ""


@dataclass(frozen=True)
class VerdictColumns:
    """Where a tool's verdict keeps its fields (``--id-column`` and friends in the CLI).

    ``decision=None`` auto-detects among :data:`DECISION_COLUMNS`; ``threshold`` turns the
    ``score`` column into a decision when no decision column is present.
    """

    outcome_id: str = "outcome_id"
    decision: str | None = None
    score: str = "score"
    threshold: float | None = None

    @property
    def explicit(self) -> bool:
        """Whether the user mapped columns (then every verdicts-file record is a verdict)."""
        return self != VerdictColumns()


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def decision_value(value: Any, *, where: str, column: str) -> str:
    """A decision cell as ``verified``, ``not_verified`` or ``abstain``.

    Examples
    --------
    >>> [decision_value(v, where="x", column="d") for v in (True, "No", "1", "Resolved", "abstain")]
    ['verified', 'not_verified', 'verified', 'verified', 'abstain']
    """
    from calibration.agreement import BINARY_LABELS

    if isinstance(value, bool):
        return "verified" if value else "not_verified"
    if isinstance(value, int | float) and value in (0, 1):
        return "verified" if value == 1 else "not_verified"
    text = str(value).strip().lower() if isinstance(value, str) else None
    if text in ("verified", "not_verified", "abstain"):
        return text
    if text in _TRUE:
        return "verified"
    if text in _FALSE:
        return "not_verified"
    if text is not None and text in BINARY_LABELS:
        return "verified" if BINARY_LABELS[text] else "not_verified"
    if _missing(value):
        raise ValueError(f"{where}: column {column!r} is empty; write abstain for no decision")
    raise ValueError(
        f"{where}: column {column!r} has {value!r}; use verified/not_verified/abstain, "
        "true/false, yes/no, 1/0 or pass/fail"
    )


def to_tool_verdict(
    record: Mapping[str, Any], *, columns: VerdictColumns = VerdictColumns(), where: str = "record"
) -> ToolVerdict:
    """Read another tool's verdict record (see the module rules).

    Examples
    --------
    >>> to_tool_verdict({"ticket": "T-1", "ok": "yes"},
    ...                 columns=VerdictColumns(outcome_id="ticket", decision="ok")).decision
    'verified'
    >>> v = to_tool_verdict({"outcome_id": "T-2", "score": "0.4"},
    ...                     columns=VerdictColumns(threshold=0.5))
    >>> v.decision, v.confidence
    ('not_verified', None)
    """
    outcome_id = record.get(columns.outcome_id)
    if _missing(outcome_id):
        raise ValueError(
            f"{where}: no outcome id in column {columns.outcome_id!r}; name the id column "
            "with --id-column"
        )
    column = columns.decision or next((c for c in DECISION_COLUMNS if c in record), None)
    if column is not None and column not in record:
        raise ValueError(f"{where}: no column {column!r} (given with --decision-column)")
    if column is not None:
        decision = decision_value(record[column], where=where, column=column)
    elif columns.score in record:
        decision = _from_score(record[columns.score], columns, where)
    else:
        raise ValueError(
            f"{where}: no decision; give a decision, verified or resolved column (or name it "
            f"with --decision-column), or a {columns.score!r} column with --threshold"
        )
    fields: dict[str, Any] = {"outcome_id": str(outcome_id).strip(), "decision": decision}
    for name in ("confidence", "rubric", "panel", "tier"):
        if name in record and not _missing(record[name]):
            fields[name] = record[name]
    try:
        return ToolVerdict.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ())) or "record"
        raise ValueError(f"{where}: field {loc!r}: {err.get('msg', 'invalid')}") from None


def _from_score(raw: Any, columns: VerdictColumns, where: str) -> str:
    if columns.threshold is None:
        raise ValueError(
            f"{where}: column {columns.score!r} holds a score but no threshold was given; pass "
            "--threshold X (score >= X counts as verified)"
        )
    try:
        score = float(raw)
    except (TypeError, ValueError):
        score = math.nan
    if isinstance(raw, bool) or not math.isfinite(score):
        raise ValueError(f"{where}: column {columns.score!r} must be a finite number, got {raw!r}")
    return "verified" if score >= columns.threshold else "not_verified"


def read_table(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line, record)`` for each row of a JSONL file, or of a CSV file (by its ``.csv`` suffix).

    CSV rows are dicts of strings keyed by the header (line numbers count the header as line 1);
    empty cells are left out.
    """
    from calibration.records import CalibrationInputError, read_records

    p = Path(path)
    if p.suffix.lower() != ".csv":
        yield from read_records(p)
        return
    if not p.is_file():
        raise CalibrationInputError(f"file not found: {p}")
    with p.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise CalibrationInputError(f"{p}: empty CSV; expected a header line")
        for row in reader:
            record = {k.strip(): v for k, v in row.items() if k and not _missing(v)}
            if record:
                yield reader.line_num, record
