"""Meter bookings: where each verified outcome counts, so that a final meter value never changes.

The verified-outcomes meter (:mod:`ledger.meters`) sums ``meter_entries``: signed counts placed in
time by their ``booked_at``. This module writes them, under one rule:

    **An entry is never booked into a window that was final or closed when it was written.**

A window is closed when its billing period (UTC month) is closed (:mod:`ledger.periods`); it is
final when a meter read published it as final: each read moves the tenant's
``meter_final_through`` (W) up to the hour before ``now -`` :data:`SETTLE_HOURS` (the default
verification window plus grace, 96 h), and windows ending at or before W are final. W only grows
and closed periods never reopen, so "final" is permanent, and every entry lands at or after W in
an open period, so no final window ever receives one.

How a verdict is booked (:func:`book_facts`, in the verdict's transaction):

- the outcome's first count goes at its verification anchor (reason ``verified``); if that
  moment is no longer bookable (before W or in a closed period), at the current moment, the
  earliest bookable one (``late_arrival``): a vendor cannot move an outcome into a month that is
  already invoiced;
- while the outcome's own verification window runs (until its fact's ``final_at``, from the
  rubric that judged it), a newer verdict replaces its count: a count in a window that is still
  open is replaced in place (deleted: it was never final); a count in a final or closed window
  stays and is taken back by a ``withdrawn`` entry (-1) at the current moment, and a new count
  that cannot go at its anchor is booked now as ``moved``;
- after ``final_at`` the fact is frozen: later verdicts do not change it; later evidence is a
  revocation (:func:`book_revocation_entry`: -1 at the revoking event if bookable, else now).

The sum over all windows is always the number of outcomes that count now (verified, not
revoked): every +1 is matched by at most one -1 or in-place deletion.

Concurrency: writers take the tenant row ``FOR SHARE`` (PostgreSQL) before reading W and the
closed periods, and the outcome's advisory lock; a meter read advancing W, and a period being
closed, take the tenant row ``FOR UPDATE``, so they wait for bookings in flight and bookings
after them see the new W. SQLite serialises every write transaction (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from judge.models import as_utc

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

__all__ = [
    "ADJUSTMENT_REASONS",
    "LATE_ARRIVAL",
    "MOVED",
    "SETTLE_HOURS",
    "VERIFIED",
    "WITHDRAWN",
    "BookingClock",
    "backfill_entries",
    "book_facts",
    "book_revocation_entry",
    "lock_clock",
    "lock_outcomes",
    "publish_final_through",
]

#: A +1 at the outcome's verification anchor.
VERIFIED = "verified"
#: A +1 booked now: the outcome's first count, whose anchor's window was final or closed.
LATE_ARRIVAL = "late_arrival"
#: A +1 booked now: a new count of an outcome that counted before (revised, re-verified).
MOVED = "moved"
#: A -1 booked now: a count in a final or closed window that a newer verdict replaced.
WITHDRAWN = "withdrawn"
#: Reasons a meter row lists under ``adjustments`` (everything but ``verified``; revocation
#: reasons such as ``reopened`` are adjustments too).
ADJUSTMENT_REASONS = (LATE_ARRIVAL, MOVED, WITHDRAWN)

#: How long after a moment its meter window may still receive outcomes on time (hours): the
#: default verification window (72 h) plus the grace for late signals (24 h). A meter read
#: publishes as final the windows that ended this long (rounded down to the hour) before now.
SETTLE_HOURS = 96.0
_DIMS = ("tier", "agent", "agent_version", "model_path")


def _month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(start: datetime) -> datetime:
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


def settled_through(now: datetime) -> datetime:
    """The moment a meter read at ``now`` publishes as final (windows ending by then are final).

    >>> settled_through(datetime(2026, 3, 10, 12, 30, tzinfo=UTC)).isoformat()
    '2026-03-06T12:00:00+00:00'
    """
    moment = as_utc(now) - timedelta(hours=SETTLE_HOURS)
    return moment.replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class BookingClock:
    """What decides where entries go: the time, W and the tenant's closed periods.

    Examples
    --------
    >>> clock = BookingClock(now=datetime(2026, 3, 10, tzinfo=UTC),
    ...     final_through=datetime(2026, 3, 5, tzinfo=UTC),
    ...     closed=frozenset({datetime(2026, 2, 1, tzinfo=UTC)}))
    >>> clock.bookable(datetime(2026, 3, 6, tzinfo=UTC)), clock.bookable(datetime(2026, 3, 4, tzinfo=UTC))
    (True, False)
    >>> clock.target(datetime(2026, 3, 4, tzinfo=UTC))[0].isoformat()  # too late: booked now
    '2026-03-10T00:00:00+00:00'
    """  # noqa: E501

    now: datetime
    final_through: datetime | None = None
    closed: frozenset[datetime] = field(default_factory=frozenset)

    def bookable(self, moment: datetime) -> bool:
        """True when an entry may be booked at ``moment``: its window is not final or closed."""
        moment = as_utc(moment)
        if self.final_through is not None and moment < self.final_through:
            return False
        return _month_start(moment) not in self.closed

    def target(self, moment: datetime) -> tuple[datetime, bool]:
        """Where an entry for ``moment`` goes, and whether that is ``moment`` itself.

        ``moment`` when bookable. A moment in a published-final window goes to the current
        moment (a late arrival is booked now); a moment in a closed period goes to the start of
        the next period that is not closed (then again: now, if that start is already final).
        """
        at = as_utc(moment)
        if self.bookable(at):
            return at, True
        while True:
            if self.final_through is not None and at < self.final_through:
                at = max(as_utc(self.now), self.final_through)
            if _month_start(at) not in self.closed:
                return at, False
            at = _next_month(_month_start(at))


def _tables() -> tuple[Any, Any, Any, Any]:
    from ledger.service_tables import MeterEntryRow, OutcomeFactRow
    from ledger.tables import BillingPeriodRow, TenantRow

    return (
        TenantRow.__table__,  # type: ignore[attr-defined]
        BillingPeriodRow.__table__,  # type: ignore[attr-defined]
        OutcomeFactRow.__table__,  # type: ignore[attr-defined]
        MeterEntryRow.__table__,  # type: ignore[attr-defined]
    )


def lock_clock(conn: Connection, tenant: str, now: datetime) -> BookingClock:
    """Read W and the closed periods for booking, holding the tenant row ``FOR SHARE``.

    Call it first in a writing transaction (before any other lock), so that lock order is the
    same everywhere: tenant, then periods, then outcomes.
    """
    tenants, periods, _, _ = _tables()
    query = sa.select(tenants.c.meter_final_through).where(tenants.c.name == tenant)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    through = conn.execute(query).scalar_one_or_none()
    closed = conn.execute(
        sa.select(periods.c.start).where(periods.c.tenant == tenant, periods.c.status == "closed")
    ).scalars()
    return BookingClock(
        now=as_utc(now),
        final_through=None if through is None else as_utc(through),
        closed=frozenset(as_utc(start) for start in closed),
    )


def lock_outcomes(conn: Connection, tenant: str, outcome_ids: Sequence[str]) -> None:
    """PostgreSQL: the outcomes' advisory locks, in sorted order (the ledger's writers' keys)."""
    if not outcome_ids or conn.dialect.name != "postgresql":
        return
    keys = sorted({f"outcome:{tenant}:{outcome_id}" for outcome_id in outcome_ids})
    conn.execute(
        sa.text(
            "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
            "FROM unnest(CAST(:keys AS text[])) AS k"
        ),
        {"keys": keys},
    )


