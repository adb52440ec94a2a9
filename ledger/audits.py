"""Stored audits (``POST /v1/audits``): each one kept whole, as it was sent to the vendor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlmodel import col, select

from judge.models import as_utc
from ledger.audit import AuditReport
from ledger.db import session
from ledger.service_tables import AuditRecordRow

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["StoredAudit", "get_audit", "list_audits", "save_audit"]


@dataclass(frozen=True, slots=True)
class StoredAudit:
    """A stored audit: its id, when it was made, and the report (None in listings)."""

    id: int
    created_at: datetime
    claimed: int
    billed_usd: float
    disputed_usd: float
    disputes: int
    period_from: datetime | None
    period_to: datetime | None
    report: AuditReport | None = None


def _stored(row: Any, report: dict[str, Any] | None = None) -> StoredAudit:
    return StoredAudit(
        id=row.pk,
        created_at=as_utc(row.created_at),
        claimed=row.claimed,
        billed_usd=row.billed_usd,
        disputed_usd=row.disputed_usd,
        disputes=row.disputes,
        period_from=None if row.period_from is None else as_utc(row.period_from),
        period_to=None if row.period_to is None else as_utc(row.period_to),
        report=None if report is None else AuditReport.model_validate(report),
    )


#: What a listing reads of each audit: everything but the report.
_SUMMARY = tuple(
    getattr(AuditRecordRow, name)
    for name in (
        "pk", "created_at", "claimed", "billed_usd", "disputed_usd", "disputes", "period_from",
        "period_to",
    )
)  # fmt: skip


def save_audit(
    engine: Engine,
    tenant: str,
    report: AuditReport,
    *,
    since: datetime | None,
    until: datetime | None,
) -> StoredAudit:
    """Store ``report`` (one transaction); returns it with its id."""
    row = AuditRecordRow(
        tenant=tenant,
        period_from=since,
        period_to=until,
        claimed=report.claimed,
        billed_usd=report.billed_usd,
        disputed_usd=report.disputed_usd,
        disputes=len(report.disputes),
        report=report.to_dict(),
    )
    with session(engine) as db:
        db.add(row)
        db.flush()  # assigns the id; the session commits on leaving
        return _stored(row, row.report)


def list_audits(engine: Engine, tenant: str, *, limit: int = 100) -> list[StoredAudit]:
    """The tenant's audits, newest first (summaries: no report)."""
    with session(engine, readonly=True) as db:
        rows = db.exec(
            select(*_SUMMARY)
            .where(col(AuditRecordRow.tenant) == tenant)
            .order_by(col(AuditRecordRow.pk).desc())
            .limit(limit)
        ).all()
        return [_stored(r) for r in rows]


def get_audit(engine: Engine, tenant: str, audit_id: int) -> StoredAudit | None:
    """One audit of the tenant, with its report; None when the tenant has none of that id."""
    with session(engine, readonly=True) as db:
        row = db.exec(
            select(AuditRecordRow).where(
                col(AuditRecordRow.tenant) == tenant, col(AuditRecordRow.pk) == audit_id
            )
        ).first()
        return None if row is None else _stored(row, row.report)
