"""Keeping the review queue (``review_queue``) as verdicts and labels are written.

An outcome is in the queue while its **latest** verdict abstained, carries a flag, or is a
verified one in the audit sample (:func:`in_audit_sample`), and nobody has labelled it. The rows
are written in the transactions that write verdicts (:meth:`ledger.store.Ledger.record_results`)
and labels (``Ledger._write_label``), so the pages read the queue from one index instead of
recomputing it from every verdict on every request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from judge.models import as_utc
from ledger.db import chunked
from ledger.service_tables import ReviewQueueRow

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from judge.models import Outcome

__all__ = [
    "AUDIT_SHARE",
    "Reason",
    "backfill_review_queue",
    "drop_review_rows",
    "in_audit_sample",
    "refresh_review_rows",
    "review_reason",
]

#: Share of verified outcomes sampled into the queue for audit.
AUDIT_SHARE = 0.1

Reason = Literal["abstain", "flagged", "audit"]


def in_audit_sample(tenant: str, outcome_id: str, share: float = AUDIT_SHARE) -> bool:
    """Whether a verified outcome is sampled for audit: a hash of tenant and id, so the same on
    every request and process and unpredictable to whoever wrote the outcome.

    >>> in_audit_sample("acme", "T-1", share=1.0), in_audit_sample("acme", "T-1", share=0.0)
    (True, False)
    """
    digest = hashlib.sha256(f"audit\x00{tenant}\x00{outcome_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def review_reason(
    tenant: str, outcome_id: str, decision: str, flags: Sequence[str]
) -> Reason | None:
    """Why a latest verdict puts its outcome in the queue, or None."""
    if decision == "abstain":
        return "abstain"
    if flags:
        return "flagged"
    if decision == "verified" and in_audit_sample(tenant, outcome_id):
        return "audit"
    return None


def _table() -> Any:
    return ReviewQueueRow.__table__  # type: ignore[attr-defined]


def drop_review_rows(conn: Connection, tenant: str, outcome_ids: Iterable[str]) -> None:
    """Take labelled outcomes out of the queue."""
    t = _table()
    ids = list(dict.fromkeys(outcome_ids))
    for chunk in chunked(ids):
        conn.execute(sa.delete(t).where(t.c.tenant == tenant, t.c.outcome_id.in_(chunk)))


def _labelled(conn: Connection, tenant: str, ids: Sequence[str]) -> set[str]:
    from ledger.reads import human_labels
    from ledger.tables import LabelRow

    labels = LabelRow.__table__  # type: ignore[attr-defined]
    found: set[str] = set()
    for chunk in chunked(ids):
        found.update(
            conn.execute(
                sa.select(labels.c.outcome_id)
                .where(labels.c.tenant == tenant, labels.c.outcome_id.in_(chunk))
                .where(human_labels(labels.c.source))
                .distinct()
            ).scalars()
        )
    return found


def _row(tenant: str, outcome: Outcome, verdict: Any, reason: Reason) -> dict[str, Any]:
    from ledger.windows import window_anchor

    anchored = window_anchor(outcome)
    anchor = None if anchored is None else anchored[0]
    verdict_at = as_utc(verdict.created_at)
    return {
        "tenant": tenant,
        "outcome_id": outcome.id,
        "reason": reason,
        "sort_at": anchor or verdict_at,
        "anchor_at": anchor,
        "verdict_at": verdict_at,
        "verdict_pk": verdict.pk,
        "decision": verdict.decision,
        "confidence": float(verdict.confidence),
        "flags": list(verdict.flags or []),
        "rubric": verdict.rubric,
        "panel": verdict.panel,
        "kind": outcome.kind,
    }


def refresh_review_rows(
    conn: Connection, tenant: str, written: Sequence[tuple[Outcome, Any]]
) -> int:
    """The queue rows of outcomes that just got a verdict (``(outcome, verdict row)``, in the
    order written: the last verdict of an outcome is its latest); returns the rows written."""
    if not written:
        return 0
    latest: dict[str, tuple[Outcome, Any]] = {}
    for outcome, verdict in written:
        latest[outcome.id] = (outcome, verdict)
    ids = list(latest)
    labelled = _labelled(conn, tenant, ids)
    drop_review_rows(conn, tenant, ids)
    rows = []
    for oid, (outcome, verdict) in latest.items():
        reason = review_reason(tenant, oid, verdict.decision, verdict.flags or [])
        if reason is not None and oid not in labelled:
            rows.append(_row(tenant, outcome, verdict, reason))
    if rows:
        conn.execute(sa.insert(_table()), rows)
    return len(rows)


def backfill_review_queue(conn: Connection) -> int:
    """Fill the queue from the verdicts and labels already stored (run once, when upgrading a
    ledger across the revision that creates the table); returns the rows written."""
    from judge.input_rules import FROM_LEDGER
    from judge.models import Outcome
    from ledger.tables import OutcomeRow, VerdictRow

    v = VerdictRow.__table__  # type: ignore[attr-defined]
    o = OutcomeRow.__table__  # type: ignore[attr-defined]
    latest = (
        sa.select(sa.func.max(v.c.pk).label("pk")).group_by(v.c.tenant, v.c.outcome_id).subquery()
    )
    query = (
        sa.select(v, o.c.payload.label("outcome_payload"))
        .join(latest, latest.c.pk == v.c.pk)
        .join(
            o,
            sa.and_(
                o.c.tenant == v.c.tenant,
                o.c.outcome_id == v.c.outcome_id,
                o.c.revision == v.c.outcome_revision,
            ),
        )
        .order_by(v.c.pk)
    )
    by_tenant: dict[str, list[tuple[Outcome, Any]]] = {}
    for row in conn.execute(query):
        if review_reason(row.tenant, row.outcome_id, row.decision, row.flags or []) is None:
            continue
        outcome = Outcome.model_validate(row.outcome_payload, context=FROM_LEDGER)
        by_tenant.setdefault(row.tenant, []).append((outcome, row))
    written = 0
    for tenant, pairs in by_tenant.items():
        written += refresh_review_rows(conn, tenant, pairs)
    return written
