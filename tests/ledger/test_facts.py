"""Outcome facts: kept by Ledger.record_results in the verdict's transaction, frozen once final,
back-filled for verdicts stored before migration 0005 (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from judge.models import Outcome
from ledger import facts
from ledger.attribution import attribute
from ledger.db import make_engine
from ledger.facts import FactSource, backfill_facts, upsert_facts
from ledger.schema import migrate
from ledger.service_tables import OutcomeFactRow
from ledger.store import Ledger
from ledger.tables import OutcomeRow, VerdictRow
from ledger.windows import DEFAULT_GRACE_HOURS, DEFAULT_WINDOW_HOURS, window_anchor
from tests.ledger.conftest import ticket, verdict_for

#: Also on a PostgreSQL ledger partitioned by month (tests/ledger/conftest.py).
PARTITIONED_TOO = ("engine",)

FACTS = OutcomeFactRow.__table__  # type: ignore[attr-defined]
VERDICTS = VerdictRow.__table__  # type: ignore[attr-defined]
SPAN = timedelta(hours=DEFAULT_WINDOW_HOURS + DEFAULT_GRACE_HOURS)
#: Where a fact's count is booked in the meters (ledger.bookings).
BOOKING = {"booked_at", "booked_entry_pk", "booking_reason"}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def recent(outcome_id: str, hours_ago: float = 1.0, **changes: object) -> Outcome:
    """A ticket whose last customer message was ``hours_ago`` hours ago (still provisional)."""
    at = datetime.now(UTC) - timedelta(hours=hours_ago)
    conversation = [
        {"role": "customer", "text": "broken", "at": _iso(at)},
        {"role": "agent", "text": "refunded", "at": _iso(at + timedelta(minutes=5))},
    ]
    return ticket(outcome_id, conversation=conversation, **changes)


def fact_rows(engine: Engine, tenant: str | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    query = sa.select(FACTS)
    if tenant is not None:
        query = query.where(FACTS.c.tenant == tenant)
    with engine.connect() as conn:
        return {(r.tenant, r.outcome_id): dict(r._mapping) for r in conn.execute(query)}


def latest_verdicts(engine: Engine) -> dict[tuple[str, str], Any]:
    """The latest verdict row of every outcome, read straight from the verdicts table."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(VERDICTS).order_by(VERDICTS.c.pk)).all()
    return {(r.tenant, r.outcome_id): r for r in rows}


def test_record_results_writes_the_billable_state(engine: Engine) -> None:
    touches = [
        {"actor": "router:triage", "kind": "router"},
        {"actor": "bot:fin", "kind": "ai", "at": "2026-03-01T10:01:00Z"},
        {"actor": "survey", "kind": "automation"},
    ]
    outcome = ticket("T-1", touches=touches)
    ledger = Ledger(engine, tenant="acme")
    [recorded] = ledger.record_results([(outcome, verdict_for(outcome, tier="assumed"))])
    fact = fact_rows(engine)[("acme", "T-1")]
    anchor = window_anchor(outcome)
    assert anchor is not None
    assert fact["verdict_pk"] == recorded.verdict_pk
    assert fact["outcome_revision"] == recorded.outcome.revision == 1
    assert (fact["decision"], fact["tier"]) == ("verified", "assumed")
    assert fact["agent"] == attribute(outcome) == "bot:fin"
    assert fact["agent_version"] == f"{outcome.agent.name}@{outcome.agent.version}"
    assert fact["model_path"] == outcome.agent.model_path
    assert fact["anchor_at"] == anchor[0]
    assert fact["final_at"] == anchor[0] + SPAN


def test_a_provisional_fact_follows_the_latest_verdict_and_revision(engine: Engine) -> None:
    ledger = Ledger(engine, tenant="acme")
    first = recent("T-1")
    ledger.record_result(first, verdict_for(first))
    revised = recent("T-1", hours_ago=0.5, signals={"escalated": True})
    [again] = ledger.record_results([(revised, verdict_for(revised, decision="not_verified"))])
    fact = fact_rows(engine)[("acme", "T-1")]
    assert again.outcome.revision == 2
    assert (fact["outcome_revision"], fact["verdict_pk"]) == (2, again.verdict_pk)
    assert fact["decision"] == "not_verified"
    anchor = window_anchor(revised)
    assert anchor is not None and fact["anchor_at"] == anchor[0]


