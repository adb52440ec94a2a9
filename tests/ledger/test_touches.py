"""Touches: one row per touch of each stored outcome revision, written with the revision.

Runs on SQLite and PostgreSQL (the ``engine`` fixture). The last test recomputes the touch rows
from the stored payloads with plain SQL and JSON, independently of :meth:`Ledger.touches`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from judge.models import Touch
from ledger.store import Ledger
from tests.ledger.conftest import judge_call, ticket, verdict_for

#: Also on a PostgreSQL ledger partitioned by month (tests/ledger/conftest.py).
PARTITIONED_TOO = ("engine",)

BOT = {"actor": "bot:fin", "kind": "ai", "at": "2026-03-01T10:01:00Z"}
ROUTER = {"actor": "router:triage", "kind": "router"}
HUMAN = {"actor": "ana", "kind": "human", "at": "2026-03-01T12:30:00+02:00"}


def _touch_rows(engine: Engine, tenant: str = "acme") -> list[tuple[Any, ...]]:
    sql = (
        "SELECT outcome_id, outcome_revision, seq, actor, kind FROM touches WHERE tenant = :t "
        "ORDER BY outcome_id, outcome_revision, seq"
    )
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql), {"t": tenant})]


@pytest.fixture
def ledger(engine: Engine) -> Ledger:
    return Ledger(engine, tenant="acme")


def test_touches_are_stored_with_the_revision_in_order(ledger: Ledger, engine: Engine) -> None:
    ref = ledger.record_outcome(ticket(touches=[ROUTER, BOT, HUMAN]))
    assert ref.created and ref.revision == 1
    assert _touch_rows(engine) == [
        ("T-1001", 1, 0, "router:triage", "router"),
        ("T-1001", 1, 1, "bot:fin", "ai"),
        ("T-1001", 1, 2, "ana", "human"),
    ]
    touches = ledger.touches("T-1001")
    assert touches == [Touch.model_validate(t) for t in (ROUTER, BOT, HUMAN)]
    assert touches[0].at is None
    # 12:30 at +02:00 is 10:30 UTC, and it comes back as an aware UTC timestamp.
    assert touches[2].at == datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    assert touches[2].at is not None and touches[2].at.utcoffset() == timedelta(0)
    assert touches[2].at != datetime(2026, 3, 1, 12, 30, tzinfo=timezone(timedelta(0)))


def test_identical_reingest_adds_no_touches(ledger: Ledger, engine: Engine) -> None:
    outcome = ticket(touches=[BOT, HUMAN])
    ledger.record_outcome(outcome)
    again = ledger.record_outcome(outcome)
    ledger.record_result(outcome, verdict_for(outcome))  # the same payload via the verify path
    assert not again.created
    assert len(_touch_rows(engine)) == 2


def test_a_new_revision_stores_its_own_touches(ledger: Ledger, engine: Engine) -> None:
    ledger.record_outcome(ticket(touches=[BOT]))
    ref = ledger.record_outcome(ticket(touches=[BOT, HUMAN]))
    assert ref.revision == 2
    assert _touch_rows(engine) == [
        ("T-1001", 1, 0, "bot:fin", "ai"),
        ("T-1001", 2, 0, "bot:fin", "ai"),
        ("T-1001", 2, 1, "ana", "human"),
    ]
    assert [t.actor for t in ledger.touches("T-1001")] == ["bot:fin", "ana"]  # latest
    assert [t.actor for t in ledger.touches("T-1001", revision=1)] == ["bot:fin"]
    # A revision that changes something else (signals) and drops the touches stores none.
    ledger.record_outcome(ticket(signals={"customer_confirmed": False}))
    assert ledger.touches("T-1001") == []
    assert len(ledger.touches("T-1001", revision=2)) == 2


def test_unknown_outcome_revision_or_tenant_has_no_touches(ledger: Ledger, engine: Engine) -> None:
    ledger.record_outcome(ticket(touches=[BOT]))
    assert ledger.touches("T-404") == []
    assert ledger.touches("T-1001", revision=7) == []
    assert Ledger(engine, tenant="globex").touches("T-1001") == []


@pytest.mark.parametrize("revision", [0, -1, True, 1.5])
def test_bad_arguments_are_refused(ledger: Ledger, revision: Any) -> None:
    with pytest.raises(ValueError, match="revision must be an integer >= 1"):
        ledger.touches("T-1001", revision=revision)
    with pytest.raises(ValueError, match="outcome_id must be a non-empty string"):
        ledger.touches("")


def test_a_failed_batch_writes_no_touches(ledger: Ledger, engine: Engine) -> None:
    """The database rejects a call at the end of the batch: the batch's touches are gone too."""
    outcomes = [ticket(f"T-{i}", touches=[BOT, HUMAN]) for i in range(3)]
    broken = judge_call().model_copy(update={"cache_key": None})
    with pytest.raises(sa.exc.IntegrityError):
        ledger.record_results([(o, verdict_for(o)) for o in outcomes], calls=[broken])
    assert _touch_rows(engine) == []
    assert ledger.counts()["outcome_revisions"] == 0
    # The same batch again, without the bad call: now stored, once.
    ledger.record_results([(o, verdict_for(o)) for o in outcomes])
    assert len(_touch_rows(engine)) == 6


