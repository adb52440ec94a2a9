"""Outcome facts: one row per (tenant, outcome id) holding its current billable state.

The meters (:mod:`ledger.meters`) count the ``meter_entries`` that :mod:`ledger.bookings` writes
from these facts; a fact says where the outcome's current count is booked. A fact holds the
decision and tier of
the outcome's latest verdict, the judged revision, the credited AI actor
(:func:`ledger.attribution.attribute`, as in the cost report), ``name@version`` of the agent, the
model path, the anchor of the verification window and the moment the outcome becomes final.

Rules (the same ones the cost report applies, so both tell the same story):

- ``anchor_at`` is :func:`ledger.windows.window_anchor` of the judged revision (last customer
  message, else ``signals.closed_at``, else the last timed message); an outcome without any
  timestamp is anchored at the moment the ledger received that revision, so that it too becomes
  final some day (the cost report keeps such an outcome provisional forever; it is rare).
- ``final_at`` = anchor + the ``window_hours`` of the rubric that judged (the caller's rubric,
  else the tenant's stored rubric of that exact version, else the shipped rubric when its
  version matches, else 72 h: :func:`resolve_window_hours`) +
  :data:`ledger.windows.DEFAULT_GRACE_HOURS` (24 h).
- Once final (``final_at <= now``) a fact is frozen: later verdicts do not change it. A late
  reopen or human overturn is a *revocation*, booked in the open period by
  ``judge revocations scan``; a billed figure is never rewritten.

:func:`upsert_facts` runs inside :meth:`ledger.store.Ledger.record_results`' transaction (the
fact, its meter entries and the verdict commit together); :func:`backfill_facts` fills facts for
verdicts stored before migration 0005 (``ledger.schema.migrate`` calls it when it upgrades across
0005).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from judge.models import as_utc
from ledger.db import insert_for

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from judge.models import Outcome

log = logging.getLogger("outcome_judge.ledger")
#: (tenant, rubric ref) of stored rubrics this process has warned no longer parse.
_UNPARSEABLE_REPORTED: set[tuple[str, str]] = set()

__all__ = [
    "FactSource",
    "backfill_facts",
    "fact_values",
    "record_facts",
    "resolve_window_hours",
    "rubric_window_hours",
    "rubric_windows",
    "shipped_window_hours",
    "stored_window_hours",
    "upsert_facts",
]

#: How many verdicts :func:`backfill_facts` turns into facts per statement.
BACKFILL_CHUNK = 500


@dataclass(frozen=True)
class FactSource:
    """What one fact is computed from: an outcome revision and the verdict judged on it.

    Attributes
    ----------
    outcome
        The judged revision's payload.
    revision
        Its revision number.
    verdict_pk
        Primary key of the verdict row.
    decision, tier, rubric
        The verdict's decision, tier (or None) and rubric ref (``name@version``).
    received_at
        When the ledger received that revision (the anchor of an outcome without timestamps).
    """

    outcome: Outcome
    revision: int
    verdict_pk: int
    decision: str
    tier: str | None
    rubric: str
    received_at: datetime


@lru_cache(maxsize=256)
def rubric_window_hours(rubric: str) -> float:
    """The verification window (hours) of a rubric ref when no tenant rubric is consulted.

    The shipped rubric of exactly that version (:func:`shipped_window_hours`), else the default
    72 h. Cached: a shipped rubric does not change while the process runs, and every verdict
    write asks (reading and parsing the YAML each time would dominate a batch).

    >>> rubric_window_hours("support-resolution@abc"), rubric_window_hours("no-such-rubric@1")
    (72.0, 72.0)
    """
    from ledger.windows import DEFAULT_WINDOW_HOURS

    found = shipped_window_hours(rubric)
    return DEFAULT_WINDOW_HOURS if found is None else found


def fact_values(
    tenant: str, source: FactSource, *, now: datetime, window_hours: float | None = None
) -> dict[str, Any]:
    """The ``outcome_facts`` column values for ``source`` (``updated_at`` = ``now``).

    ``window_hours`` is the judging rubric's verification window (default: the shipped rubric
    of that name, :func:`rubric_window_hours`).

    >>> from judge.models import Outcome
    >>> o = Outcome.model_validate({"id": "T-1", "kind": "support_ticket", "conversation": [
    ...     {"role": "customer", "text": "hi", "at": "2026-03-01T10:00:00Z"}],
    ...     "agent": {"name": "fin", "version": "2.3", "model_path": "gpt-4o-mini"}})
    >>> now = datetime(2026, 3, 2, tzinfo=UTC)
    >>> v = fact_values("acme", FactSource(o, 1, 7, "verified", "assumed",
    ...     "support-resolution@abc", now), now=now)
    >>> v["agent"], v["agent_version"], v["anchor_at"].isoformat(), v["final_at"].isoformat()
    ('fin', 'fin@2.3', '2026-03-01T10:00:00+00:00', '2026-03-05T10:00:00+00:00')
    """
    from ledger.attribution import attribute
    from ledger.windows import DEFAULT_GRACE_HOURS, window_anchor

    outcome = source.outcome
    anchored = window_anchor(outcome)
    anchor = as_utc(source.received_at) if anchored is None else anchored[0]
    if window_hours is None:
        window_hours = rubric_window_hours(source.rubric)
    hours = window_hours + DEFAULT_GRACE_HOURS
    name, version = outcome.agent.name, outcome.agent.version
    return {
        "tenant": tenant,
        "outcome_id": outcome.id,
        "outcome_revision": source.revision,
        "verdict_pk": source.verdict_pk,
        "decision": source.decision,
        "tier": source.tier,
        "agent": attribute(outcome),
        # The cost report's `agent_version` dimension: name@version, None without a name.
        "agent_version": None if name is None else f"{name}@{version or '?'}",
        "model_path": outcome.agent.model_path,
        "anchor_at": anchor,
        "final_at": anchor + timedelta(hours=hours),
        "updated_at": now,
    }


def upsert_facts(
    conn: Connection,
    tenant: str,
    sources: Sequence[FactSource],
    *,
    now: datetime,
    windows: Mapping[str, float] | None = None,
) -> None:
    """Insert or update the facts of ``sources`` on ``conn`` and book their meter entries.

    A fact that is final at ``now`` is left as it is, as is one holding a newer verdict. Several
    sources for one outcome in one call are applied in verdict order (the last one wins unless
    the fact is frozen). Where each count goes is :func:`ledger.bookings.book_facts`.

    Parameters
    ----------
    conn
        An open connection whose transaction also writes the verdicts.
    tenant
        Owner of every fact.
    sources
        The verdicts just written with their outcomes.
    now
        The moment that decides whether an existing fact is final (the write time).
    windows
        Rubric ref -> ``window_hours`` of the rubrics that judged; a ref not given is resolved
        with :func:`resolve_window_hours`.
    """
    from ledger.bookings import book_facts

    if not sources:
        return
    at = as_utc(now)
    known = dict(windows or {})
    for ref in {s.rubric for s in sources} - set(known):
        known[ref] = resolve_window_hours(conn, tenant, ref)
    book_facts(
        conn,
        tenant,
        [fact_values(tenant, s, now=at, window_hours=known[s.rubric]) for s in sources],
        now=at,
    )


def resolve_window_hours(conn: Connection, tenant: str, ref: str) -> float:
    """The ``window_hours`` of the rubric ``ref`` (``name@version``) that judged a verdict.

    :func:`stored_window_hours`, else the default 72 h: never a different version of the
    rubric, which may have another window. The one rule for windows: the facts (so the meters)
    and the cost report's statuses both use it.
    """
    from ledger.windows import DEFAULT_WINDOW_HOURS

    found = stored_window_hours(conn, tenant, ref)
    return DEFAULT_WINDOW_HOURS if found is None else found


def stored_window_hours(conn: Connection, tenant: str, ref: str) -> float | None:
    """The tenant's stored rubric of exactly that version (``POST /v1/rubrics``), else the
    shipped one of that version (:func:`shipped_window_hours`); None when neither exists."""
    from ledger.service_tables import StoredDocumentRow

    name, _, version = ref.partition("@")
    docs = StoredDocumentRow.__table__  # type: ignore[attr-defined]
    text = conn.execute(
        sa.select(docs.c.text).where(
            docs.c.tenant == tenant,
            docs.c.kind == "rubric",
            docs.c.name == name,
            docs.c.version == version,
        )
    ).scalar_one_or_none()
    if text is not None:
        from judge.rubric_loader import parse_rubric_text
        from ledger.windows import DEFAULT_WINDOW_HOURS

        try:
            return float(parse_rubric_text(text, shown="<stored rubric>").window_hours)
        except Exception as exc:
            # Stored rubrics were validated when posted: only a later, stricter version of the
            # rubric format gets here. The outcome still needs a window, but not silently: it
            # decides when the outcome's count becomes final. Once per process and rubric: a
            # worker asks for every batch it records.
            if (tenant, ref) in _UNPARSEABLE_REPORTED:
                return DEFAULT_WINDOW_HOURS
            _UNPARSEABLE_REPORTED.add((tenant, ref))
            log.warning(
                "tenant %r: stored rubric %s no longer parses (%s); its outcomes take the "
                "default %s h window. Post the rubric again (POST /v1/rubrics) in the current "
                "format and re-judge, or keep the default knowingly.",
                tenant, ref, str(exc).splitlines()[0][:200], DEFAULT_WINDOW_HOURS,
            )  # fmt: skip
            return DEFAULT_WINDOW_HOURS
    return shipped_window_hours(ref)


def shipped_window_hours(ref: str) -> float | None:
    """The ``window_hours`` of the shipped rubric ``name`` when its version is ``ref``'s."""
    from judge.rubric_loader import RubricError, load_rubric

    name, _, version = ref.partition("@")
    if not name or "/" in name or "\\" in name or name.endswith((".yaml", ".yml")):
        return None
    try:
        shipped = load_rubric(name)
    except RubricError:
        return None
    return float(shipped.window_hours) if shipped.version == version else None


