"""A batch of verdicts written set-based (:mod:`ledger.verdict_batch`, what ``judge verify`` and
the workers write) leaves the ledger exactly as the row-by-row writer does, on SQLite and
PostgreSQL: outcome revisions, touches, labels, verdicts, the meter's facts and entries, the
review queue and what ``record_results`` returns."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from judge.models import Outcome
from ledger import ingest_batch, review_index, store
from ledger.records import RecordedResult
from ledger.store import Ledger, LedgerConflictError
from tests.ledger.conftest import verdict_for
from tests.ledger.test_ingest_batch import IDS, _utc, outcome, state

#: Also on a ledger partitioned by month (tests/ledger/conftest.py).
PARTITIONED_TOO = ("engine",)
DECISIONS = ("verified", "not_verified", "abstain")
#: What a verdict writes besides the outcome rows (minus keys and write times).
VERDICT_QUERIES = {
    "verdicts": "SELECT outcome_id, outcome_revision, content_hash, decision, confidence, tier, "
    "rubric, panel, flags, payload, cost_usd FROM verdicts",
    "facts": "SELECT outcome_id, outcome_revision, decision, tier, agent, agent_version, "
    "model_path, anchor_at, final_at FROM outcome_facts",
    "meter": "SELECT outcome_id, delta, reason, booked_at, anchor_at, final_at, tier, agent "
    "FROM meter_entries",
    "queue rows": "SELECT outcome_id, reason, decision, flags, rubric, panel, kind, anchor_at "
    "FROM review_queue",
}


def ledger_state(engine: Engine, tenant: str) -> dict[str, Any]:
    out = state(engine, tenant)
    with engine.connect() as conn:
        for name, query in VERDICT_QUERIES.items():
            rows = conn.execute(sa.text(f"{query} WHERE tenant = :t"), {"t": tenant}).all()
            out[name] = sorted((tuple(_utc(v) for v in row) for row in rows), key=repr)
    return out


def answers(recorded: list[RecordedResult]) -> list[tuple[Any, ...]]:
    """What ``record_results`` returned, minus the verdicts' keys (two ledgers, two sequences)."""
    return [
        (r.outcome.outcome_id, r.outcome.revision, r.outcome.content_hash, r.outcome.created,
         r.label_added)
        for r in recorded
    ]  # fmt: skip


def row_by_row(
    monkeypatch: pytest.MonkeyPatch, ledger: Ledger, pairs: list[tuple[Outcome, Any]]
) -> list[RecordedResult]:
    with monkeypatch.context() as patched:
        patched.setattr(store, "_set_based", lambda ids: False)
        return ledger.record_results(pairs)


_batch = st.lists(
    st.tuples(st.sampled_from(IDS), st.integers(0, 35), st.sampled_from(DECISIONS)),
    min_size=1,
    max_size=4,
    unique_by=lambda item: item[0],  # distinct outcomes: the set-based path
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_batch, min_size=1, max_size=4))
def test_a_batch_of_verdicts_writes_what_writing_row_by_row_writes(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, batches: list[list[tuple[str, int, str]]]
) -> None:
    # The audit sample hashes the tenant's name; the two ledgers must sample the same outcomes.
    monkeypatch.setattr(review_index, "in_audit_sample", lambda tenant, oid: oid in IDS[::2])
    run = uuid.uuid4().hex[:8]
    batched = Ledger(engine, tenant=f"set-{run}")  # fresh tenants: examples share the db
    single = Ledger(engine, tenant=f"row-{run}")
    for batch in batches:
        pairs = []
        for oid, variant, decision in batch:
            item = outcome(oid, variant)
            flags = ["possible_prompt_injection"] if variant % 5 == 0 else []
            pairs.append((item, verdict_for(item, decision=decision, flags=flags)))
        assert answers(batched.record_results(pairs)) == answers(
            row_by_row(monkeypatch, single, pairs)
        )
        assert ledger_state(engine, batched.tenant) == ledger_state(engine, single.tenant)


def test_the_batch_writes_the_outcomes_set_based(engine: Engine) -> None:
    """The outcomes of a batch go through the ingest path's one look-up (not one per outcome),
    and each verdict key returned is its own outcome's."""
    looked_up: list[list[str]] = []
    latest = ingest_batch._latest

    def spy(conn: Any, tenant: str, ids: Any) -> Any:
        looked_up.append(list(ids))
        return latest(conn, tenant, ids)

    pairs = [(outcome(oid, 0), verdict_for(outcome(oid, 0))) for oid in IDS]
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(ingest_batch, "_latest", spy)
        recorded = Ledger(engine, tenant="acme").record_results(pairs)
    assert looked_up == [IDS]
    pks = [r.verdict_pk for r in recorded]
    assert pks == sorted(pks) and len(set(pks)) == len(pks)
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.text("SELECT pk, outcome_id FROM verdicts")).all())
    assert {r.verdict_pk: r.outcome.outcome_id for r in recorded} == stored  # each its own


def test_a_writer_outside_the_locks_is_a_conflict_and_nothing_is_written(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should a revision appear between the look-up and the insert (only a writer that skips the
    outcome locks could do that), the batch is refused whole with a retryable conflict."""
    ledger = Ledger(engine, tenant="acme")
    first = outcome("A-1", 0)
    ledger.record_results([(first, verdict_for(first))])
    monkeypatch.setattr(ingest_batch, "_latest", lambda conn, tenant, ids: {})
    pairs = [(outcome(oid, 0), verdict_for(outcome(oid, 0))) for oid in ("A-2", "A-1")]
    before = ledger_state(engine, "acme")
    with pytest.raises(LedgerConflictError, match="retry the batch"):
        ledger.record_results(pairs)
    assert ledger_state(engine, "acme") == before


def test_an_empty_batch_writes_nothing(engine: Engine) -> None:
    ledger = Ledger(engine, tenant="acme")
    assert ledger.record_results([]) == []
    assert not any(ledger.counts().values())
