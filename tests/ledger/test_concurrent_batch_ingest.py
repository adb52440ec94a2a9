"""Batches with overlapping ids, ingested at the same moment by several OS processes, leave a
consistent ledger: no lost or duplicated revision, no deadlock, every revision with its touches,
every label once, and per-item answers that agree with what was stored.

Real processes (``spawn``), each with its own engine, released together by a barrier, each
ingesting the same ids through :func:`ledger.ingest.record_outcomes` in batches, in its own order
and batch sizes. Half the ids carry the same payload in every process (stored once: one
``created``, the rest ``unchanged``); the other half a payload of the process's own (one revision
per process: one ``created``, the rest ``revised``).
"""

from __future__ import annotations

import random
from multiprocessing.synchronize import Barrier
from typing import Any

import sqlalchemy as sa

from judge.models import digest_of
from ledger.db import make_engine
from ledger.schema import migrate
from tests.ledger.conftest import ticket
from tests.ledger.spawned import run_spawned

#: Also on a ledger partitioned by month (tests/ledger/conftest.py).
PARTITIONED_TOO = ("url",)
IDS = [f"C-{i:03d}" for i in range(120)]
SHARED = set(IDS[::2])  # the same payload in every process
TENANT = "acme"
TIMEOUT_S = 120


def _outcome(outcome_id: str, process: int) -> Any:
    own = 0 if outcome_id in SHARED else process + 1
    return ticket(
        outcome_id,
        tenant=None,
        conversation=[{"role": "customer", "text": f"help {outcome_id} ({own})"}],
        touches=[{"actor": "bot:fin", "kind": "ai"}] * (1 + own % 3),
        label={"resolved": own % 2 == 0, "by": f"qa-{own}"},
    )


def _ingest(url: str, process: int, barrier: Barrier, results: Any) -> None:
    from ledger.ingest import record_outcomes

    try:
        rng = random.Random(process)
        order = list(IDS)
        rng.shuffle(order)
        engine = make_engine(url)
        answers = []
        barrier.wait(timeout=TIMEOUT_S)
        while order:
            size = rng.randint(10, 40)
            batch, order = order[:size], order[size:]
            answers += record_outcomes(engine, TENANT, [_outcome(i, process) for i in batch])
        engine.dispose()
        results.put(("ok", process, [(a["id"], a["revision"], a["status"]) for a in answers]))
    except BaseException as exc:  # reported to the test, which fails with it
        results.put(("error", process, repr(exc)))


def test_overlapping_batches_from_concurrent_processes_stay_consistent(ledger_url: str) -> None:
    processes = 3 if ledger_url.startswith("postgresql") else 2
    engine = make_engine(ledger_url)
    try:
        migrate(engine)
        answers = run_spawned(_ingest, ledger_url, processes, TIMEOUT_S)
        with engine.connect() as conn:
            revisions = conn.execute(
                sa.text(
                    "SELECT outcome_id, revision, payload_hash FROM outcomes WHERE tenant = :t "
                    "ORDER BY outcome_id, revision"
                ),
                {"t": TENANT},
            ).all()
            touches = dict(
                conn.execute(
                    sa.text(
                        "SELECT outcome_id || '#' || outcome_revision, COUNT(*) FROM touches "
                        "GROUP BY outcome_id, outcome_revision"
                    )
                ).all()
            )
            labels = conn.execute(
                sa.text("SELECT outcome_id, COUNT(*), COUNT(DISTINCT digest) FROM labels "
                        "GROUP BY outcome_id")
            ).all()  # fmt: skip
        by_id: dict[str, list[int]] = {}
        for outcome_id, revision, _ in revisions:
            by_id.setdefault(outcome_id, []).append(revision)
        # Revisions 1..n without gaps or repeats: one for a shared payload, one per process else.
        assert by_id == {i: list(range(1, 2 if i in SHARED else processes + 1)) for i in IDS}
        assert len({(i, h) for i, _, h in revisions}) == len(revisions)  # no payload stored twice
        touches_of = {  # payload hash -> how many touches that payload has
            digest_of(o.model_dump(mode="json")): len(o.touches)
            for o in (_outcome(i, p) for i in IDS for p in range(processes))
        }
        for outcome_id, revision, payload_hash in revisions:  # each revision's touches, once
            assert touches[f"{outcome_id}#{revision}"] == touches_of[payload_hash]
        assert all(count == distinct for _, count, distinct in labels)  # every label once
        assert {row[0]: row[1] for row in labels} == {
            i: 1 if i in SHARED else processes for i in IDS
        }
        # The answers agree with the ledger: per id one `created` (revision 1), and for the
        # processes' own payloads one `revised` per further revision; shared ones `unchanged`.
        per_id: dict[str, list[tuple[int, str]]] = {}
        for per_process in answers.values():
            for outcome_id, revision, status in per_process:
                per_id.setdefault(outcome_id, []).append((revision, status))
        for outcome_id, seen in per_id.items():
            expected = (
                [(1, "created")] + [(1, "unchanged")] * (processes - 1)
                if outcome_id in SHARED
                else [(1, "created")] + [(r, "revised") for r in range(2, processes + 1)]
            )
            assert sorted(seen) == sorted(expected), outcome_id
    finally:
        engine.dispose()