def test_a_final_fact_is_frozen(engine: Engine) -> None:
    """An outcome from March 2026 is long final: a later overturn does not rewrite its fact."""
    ledger = Ledger(engine, tenant="acme")
    old = ticket("T-1")
    [first] = ledger.record_results([(old, verdict_for(old))])
    before = fact_rows(engine)[("acme", "T-1")]
    revised = ticket("T-1", signals={"escalated": True})
    [second] = ledger.record_results([(revised, verdict_for(revised, decision="not_verified"))])
    assert second.verdict_pk > first.verdict_pk and second.outcome.revision == 2
    assert fact_rows(engine)[("acme", "T-1")] == before
    assert before["decision"] == "verified" and before["verdict_pk"] == first.verdict_pk


def test_the_freeze_starts_exactly_at_final_at(engine: Engine) -> None:
    outcome = ticket("T-1")
    anchor = window_anchor(outcome)
    assert anchor is not None
    final_at = anchor[0] + SPAN
    Ledger(engine, tenant="acme").record_outcome(outcome)  # a fact needs its outcome (its month)

    def write(pk: int, decision: str, now: datetime) -> str:
        source = FactSource(outcome, 1, pk, decision, "confirmed", "support-resolution@1", now)
        with engine.begin() as conn:
            upsert_facts(conn, "acme", [source], now=now)
        return str(fact_rows(engine)[("acme", "T-1")]["decision"])

    assert write(1, "verified", final_at - timedelta(hours=1)) == "verified"
    assert write(2, "abstain", final_at - timedelta(microseconds=1)) == "abstain"
    assert write(3, "verified", final_at) == "abstain"  # final at final_at: frozen
    assert write(4, "verified", final_at + timedelta(days=30)) == "abstain"


def test_an_older_verdict_never_replaces_a_newer_one(engine: Engine) -> None:
    outcome = recent("T-1")
    Ledger(engine, tenant="acme").record_outcome(outcome)
    now = datetime.now(UTC)
    newer = FactSource(outcome, 1, 9, "not_verified", None, "support-resolution@1", now)
    older = FactSource(outcome, 1, 5, "verified", None, "support-resolution@1", now)
    with engine.begin() as conn:
        upsert_facts(conn, "acme", [newer], now=now)
    with engine.begin() as conn:
        upsert_facts(conn, "acme", [older], now=now)
    fact = fact_rows(engine)[("acme", "T-1")]
    assert (fact["verdict_pk"], fact["decision"]) == (9, "not_verified")


def test_one_outcome_twice_in_a_batch_keeps_the_last_verdict(engine: Engine) -> None:
    outcome = recent("T-1")
    ledger = Ledger(engine, tenant="acme")
    recorded = ledger.record_results(
        [(outcome, verdict_for(outcome)), (outcome, verdict_for(outcome, decision="abstain"))]
    )
    fact = fact_rows(engine)[("acme", "T-1")]
    assert (fact["verdict_pk"], fact["decision"]) == (recorded[1].verdict_pk, "abstain")


def test_tenants_have_separate_facts(engine: Engine) -> None:
    acme, globex = Ledger(engine, tenant="acme"), Ledger(engine, tenant="globex")
    outcome = recent("T-1")
    acme.record_result(outcome, verdict_for(outcome))
    globex.record_result(outcome, verdict_for(outcome, decision="not_verified", tier=None))
    rows = fact_rows(engine)
    assert rows[("acme", "T-1")]["decision"] == "verified"
    assert rows[("globex", "T-1")]["decision"] == "not_verified"
    assert rows[("globex", "T-1")]["tier"] is None
    assert set(fact_rows(engine, "globex")) == {("globex", "T-1")}


def test_an_outcome_without_timestamps_is_anchored_at_receipt(engine: Engine) -> None:
    outcome = ticket("T-1", conversation=[{"role": "customer", "text": "help"}])
    assert window_anchor(outcome) is None
    Ledger(engine, tenant="acme").record_result(outcome, verdict_for(outcome))
    with engine.connect() as conn:
        received = conn.execute(sa.select(OutcomeRow.__table__.c.received_at)).scalar_one()  # type: ignore[attr-defined]
    fact = fact_rows(engine)[("acme", "T-1")]
    assert fact["anchor_at"] == received
    assert fact["final_at"] == received + SPAN


