"""The set-based batch ingest (:func:`ledger.ingest.record_outcomes`) leaves the ledger exactly
as storing the same outcomes one by one through the per-row store does, on SQLite and
PostgreSQL: revisions, hashes, payloads, touches, labels, the review queue and the per-item
answers."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from judge.models import Outcome, canonical_json, content_hash_of, digest_of
from ledger import ingest_batch
from ledger.ingest import IngestConflictError, record_outcomes
from ledger.review_index import backfill_review_queue
from ledger.review_queue import review_queue
from ledger.store import EMBEDDED_LABEL_SOURCE, Ledger, label_digest
from ledger.tables import TouchRow
from tests.ledger.conftest import ticket, verdict_for

#: Also on a ledger partitioned by month (tests/ledger/conftest.py).
PARTITIONED_TOO = ("engine", "url")
IDS = ["A-1", "A-2", "A-3", "é-4"]
LABELS: list[dict[str, Any] | None] = [
    None,
    {"resolved": True, "by": "qa", "at": "2026-03-02T09:00:00"},  # naive: taken as UTC
    {"resolved": False, "criteria": {"refund_issued": False}, "note": "wrong order"},
]
TOUCHES: list[list[dict[str, Any]]] = [
    [],
    [{"actor": "bot:fin", "kind": "ai", "at": "2026-03-01T10:00:05"}],
    [
        {"actor": "bot:fin", "kind": "ai"},
        {"actor": "ana", "kind": "human", "at": "2026-03-01T12:00:00+02:00"},
    ],
]  # fmt: skip


def outcome(outcome_id: str, variant: int) -> Outcome:
    """Variant digits: conversation text, touches, label, agent cost (each part changes the
    payload; only the first two change what a judge sees)."""
    text, touches, label, cost = variant % 2, variant // 2 % 3, variant // 6 % 3, variant // 18
    return ticket(
        outcome_id,
        tenant=None,
        conversation=[
            {"role": "customer", "text": f"help {text}", "at": "2026-03-01T10:00:00"},
            {"role": "agent", "author": "bot:fin", "text": "done"},
        ],
        touches=TOUCHES[touches],
        label=LABELS[label],
        agent={"name": "fin", "version": "2.3", "cost_usd": [0.041, 0.5][cost]},
    )


def one_by_one(engine: Engine, tenant: str, batch: list[Outcome]) -> list[dict[str, Any]]:
    """The reference: each outcome through ``Ledger.record_outcome`` (one transaction, per-row
    statements), then its embedded label through ``Ledger.record_label``."""
    ledger = Ledger(engine, tenant=tenant)
    out = []
    for index, item in enumerate(batch):
        ref = ledger.record_outcome(item)
        if item.label is not None:
            ledger.record_label(item.id, item.label, source=EMBEDDED_LABEL_SOURCE)
        status = "unchanged" if not ref.created else "created" if ref.revision == 1 else "revised"
        out.append({"index": index, "id": item.id, "revision": ref.revision, "status": status})
    return out


def state(engine: Engine, tenant: str) -> dict[str, Any]:
    """Everything the ingest writes for ``tenant`` (minus write times and keys)."""
    queries = {
        "outcomes": "SELECT outcome_id, revision, content_hash, payload_hash, kind, payload, "
        "agent_name, agent_version, model_path, agent_cost_usd FROM outcomes",
        "touches": "SELECT outcome_id, outcome_revision, seq, actor, kind, at FROM touches",
        "labels": 'SELECT outcome_id, digest, source, resolved, "by", at, criteria, note '
        "FROM labels",
        "queue": "SELECT outcome_id, reason FROM review_queue",
    }
    out: dict[str, Any] = {}
    with engine.connect() as conn:
        for name, query in queries.items():
            rows = conn.execute(sa.text(f"{query} WHERE tenant = :t"), {"t": tenant}).all()
            # JSON columns come back as dicts on PostgreSQL and as text on SQLite: compare text.
            out[name] = sorted(
                tuple(canonical_json(v) if isinstance(v, dict) else _utc(v) for v in row)
                for row in rows
            )
    return out


def _utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    if isinstance(value, str) and value[:1] == "{":
        return canonical_json(json.loads(value))
    return value


_step = st.one_of(
    st.tuples(
        st.just("batch"),
        st.lists(st.tuples(st.sampled_from(IDS), st.integers(0, 35)), min_size=1, max_size=6),
    ),
    st.tuples(st.just("abstain"), st.tuples(st.sampled_from(IDS), st.integers(0, 35))),
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_step, min_size=1, max_size=5))
def test_a_batch_stores_what_storing_one_by_one_stores(
    engine: Engine, steps: list[tuple[str, Any]]
) -> None:
    run = uuid.uuid4().hex[:8]
    batched, single = f"batch-{run}", f"single-{run}"  # fresh tenants: examples share the db
    for kind, what in steps:
        if kind == "abstain":  # a verdict that queues the outcome for review, on both ledgers
            item = outcome(*what)
            for tenant in (batched, single):
                Ledger(engine, tenant=tenant).record_result(
                    item, verdict_for(item, decision="abstain")
                )
            continue
        batch = [outcome(oid, variant) for oid, variant in what]
        variants: dict[str, set[str]] = {}
        for item in batch:
            variants.setdefault(item.id, set()).add(digest_of(item.model_dump(mode="json")))
        if any(len(v) > 1 for v in variants.values()):  # one id, two payloads: refused whole
            before = state(engine, batched)
            with pytest.raises(IngestConflictError, match="appears twice in the batch"):
                record_outcomes(engine, batched, batch)
            assert state(engine, batched) == before
            continue
        assert record_outcomes(engine, batched, batch) == one_by_one(engine, single, batch)
        assert state(engine, batched) == state(engine, single)
    queue = [{i.outcome_id for i in review_queue(engine, t)[0]} for t in (batched, single)]
    assert queue[0] == queue[1]


def test_digests_are_the_outcome_s_own() -> None:
    """The digests the batch takes from one dump equal the per-outcome ones (``content_hash``,
    the payload hash ``Ledger.record_outcome`` stores, the label digest)."""
    for variant in range(36):
        item = outcome("A-1", variant)
        dump = item.model_dump(mode="json")
        prepared = ingest_batch.prepare(item)
        assert (prepared.payload_text, prepared.payload_hash) == (
            canonical_json(dump),
            digest_of(dump),
        )
        assert content_hash_of(prepared.payload) == item.content_hash()
        expected = None if item.label is None else label_digest(item.label)
        assert prepared.label_digest == expected


def test_an_unchanged_outcome_gets_the_label_it_was_stored_without(engine: Engine) -> None:
    """``Ledger.record_outcome`` stores no label; re-ingesting the same payload adds it (and
    takes the outcome out of the review queue), as the per-item ingest always did."""
    item = outcome("A-1", 6)  # with a label
    ledger = Ledger(engine, tenant="acme")
    ledger.record_result(item, verdict_for(item, decision="abstain"))
    with engine.begin() as conn:  # as if stored by a path that writes no label
        conn.execute(sa.text("DELETE FROM labels"))
        backfill_review_queue(conn)
    assert [i.outcome_id for i in review_queue(engine, "acme")[0]] == ["A-1"]
    assert record_outcomes(engine, "acme", [item])[0]["status"] == "unchanged"
    assert [lab.source for lab in ledger.iter_labels()] == [EMBEDDED_LABEL_SOURCE]
    assert review_queue(engine, "acme")[0] == []
    record_outcomes(engine, "acme", [item])  # and once only
    assert len(list(ledger.iter_labels())) == 1


def test_a_writer_outside_the_locks_is_a_conflict_not_a_500(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should a row appear between the look-up and the insert (only a writer that skips the
    outcome locks could do that), the batch is refused whole with a retryable conflict."""
    record_outcomes(engine, "acme", [outcome("A-1", 0)])
    monkeypatch.setattr(ingest_batch, "_latest", lambda conn, tenant, ids: {})
    with pytest.raises(IngestConflictError, match="retry the ingest") as refused:
        record_outcomes(engine, "acme", [outcome("A-2", 0), outcome("A-1", 1)])
    assert refused.value.details == [{"reason": "concurrent_writes"}]
    assert [r.revision for r in Ledger(engine, tenant="acme").revisions("A-1")] == [1]
    assert Ledger(engine, tenant="acme").revisions("A-2") == []


def test_times_are_stored_as_utc_whatever_the_session_time_zone(ledger_url: str) -> None:
    """COPY bypasses the column type that reads a naive time as UTC: the rows must carry UTC
    times themselves, or a server (or session) in another time zone would shift them."""
    from sqlalchemy.engine import make_url

    from ledger.db import make_engine
    from ledger.schema import migrate

    url = make_url(ledger_url)
    if url.get_backend_name() == "postgresql":
        options = f"{url.query.get('options', '')} -ctimezone=Asia/Kolkata".strip()
        url = url.update_query_dict({"options": options})
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        migrate(engine)
        record_outcomes(engine, "acme", [outcome("A-1", 8)])  # naive touch and label times
        ledger = Ledger(engine, tenant="acme")
        [label] = list(ledger.iter_labels())
        assert label.label.at == datetime(2026, 3, 2, 9, tzinfo=UTC)
        with engine.connect() as conn:
            at = conn.execute(sa.select(TouchRow.__table__.c.at)).scalar_one()  # type: ignore[attr-defined]
        assert at == datetime(2026, 3, 1, 10, 0, 5, tzinfo=UTC)
    finally:
        engine.dispose()
