"""Every number :meth:`Ledger.counts` reports can be recomputed from the raw rows with plain SQL.

The ledger is filled through its public API with everything that makes counting subtle: repeats
(stored once), revisions (one outcome, several rows), a label arriving twice, events (verdicts
and judge calls, one row each) and a second tenant whose rows must not leak into the first's.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from judge.models import Label
from ledger.store import Ledger
from tests.ledger.conftest import judge_call, ticket, verdict_for

# Plain SQL over the tables, written independently of the ORM queries in Ledger.counts().
RECOMPUTE = {
    "outcomes": (
        "SELECT COUNT(*) FROM (SELECT DISTINCT outcome_id FROM outcomes WHERE tenant = :t) AS d"
    ),
    "outcome_revisions": "SELECT COUNT(*) FROM outcomes WHERE tenant = :t",
    "verdicts": "SELECT COUNT(*) FROM verdicts WHERE tenant = :t",
    "judge_calls": "SELECT COUNT(*) FROM judge_calls WHERE tenant = :t",
    "labels": "SELECT COUNT(*) FROM labels WHERE tenant = :t",
}


def _fill(engine: Engine) -> None:
    acme = Ledger(engine, tenant="acme")
    first = [ticket(f"T-{i}") for i in range(4)]
    acme.record_results([(o, verdict_for(o)) for o in first])
    acme.record_results([(o, verdict_for(o)) for o in first[:2]])  # re-verified: new verdicts
    changed = ticket("T-0", signals={"customer_confirmed": False, "csat": 2})
    acme.record_result(changed, verdict_for(changed, decision="not_verified", tier=None))
    acme.record_outcome(ticket("T-9", label=None))  # an outcome with no verdict, no label
    acme.record_outcome(ticket("T-9", label=None))  # repeat: nothing new
    second_opinion = Label(resolved=False, by="auditor")
    assert acme.record_label("T-1", second_opinion, source="api")
    assert not acme.record_label("T-1", second_opinion, source="api")
    acme.record_calls([judge_call(f"k-{i}", outcome_id="T-0") for i in range(3)])

    other = Ledger(engine, tenant="globex")
    other.record_results([(o, verdict_for(o)) for o in [ticket("T-0"), ticket("G-1")]])
    other.record_calls([judge_call("g-1")])


def _recomputed(engine: Engine, tenant: str) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: int(conn.execute(sa.text(sql), {"t": tenant}).scalar_one())
            for name, sql in RECOMPUTE.items()
        }


def test_counts_match_plain_sql_over_the_rows(engine: Engine) -> None:
    _fill(engine)

    for tenant in ("acme", "globex"):
        counts = Ledger(engine, tenant=tenant).counts()
        assert set(counts) == set(RECOMPUTE), "a new count needs its SQL recomputation here"
        assert counts == _recomputed(engine, tenant)

    # And the recomputation agrees with what was sent (counted by hand from _fill).
    assert _recomputed(engine, "acme") == {
        "outcomes": 5,  # T-0..T-3 and T-9
        "outcome_revisions": 6,  # T-0 has two revisions
        "verdicts": 7,  # 4 + 2 re-verified + 1 on the new revision
        "judge_calls": 3,
        "labels": 5,  # embedded label of T-0..T-3 once each, plus the auditor's label on T-1
    }
    assert _recomputed(engine, "globex") == {
        "outcomes": 2,
        "outcome_revisions": 2,
        "verdicts": 2,
        "judge_calls": 1,
        "labels": 2,
    }


def test_counts_of_an_empty_ledger_are_zero_like_the_rows(engine: Engine) -> None:
    counts = Ledger(engine, tenant="acme").counts()
    assert counts == _recomputed(engine, "acme") == dict.fromkeys(RECOMPUTE, 0)
