"""The ledger store on a real database (SQLite file; PostgreSQL when configured)."""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import func, select

from judge.models import Label
from judge.protocols import CallStore
from ledger.callstore import DbCallStore
from ledger.db import LedgerDatabaseError, make_engine, session
from ledger.records import LabelledVerdicts
from ledger.store import Ledger, TenantMismatchError
from ledger.tables import JudgeCallRow, OutcomeRow, VerdictRow
from tests.ledger.conftest import judge_call, ticket, verdict_for

#: Also on a PostgreSQL ledger partitioned by month (tests/ledger/conftest.py).
PARTITIONED_TOO = ("engine",)


@pytest.fixture
def ledger(engine: Engine) -> Ledger:
    return Ledger(engine, tenant="acme")


# -- outcomes: idempotent, revisions, history -----------------------------------------------------


def test_same_outcome_many_times_is_one_row(ledger: Ledger) -> None:
    refs = [ledger.record_outcome(ticket()) for _ in range(5)]
    # Parsed again from its own JSON (a re-import of the same file) it is still the same outcome.
    again = type(ticket()).model_validate_json(ticket().model_dump_json())
    refs.append(ledger.record_outcome(again))

    assert [r.created for r in refs] == [True] + [False] * 5
    assert {r.revision for r in refs} == {1}
    assert ledger.counts()["outcomes"] == 1
    assert ledger.counts()["outcome_revisions"] == 1
    assert ledger.outcome("T-1001") == ticket()


def test_changed_payload_is_a_new_revision_and_history_is_kept(ledger: Ledger) -> None:
    original = ticket()
    reopened = ticket(
        signals={"customer_confirmed": True, "csat": 5, "reopened_at": "2026-03-02T08:00:00Z"}
    )
    relabelled = ticket(
        signals={"customer_confirmed": True, "csat": 5, "reopened_at": "2026-03-02T08:00:00Z"},
        label={"resolved": False, "by": "qa-team"},
    )

    r1 = ledger.record_outcome(original)
    r2 = ledger.record_outcome(reopened)
    r3 = ledger.record_outcome(relabelled)
    r3_again = ledger.record_outcome(relabelled)

    assert (r1.revision, r2.revision, r3.revision, r3_again.revision) == (1, 2, 3, 3)
    assert r3_again.created is False
    # The content a judge sees changed with the signals, not with the label.
    assert r1.content_hash != r2.content_hash == r3.content_hash
    assert [ref.revision for ref in ledger.revisions("T-1001")] == [1, 2, 3]
    assert ledger.outcome("T-1001", revision=1) == original
    assert ledger.outcome("T-1001", revision=2) == reopened
    assert ledger.outcome("T-1001") == relabelled
    # Going back to an earlier payload is a change too: recorded as revision 4, never overwritten.
    assert ledger.record_outcome(original).revision == 4
    assert ledger.counts() == {
        "outcomes": 1,
        "outcome_revisions": 4,
        "verdicts": 0,
        "judge_calls": 0,
        "labels": 0,
    }


def test_outcome_columns_hold_agent_and_cost(ledger: Ledger) -> None:
    ledger.record_outcome(ticket())
    with session(ledger.engine, readonly=True) as db:
        row = db.exec(select(OutcomeRow)).one()
    assert (row.tenant, row.kind, row.agent_name, row.agent_version, row.model_path) == (
        "acme",
        "support_ticket",
        "fin",
        "2.3",
        "gpt-4o-mini",
    )
    assert row.agent_cost_usd == Decimal("0.041")
    assert row.received_at.tzinfo is not None