def rubric_windows(
    refs: Iterable[str],
    *,
    window_hours: float | None = None,
    lookup: Callable[[str], float | None] | None = None,
) -> tuple[dict[str, float], float, str | None]:
    """The verification window (hours) of each rubric ref, the report's window, and a note.

    With ``window_hours`` given every ref gets it (no note). Otherwise each ref ``name@version``
    gets the window of the rubric that judged: ``lookup(ref)``, by default the shipped rubric of
    exactly that version (:func:`shipped_window_hours`; the cost report passes
    :func:`stored_window_hours`, which looks at the tenant's stored rubrics first,
    as the meters do). A ref found nowhere gets the default 72 h and the note names it. The
    report's window is the one every ref shares, else (mixed windows) the default 72 h.

    >>> windows, hours, note = rubric_windows(["support-resolution@abc", "no-such-rubric@1"])
    >>> windows["support-resolution@abc"], windows["no-such-rubric@1"], hours
    (72.0, 72.0, 72.0)
    >>> "no-such-rubric@1" in note
    True
    >>> rubric_windows(["no-such-rubric@1"], window_hours=24.0)
    ({'no-such-rubric@1': 24.0}, 24.0, None)
    """
    from ledger.windows import DEFAULT_WINDOW_HOURS

    if window_hours is not None:
        return dict.fromkeys(sorted(set(refs)), window_hours), window_hours, None
    find = lookup or shipped_window_hours
    windows: dict[str, float] = {}
    unknown: list[str] = []
    for ref in sorted(set(refs)):
        found = find(ref)
        if found is None:
            unknown.append(ref)
        windows[ref] = DEFAULT_WINDOW_HOURS if found is None else found
    note = None
    if unknown:
        note = (
            f"rubric(s) {', '.join(unknown)} not found among the shipped rubrics or this "
            f"tenant's stored ones at that version: their outcomes use the default "
            f"{DEFAULT_WINDOW_HOURS:g} h verification window; pass --window-hours to set one"
        )
    used = set(windows.values())
    return windows, used.pop() if len(used) == 1 else DEFAULT_WINDOW_HOURS, note


