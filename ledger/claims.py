"""The vendor's bill, per conversation: what ``judge audit`` reconciles against the verdicts.

A claims file is an invoice export, CSV (with a header row) or JSONL, one claimed resolution per
row with ``outcome_id``, ``claimed_at`` (ISO 8601; naive means UTC), ``claim`` (the vendor's
kind of resolution, such as ``confirmed``, ``assumed`` or ``automated_resolution``) and
``price_usd``. Other column names are mapped with :class:`ClaimColumns`. The whole file is read
and checked before anything is computed: a bad row stops the audit with its line and field,
never a silently skipped row.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_CLAIMS",
    "MAX_CLAIMS_BYTES",
    "Claim",
    "ClaimColumns",
    "ClaimsInputError",
    "parse_claims",
    "read_claims",
]

#: A claims file larger than this is refused (split the invoice by period instead).
MAX_CLAIMS_BYTES = 200 * 1024 * 1024
#: At most this many claims in one audit.
MAX_CLAIMS = 2_000_000
_MAX_FIELD = 200
_MAX_PROBLEMS_SHOWN = 10


class ClaimsInputError(ValueError):
    """The claims file cannot be used; the message names each bad line and field."""


@dataclass(frozen=True, slots=True)
class ClaimColumns:
    """Which column of the export holds each field of a claim."""

    outcome_id: str = "outcome_id"
    claimed_at: str = "claimed_at"
    claim: str = "claim"
    price_usd: str = "price_usd"

    @classmethod
    def parse(cls, mappings: list[str]) -> ClaimColumns:
        """From ``FIELD=COLUMN`` options, e.g. ``outcome_id=conversation_id``.

        >>> ClaimColumns.parse(["outcome_id=conversation_id"]).outcome_id
        'conversation_id'
        """
        fields = {"outcome_id", "claimed_at", "claim", "price_usd"}
        chosen: dict[str, str] = {}
        for item in mappings:
            name, sep, column = item.partition("=")
            name, column = name.strip(), column.strip()
            if not sep or not column:
                raise ClaimsInputError(
                    f"column mapping {item!r}: use FIELD=COLUMN, e.g. outcome_id=conversation_id"
                )
            if name not in fields:
                raise ClaimsInputError(
                    f"column mapping {item!r}: unknown field {name!r}; the fields are "
                    f"{', '.join(sorted(fields))}"
                )
            if name in chosen:
                raise ClaimsInputError(f"column mapping: {name} is mapped twice")
            chosen[name] = column
        return cls(**chosen)


@dataclass(frozen=True, slots=True)
class Claim:
    """One claimed resolution: the vendor bills ``price_usd`` for ``outcome_id``."""

    line: int
    outcome_id: str
    claimed_at: datetime
    claim: str
    price_usd: Decimal


def read_claims(path: Path, columns: ClaimColumns | None = None) -> list[Claim]:
    """Every claim of a CSV or JSONL file (by extension; ``.jsonl``/``.ndjson`` is JSONL).

    Raises
    ------
    ClaimsInputError
        Unreadable or too large file, a missing column, or bad rows (up to ten are named).
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ClaimsInputError(f"{path}: cannot read the claims file ({exc.strerror})") from None
    if size > MAX_CLAIMS_BYTES:
        raise ClaimsInputError(
            f"{path}: {size:,} bytes is over the {MAX_CLAIMS_BYTES:,}-byte limit; split the "
            "invoice by period and audit each part"
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ClaimsInputError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    jsonl = path.suffix.lower() in (".jsonl", ".ndjson")
    try:
        return parse_claims(text, jsonl=jsonl, columns=columns)
    except ClaimsInputError as exc:
        raise ClaimsInputError(f"{path}: {exc}") from None


def parse_claims(text: str, *, jsonl: bool, columns: ClaimColumns | None = None) -> list[Claim]:
    """Claims from the text of a CSV (header row first) or JSONL export.

    >>> text = "outcome_id,claimed_at,claim,price_usd\\nT-1,2026-01-12,assumed,0.99\\n"
    >>> rows = parse_claims(text, jsonl=False)
    >>> rows[0].outcome_id, rows[0].claim, str(rows[0].price_usd), rows[0].claimed_at.isoformat()
    ('T-1', 'assumed', '0.99', '2026-01-12T00:00:00+00:00')
    """
    cols = columns or ClaimColumns()
    records = _json_records(text) if jsonl else _csv_records(text, cols)
    claims: list[Claim] = []
    problems: list[str] = []
    for line, record in records:
        if len(claims) >= MAX_CLAIMS:
            raise ClaimsInputError(f"more than {MAX_CLAIMS:,} claims; audit one period at a time")
        try:
            claims.append(_claim(line, record, cols))
        except ClaimsInputError as exc:
            problems.append(f"line {line}: {exc}")
    if problems:
        shown = "; ".join(problems[:_MAX_PROBLEMS_SHOWN])
        more = len(problems) - _MAX_PROBLEMS_SHOWN
        raise ClaimsInputError(
            f"{len(problems)} bad claim row(s), nothing audited: {shown}"
            + (f"; and {more} more" if more > 0 else "")
        )
    return claims


def _csv_records(text: str, cols: ClaimColumns) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    wanted = [cols.outcome_id, cols.claimed_at, cols.claim, cols.price_usd]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise ClaimsInputError(
            f"the header has no column {', '.join(repr(c) for c in missing)} (it has "
            f"{', '.join(repr(c) for c in header) or 'none'}); map yours with --column "
            "FIELD=COLUMN, e.g. --column outcome_id=conversation_id"
        )
    try:
        # reader.line_num is the physical line the row ended on (quoted fields span lines).
        return [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        raise ClaimsInputError(f"line {reader.line_num}: not valid CSV ({exc})") from None


def _json_records(text: str) -> list[tuple[int, dict[str, Any]]]:
    out: list[tuple[int, dict[str, Any]]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ClaimsInputError(f"line {number}: not JSON ({exc.msg})") from None
        if not isinstance(value, dict):
            raise ClaimsInputError(f"line {number}: a claim is a JSON object")
        out.append((number, value))
    return out


def _claim(line: int, record: dict[str, Any], cols: ClaimColumns) -> Claim:
    outcome_id = _text(record, cols.outcome_id)
    claim = _text(record, cols.claim)
    raw_at = _text(record, cols.claimed_at)
    try:
        at = datetime.fromisoformat(raw_at)
    except ValueError:
        raise ClaimsInputError(
            f"{cols.claimed_at}: {raw_at!r} is not an ISO 8601 time (e.g. 2026-03-01T10:00:00Z)"
        ) from None
    raw_price = record.get(cols.price_usd)
    if isinstance(raw_price, bool) or raw_price is None or str(raw_price).strip() == "":
        raise ClaimsInputError(f"{cols.price_usd}: missing (a USD amount such as 0.99)")
    try:
        price = Decimal(str(raw_price).strip())
    except InvalidOperation:
        raise ClaimsInputError(f"{cols.price_usd}: {raw_price!r} is not a number") from None
    if not price.is_finite() or price < 0:
        raise ClaimsInputError(f"{cols.price_usd}: {raw_price!r} is not a non-negative amount")
    return Claim(
        line=line,
        outcome_id=outcome_id,
        claimed_at=at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC),
        claim=claim,
        price_usd=price,
    )


def _text(record: dict[str, Any], column: str) -> str:
    value = record.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ClaimsInputError(f"{column}: missing")
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ClaimsInputError(f"{column}: {value!r} is not text")
    text = str(value).strip()
    if len(text) > _MAX_FIELD:
        raise ClaimsInputError(f"{column}: longer than {_MAX_FIELD} characters")
    if any(ord(ch) < 32 for ch in text):
        raise ClaimsInputError(f"{column}: contains control characters")
    return text
