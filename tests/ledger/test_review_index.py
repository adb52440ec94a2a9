"""The review queue kept in `review_queue` equals the queue recomputed from every verdict and
label, after any sequence of verdicts and labels, and after upgrading an older ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from judge.models import Label
from ledger.db import make_engine
from ledger.review_index import in_audit_sample
from ledger.review_queue import review_queue
from ledger.schema import migrate
from ledger.store import Ledger
from tests.ledger.conftest import ticket, verdict_for

IDS = [f"R-{i}" for i in range(8)]
# Some of these are in the audit sample; the test needs both kinds.
assert any(in_audit_sample("acme", i) for i in [f"R-{n}" for n in range(60)])


def _outcome(oid: str, day: int) -> object:
    at = (datetime(2026, 3, 1, tzinfo=UTC) + timedelta(days=day)).isoformat()
    return ticket(
        oid,
        conversation=[{"role": "customer", "text": f"help with {oid}", "at": at}],
        label=None,
    )


def _expected(ledger: Ledger) -> list[str]:
    """The queue by its definition: latest verdict abstained, flagged or audit-sampled
    verified, no label; oldest first (anchor, then verdict time, then id)."""
    latest = {}
    for stored in ledger.iter_verdicts():
        latest[stored.verdict.outcome_id] = stored
    labelled = {lab.outcome_id for lab in ledger.iter_labels()}
    keep = []
    for oid, stored in latest.items():
        v = stored.verdict
        if oid in labelled:
            continue
        if (
            v.decision == "abstain"
            or v.flags
            or (v.decision == "verified" and in_audit_sample("acme", oid))
        ):
            keep.append(oid)
    return sorted(keep)


_op = st.tuples(
    st.sampled_from(["verdict", "label"]),
    st.sampled_from(IDS),
    st.sampled_from(["verified", "not_verified", "abstain"]),
    st.booleans(),
    st.integers(0, 20),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_op, min_size=1, max_size=25))
def test_the_kept_queue_is_the_queue_by_definition(
    engine: Engine, ops: list[tuple[str, str, str, bool, int]]
) -> None:
    from sqlalchemy import text

    with engine.begin() as conn:  # the module's engine is shared: start each example empty
        for table in ("review_queue", "labels", "meter_entries", "outcome_facts", "verdicts",
                      "touches", "outcomes"):  # fmt: skip
            conn.execute(text(f"DELETE FROM {table} WHERE tenant = 'acme'"))
    ledger = Ledger(engine, tenant="acme")
    seen: set[str] = set()
    for kind, oid, decision, flagged, day in ops:
        if kind == "verdict":
            outcome = _outcome(oid, day)
            flags = ["possible_prompt_injection"] if flagged else []
            ledger.record_result(outcome, verdict_for(outcome, decision=decision, flags=flags))
            seen.add(oid)
        elif oid in seen:
            ledger.record_label(oid, Label(resolved=flagged, by="qa"))
    items, total = review_queue(engine, "acme")
    assert sorted(i.outcome_id for i in items) == _expected(ledger)
    assert total == len(items)
    order = [(i.at or i.verdict_at, i.verdict_at, i.outcome_id) for i in items]
    assert order == sorted(order)
    without_audit, _ = review_queue(engine, "acme", audit_share=0.0)
    assert {i.outcome_id for i in without_audit} == {
        i.outcome_id for i in items if i.reason != "audit"
    }


def test_upgrading_an_older_ledger_fills_the_queue(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    eng = make_engine(ledger_url)
    try:
        migrate(eng, revision="0012")
        with monkeypatch.context() as m:  # the code of the time kept no queue
            m.setattr("ledger.store.refresh_review_rows", lambda *a, **k: 0)
            m.setattr("ledger.store.drop_review_rows", lambda *a, **k: None)
            # nor facts with their month (0014); the queue is made from verdicts and labels
            m.setattr("ledger.store.record_facts", lambda *a, **k: None)
            ledger = Ledger(eng, tenant="acme")
            outcomes = [_outcome(oid, n) for n, oid in enumerate(IDS)]
            ledger.record_results(
                [(o, verdict_for(o, decision="abstain")) for o in outcomes[:4]]
                + [(o, verdict_for(o)) for o in outcomes[4:]]
            )
            ledger.record_result(outcomes[0], verdict_for(outcomes[0]))  # no longer abstains
            ledger.record_label(IDS[1], Label(resolved=True, by="qa"))
        migrate(eng)
        items, _ = review_queue(eng, "acme")
        assert sorted(i.outcome_id for i in items) == _expected(Ledger(eng, tenant="acme"))
        assert {IDS[2], IDS[3]} <= {i.outcome_id for i in items}
        assert IDS[1] not in {i.outcome_id for i in items}
    finally:
        eng.dispose()