def record_facts(
    conn: Connection,
    tenant: str,
    results: Sequence[tuple[Outcome, int, int, str, str | None, str]],
    *,
    now: datetime,
    windows: Mapping[str, float] | None = None,
) -> None:
    """Upsert the facts of verdicts just written (what ``Ledger.record_results`` calls).

    Parameters
    ----------
    results
        ``(outcome, revision, verdict_pk, decision, tier, rubric)`` per verdict written.

    The receipt time of a revision is read back only for an outcome without any timestamp
    (the only case that needs it as the anchor).
    """
    from ledger.tables import OutcomeRow
    from ledger.windows import window_anchor

    o = OutcomeRow.__table__  # type: ignore[attr-defined]
    sources = []
    for outcome, revision, verdict_pk, decision, tier, rubric in results:
        received = now
        if window_anchor(outcome) is None:
            found = conn.execute(
                sa.select(o.c.received_at).where(
                    o.c.tenant == tenant,
                    o.c.outcome_id == outcome.id,
                    o.c.revision == revision,
                )
            ).scalar_one_or_none()
            received = now if found is None else found
        sources.append(FactSource(outcome, revision, verdict_pk, decision, tier, rubric, received))
    upsert_facts(conn, tenant, sources, now=now, windows=windows)


def _latest_verdicts(conn: Connection, after: tuple[str, str] | None) -> list[Any]:
    """One chunk of (tenant, outcome id) with the pk of its latest verdict, in key order."""
    from ledger.tables import VerdictRow

    v = VerdictRow.__table__  # type: ignore[attr-defined]
    query = sa.select(v.c.tenant, v.c.outcome_id, sa.func.max(v.c.pk).label("pk")).group_by(
        v.c.tenant, v.c.outcome_id
    )
    if after is not None:
        query = query.having(sa.tuple_(v.c.tenant, v.c.outcome_id) > sa.tuple_(*after))
    query = query.order_by(v.c.tenant, v.c.outcome_id).limit(BACKFILL_CHUNK)
    return list(conn.execute(query).all())


