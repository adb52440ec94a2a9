"""Request counters summed over API processes (``ledger.metric_counters``), SQLite and PostgreSQL.

Each API process adds its counts with one upsert per counter; the totals must be exact whatever
the processes' interleaving, and concurrent writers must never deadlock (rows go in key order).
"""

from __future__ import annotations

import random
import threading

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.metric_counters import CHUNK, add_counts, read_counts


def _tenants(engine: Engine, *names: str) -> None:
    from ledger.tenants import create_tenant

    for name in names:
        create_tenant(engine, name)


def test_counts_add_up_per_tenant_and_counter(engine: Engine) -> None:
    _tenants(engine, "acme", "globex")
    assert add_counts(engine, []) == 0
    written = add_counts(
        engine,
        [
            ("acme", "http_requests", '["/v1/tenant","GET","200"]', 3),
            ("acme", "http_requests", '["/v1/tenant","GET","200"]', 2),  # summed before writing
            ("acme", "http_latency_sum", '["/v1/tenant","GET"]', 0.25),
            ("globex", "http_requests", '["/v1/tenant","GET","200"]', 7),
        ],
    )
    assert written == 3
    add_counts(engine, [("acme", "http_requests", '["/v1/tenant","GET","200"]', 1)])
    assert sorted(read_counts(engine, "acme")) == [
        ("http_latency_sum", '["/v1/tenant","GET"]', 0.25),
        ("http_requests", '["/v1/tenant","GET","200"]', 6.0),
    ]
    assert read_counts(engine, "globex") == [("http_requests", '["/v1/tenant","GET","200"]', 7.0)]
    assert read_counts(engine, "nobody") == []


def test_more_counters_than_one_statement_holds(engine: Engine) -> None:
    _tenants(engine, "acme")
    counts = [("acme", "c", f'["{i}"]', 1.0) for i in range(CHUNK * 2 + 7)]
    assert add_counts(engine, counts) == len(counts)
    assert add_counts(engine, counts) == len(counts)
    assert {v for _, _, v in read_counts(engine, "acme")} == {2.0}


def test_a_failed_write_adds_nothing(engine: Engine) -> None:
    _tenants(engine, "acme")
    counts = [("acme", "c", f'["{i}"]', 1.0) for i in range(CHUNK + 3)]
    counts.append(("no-such-tenant", "c", "[]", 1.0))  # the tenant's foreign key refuses it
    try:
        add_counts(engine, counts)
    except sa.exc.IntegrityError:
        pass
    else:  # pragma: no cover - the assertion below says what went wrong
        raise AssertionError("a counter of an unknown tenant was written")
    assert read_counts(engine, "acme") == []  # the first chunk was rolled back with the rest


def test_concurrent_writers_sum_exactly_and_never_deadlock(engine: Engine) -> None:
    """8 threads (as 8 API processes), each adding 30 batches of overlapping counters in its own
    random order: every total is exact."""
    _tenants(engine, "acme", "globex")
    keys = [
        (t, "http_requests", f'["/r{i}","GET","200"]')
        for t in ("acme", "globex")
        for i in range(12)
    ]
    barrier = threading.Barrier(8, timeout=60)
    failures: list[BaseException] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        barrier.wait()
        try:
            for _ in range(30):
                batch = rng.sample(keys, k=8)
                add_counts(engine, [(t, n, lab, 1.0) for t, n, lab in batch])
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    total = sum(v for t in ("acme", "globex") for _, _, v in read_counts(engine, t))
    assert total == 8 * 30 * 8
