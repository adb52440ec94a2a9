"""The job queue: workers claim job items under a lease, renew it, complete, fail or release them.

Jobs and their items are created by :mod:`ledger.jobs`. Workers (:mod:`app.worker`,
``judge worker``) claim pending items in small batches under a lease:

- PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` lets any number of workers claim at once
  without ever handing one item to two of them;
- SQLite: the write lock every write transaction takes (``BEGIN IMMEDIATE``, :mod:`ledger.db`)
  serialises claims.

A worker that dies leaves its items leased; once the lease expires (``lease_expires_at``) any
worker claims them again. An item claimed ``max_attempts`` times without finishing (it keeps
killing its worker) is failed rather than claimed forever. Jobs of a tenant over its daily
budget are ``waiting`` (:func:`ledger.jobs.refresh_budgets`) and are not claimed.

Lock order, everywhere: item rows first, then job rows in primary-key order. Claims, completions
and failures each take them in that order, so two workers can never wait on each other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ledger.db import session
from ledger.jobs import DECISIONS
from ledger.service_tables import JobItemRow, JobRow
from ledger.tables import to_money, utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "ClaimedItem",
    "ItemResult",
    "claim",
    "complete",
    "fail",
    "release",
    "renew",
]

#: Claims of one item before it is failed (a poison item that kills every worker that takes it).
DEFAULT_MAX_ATTEMPTS = 3
#: Statuses whose items can be claimed.
RUNNABLE = ("queued", "running")

_items = JobItemRow.__table__  # type: ignore[attr-defined]
_jobs = JobRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ClaimedItem:
    """One item a worker holds under its lease, with what it needs to judge it."""

    item_pk: int
    job_pk: int
    job_id: str
    tenant: str
    outcome_id: str
    attempts: int
    rubrics: dict[str, str]
    panel: str


@dataclass(frozen=True)
class ItemResult:
    """A finished item: the verdict recorded for it."""

    item_pk: int
    decision: str
    verdict_pk: int
    cost_usd: Decimal = field(default_factory=Decimal)


def _is_pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def claim(
    engine: Engine,
    worker_id: str,
    *,
    batch: int,
    lease_seconds: float,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    now: datetime | None = None,
) -> list[ClaimedItem]:
    """Lease up to ``batch`` claimable items to ``worker_id`` (one transaction).

    Claimable: pending, lease empty or expired, job ``queued`` or ``running`` (a ``waiting`` job
    is over its tenant's budget). Each claim counts an attempt; an item already claimed
    ``max_attempts`` times is failed instead (its workers keep dying on it).
    """
    if batch < 1 or lease_seconds <= 0:
        raise ValueError("batch must be >= 1 and lease_seconds > 0")
    now = now or utcnow()
    i, j = _items, _jobs
    query = (
        sa.select(
            i.c.pk,
            i.c.job_pk,
            i.c.tenant,
            i.c.outcome_id,
            i.c.attempts,
            j.c.job_id,
            j.c.rubrics,
            j.c.panel,
        )
        .join(j, j.c.pk == i.c.job_pk)
        .where(
            i.c.status == "pending",
            sa.or_(i.c.lease_expires_at.is_(None), i.c.lease_expires_at < now),
            j.c.status.in_(RUNNABLE),
        )
        .order_by(i.c.pk)
        .limit(batch)
    )
    # An idle queue is the common case: a read answers it without taking SQLite's write lock
    # (which would hold up ingestion once a poll interval) or locking rows on PostgreSQL.
    with session(engine, readonly=True) as db:
        if db.connection().execute(query.with_only_columns(i.c.pk).limit(1)).first() is None:
            return []
    with session(engine) as db:
        conn = db.connection()
        if _is_pg(conn):
            query = query.with_for_update(skip_locked=True, of=i)
        rows = conn.execute(query).all()
        if not rows:
            return []
        poisoned = {r.pk: r.job_pk for r in rows if r.attempts >= max_attempts}
        taken = [r for r in rows if r.pk not in poisoned]
        if taken:
            conn.execute(
                sa.update(i)
                .where(i.c.pk.in_([r.pk for r in taken]))
                .values(
                    lease_owner=worker_id,
                    lease_expires_at=now + timedelta(seconds=lease_seconds),
                    attempts=i.c.attempts + 1,
                )
            )
        if poisoned:
            message = (
                f"gave up after {max_attempts} attempts: every worker that took this item "
                "stopped before finishing it (see the worker logs)"
            )
            conn.execute(
                sa.update(i)
                .where(i.c.pk.in_(list(poisoned)))
                .values(status="failed", error=message, finished_at=now, lease_expires_at=None)
            )
            _account(
                conn,
                {pk: (0, 1, Counter(), Decimal(0)) for pk in poisoned.values()},
                now,
                first_error=message,
            )
        job_pks = sorted({r.job_pk for r in taken})
        if job_pks:
            conn.execute(
                sa.update(j)
                .where(j.c.pk.in_(job_pks), j.c.status == "queued")
                .values(status="running", started_at=now)
            )
    return [
        ClaimedItem(
            item_pk=r.pk,
            job_pk=r.job_pk,
            job_id=r.job_id,
            tenant=r.tenant,
            outcome_id=r.outcome_id,
            attempts=r.attempts + 1,
            rubrics=dict(r.rubrics or {}),
            panel=r.panel,
        )
        for r in taken
    ]


def _owned(conn: Connection, worker_id: str, item_pks: Sequence[int]) -> list[Any]:
    """The given items still pending and leased to ``worker_id`` (locked on PostgreSQL)."""
    if not item_pks:
        return []
    query = (
        sa.select(_items.c.pk, _items.c.job_pk, _items.c.attempts)
        .where(
            _items.c.pk.in_(list(item_pks)),
            _items.c.status == "pending",
            _items.c.lease_owner == worker_id,
        )
        .order_by(_items.c.pk)
    )
    if _is_pg(conn):
        query = query.with_for_update(of=_items)
    return list(conn.execute(query).all())


def renew(
    engine: Engine,
    worker_id: str,
    item_pks: Sequence[int],
    *,
    lease_seconds: float,
    now: datetime | None = None,
) -> set[int]:
    """Extend the lease on items ``worker_id`` still holds; returns those (heartbeat)."""
    now = now or utcnow()
    with session(engine) as db:
        conn = db.connection()
        held = [r.pk for r in _owned(conn, worker_id, item_pks)]
        if held:
            conn.execute(
                sa.update(_items)
                .where(_items.c.pk.in_(held))
                .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
            )
    return set(held)


def complete(
    engine: Engine, worker_id: str, results: Sequence[ItemResult], *, now: datetime | None = None
) -> int:
    """Mark items done with their verdicts and update their jobs' progress (one transaction).

    Items no longer leased to ``worker_id`` are left alone (another worker took them over).
    Returns how many items were marked done.
    """
    now = now or utcnow()
    by_pk = {r.item_pk: r for r in results}
    with session(engine) as db:
        conn = db.connection()
        owned = _owned(conn, worker_id, list(by_pk))
        if not owned:
            return 0
        conn.execute(
            sa.update(_items)
            .where(_items.c.pk == sa.bindparam("b_pk"))
            .values(
                status="done",
                decision=sa.bindparam("b_decision"),
                verdict_pk=sa.bindparam("b_verdict"),
                finished_at=now,
                lease_expires_at=None,
                error=None,
            ),
            [
                {
                    "b_pk": r.pk,
                    "b_decision": by_pk[r.pk].decision,
                    "b_verdict": by_pk[r.pk].verdict_pk,
                }
                for r in owned
            ],
        )
        deltas: dict[int, tuple[int, int, Counter[str], Decimal]] = {}
        for r in owned:
            done, failed, counts, cost = deltas.get(r.job_pk, (0, 0, Counter(), Decimal(0)))
            counts[by_pk[r.pk].decision] += 1
            deltas[r.job_pk] = (done + 1, failed, counts, cost + by_pk[r.pk].cost_usd)
        _account(conn, deltas, now)
    return len(owned)


def fail(
    engine: Engine,
    worker_id: str,
    errors: Mapping[int, str],
    *,
    permanent: bool = False,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    now: datetime | None = None,
) -> int:
    """Record an error on items ``worker_id`` holds.

    ``permanent`` (or the item's last attempt): the item fails and counts in the job's
    ``failed``; otherwise it goes back to pending for any worker to retry. Returns how many
    items failed for good.
    """
    now = now or utcnow()
    with session(engine) as db:
        conn = db.connection()
        owned = _owned(conn, worker_id, list(errors))
        final = [r for r in owned if permanent or r.attempts >= max_attempts]
        retry = [r for r in owned if r not in final]
        for rows, values in (
            (final, {"status": "failed", "finished_at": now, "lease_expires_at": None}),
            (retry, {"lease_owner": None, "lease_expires_at": None}),
        ):
            if rows:
                conn.execute(
                    sa.update(_items)
                    .where(_items.c.pk == sa.bindparam("b_pk"))
                    .values(error=sa.bindparam("b_error"), **values),
                    [{"b_pk": r.pk, "b_error": errors[r.pk][:2000]} for r in rows],
                )
        deltas: dict[int, tuple[int, int, Counter[str], Decimal]] = {}
        first: str | None = None
        for r in final:
            _, failed, counts, cost = deltas.get(r.job_pk, (0, 0, Counter(), Decimal(0)))
            deltas[r.job_pk] = (0, failed + 1, counts, cost)
            first = first or errors[r.pk]
        if deltas:
            _account(conn, deltas, now, first_error=first)
    return len(final)


def release(engine: Engine, worker_id: str, item_pks: Sequence[int]) -> int:
    """Give items back unjudged (a worker shutting down); the attempt does not count."""
    with session(engine) as db:
        conn = db.connection()
        held = [r.pk for r in _owned(conn, worker_id, item_pks)]
        if held:
            conn.execute(
                sa.update(_items)
                .where(_items.c.pk.in_(held))
                .values(
                    lease_owner=None,
                    lease_expires_at=None,
                    attempts=sa.case((_items.c.attempts > 0, _items.c.attempts - 1), else_=0),
                )
            )
    return len(held)


def _account(
    conn: Connection,
    deltas: Mapping[int, tuple[int, int, Counter[str], Decimal]],
    now: datetime,
    *,
    first_error: str | None = None,
) -> None:
    """Add (done, failed, decisions, cost) to each job; finish the jobs with nothing pending.

    Job rows are locked in primary-key order (after the item rows: the module's lock order).
    """
    for job_pk in sorted(deltas):
        done, failed, counts, cost = deltas[job_pk]
        query = sa.select(_jobs).where(_jobs.c.pk == job_pk)
        if _is_pg(conn):
            query = query.with_for_update()
        job = conn.execute(query).one()
        merged = {d: int((job.counts or {}).get(d, 0)) for d in DECISIONS}
        for decision, n in counts.items():
            merged[decision] = merged.get(decision, 0) + n
        completed, failed_total = job.completed + done, job.failed + failed
        values: dict[str, Any] = {
            "completed": completed,
            "failed": failed_total,
            "counts": merged,
            "cost_usd": to_money(job.cost_usd or 0) + cost,
        }
        # While running, ``error`` is the first item error as it was; the finished job's
        # message adds how many items failed.
        first = job.error or (first_error[:500] if failed and first_error else None)
        if first is not None:
            values["error"] = first
        if completed + failed_total >= job.total and job.status not in ("done", "failed"):
            values["status"] = "failed" if completed == 0 else "done"
            values["finished_at"] = now
            values["waiting_reason"] = None
            if failed_total:
                values["error"] = (
                    f"{failed_total} of {job.total} item(s) failed; first error: {first}"
                )
        conn.execute(sa.update(_jobs).where(_jobs.c.pk == job_pk).values(**values))
