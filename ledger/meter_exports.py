"""What was sent to a billing or tracing system, and what the ledger holds to send: the state
``judge export meter`` plans from (see :mod:`app.export.plan`) and the verdicts ``judge export
verdicts`` sends as OpenTelemetry events.

Every write is its own transaction: events are recorded ``pending`` before they are sent and
``sent`` once the target accepted them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import col

from judge.models import as_utc
from ledger.db import session
from ledger.service_tables import MeterEntryRow, MeterExportRow
from ledger.tables import utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = [
    "ExportedEvent",
    "MeterEntry",
    "VerdictToExport",
    "exclusive",
    "export_state",
    "mark_sent",
    "record_pending",
    "verdicts_to_export",
]


@dataclass(frozen=True, slots=True)
class MeterEntry:
    """One signed count of the verified-outcomes meter (:class:`MeterEntryRow`)."""

    pk: int
    outcome_id: str
    verdict_pk: int
    delta: int
    reason: str
    booked_at: datetime
    tier: str | None = None
    agent: str | None = None
    agent_version: str | None = None
    model_path: str | None = None


@dataclass(frozen=True, slots=True)
class ExportedEvent:
    """One event recorded for a destination: sent, or pending (to be sent again, same key)."""

    key: str
    kind: str
    entry_pk: int
    outcome_id: str
    value: int
    corrects: str | None
    status: str
    sent_at: datetime | None
    pk: int | None = None


def export_state(
    engine: Engine, tenant: str, target: str, destination: str
) -> tuple[list[MeterEntry], list[ExportedEvent]]:
    """The tenant's meter entries (by pk) and the events recorded for this destination."""
    with session(engine, readonly=True) as db:
        conn = db.connection()
        entries = [
            MeterEntry(
                pk=r.pk,
                outcome_id=r.outcome_id,
                verdict_pk=r.verdict_pk,
                delta=r.delta,
                reason=r.reason,
                booked_at=as_utc(r.booked_at),
                tier=r.tier,
                agent=r.agent,
                agent_version=r.agent_version,
                model_path=r.model_path,
            )
            for r in conn.execute(
                sa.select(MeterEntryRow.__table__)  # type: ignore[attr-defined]
                .where(col(MeterEntryRow.tenant) == tenant)
                .order_by(col(MeterEntryRow.pk))
            )
        ]
        exported = [
            ExportedEvent(
                key=r.key,
                kind=r.kind,
                entry_pk=r.entry_pk,
                outcome_id=r.outcome_id,
                value=r.value,
                corrects=r.corrects,
                status=r.status,
                sent_at=None if r.sent_at is None else as_utc(r.sent_at),
                pk=r.pk,
            )
            for r in conn.execute(
                sa.select(MeterExportRow.__table__)  # type: ignore[attr-defined]
                .where(
                    col(MeterExportRow.tenant) == tenant,
                    col(MeterExportRow.target) == target,
                    col(MeterExportRow.destination) == destination,
                )
                .order_by(col(MeterExportRow.pk))
            )
        ]
    return entries, exported


def record_pending(
    engine: Engine,
    tenant: str,
    target: str,
    destination: str,
    events: Sequence[ExportedEvent],
) -> None:
    """Record ``events`` as pending (a key already recorded is left as it is)."""
    if not events:
        return
    with session(engine) as db:
        conn = db.connection()
        known = set(
            conn.execute(
                sa.select(col(MeterExportRow.key)).where(
                    col(MeterExportRow.tenant) == tenant,
                    col(MeterExportRow.target) == target,
                    col(MeterExportRow.destination) == destination,
                    col(MeterExportRow.key).in_([e.key for e in events]),
                )
            ).scalars()
        )
        now = utcnow()
        rows = [
            {
                "tenant": tenant,
                "target": target,
                "destination": destination,
                "key": e.key,
                "kind": e.kind,
                "entry_pk": e.entry_pk,
                "outcome_id": e.outcome_id,
                "value": e.value,
                "corrects": e.corrects,
                "status": "pending",
                "created_at": now,
            }
            for e in events
            if e.key not in known
        ]
        if rows:
            conn.execute(sa.insert(MeterExportRow.__table__), rows)  # type: ignore[attr-defined]


