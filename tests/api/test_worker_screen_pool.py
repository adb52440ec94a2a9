"""A worker with a screening process (the default on a machine with cores to spare) flags
what a worker screening on its event loop flags, and records the same verdicts."""

from __future__ import annotations

import asyncio
import json

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.worker import Worker
from config.settings import get_settings
from judge.guard_model import default_detector
from judge.models import Outcome
from judge.rubric_loader import load_rubric
from judge.screening import screen
from judge.verdict import FLAG_INJECTION
from ledger.db import make_engine
from tests.api.conftest import auth
from tests.api.jobs_helpers import ledger_engine, store_outcomes, ticket
from tests.fakes.injection_corpus import fresh_attacks


def _verdicts(db_url: str) -> dict[str, tuple[str, str, float | None]]:
    with ledger_engine(db_url) as engine, engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT outcome_id, decision, flags, payload FROM verdicts")
        ).all()
    payloads = {r[0]: r[3] if isinstance(r[3], dict) else json.loads(r[3]) for r in rows}
    return {r[0]: (r[1], str(r[2]), payloads[r[0]].get("injection_score")) for r in rows}


@pytest.mark.parametrize("processes", ["1", "0"])
def test_a_worker_with_a_screening_process_flags_the_same_outcomes(
    client: TestClient,
    db_url: str,
    keys: dict[str, str],
    processes: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attacks = [Outcome.model_validate(r) for r in fresh_attacks()[::12]]
    attacks = [a for a in attacks if a.kind == "support_ticket"]
    clean = [ticket(i) for i in range(4)]
    with ledger_engine(db_url) as engine:
        ids = store_outcomes(engine, "acme", attacks + clean)
    created = client.post(
        "/v1/verifications", json={"outcome_ids": ids}, headers=auth(keys["acme"])
    )
    assert created.status_code == 202, created.text

    monkeypatch.setenv("OUTCOME_JUDGE_SCREEN_PROCESSES", processes)
    get_settings.cache_clear()
    engine = make_engine(db_url)
    try:
        worker = Worker(engine, worker_id="w", poll_seconds=0.05)
        stats = asyncio.run(worker.run(asyncio.Event(), once=True))
    finally:
        engine.dispose()
    pool = worker._screen_pool
    assert (pool.processes if pool is not None else 0) == int(processes)
    assert pool is None or not pool.broken

    assert stats.failed == 0
    found = _verdicts(db_url)
    assert set(found) == set(ids)
    flagged = {oid for oid, (_, flags, _) in found.items() if FLAG_INJECTION in flags}
    criteria = [c.id for c in load_rubric("support-resolution").criteria]
    expected = {
        o.id
        for o in attacks + clean
        if screen(o, criterion_ids=criteria, detector=default_detector()).flagged
    }
    assert flagged == expected and len(expected) >= 5
    assert all(found[oid][0] != "verified" for oid in flagged)
    assert all(score is not None for _, _, score in found.values())