def test_the_database_refuses_an_unknown_touch_kind(ledger: Ledger, engine: Engine) -> None:
    ledger.record_outcome(ticket(touches=[BOT]))
    row = {"t": "acme", "o": "T-1001", "r": 1, "s": 1, "a": "x", "k": "robot"}
    sql = (
        "INSERT INTO touches (tenant, outcome_id, outcome_revision, seq, actor, kind) "
        "VALUES (:t, :o, :r, :s, :a, :k)"
    )
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.text(sql), row)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:  # no such revision
        conn.execute(sa.text(sql), {**row, "k": "human", "r": 9})
    assert len(_touch_rows(engine)) == 1


def test_touch_rows_recompute_from_the_stored_payloads(engine: Engine) -> None:
    """COUNT(*) of touches == sum over stored revisions of len(payload.touches), per tenant."""
    acme = Ledger(engine, tenant="acme")
    first = [ticket(f"T-{i}", touches=[BOT] * i) for i in range(4)]  # 0..3 touches
    acme.record_results([(o, verdict_for(o)) for o in first])
    acme.record_results([(o, verdict_for(o)) for o in first[:2]])  # re-verified: no new rows
    acme.record_outcome(ticket("T-3", touches=[ROUTER, BOT, HUMAN, HUMAN]))  # revision 2
    acme.record_outcome(ticket("T-3", touches=[ROUTER, BOT, HUMAN, HUMAN]))  # repeat
    globex = Ledger(engine, tenant="globex")
    globex.record_outcome(ticket("T-3", touches=[HUMAN]))

    with engine.connect() as conn:
        for tenant, by_hand in (("acme", 0 + 1 + 2 + 3 + 4), ("globex", 1)):
            params = {"t": tenant}
            rows = conn.execute(
                sa.text("SELECT COUNT(*) FROM touches WHERE tenant = :t"), params
            ).scalar_one()
            payloads = conn.execute(
                sa.text("SELECT payload FROM outcomes WHERE tenant = :t"), params
            ).scalars()
            from_payloads = sum(
                len((json.loads(p) if isinstance(p, str) else p).get("touches", []))
                for p in payloads
            )
            assert rows == from_payloads == by_hand
            # And per (outcome, revision), the rows are exactly positions 0..n-1.
            per_revision = conn.execute(
                sa.text(
                    "SELECT COUNT(*), MIN(seq), MAX(seq) FROM touches WHERE tenant = :t "
                    "GROUP BY outcome_id, outcome_revision"
                ),
                params,
            ).all()
            assert all(lo == 0 and hi == n - 1 for n, lo, hi in per_revision)