def publish_final_through(engine: Engine, tenant: str, now: datetime) -> datetime | None:
    """Advance the tenant's W to :func:`settled_through` of ``now`` (never back); return W.

    A meter read calls it before counting, so that every window it reports as final stays so:
    no booking can land before W afterwards. A no-op (one indexed read) while W is current.
    The same transaction rolls up the days that became final
    (:func:`ledger.meter_rollups.roll_published`).
    """
    from ledger.db import session

    tenants, _, _, _ = _tables()
    candidate = settled_through(now)
    current = sa.select(tenants.c.meter_final_through).where(tenants.c.name == tenant)
    with session(engine, readonly=True) as db:
        found = db.connection().execute(current).one_or_none()
    if found is None:
        return None  # no such tenant: nothing booked, nothing to publish
    if found[0] is not None and as_utc(found[0]) >= candidate:
        return as_utc(found[0])
    from ledger.meter_rollups import roll_published

    with session(engine) as db:
        conn = db.connection()
        # FOR UPDATE waits for bookings holding FOR SHARE to commit, and for another read
        # advancing W: W is then read as that one left it, so only the days this advance makes
        # final are rolled (two processes advancing at once never roll a day twice).
        locked = current.with_for_update() if conn.dialect.name == "postgresql" else current
        before = conn.execute(locked).scalar_one()
        if before is not None and as_utc(before) >= candidate:
            return as_utc(before)
        conn.execute(
            sa.update(tenants).where(tenants.c.name == tenant).values(meter_final_through=candidate)
        )
        roll_published(conn, tenant, None if before is None else as_utc(before), candidate)
    return candidate