def test_concurrent_ingest_of_one_outcome_never_duplicates_or_fails(ledger: Ledger) -> None:
    """Eight writers race on one id: same payload -> one row; distinct payloads -> 1..n."""
    errors: list[BaseException] = []

    def run(target: Any) -> None:
        threads = [threading.Thread(target=target, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def same(_: int) -> None:
        try:
            ledger.record_outcome(ticket("T-race"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def different(i: int) -> None:
        try:
            ledger.record_outcome(ticket("T-race2", metadata={"writer": i}))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    run(same)
    run(different)
    assert errors == []
    assert [r.revision for r in ledger.revisions("T-race")] == [1]
    assert [r.revision for r in ledger.revisions("T-race2")] == list(range(1, 9))


def test_outcome_from_another_tenant_is_refused(ledger: Ledger) -> None:
    with pytest.raises(TenantMismatchError, match=r"tenant 'globex'.*--tenant"):
        ledger.record_outcome(ticket(tenant="globex"))
    assert ledger.record_outcome(ticket(tenant="acme")).revision == 1


def test_tenants_do_not_see_each_other(engine: Engine) -> None:
    acme, globex = Ledger(engine, tenant="acme"), Ledger(engine, tenant="globex")
    acme.record_result(ticket(), verdict_for(ticket()))
    assert globex.counts() == dict.fromkeys(acme.counts(), 0)
    assert globex.outcome("T-1001") is None
    hash_ = ticket().content_hash()
    assert (
        globex.verdict_for(
            "T-1001", rubric="support-resolution@3f2a9c1", panel="default@8b1d", content_hash=hash_
        )
        is None
    )
    assert globex.record_outcome(ticket()).revision == 1  # its own T-1001, its own history


# -- results: outcome + verdict + label in one transaction -----------------------------------


def test_record_result_writes_outcome_verdict_and_label_once(ledger: Ledger) -> None:
    outcome = ticket()
    first = ledger.record_result(outcome, verdict_for(outcome))
    second = ledger.record_result(outcome, verdict_for(outcome, confidence=0.8))

    assert first.outcome.created and not second.outcome.created
    assert (first.label_added, second.label_added) == (True, False)
    assert ledger.counts() == {
        "outcomes": 1,
        "outcome_revisions": 1,
        "verdicts": 2,
        "judge_calls": 0,
        "labels": 1,
    }
    [stored_label] = list(ledger.iter_labels())
    assert stored_label.label == outcome.label
    assert stored_label.source == "outcome"
    # The same label posted again (another source) is the same judgement: still one row.
    assert outcome.label is not None
    assert ledger.record_label("T-1001", outcome.label, source="api") is False
    assert ledger.record_label("T-1001", Label(resolved=False, by="alice")) is True


def test_a_label_of_an_outcome_the_tenant_does_not_have_is_refused(ledger: Ledger) -> None:
    from ledger.store import UnknownOutcomeError

    ledger.record_outcome(ticket())
    other = Ledger(ledger.engine, tenant="globex")
    with pytest.raises(UnknownOutcomeError, match="record the outcome before labelling it"):
        other.record_label("T-1001", Label(resolved=False, by="mallory"))
    with pytest.raises(UnknownOutcomeError, match="no outcome 'T-9'"):
        ledger.record_label("T-9", Label(resolved=True, by="alice"))
    assert ledger.counts()["labels"] == 0  # neither refused label was written


def test_verdict_for_returns_latest_matching_verdict(ledger: Ledger) -> None:
    outcome = ticket()
    key = {"rubric": "support-resolution@3f2a9c1", "panel": "default@8b1d"}
    assert ledger.verdict_for("T-1001", content_hash=outcome.content_hash(), **key) is None

    ledger.record_result(outcome, verdict_for(outcome, confidence=0.7))
    ledger.record_result(outcome, verdict_for(outcome, confidence=0.9, flags=["low_confidence"]))
    ledger.record_result(outcome, verdict_for(outcome, panel="cheap@1111", confidence=0.5))

    found = ledger.verdict_for("T-1001", content_hash=outcome.content_hash(), **key)
    assert found is not None
    assert (found.confidence, found.flags) == (0.9, ["low_confidence"])
    assert found.content_hash == outcome.content_hash()
    assert found.criteria["request_understood"].passed is True
    # Another rubric version or changed content must be judged again.
    assert ledger.verdict_for("T-1001", content_hash="0" * 64, **key) is None
    assert (
        ledger.verdict_for(
            "T-1001",
            rubric="support-resolution@ffffff",
            panel="default@8b1d",
            content_hash=outcome.content_hash(),
        )
        is None
    )


def test_verdict_on_other_content_or_outcome_is_refused(ledger: Ledger) -> None:
    outcome = ticket()
    with pytest.raises(ValueError, match="different content"):
        ledger.record_result(outcome, verdict_for(outcome, content_hash="f" * 64))
    with pytest.raises(ValueError, match="not 'T-1001'"):
        ledger.record_result(outcome, verdict_for(ticket("T-2")))
    assert ledger.counts()["outcome_revisions"] == 0


def test_failure_midway_writes_nothing(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outcome, verdict and label reach the database, then the transaction fails: no trace."""
    original = Ledger._write_label

    def write_then_fail(self: Ledger, db: Any, *args: Any) -> bool:
        original(self, db, *args)
        db.flush()  # everything so far is really sent to the database
        raise RuntimeError("disk full")

    monkeypatch.setattr(Ledger, "_write_label", write_then_fail)
    monkeypatch.setattr("ledger.store._set_based", lambda ids: False)  # the row-by-row writer
    outcome = ticket()
    with pytest.raises(RuntimeError, match="disk full"):
        ledger.record_result(outcome, verdict_for(outcome), calls=[judge_call()])
    assert ledger.counts() == dict.fromkeys(ledger.counts(), 0)


def test_failure_after_a_set_based_batch_writes_nothing(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The set-based writer sent outcomes, touches, labels and verdicts, then the transaction
    fails (at the meter's facts): no trace of the batch."""

    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("ledger.store.record_facts", fail)
    outcomes = [ticket(f"T-{i}") for i in range(3)]
    with pytest.raises(RuntimeError, match="disk full"):
        ledger.record_results([(o, verdict_for(o)) for o in outcomes], calls=[judge_call()])
    assert ledger.counts() == dict.fromkeys(ledger.counts(), 0)


def test_failing_statement_rolls_back_the_whole_result(ledger: Ledger) -> None:
    """A call the database itself rejects (NOT NULL) undoes the outcome and verdict too."""
    outcome = ticket()
    broken = judge_call().model_copy(update={"cache_key": None})
    with pytest.raises(sa.exc.IntegrityError):
        ledger.record_result(outcome, verdict_for(outcome), calls=[judge_call(), broken])
    assert ledger.counts() == dict.fromkeys(ledger.counts(), 0)
    ledger.record_result(outcome, verdict_for(outcome), calls=[judge_call()])
    assert ledger.counts()["judge_calls"] == 1


def test_iter_verdicts_pages_and_filters_by_time(ledger: Ledger) -> None:
    ids = [f"T-{i}" for i in range(5)]
    for outcome_id in ids:
        outcome = ticket(outcome_id)
        ledger.record_result(outcome, verdict_for(outcome))
    stored = list(ledger.iter_verdicts(batch_size=2))
    assert [s.verdict.outcome_id for s in stored] == ids
    assert all(s.outcome_revision == 1 and s.created_at.tzinfo is not None for s in stored)

    later = stored[-1].created_at + timedelta(seconds=1)
    assert list(ledger.iter_verdicts(since=later)) == []
    assert len(list(ledger.iter_verdicts(until=later))) == 5
    assert [s.verdict.outcome_id for s in ledger.iter_verdicts(outcome_id="T-3")] == ["T-3"]
    assert list(ledger.iter_verdicts(panel="other@1")) == []


def test_labelled_verdicts_are_those_of_labelled_outcomes_in_order(ledger: Ledger) -> None:
    """What an audit's correction compares (the others, most of a tenant's, are not read)."""
    for round_ in range(2):  # two verdicts per outcome, interleaved
        for i in range(6):
            outcome = ticket(f"T-{i}", label=None)
            decision = "verified" if (i + round_) % 2 else "not_verified"
            ledger.record_result(outcome, verdict_for(outcome, decision=decision))
    ledger.record_label("T-1", Label(resolved=True, by="qa"))
    ledger.record_label("T-4", Label(resolved=False, by="qa"))
    ledger.record_label("T-4", Label(resolved=True, by="lead"))
    other = Ledger(ledger.engine, tenant="globex")
    other.record_outcome(ticket("T-2"))
    other.record_label("T-2", Label(resolved=True, by="qa"))  # another tenant's label
    every = [s.verdict for s in ledger.iter_verdicts(batch_size=3)]
    read = ledger.labelled_verdicts()
    labelled = [s.verdict for s in read.verdicts]
    assert labelled == [v for v in every if v.outcome_id in {"T-1", "T-4"}]
    assert len(labelled) == 4
    assert (read.total, read.outcomes, read.last_panel) == (12, 6, every[-1].panel)
    assert [(s.outcome_id, s.label.by) for s in read.labels] == [
        ("T-1", "qa"), ("T-4", "qa"), ("T-4", "lead"),
    ]  # fmt: skip
    assert ledger.labelled_verdicts(panels=["other@1"]) == LabelledVerdicts(
        [], read.labels, 0, 0, None
    )


def test_times_come_back_as_the_same_instant_in_utc(ledger: Ledger) -> None:
    cest = timezone(timedelta(hours=2))
    label = Label(resolved=True, by="qa", at=datetime(2026, 3, 2, 11, 0, tzinfo=cest))
    ledger.record_outcome(ticket())
    ledger.record_label("T-1001", label)
    [stored] = list(ledger.iter_labels())
    assert stored.label.at == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert stored.label.at is not None and stored.label.at.utcoffset() == timedelta(0)


def test_money_sums_exactly_in_sql(ledger: Ledger) -> None:
    for i in range(10):
        outcome = ticket(f"T-{i}")
        ledger.record_result(outcome, verdict_for(outcome, cost_usd=0.1))
    with session(ledger.engine, readonly=True) as db:
        total = db.exec(select(func.sum(VerdictRow.cost_usd))).one()
    assert total == Decimal("1")  # 0.1 summed ten times as floats is 0.9999999999999999


# -- judge calls: the engine's cache ---------------------------------------------------------


def test_call_store_is_a_call_store(engine: Engine) -> None:
    store: CallStore = DbCallStore(engine, tenant="acme")  # mypy checks the protocol statically
    assert inspect.iscoroutinefunction(store.lookup)
    assert inspect.iscoroutinefunction(store.record)


def test_lookup_returns_the_recorded_call(engine: Engine) -> None:
    store = DbCallStore(engine, tenant="acme")
    call = judge_call("key-a")

    async def scenario() -> tuple[Any, Any]:
        before = await store.lookup("key-a")
        await store.record(call)
        return before, await store.lookup("key-a")

    before, after = asyncio.run(scenario())
    assert before is None
    assert after == call  # reply, tokens, cost, latency, prompt and time as recorded


def test_failed_attempts_are_recorded_but_never_a_cache_hit(engine: Engine) -> None:
    store = DbCallStore(engine, tenant="acme")
    failed = judge_call("key-b", status="error", error="HTTP 429", reply=None, attempt=1)
    ok = judge_call("key-b", attempt=2, reply="Score: 5")
    failed_later = judge_call(
        "key-b",
        status="error",
        error="timeout",
        reply=None,
        attempt=3,
        at=ok.at + timedelta(minutes=1),
    )
    replayed = judge_call("key-c", cached=True)

    async def scenario() -> list[Any]:
        await store.record(failed)
        only_failed = await store.lookup("key-b")
        await store.record(ok)
        await store.record(failed_later)
        await store.record(replayed)
        pending = [only_failed, await store.lookup("key-b"), await store.lookup("key-c")]
        await store.aflush()
        flushed = [await store.lookup("key-b"), await store.lookup("key-c")]
        assert flushed == pending[1:]  # the same answers from the buffer and from the table
        return pending

    only_failed, hit, replay_hit = asyncio.run(scenario())
    assert only_failed is None
    assert hit == ok
    assert replay_hit is None  # a cache hit is not itself a source for the cache
    assert Ledger(engine, tenant="acme").counts()["judge_calls"] == 4
    # Another tenant's calls are never served.
    assert asyncio.run(DbCallStore(engine, tenant="globex").lookup("key-b")) is None


def test_fifty_concurrent_records(engine: Engine) -> None:
    store = DbCallStore(engine, tenant="acme")
    calls = [judge_call(f"key-{i}", sample=i % 3, attempt=1 + i % 2) for i in range(50)]

    async def scenario() -> list[Any]:
        await asyncio.gather(*(store.record(c) for c in calls))
        found = list(await asyncio.gather(*(store.lookup(c.cache_key) for c in calls)))
        await store.aflush()
        return found

    found = asyncio.run(scenario())
    assert found == calls
    assert Ledger(engine, tenant="acme").counts()["judge_calls"] == 50


def test_record_calls_batch(ledger: Ledger) -> None:
    assert ledger.record_calls([]) == 0
    assert ledger.record_calls([judge_call("a"), judge_call("b", status="error", reply=None)]) == 2
    with session(ledger.engine, readonly=True) as db:
        statuses = sorted(db.exec(select(JudgeCallRow.status)).all())
    assert statuses == ["error", "ok"]


def test_recorded_call_holds_no_credentials(engine: Engine) -> None:
    store = DbCallStore(engine, tenant="acme")
    asyncio.run(store.record(judge_call()))
    store.flush()
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM judge_calls")).mappings().one()
    columns = {str(c).lower() for c in row.keys()}  # noqa: SIM118
    assert not {"api_key", "authorization", "headers"} & columns
    text = " ".join(str(v) for v in row.values()).lower()
    assert "authorization" not in text
    assert "api_key" not in text
    assert "bearer " not in text


# -- connection and session behaviour ---------------------------------------------------------


def test_session_rolls_back_on_error(ledger: Ledger) -> None:
    ledger.record_outcome(ticket())
    with pytest.raises(KeyError), session(ledger.engine) as db:
        db.add(
            OutcomeRow(
                tenant="acme",
                outcome_id="T-x",
                revision=1,
                content_hash="h",
                payload_hash="p",
                kind="support_ticket",
                payload={},
            )
        )
        db.flush()
        raise KeyError("boom")
    assert ledger.counts()["outcome_revisions"] == 1


def test_sqlite_file_settings(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/a/b/ledger.db"
    eng = make_engine(url)
    try:
        with eng.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert (conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) >= 5000
    finally:
        eng.dispose()
    assert (tmp_path / "a" / "b" / "ledger.db").exists()


def test_a_new_sqlite_ledger_waits_for_another_process_writing_to_it(tmp_path: Any) -> None:
    """Switching a file to WAL needs it to itself, and SQLite answers BUSY at once (not through
    the busy timeout) while another connection holds a write lock on it. Several processes
    opening one new ledger together hit this: the ledger must wait, not fail "locked"."""
    path = tmp_path / "ledger.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE first_writer (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO first_writer VALUES (1)")
    released = threading.Timer(0.5, lambda: writer.execute("COMMIT"))
    released.start()
    started = time.monotonic()
    eng = make_engine(f"sqlite:///{path}")
    try:
        with eng.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert time.monotonic() - started >= 0.4  # it waited for the writer
    finally:
        released.join()
        eng.dispose()
        writer.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("", r"empty.*sqlite:///"),
        ("not a url", r"malformed database URL.*postgresql\+psycopg://"),
        ("mysql://u:p@localhost/db", r"unsupported database 'mysql'.*SQLite or PostgreSQL"),
        ("postgresql+psycopg2://u:p@localhost/db", r"driver.*not installed.*psycopg 3"),
        (
            "postgresql+psycopg://u:hunter2@127.0.0.1:1/ledger",
            r"cannot connect to PostgreSQL at 127\.0\.0\.1:1 .*pg_ctlcluster 15 main start",
        ),
    ],
)
def test_connection_errors_name_the_fix(url: str, expected: str) -> None:
    with pytest.raises(LedgerDatabaseError, match=expected) as info:
        make_engine(url)
    assert "hunter2" not in str(info.value)


def test_sqlite_path_that_is_a_folder(tmp_path: Any) -> None:
    with pytest.raises(LedgerDatabaseError, match=r"cannot open the SQLite ledger.*writable file"):
        make_engine(f"sqlite:///{tmp_path}")


def test_tenant_name_is_validated(engine: Engine) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        Ledger(engine, tenant="")
    with pytest.raises(ValueError, match="at most 100"):
        DbCallStore(engine, tenant="x" * 101)


# -- batches ---------------------------------------------------------------------------------------
def test_record_results_writes_a_batch_in_one_transaction(ledger: Ledger) -> None:
    outcomes = [ticket(f"T-{i}", label={"resolved": True, "by": "qa"}) for i in range(5)]
    recorded = ledger.record_results([(o, verdict_for(o)) for o in outcomes])
    assert [r.outcome.outcome_id for r in recorded] == [o.id for o in outcomes]
    assert ledger.counts()["verdicts"] == 5 and ledger.counts()["labels"] == 5


def test_a_bad_pair_in_a_batch_writes_nothing_of_the_batch(ledger: Ledger) -> None:
    good = ticket("T-good")
    bad = ticket("T-bad")
    with pytest.raises(ValueError, match="not 'T-bad'"):
        ledger.record_results([(good, verdict_for(good)), (bad, verdict_for(good))])
    assert ledger.counts()["outcomes"] == 0 and ledger.counts()["verdicts"] == 0


def test_call_records_are_batched_but_never_held_longer_than_the_bounds(engine: Engine) -> None:
    store = DbCallStore(engine, tenant="acme", batch_size=3, max_delay=3600)
    counts = Ledger(engine, tenant="acme").counts

    async def scenario() -> list[int]:
        seen = []
        for i in range(4):
            await store.record(judge_call(f"k-{i}"))
            seen.append(counts()["judge_calls"])
        return seen

    # Written in one transaction when the third call arrives; the fourth waits for a flush.
    assert asyncio.run(scenario()) == [0, 0, 3, 3]
    store.flush()
    assert counts()["judge_calls"] == 4
    prompt = DbCallStore(engine, tenant="acme", batch_size=100, max_delay=0)
    asyncio.run(prompt.record(judge_call("k-now")))
    assert counts()["judge_calls"] == 5  # max_delay=0: every record is written at once