def _sources(conn: Connection, verdict_pks: Iterable[int]) -> list[tuple[str, FactSource]]:
    from judge.input_rules import FROM_LEDGER
    from judge.models import Outcome
    from ledger.tables import OutcomeRow, VerdictRow

    v = VerdictRow.__table__  # type: ignore[attr-defined]
    o = OutcomeRow.__table__  # type: ignore[attr-defined]
    query = sa.select(
        v.c.tenant, v.c.pk, v.c.outcome_revision, v.c.decision, v.c.tier, v.c.rubric,
        o.c.payload, o.c.received_at,
    ).join(
        o,
        sa.and_(
            o.c.tenant == v.c.tenant,
            o.c.outcome_id == v.c.outcome_id,
            o.c.revision == v.c.outcome_revision,
        ),
    ).where(v.c.pk.in_(list(verdict_pks)))  # fmt: skip
    return [
        (
            tenant,
            FactSource(
                outcome=Outcome.model_validate(payload, context=FROM_LEDGER),
                revision=revision,
                verdict_pk=pk,
                decision=decision,
                tier=tier,
                rubric=rubric,
                received_at=received_at,
            ),
        )
        for tenant, pk, revision, decision, tier, rubric, payload, received_at in conn.execute(
            query
        ).all()
    ]


def backfill_facts(target: Engine | Connection, *, now: datetime | None = None) -> int:
    """Create the missing facts from the verdicts already stored; return how many were created.

    Idempotent: an outcome that already has a fact keeps it (facts written live by
    :meth:`~ledger.store.Ledger.record_results` are never overwritten), so running it twice
    creates nothing the second time. Works in chunks of :data:`BACKFILL_CHUNK` outcomes.

    Parameters
    ----------
    target
        An engine (one transaction is opened) or a connection already in a transaction (the
        migration's, so the schema change and the back-fill commit together).
    now
        Recorded as ``updated_at`` (default: the current time).

    Examples
    --------
    >>> from ledger.db import make_engine
    >>> from ledger.schema import migrate
    >>> engine = make_engine("sqlite://")
    >>> migrate(engine)
    >>> backfill_facts(engine)
    0
    """
    if not isinstance(target, sa.engine.Connection):
        with target.begin() as conn:
            return backfill_facts(conn, now=now)
    from ledger.service_tables import OutcomeFactRow

    table = OutcomeFactRow.__table__  # type: ignore[attr-defined]
    at = as_utc(now or datetime.now(UTC))
    # No conflict target: on a partitioned ledger the unique key also holds outcome_month.
    stmt = insert_for(target.dialect.name, table).on_conflict_do_nothing()
    created = 0
    after: tuple[str, str] | None = None
    while True:
        chunk = _latest_verdicts(target, after)
        if not chunk:
            from ledger.bookings import backfill_entries

            backfill_entries(target)  # the new facts' meter entries
            return created
        after = (chunk[-1][0], chunk[-1][1])
        existing = {
            (t, oid)
            for t, oid in target.execute(
                sa.select(table.c.tenant, table.c.outcome_id).where(
                    sa.tuple_(table.c.tenant, table.c.outcome_id).in_(
                        [(t, oid) for t, oid, _ in chunk]
                    )
                )
            ).all()
        }
        wanted = [pk for t, oid, pk in chunk if (t, oid) not in existing]
        rows = [
            fact_values(t, s, now=at, window_hours=resolve_window_hours(target, t, s.rubric))
            for t, s in _sources(target, wanted)
        ]
        from ledger.outcome_months import outcome_months

        for tenant in {row["tenant"] for row in rows}:
            mine = [row for row in rows if row["tenant"] == tenant]
            months = outcome_months(target, tenant, [r["outcome_id"] for r in mine], default=at)
            for row in mine:
                row["outcome_month"] = months[row["outcome_id"]]
        if rows:
            target.execute(stmt, rows)
            created += len(rows)