# -- entries --------------------------------------------------------------------------------------


@dataclass
class _Entry:
    """A meter entry: already stored (``pk``) or to be inserted (``values``)."""

    pk: int | None = None
    values: dict[str, Any] | None = None
    dropped: bool = False


@dataclass
class _Batch:
    """Entries to insert and to delete, written together by :meth:`flush`."""

    tenant: str
    now: datetime
    new: list[_Entry] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)

    def add(
        self,
        fact: Mapping[str, Any],
        *,
        delta: int,
        reason: str,
        at: datetime,
        final_at: datetime,
        revocation_pk: int | None = None,
    ) -> _Entry:
        entry = _Entry(
            values={
                "tenant": self.tenant,
                "outcome_id": fact["outcome_id"],
                "verdict_pk": fact["verdict_pk"],
                "delta": delta,
                "reason": reason,
                "booked_at": at,
                "anchor_at": fact["anchor_at"],
                "final_at": final_at,
                **{dim: fact[dim] for dim in _DIMS},
                "revocation_pk": revocation_pk,
                "created_at": self.now,
            }
        )
        self.new.append(entry)
        return entry

    def drop(self, entry: _Entry) -> None:
        """Delete a provisional entry (one whose window is still open)."""
        if entry.pk is not None:
            self.deleted.append(entry.pk)
        entry.dropped = True

    def flush(self, conn: Connection) -> None:
        _, _, _, entries = _tables()
        if self.deleted:
            conn.execute(sa.delete(entries).where(entries.c.pk.in_(self.deleted)))
        kept = [e for e in self.new if not e.dropped]
        if kept:
            values = [e.values for e in kept if e.values is not None]
            result = conn.execute(
                sa.insert(entries).returning(entries.c.pk, sort_by_parameter_order=True), values
            )
            for entry, pk in zip(kept, result.scalars().all(), strict=True):
                entry.pk = pk