def test_the_judging_rubric_window_sets_final_at(engine: Engine) -> None:
    """final_at comes from the rubric that judged: the caller's, else the tenant's stored rubric
    of that exact version, else the shipped rubric only when the version matches."""
    from judge.rubric_loader import load_rubric
    from ledger.documents import save_rubric

    ledger = Ledger(engine, tenant="acme")
    hours = {}
    # 1. The caller names the rubric's window (judge verify and the workers do).
    one = ticket("T-1")
    ledger.record_result(one, verdict_for(one, rubric="quick@1"), windows={"quick@1": 24.0})
    # 2. A rubric the tenant stored (POST /v1/rubrics), resolved by its exact version.
    shipped = load_rubric("support-resolution")
    text = (
        "name: support-resolution\nkind: support_ticket\nwindow_hours: 12\n"
        "criteria:\n  - {id: solved, question: 'Was it solved?'}\n"
    )
    stored = save_rubric(engine, "acme", text)
    assert stored.name == shipped.name and stored.version != shipped.version
    two = ticket("T-2")
    ledger.record_result(two, verdict_for(two, rubric=stored.ref))
    # 3. The shipped rubric's name with another version: not the shipped window, the default.
    three = ticket("T-3")
    ledger.record_result(three, verdict_for(three, rubric="support-resolution@0000000"))
    # 4. The shipped rubric itself.
    four = ticket("T-4")
    ledger.record_result(four, verdict_for(four, rubric=shipped.ref))
    for oid in ("T-1", "T-2", "T-3", "T-4"):
        fact = fact_rows(engine)[("acme", oid)]
        hours[oid] = (fact["final_at"] - fact["anchor_at"]).total_seconds() / 3600
    grace = DEFAULT_GRACE_HOURS
    assert hours == {
        "T-1": 24 + grace,
        "T-2": 12 + grace,
        "T-3": DEFAULT_WINDOW_HOURS + grace,
        "T-4": shipped.window_hours + grace,
    }


def test_facts_and_verdicts_commit_together(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("fact write failed")

    monkeypatch.setattr("ledger.store.record_facts", broken)
    outcome = recent("T-1")
    with pytest.raises(RuntimeError, match="fact write failed"):
        Ledger(engine, tenant="acme").record_result(outcome, verdict_for(outcome))
    assert latest_verdicts(engine) == {} and fact_rows(engine) == {}


def _record_batches(engine: Engine, outcomes: list[Outcome], n_threads: int) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(n_threads)

    def work(seed: int) -> None:
        try:
            ledger = Ledger(engine, tenant="acme")
            decisions = ("verified", "not_verified", "abstain")
            order = outcomes if seed % 2 == 0 else outcomes[::-1]
            barrier.wait(timeout=30)
            for round_ in range(3):
                batch = [
                    (o, verdict_for(o, decision=decisions[(seed + round_ + i) % 3]))
                    for i, o in enumerate(order)
                ]
                ledger.record_results(batch)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,), daemon=True) for s in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a writer hung"
    assert errors == []


def test_concurrent_writers_leave_the_latest_verdict(engine: Engine) -> None:
    """Four writers record verdicts for the same provisional outcomes at once (PostgreSQL: real
    concurrency; SQLite: serialised by BEGIN IMMEDIATE): each fact holds its latest verdict."""
    outcomes = [recent(f"T-{i}") for i in range(20)]
    _record_batches(engine, outcomes, n_threads=4)
    latest = latest_verdicts(engine)
    rows = fact_rows(engine)
    assert set(rows) == set(latest) and len(rows) == 20
    for key, fact in rows.items():
        assert fact["verdict_pk"] == latest[key].pk
        assert fact["decision"] == latest[key].decision


def test_backfill_rebuilds_the_facts_idempotently(engine: Engine) -> None:
    ledger = Ledger(engine, tenant="acme")
    items = [ticket(f"T-{i}") for i in range(7)] + [recent("R-1")]
    ledger.record_results([(o, verdict_for(o, decision="abstain")) for o in items])
    ledger.record_results([(o, verdict_for(o)) for o in items[:3]])  # T-0..2 frozen: abstain
    Ledger(engine, tenant="globex").record_result(items[0], verdict_for(items[0]))
    live = fact_rows(engine)
    with engine.begin() as conn:
        conn.execute(FACTS.delete())
    assert backfill_facts(engine) == len(live) == 9
    rebuilt = fact_rows(engine)
    latest = latest_verdicts(engine)
    ignore = {"pk", "updated_at", "verdict_pk", "decision"} | BOOKING
    for key, fact in rebuilt.items():
        # the back-fill takes each outcome's latest verdict (it has no history of freezes) ...
        assert (fact["verdict_pk"], fact["decision"]) == (latest[key].pk, latest[key].decision)
        # ... books a verified one at its anchor ...
        if fact["decision"] == "verified":
            assert (fact["booked_at"], fact["booking_reason"]) == (fact["anchor_at"], "verified")
        # ... and computes everything else exactly as the live write did
        assert {k: v for k, v in fact.items() if k not in ignore} == {
            k: v for k, v in live[key].items() if k not in ignore
        }
    assert backfill_facts(engine) == 0
    assert fact_rows(engine) == rebuilt