def mark_sent(
    engine: Engine, tenant: str, target: str, destination: str, keys: Sequence[str], at: datetime
) -> None:
    """Mark the events of ``keys`` sent at ``at`` (the target accepted them)."""
    if not keys:
        return
    with session(engine) as db:
        db.connection().execute(
            sa.update(MeterExportRow.__table__)  # type: ignore[attr-defined]
            .where(
                col(MeterExportRow.tenant) == tenant,
                col(MeterExportRow.target) == target,
                col(MeterExportRow.destination) == destination,
                col(MeterExportRow.key).in_(list(keys)),
                col(MeterExportRow.status) == "pending",
            )
            .values(status="sent", sent_at=at)
        )


@dataclass(frozen=True, slots=True)
class VerdictToExport:
    """A verdict and what links it to the agent's trace (the judged revision's ``metadata``)."""

    pk: int
    outcome_id: str
    created_at: datetime
    verdict: dict[str, Any]
    metadata: dict[str, Any]


def verdicts_to_export(
    engine: Engine,
    tenant: str,
    target: str,
    destination: str,
    *,
    since: datetime | None,
    until: datetime | None,
) -> list[VerdictToExport]:
    """The tenant's verdicts recorded in ``[since, until)`` that this destination has not been
    sent yet (pending ones included: they are sent again), oldest first."""
    from ledger.tables import OutcomeRow, VerdictRow

    sent = (
        sa.select(col(MeterExportRow.entry_pk)).where(
            col(MeterExportRow.tenant) == tenant,
            col(MeterExportRow.target) == target,
            col(MeterExportRow.destination) == destination,
            col(MeterExportRow.status) == "sent",
        )
    ).scalar_subquery()
    query = (
        sa.select(
            col(VerdictRow.pk),
            col(VerdictRow.outcome_id),
            col(VerdictRow.created_at),
            col(VerdictRow.payload),
            col(OutcomeRow.payload),
        )
        .join(
            OutcomeRow,
            sa.and_(
                col(OutcomeRow.tenant) == col(VerdictRow.tenant),
                col(OutcomeRow.outcome_id) == col(VerdictRow.outcome_id),
                col(OutcomeRow.revision) == col(VerdictRow.outcome_revision),
            ),
        )
        .where(col(VerdictRow.tenant) == tenant, col(VerdictRow.pk).not_in(sent))
        .order_by(col(VerdictRow.pk))
    )
    if since is not None:
        query = query.where(col(VerdictRow.created_at) >= since)
    if until is not None:
        query = query.where(col(VerdictRow.created_at) < until)
    with session(engine, readonly=True) as db:
        return [
            VerdictToExport(
                pk=pk,
                outcome_id=oid,
                created_at=as_utc(at),
                verdict=dict(verdict or {}),
                metadata=dict((outcome or {}).get("metadata") or {}),
            )
            for pk, oid, at, verdict, outcome in db.connection().execute(query)
        ]


_LOCAL_LOCKS: dict[str, threading.Lock] = {}
_LOCAL_GUARD = threading.Lock()


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[bool]:
    """Whether this process holds the lock ``name`` for the block (never waits: False when
    another holds it). PostgreSQL: a session advisory lock, so one process of many runs a
    scheduled export; SQLite (one process): a lock per name in this process.

    Advisory locks belong to the database, not the schema: the key names the ledger's schema,
    so two ledgers in one database (one schema each) do not take each other's turn."""
    if engine.dialect.name == "postgresql":
        key = {"k": f"outcome-judge:{name}"}
        lock_key = "hashtextextended(current_schema() || ':' || :k, 0)"
        with engine.connect() as conn:
            got = bool(
                conn.execute(sa.text(f"SELECT pg_try_advisory_lock({lock_key})"), key).scalar()
            )
            try:
                yield got
            finally:
                if got:
                    conn.execute(sa.text(f"SELECT pg_advisory_unlock({lock_key})"), key)
        return
    with _LOCAL_GUARD:
        lock = _LOCAL_LOCKS.setdefault(name, threading.Lock())
    got = lock.acquire(blocking=False)
    try:
        yield got
    finally:
        if got:
            lock.release()
