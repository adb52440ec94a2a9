"""What a worker reads per claimed batch in one query each: verdicts on record (the resume rule)
and judge calls by cache key (a long-lived call store's prefetch), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from ledger.callstore import DbCallStore
from ledger.store import Ledger
from tests.ledger.conftest import judge_call, ticket, verdict_for
from tests.ledger.plans import analyze, captured, ledger_without_autovacuum, replayed_rows


def test_recorded_verdicts_equal_the_one_by_one_rule(engine: Engine) -> None:
    ledger = Ledger(engine, tenant="acme")
    first, changed = ticket("T-1"), ticket("T-2")
    ledger.record_result(first, verdict_for(first))
    ledger.record_result(first, verdict_for(first, decision="abstain", tier=None))  # latest
    ledger.record_result(changed, verdict_for(changed))
    edited = ticket("T-2", signals={"customer_confirmed": False})  # another content: no verdict
    other_panel = (first.id, "support-resolution@3f2a9c1", "other@1", first.content_hash())
    wanted = [
        (o.id, "support-resolution@3f2a9c1", "default@8b1d", o.content_hash())
        for o in (first, changed, edited)
    ] + [other_panel, ("T-404", "r@1", "p@1", "0" * 64)]
    found = ledger.recorded_verdicts(wanted)
    for key in wanted:
        one = ledger.recorded_verdict(key[0], rubric=key[1], panel=key[2], content_hash=key[3])
        assert found.get(key) == one
    assert found[wanted[0]].verdict.decision == "abstain"
    assert set(found) == set(wanted[:2])
    assert Ledger(engine, tenant="globex").recorded_verdicts(wanted) == {}


def test_prefetch_answers_from_memory_what_the_ledger_held(engine: Engine) -> None:
    """One store for a worker's life: a dead worker's recorded calls are found by the batch
    that takes its items over, later look-ups ask the ledger nothing, and forget empties it."""
    dead = DbCallStore(engine, tenant="acme")
    old = judge_call("key-a", reply="older")
    latest = judge_call("key-a", reply="latest", at=old.at + timedelta(minutes=1))
    dead.record_sync(old)
    dead.record_sync(latest)
    dead.record_sync(judge_call("key-b", status="error", reply=None))
    dead.record_sync(judge_call("key-c", cached=True))
    store = DbCallStore(engine, tenant="acme", trust_empty=False)
    mine = judge_call("key-b", attempt=2, reply="mine")

    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    async def scenario() -> tuple[list[Any], list[Any]]:
        await store.prefetch(["key-a", "key-b", "key-c", "key-d"])
        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            seen = [await store.lookup(k) for k in ("key-a", "key-b", "key-c", "key-d")]
            await store.record(mine)  # a call made meanwhile is served too
            seen.append(await store.lookup("key-b"))
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        store.forget(["key-a", "key-b", "key-c", "key-d"])
        await store.aflush()
        return seen, [await store.lookup("key-a"), await store.lookup("key-b")]

    from_memory, from_ledger = asyncio.run(scenario())
    assert [c.reply if c else None for c in from_memory] == [
        "latest",
        None,  # only a failed attempt: never a cache hit
        None,  # a cache hit is no source for the cache
        None,
        "mine",
    ]
    assert statements == []  # answered from memory: the ledger was not asked
    assert [c.reply for c in from_ledger] == ["latest", "mine"]
    assert store._known == {}


def test_a_long_lived_store_sees_calls_recorded_after_it_started(engine: Engine) -> None:
    """Without trust_empty a store never concludes "the tenant has no calls" for good."""
    store = DbCallStore(engine, tenant="acme", trust_empty=False)
    assert asyncio.run(store.lookup("key-late")) is None
    DbCallStore(engine, tenant="acme").record_sync(judge_call("key-late"))
    found = asyncio.run(store.lookup("key-late"))
    assert found is not None and found.cache_key == "key-late"


@settings(max_examples=25, deadline=None)
@given(
    recorded=st.lists(st.sampled_from("abcdef"), max_size=8),
    wanted=st.lists(st.sampled_from("abcdefgh"), max_size=8),
)
def test_prefetch_agrees_with_one_look_up_per_key(recorded: list[str], wanted: list[str]) -> None:
    from ledger.db import make_engine
    from ledger.schema import migrate

    engine = make_engine("sqlite://")
    try:
        migrate(engine)
        writer = DbCallStore(engine, tenant="acme")
        for n, key in enumerate(recorded):
            writer.record_sync(judge_call(key, reply=f"r{n}", attempt=n + 1))
        store = DbCallStore(engine, tenant="acme", trust_empty=False)

        async def both() -> tuple[list[Any], list[Any]]:
            one_by_one = [await store.lookup(k) for k in wanted]
            await store.prefetch(wanted)
            return one_by_one, [await store.lookup(k) for k in wanted]

        one_by_one, prefetched = asyncio.run(both())
        assert prefetched == one_by_one
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_batch_read_visits_only_its_rows_before_statistics_see_the_tenant() -> None:
    """PostgreSQL plans from statistics: a tenant whose rows arrived after the last ANALYZE (a
    batch just ingested, a job's verdicts being written) looks empty to it. An ``IN`` list then
    let it scan the tenant's whole index range and filter it, for every batch a worker read:
    185 ms a batch of 16 at 1,280 outcomes, quadratic over a job. Per-id look-ups read only the
    rows asked for, whatever the statistics say: the outcomes, the recorded verdicts and the
    recorded calls of a claimed batch."""
    from ledger.ingest import record_outcomes

    with ledger_without_autovacuum("outcomes", "verdicts", "judge_calls") as engine:
        record_outcomes(engine, "seen", [ticket(f"S-{i:04d}") for i in range(400)])
        analyze(engine)
        fresh = [ticket(f"N-{i:04d}") for i in range(600)]
        record_outcomes(engine, "fresh", fresh)
        ledger = Ledger(engine, tenant="fresh")
        for outcome in fresh[:300]:
            ledger.record_result(outcome, verdict_for(outcome))
        calls = DbCallStore(engine, tenant="fresh", trust_empty=False)
        for start in range(0, 600, 100):
            calls._write([judge_call(f"key-{i:04d}") for i in range(start, start + 100)])
        asked = fresh[200:216]
        keys = [
            (o.id, "support-resolution@3f2a9c1", "default@8b1d", o.content_hash()) for o in asked
        ]

        with captured(engine) as statements:
            latest = ledger.latest_outcomes([o.id for o in asked])
            recorded = ledger.recorded_verdicts(keys)
            wanted_calls = [f"key-{i:04d}" for i in range(200, 216)]
            asyncio.run(calls.prefetch(wanted_calls))
        assert latest == {o.id: o for o in asked}
        assert set(recorded) == set(keys)
        assert set(calls._known) == set(wanted_calls)

        visited = replayed_rows(engine, statements, {"outcomes", "verdicts", "judge_calls"})
        assert any(s.startswith("SET LOCAL") for s, _ in statements)
        # The 16 outcomes, their 16 verdicts and the 16 calls, and the 16 outcomes once more
        # (whether a later revision of other content superseded a verdict found).
        assert visited <= 4 * len(asked), visited