def test_backfill_keeps_live_facts(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(facts, "BACKFILL_CHUNK", 2)  # several chunks
    ledger = Ledger(engine, tenant="acme")
    items = [ticket(f"T-{i}") for i in range(5)]
    ledger.record_results([(o, verdict_for(o)) for o in items])
    ledger.record_results([(o, verdict_for(o, decision="abstain")) for o in items])  # frozen
    before = fact_rows(engine)
    with engine.begin() as conn:
        conn.execute(FACTS.delete().where(FACTS.c.outcome_id.in_(["T-1", "T-3"])))
    assert backfill_facts(engine) == 2
    after = fact_rows(engine)
    assert {k: after[k] for k in before if k[1] not in ("T-1", "T-3")} == {
        k: v for k, v in before.items() if k[1] not in ("T-1", "T-3")
    }
    assert after[("acme", "T-1")]["decision"] == "abstain"  # the latest verdict


def test_migrating_across_0005_backfills(ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ledger written before 0005 (no facts table) gets its facts when it is upgraded."""
    eng = make_engine(ledger_url)
    try:
        migrate(eng, revision="0004")
        with monkeypatch.context() as m:
            m.setattr("ledger.store.record_facts", lambda *a, **k: None)  # no table yet
            m.setattr("ledger.bookings.lock_clock", lambda *a, **k: None)  # nor its column
            m.setattr("ledger.store.refresh_review_rows", lambda *a, **k: 0)  # nor the queue
            m.setattr("ledger.store.drop_review_rows", lambda *a, **k: None)
            ledger = Ledger(eng, tenant="acme")
            items = [ticket(f"T-{i}") for i in range(3)]
            ledger.record_results([(o, verdict_for(o, decision="abstain")) for o in items])
            ledger.record_results([(items[0], verdict_for(items[0]))])
        migrate(eng)
        rows = fact_rows(eng)
        latest = latest_verdicts(eng)
        assert set(rows) == set(latest) == {("acme", f"T-{i}") for i in range(3)}
        assert rows[("acme", "T-0")]["decision"] == "verified"
        assert {rows[k]["verdict_pk"] for k in rows} == {latest[k].pk for k in latest}
        migrate(eng)  # at head: nothing more happens
        assert fact_rows(eng) == rows
    finally:
        eng.dispose()


def test_a_stored_rubric_that_no_longer_parses_takes_the_default_window_and_says_so(
    engine: Engine, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stored rubric decides when its outcomes' counts become final. One that a later, stricter
    rubric format refuses still gets a window (the default), but with a warning naming the
    tenant, the rubric and the fix, once per process (a worker asks on every batch); a valid
    one keeps its own window, silently."""
    import logging

    from ledger.facts import stored_window_hours
    from ledger.service_tables import StoredDocumentRow
    from ledger.store import ensure_tenant

    monkeypatch.setattr(facts, "_UNPARSEABLE_REPORTED", set())  # warned before in this process
    ensure_tenant(engine, "acme")
    head = "kind: support_ticket\ncriteria:\n  - id: ok\n    question: Is it resolved\n"
    valid = f"name: own\nwindow_hours: 12\n{head}"
    stale = f"name: old\n{head}    gate: maybe\n"  # a gate must be true or false
    docs = StoredDocumentRow.__table__  # type: ignore[attr-defined]
    now = datetime(2026, 3, 1, tzinfo=UTC)
    with engine.begin() as conn:
        for name, text in (("own", valid), ("old", stale)):
            conn.execute(
                sa.insert(docs),
                {"tenant": "acme", "kind": "rubric", "name": name, "version": "v1",
                 "text": text, "created_at": now},
            )  # fmt: skip
    with (
        caplog.at_level(logging.WARNING, logger="outcome_judge.ledger"),
        engine.connect() as conn,
    ):
        assert stored_window_hours(conn, "acme", "own@v1") == 12
        assert not caplog.records
        assert stored_window_hours(conn, "acme", "old@v1") == DEFAULT_WINDOW_HOURS
        assert stored_window_hours(conn, "acme", "old@v1") == DEFAULT_WINDOW_HOURS  # said once
    [record] = caplog.records
    message = record.getMessage()
    assert "'acme'" in message and "old@v1" in message and "POST /v1/rubrics" in message
    assert "gate" in message  # what was wrong, from the parser