def _same_count(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return as_utc(old["anchor_at"]) == as_utc(new["anchor_at"]) and all(
        old[d] == new[d] for d in _DIMS
    )


def _transition(
    clock: BookingClock, batch: _Batch, old: dict[str, Any] | None, new: dict[str, Any]
) -> dict[str, Any]:
    """The fact after ``new`` (a newer verdict) replaces ``old`` (None: the first), with entries.

    ``old`` carries ``entry`` (the :class:`_Entry` of its current +1, or None).
    """
    counted = new["decision"] == "verified"
    old_entry: _Entry | None = None if old is None else old["entry"]
    if old is not None and old_entry is not None and counted and _same_count(old, new):
        if clock.bookable(old["booked_at"]):
            # Same count in an open window: refresh it in place (final_at may have moved).
            batch.drop(old_entry)
            entry = batch.add(
                new, delta=1, reason=old["booking_reason"], at=old["booked_at"],
                final_at=new["final_at"],
            )  # fmt: skip
            return {**new, "entry": entry, "booked_at": old["booked_at"],
                    "booking_reason": old["booking_reason"]}  # fmt: skip
        return {**new, "entry": old_entry, "booked_at": old["booked_at"],
                "booking_reason": old["booking_reason"]}  # fmt: skip
    counted_before = old is not None and old["booking_reason"] is not None
    reason = None if old is None else old["booking_reason"]
    if old is not None and old_entry is not None:
        if clock.bookable(old["booked_at"]):
            batch.drop(old_entry)  # provisional: it was never final
        else:
            at, _ = clock.target(clock.now)
            batch.add(old, delta=-1, reason=WITHDRAWN, at=at, final_at=at)
            reason = WITHDRAWN
    if not counted:
        return {**new, "entry": None, "booked_at": None, "booking_reason": reason}
    at, on_time = clock.target(new["anchor_at"])
    reason = VERIFIED if on_time else (MOVED if counted_before else LATE_ARRIVAL)
    entry = batch.add(new, delta=1, reason=reason, at=at, final_at=new["final_at"])
    return {**new, "entry": entry, "booked_at": at, "booking_reason": reason}


_FACT_STATE = ("booked_at", "booked_entry_pk", "booking_reason")


def _load_facts(conn: Connection, tenant: str, outcome_ids: Sequence[str]) -> dict[str, Any]:
    _, _, facts, _ = _tables()
    found: dict[str, Any] = {}
    for chunk_start in range(0, len(outcome_ids), 500):
        chunk = list(outcome_ids[chunk_start : chunk_start + 500])
        rows = conn.execute(
            sa.select(facts).where(facts.c.tenant == tenant, facts.c.outcome_id.in_(chunk))
        ).mappings()
        for row in rows:
            fact = dict(row)
            pk = fact.pop("booked_entry_pk")
            fact["entry"] = None if pk is None else _Entry(pk=pk)
            found[fact["outcome_id"]] = fact
    return found


def _upsert(dialect: str) -> Any:
    from ledger.db import insert_for
    from ledger.service_tables import OutcomeFactRow

    table = OutcomeFactRow.__table__  # type: ignore[attr-defined]
    stmt = insert_for(dialect, table)
    key = ("tenant", "outcome_id", "outcome_month")  # unique on both layouts (ledger.partitions)
    columns = [c.name for c in table.columns if c.name not in ("pk", *key)]
    return stmt.on_conflict_do_update(
        index_elements=list(key), set_={n: stmt.excluded[n] for n in columns}
    )


def _months(conn: Connection, tenant: str, ids: Sequence[str], now: datetime) -> dict[str, Any]:
    from ledger.outcome_months import outcome_months

    return outcome_months(conn, tenant, ids, default=now) if ids else {}


def _fact_row(fact: Mapping[str, Any]) -> dict[str, Any]:
    row = {k: v for k, v in fact.items() if k not in ("entry", "pk")}
    entry = fact["entry"]
    row["booked_entry_pk"] = None if entry is None else entry.pk
    return row


def book_facts(
    conn: Connection, tenant: str, facts: Sequence[dict[str, Any]], *, now: datetime
) -> None:
    """Apply new fact values (one per verdict just written) and book their meter entries.

    Parameters
    ----------
    conn
        The verdicts' transaction (the facts and entries commit with them).
    tenant
        Owner of every fact.
    facts
        :func:`ledger.facts.fact_values` of each verdict; applied in ``verdict_pk`` order. A fact
        that is final at ``now`` (frozen), or holds a newer verdict, is left as it is.
    now
        The write time: decides what is frozen and where late entries go.
    """
    if not facts:
        return
    clock = lock_clock(conn, tenant, now)
    ids = sorted({f["outcome_id"] for f in facts})
    lock_outcomes(conn, tenant, ids)
    current = _load_facts(conn, tenant, ids)
    months = _months(conn, tenant, [i for i in ids if i not in current], clock.now)
    months.update((oid, fact["outcome_month"]) for oid, fact in current.items())
    batch = _Batch(tenant=tenant, now=clock.now)
    changed: dict[str, dict[str, Any]] = {}
    for new in sorted(facts, key=lambda f: f["verdict_pk"]):
        oid = new["outcome_id"]
        old = changed.get(oid, current.get(oid))
        if old is not None and (
            as_utc(old["final_at"]) <= clock.now or old["verdict_pk"] > new["verdict_pk"]
        ):
            continue  # frozen, or a newer verdict is already booked
        changed[oid] = _transition(clock, batch, old, {**new, "outcome_month": months[oid]})
    batch.flush(conn)
    if changed:
        conn.execute(_upsert(conn.dialect.name), [_fact_row(f) for f in changed.values()])


def book_revocation_entry(
    conn: Connection,
    tenant: str,
    clock: BookingClock,
    *,
    outcome_id: str,
    verdict_pk: int,
    reason: str,
    at: datetime,
    revocation_pk: int,
) -> bool:
    """Take the outcome's count back for a revocation of ``verdict_pk``; True when it counted.

    The -1 goes at ``at`` (the revoking event) when bookable, else at the current moment (with
    ``clock``, which the caller read under :func:`lock_clock`). Nothing is booked when the
    outcome does not count (never verified, already revoked) or counts by a verdict newer than
    the revoked one (that verdict was made knowing more).
    """
    _, _, facts, _ = _tables()
    lock_outcomes(conn, tenant, [outcome_id])
    fact = _load_facts(conn, tenant, [outcome_id]).get(outcome_id)
    if fact is None or fact["entry"] is None or fact["verdict_pk"] > verdict_pk:
        return False
    booked, _ = clock.target(at)
    batch = _Batch(tenant=tenant, now=clock.now)
    batch.add(fact, delta=-1, reason=reason, at=booked, final_at=booked,
              revocation_pk=revocation_pk)  # fmt: skip
    batch.flush(conn)
    conn.execute(
        sa.update(facts)
        .where(facts.c.tenant == tenant, facts.c.outcome_id == outcome_id)
        .values(booked_at=None, booked_entry_pk=None, booking_reason=reason, updated_at=clock.now)
    )
    return True


def backfill_entries(conn: Connection) -> int:
    """Entries for a ledger upgraded across 0006: facts and revocations stored before it.

    Each verified fact counts at its anchor (``verified``); then each revocation, in booking
    order, takes back the count of its outcome as :func:`book_revocation_entry` would, at its
    old booking moment (the event, or the start of the later open period it went into). Runs in
    the migration's transaction; returns the number of entries written.
    """
    from ledger.report_periods import booking_moment
    from ledger.tables import RevocationRow

    _, _, facts, _ = _tables()
    revocations = RevocationRow.__table__  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    rows = (
        conn.execute(
            sa.select(facts).where(
                facts.c.decision == "verified",
                facts.c.booked_at.is_(None),
                facts.c.booking_reason.is_(None),  # never counted (not: revoked since)
            )
        )
        .mappings()
        .all()
    )
    written = 0
    by_tenant: dict[str, _Batch] = {}
    pending: list[tuple[dict[str, Any], _Entry]] = []
    for row in rows:
        fact = dict(row)
        batch = by_tenant.setdefault(fact["tenant"], _Batch(tenant=fact["tenant"], now=now))
        entry = batch.add(fact, delta=1, reason=VERIFIED, at=fact["anchor_at"],
                          final_at=fact["final_at"])  # fmt: skip
        pending.append((fact, entry))
    for batch in by_tenant.values():
        batch.flush(conn)
        written += len(batch.new)
    for fact, entry in pending:
        conn.execute(
            sa.update(facts)
            .where(facts.c.pk == fact["pk"])
            .values(booked_at=fact["anchor_at"], booked_entry_pk=entry.pk, booking_reason=VERIFIED)
        )
    # Revocations booked before 0006 (after it, each is booked with its entry and booked_at).
    unbooked = sa.select(revocations).where(revocations.c.booked_at.is_(None))
    for rev in conn.execute(unbooked.order_by(revocations.c.pk)).mappings().all():
        moment = booking_moment(rev["occurred_at"], rev["booked_period_start"])
        clock = BookingClock(now=moment)  # the old booking moment, as it was booked then
        if book_revocation_entry(
            conn, rev["tenant"], clock, outcome_id=rev["outcome_id"],
            verdict_pk=rev["verdict_pk"], reason=rev["reason"], at=moment,
            revocation_pk=rev["pk"],
        ):  # fmt: skip
            written += 1
        conn.execute(
            sa.update(revocations).where(revocations.c.pk == rev["pk"]).values(booked_at=moment)
        )
    return written
