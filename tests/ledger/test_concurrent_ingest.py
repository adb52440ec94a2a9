"""Several OS processes ingest the same outcome ids at the same moment: each id is stored once.

Real processes (``spawn``: nothing inherited but the arguments), each with its own engine and
connections, released together by a barrier, each recording the same 50 outcomes with verdicts
through :meth:`Ledger.record_results` (one transaction per process), in its own order.
"""

from __future__ import annotations

import random
from multiprocessing.synchronize import Barrier
from typing import Any

import sqlalchemy as sa

from ledger.db import make_engine
from ledger.schema import migrate
from ledger.store import Ledger
from tests.ledger.conftest import ticket, verdict_for
from tests.ledger.spawned import run_spawned

#: Also on a PostgreSQL ledger partitioned by month (tests/ledger/conftest.py).
PARTITIONED_TOO = ("url",)

IDS = [f"T-{i:03d}" for i in range(50)]
TENANT = "acme"
TIMEOUT_S = 90


def _ingest(url: str, seed: int, barrier: Barrier, results: Any) -> None:
    """One process: open the ledger, wait for the others, record all 50 in its own order."""
    try:
        order = list(IDS)
        random.Random(seed).shuffle(order)
        outcomes = [ticket(outcome_id) for outcome_id in order]
        batch = [(o, verdict_for(o)) for o in outcomes]
        with Ledger.open(url, tenant=TENANT) as ledger:
            barrier.wait(timeout=TIMEOUT_S)
            recorded = ledger.record_results(batch)
        results.put(("ok", seed, [r.outcome.outcome_id for r in recorded if r.outcome.created]))
    except BaseException as exc:  # reported to the test, which fails with it
        results.put(("error", seed, repr(exc)))


def _run_processes(url: str, processes: int) -> list[list[str]]:
    return list(run_spawned(_ingest, url, processes, TIMEOUT_S).values())


def test_same_ids_from_concurrent_processes_are_stored_once(ledger_url: str) -> None:
    processes = 4 if ledger_url.startswith("postgresql") else 2
    engine = make_engine(ledger_url)
    try:
        migrate(engine)  # the schema exists before the race; the race is about the rows

        created = _run_processes(ledger_url, processes)

        # Every id was created by exactly one process; the others found it already stored.
        created_ids = sorted(outcome_id for per_process in created for outcome_id in per_process)
        assert created_ids == IDS
        with engine.connect() as conn:
            per_id = conn.execute(
                sa.text(
                    "SELECT outcome_id, COUNT(*), MAX(revision) FROM outcomes "
                    "WHERE tenant = :t GROUP BY outcome_id"
                ),
                {"t": TENANT},
            ).all()
            verdicts = conn.execute(
                sa.text(
                    "SELECT outcome_id, outcome_revision, COUNT(*) FROM verdicts "
                    "WHERE tenant = :t GROUP BY outcome_id, outcome_revision"
                ),
                {"t": TENANT},
            ).all()
            tenants = conn.execute(sa.text("SELECT COUNT(*) FROM tenants")).scalar_one()
        assert sorted((row[0], row[1], row[2]) for row in per_id) == [(i, 1, 1) for i in IDS]
        # Verdicts are events: one per process per id, all on revision 1.
        assert sorted((row[0], row[1], row[2]) for row in verdicts) == [
            (i, 1, processes) for i in IDS
        ]
        assert tenants == 1

        ledger = Ledger(engine, tenant=TENANT)
        assert ledger.counts() == {
            "outcomes": len(IDS),
            "outcome_revisions": len(IDS),
            "verdicts": len(IDS) * processes,
            "judge_calls": 0,
            "labels": len(IDS),  # the embedded label, once per id however often it arrived
        }
        assert all([r.revision for r in ledger.revisions(i)] == [1] for i in IDS)
    finally:
        engine.dispose()
