"""Batch ingest of outcomes and labels (what ``POST /v1/outcomes`` and ``POST /v1/labels`` do),
and the per-outcome read ``GET /v1/outcomes/{id}`` answers with.

A batch is one transaction: every item is checked first, then all are written, or none is.
Outcomes are idempotent on (tenant, outcome id) exactly as
:meth:`ledger.store.Ledger.record_outcome` (same payload: nothing new; changed payload: revision
+ 1), with the same payload hash and locks, so the API and the CLI never disagree on what a
revision is; the batch is written set-based (:mod:`ledger.ingest_batch`), a few statements per
batch rather than several per outcome.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel import col, func, select

from judge.models import Label, Outcome
from ledger.db import session
from ledger.ingest_batch import (
    IngestConflictError,
    Prepared,
    is_unique_violation,
    prepare,
    write_batch,
)
from ledger.integrity import DEFAULT_FUTURE_TOLERANCE
from ledger.records import EMBEDDED_LABEL_SOURCE
from ledger.review_index import drop_review_rows
from ledger.service_tables import MeterEntryRow
from ledger.store import Ledger
from ledger.tables import LabelRow, OutcomeRow, VerdictRow, utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = [
    "IngestConflictError",
    "InvalidItemError",
    "LabelIn",
    "UnknownOutcomesError",
    "list_outcomes",
    "outcome_detail",
    "record_labels",
    "record_outcomes",
]

#: Money columns are NUMERIC(20, 12): 8 digits before the decimal point.
MAX_COST_USD = 1e8
LABEL_SOURCE = "api"


class InvalidItemError(ValueError):
    """An item of a batch is refused (another tenant, a future timestamp ...): nothing written.

    ``index`` is the item's position in the batch, ``field`` the offending field when known.
    """

    def __init__(self, index: int, message: str, *, field: str | None = None) -> None:
        super().__init__(f"item {index}: {message}")
        self.index = index
        self.field = field
        self.message = message


class UnknownOutcomesError(LookupError):
    """Labels name outcome ids this tenant has not stored (HTTP 404): nothing written."""

    def __init__(self, ids: list[str]) -> None:
        shown = ", ".join(repr(i) for i in ids[:10]) + (" ..." if len(ids) > 10 else "")
        super().__init__(
            f"no outcome {shown} for this tenant; ingest the outcomes first (POST /v1/outcomes)"
        )
        self.ids = ids


def _dedupe(outcomes: Sequence[Outcome]) -> tuple[dict[str, int], dict[str, Prepared]]:
    """First index of each id, and the prepared outcomes of ids that repeat (their payloads are
    compared: the same id with a different payload is a conflict)."""
    first: dict[str, int] = {}
    repeated: set[str] = set()
    for index, outcome in enumerate(outcomes):
        if outcome.id in first:
            repeated.add(outcome.id)
        else:
            first[outcome.id] = index
    ready = {oid: prepare(outcomes[first[oid]]) for oid in repeated}
    conflicts: list[dict[str, Any]] = []
    for index, outcome in enumerate(outcomes):
        repeat = outcome.id in repeated and first[outcome.id] != index
        if repeat and prepare(outcome).payload_hash != ready[outcome.id].payload_hash:
            conflicts.append(
                {
                    "id": outcome.id,
                    "reason": "duplicate_in_batch",
                    "indexes": [first[outcome.id], index],
                }
            )
    if conflicts:
        c = conflicts[0]
        raise IngestConflictError(
            f"outcome {c['id']!r} appears twice in the batch (items {c['indexes'][0]} and "
            f"{c['indexes'][1]}) with different payloads; send one revision per outcome per batch",
            conflicts,
        )
    return first, ready


def _latest_revisions(db: Any, tenant: str, ids: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    # Chunks keep the IN list well under every driver's parameter limit.
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        rows = db.exec(
            select(OutcomeRow.outcome_id, func.max(OutcomeRow.revision))
            .where(OutcomeRow.tenant == tenant, col(OutcomeRow.outcome_id).in_(chunk))
            .group_by(OutcomeRow.outcome_id)
        ).all()
        out.update({row[0]: int(row[1]) for row in rows})
    return out


def record_outcomes(
    engine: Engine,
    tenant: str,
    outcomes: Sequence[Outcome],
    *,
    base_revisions: Mapping[str, int] | None = None,
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
    label_source: str = EMBEDDED_LABEL_SOURCE,
) -> list[dict[str, Any]]:
    """Store a batch of outcomes for ``tenant`` in ONE transaction.

    Parameters
    ----------
    outcomes
        Validated outcomes. The same id may appear more than once only with the same payload.
    base_revisions
        Optimistic concurrency: ``{outcome id: revision}`` the client based its change on (0 =
        "must not exist yet"). When the latest stored revision differs, the batch is refused.
    future_tolerance
        Clock skew allowed on the outcomes' timestamps (:func:`ledger.integrity.check_timestamps`).
    label_source
        What an embedded ``label`` is stored as: ``outcome``, or ``submitted`` when the sender
        may not label (:data:`~ledger.records.UNREVIEWED_LABEL_SOURCE`: kept, never counted).

    Returns
    -------
    list of dict
        Per item, in batch order: ``{"index", "id", "revision", "status"}`` with status
        ``created`` (revision 1), ``revised`` (a changed payload: revision + 1) or ``unchanged``.
        An embedded ``label`` is also recorded as a label (once; source ``label_source``).

    Raises
    ------
    InvalidItemError
        An outcome names another tenant or carries a future timestamp (HTTP 422).
    IngestConflictError
        The same id twice with different payloads, a ``base_revisions`` entry that is not the
        latest stored revision, or writers kept colliding (HTTP 409).
    ValueError
        ``base_revisions`` names an id that is not in the batch.
    """
    ledger = Ledger(engine, tenant=tenant, future_tolerance=future_tolerance)
    for index, outcome in enumerate(outcomes):
        try:
            ledger._check_outcome(outcome)
        except ValueError as exc:
            raise InvalidItemError(index, str(exc)) from None
        cost = outcome.agent.cost_usd
        if cost is not None and not (math.isfinite(cost) and cost < MAX_COST_USD):
            raise InvalidItemError(
                index,
                f"outcome {outcome.id!r}: agent.cost_usd {cost} is beyond what the ledger "
                f"stores (below {MAX_COST_USD:,.0f} USD); send the cost in USD",
                field="agent.cost_usd",
            )
    first, ready = _dedupe(outcomes)
    bases = dict(base_revisions or {})
    stray = sorted(set(bases) - set(first))
    if stray:
        raise ValueError(
            f"base_revisions names outcome(s) not in this batch: {', '.join(stray[:10])}; "
            "give a base revision only for outcomes you send"
        )
    if not outcomes:
        return []
    try:
        # One transaction, set-based (ledger.ingest_batch): a lock statement, a look-up of the
        # latest revisions, the new rows in bulk.
        with engine.begin() as conn:
            unique = [outcomes[i] for i in first.values()]
            written = write_batch(conn, tenant, unique, bases, ready, label_source=label_source)
    except Exception as exc:
        if not is_unique_violation(exc):
            raise
        # Every writer of an outcome takes its lock first (SQLite: one writer at a time), so
        # only a writer outside those rules can get here first; the client retries.
        raise IngestConflictError(
            "the outcomes were changed concurrently while being recorded; retry the ingest",
            [{"reason": "concurrent_writes"}],
        ) from None
    out = []
    for index, outcome in enumerate(outcomes):
        revision, status = written[outcome.id]
        # A repeat of an id in the same batch (same payload) changed nothing by itself.
        if first[outcome.id] != index:
            status = "unchanged"
        out.append({"index": index, "id": outcome.id, "revision": revision, "status": status})
    return out


@dataclass(frozen=True)
class LabelIn:
    """One human label for one outcome (the ``POST /v1/labels`` item)."""

    outcome_id: str
    label: Label


def record_labels(
    engine: Engine,
    tenant: str,
    labels: Sequence[LabelIn],
    *,
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
) -> list[dict[str, Any]]:
    """Store human labels in ONE transaction (source ``api``); the same content is stored once.

    Returns
    -------
    list of dict
        Per item: ``{"index", "outcome_id", "status": "created" | "unchanged"}``.

    Raises
    ------
    InvalidItemError
        A label's ``at`` lies in the future (beyond the clock-skew tolerance).
    UnknownOutcomesError
        Labels for outcome ids this tenant has not stored (another tenant's included).
    """
    now = utcnow()
    for index, item in enumerate(labels):
        at = item.label.at
        if at is not None:
            at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
            if at > now + future_tolerance:
                raise InvalidItemError(
                    index,
                    f"label for {item.outcome_id!r}: at {at.isoformat()} is in the future (now "
                    f"{now.isoformat()}); send the time the label was given",
                    field="at",
                )
    if not labels:
        return []
    ledger = Ledger(engine, tenant=tenant)
    ledger._ready()
    ids = list(dict.fromkeys(item.outcome_id for item in labels))
    out = []
    with session(engine) as db:
        known = _latest_revisions(db, tenant, ids)
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise UnknownOutcomesError(unknown)
        for index, item in enumerate(labels):
            added = ledger._write_label(db, item.outcome_id, item.label, LABEL_SOURCE)
            status = "created" if added else "unchanged"
            out.append({"index": index, "outcome_id": item.outcome_id, "status": status})
        drop_review_rows(db.connection(), tenant, ids)  # labelled: not queued
    return out


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def outcome_detail(engine: Engine, tenant: str, outcome_id: str) -> dict[str, Any] | None:
    """Everything stored about one outcome of ``tenant``; None when it has none of that id.

    Returns
    -------
    dict or None
        ``{"id", "revision", "outcome", "revisions", "verdicts", "labels", "meter"}``: the latest
        payload, every revision (oldest first, with content hash and when it was received),
        verdicts (newest first: decision, tier, confidence, rubric, panel, cost, created_at,
        flags, criteria, judges), labels (in the order recorded) and the outcome's meter entries
        (in the order booked: +1/-1, reason, where it counts; see :mod:`ledger.bookings`).
    """
    with session(engine, readonly=True) as db:
        revisions = db.exec(
            select(OutcomeRow)
            .where(OutcomeRow.tenant == tenant, OutcomeRow.outcome_id == outcome_id)
            .order_by(col(OutcomeRow.revision))
        ).all()
        if not revisions:
            return None
        verdicts = db.exec(
            select(VerdictRow)
            .where(VerdictRow.tenant == tenant, VerdictRow.outcome_id == outcome_id)
            .order_by(col(VerdictRow.pk).desc())
        ).all()
        labels = db.exec(
            select(LabelRow)
            .where(LabelRow.tenant == tenant, LabelRow.outcome_id == outcome_id)
            .order_by(col(LabelRow.pk))
        ).all()
        entries = db.exec(
            select(MeterEntryRow)
            .where(MeterEntryRow.tenant == tenant, MeterEntryRow.outcome_id == outcome_id)
            .order_by(col(MeterEntryRow.pk))
        ).all()
    latest = revisions[-1]
    return {
        "id": outcome_id,
        "revision": latest.revision,
        "outcome": latest.payload,
        "revisions": [
            {
                "revision": r.revision,
                "content_hash": r.content_hash,
                "received_at": _as_utc(r.received_at),
            }
            for r in revisions
        ],
        "verdicts": [
            {
                "outcome_revision": v.outcome_revision,
                "decision": v.decision,
                "tier": v.tier,
                "confidence": v.confidence,
                "rubric": v.rubric,
                "panel": v.panel,
                "cost_usd": float(v.cost_usd),
                "flags": list(v.flags or []),
                "criteria": (v.payload or {}).get("criteria", {}),
                "reasons": (v.payload or {}).get("reasons", []),
                "judges": (v.payload or {}).get("judges", []),
                "injection_score": (v.payload or {}).get("injection_score"),
                "created_at": _as_utc(v.created_at),
            }
            for v in verdicts
        ],
        "labels": [
            {
                "resolved": lab.resolved,
                "by": lab.by,
                "at": None if lab.at is None else _as_utc(lab.at),
                "criteria": dict(lab.criteria or {}),
                "note": lab.note,
                "source": lab.source,
                "created_at": _as_utc(lab.created_at),
            }
            for lab in labels
        ],
        "meter": [
            {
                "delta": e.delta,
                "reason": e.reason,
                "booked_at": _as_utc(e.booked_at),
                "anchor_at": _as_utc(e.anchor_at),
                "tier": e.tier,
                "agent": e.agent,
                "created_at": _as_utc(e.created_at),
            }
            for e in entries
        ],
    }


def list_outcomes(
    engine: Engine, tenant: str, *, limit: int = 100, after: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the tenant's outcomes (latest revision each), ordered by id.

    Returns the page (``{"id", "kind", "revision", "received_at"}``) and the id to pass as
    ``after`` for the next page (None at the end).
    """
    if not 1 <= limit <= 1000:
        raise ValueError(f"limit must be between 1 and 1000, got {limit}")
    # Two reads, the page's ids first: one statement joining every latest revision to the page
    # let PostgreSQL, when its statistics had not seen the tenant yet (just ingested), rescan
    # the page once per outcome of the tenant (0.8 s a page at 30,000 outcomes, quadratic).
    latest = (
        select(OutcomeRow.outcome_id, func.max(OutcomeRow.revision).label("rev"))
        .where(OutcomeRow.tenant == tenant)
        .group_by(OutcomeRow.outcome_id)
    )
    if after is not None:
        latest = latest.where(col(OutcomeRow.outcome_id) > after)
    with session(engine, readonly=True) as db:
        wanted = dict(db.exec(latest.order_by(col(OutcomeRow.outcome_id)).limit(limit + 1)).all())
        rows = (
            db.exec(
                select(
                    OutcomeRow.outcome_id,
                    OutcomeRow.kind,
                    OutcomeRow.revision,
                    OutcomeRow.received_at,
                ).where(
                    OutcomeRow.tenant == tenant,
                    # The page's ids are consecutive in the index: a range is read as one (an
                    # IN list was a filter over the tenant's whole range for such a tenant).
                    col(OutcomeRow.outcome_id) >= next(iter(wanted)),
                    col(OutcomeRow.outcome_id) <= next(reversed(wanted)),
                )
            ).all()
            if wanted
            else []
        )
    # In the database's order of ids (its collation, which Python's string order is not).
    latest_rows = {r[0]: r for r in rows if wanted.get(r[0]) == r[2]}
    rows = [latest_rows[oid] for oid in wanted if oid in latest_rows]
    page: list[dict[str, Any]] = [
        {"id": r[0], "kind": r[1], "revision": r[2], "received_at": _as_utc(r[3])}
        for r in rows[:limit]
    ]
    next_after: str | None = rows[limit - 1][0] if len(rows) > limit else None
    return page, next_after
