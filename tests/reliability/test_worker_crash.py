"""`judge worker` processes killed with SIGKILL at random points of a 1,000-outcome job.

One verification job over 1,000 stored outcomes, an LLM panel (stored through the ledger as the
API would store it) on the fault-injecting model server, with latency and a small fault mix. A
worker is killed with SIGKILL three times, each once a seeded random number of further requests
has reached the model server (so every kill lands mid-batch, whatever the machine's speed); a
new worker is started once the dead one's lease (2 s) has run out, until the job is done.

Asserted: zero outcomes lost (every item done, one verdict per outcome), zero duplicate verdicts,
no judge call repeated for work already recorded (an outcome whose successful call was in
``judge_calls`` at the moment of a kill is never requested again), every request the model server
received has its ``judge_calls`` row (written before it was sent; the calls a killed worker had
in flight are settled as ``unknown`` at their estimated cost by the next worker), and the job's
cost is the ledger's cost.
"""

from __future__ import annotations

import json
import random
import signal
import time
from collections import Counter
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import make_key
from tests.api.jobs_helpers import allow_api_base_env, ledger_engine, wait_for
from tests.api.live import Process
from tests.fakes.faults import FaultInjector, LatencyModel, split_reply
from tests.fakes.openai_server import FakeOpenAIServer
from tests.reliability.conftest import Figures
from tests.reliability.harness import FAST_BACKOFF, query
from tests.reliability.synth import synthetic_tickets

N = 1000
KILLS = 3
SEED = 20261126
BATCH = 16
LEASE_SECONDS = 2.0
RUBRICS = {"support_ticket": "support-resolution"}


def _panel_yaml(base_url: str) -> str:
    """One LLM judge on the fault server, one sample (one request per outcome and attempt).

    JSON is YAML: the document is written with ``json.dumps``. No ``api_key_env``: a stored
    panel may only name a provider key variable, and the worker has ``OPENAI_API_KEY``.
    """
    judge = {
        "name": "mini",
        "model": "openai/gpt-4o-mini",
        "api_base": base_url,
        "samples": 1,
        "max_retries": 2,
        "timeout": 5,
        "backoff": FAST_BACKOFF,
    }
    return json.dumps({"name": "crash-panel", "judges": [judge]})


def _recorded_ok(db_url: str) -> set[str]:
    """Outcomes with a successful, non-cached judge call on record (work already paid for)."""
    rows = query(
        db_url,
        "SELECT DISTINCT outcome_id FROM judge_calls WHERE status = 'ok' AND cached = false",
    )
    return {r[0] for r in rows}


def _reached(injector: FaultInjector, target: int, worker: Process) -> bool:
    """``target`` requests reached the model server, or the worker ended (a failure)."""
    return len(injector.records) >= target or worker.proc.poll() is not None


def _rows_against_requests(db_url: str, records: list[Any]) -> tuple[int, int]:
    """(requests without a row, rows without a request) summed over outcomes.

    A row without a request must be an ``unknown`` one (recorded, then the process died before
    sending it); that is asserted here per outcome.
    """
    rows = {
        oid: (int(n), int(unknown))
        for oid, n, unknown in query(
            db_url,
            "SELECT outcome_id, COUNT(*), SUM(CASE WHEN status = 'unknown' THEN 1 ELSE 0 END) "
            "FROM judge_calls WHERE cached = false GROUP BY outcome_id",
        )
    }
    requests = Counter(r.outcome_id for r in records)
    unrecorded = unsent = 0
    for oid in set(rows) | set(requests):
        n, unknown = rows.get(oid, (0, 0))
        unrecorded += max(0, requests[oid] - n)
        extra = max(0, n - requests[oid])
        assert extra <= unknown, f"{oid}: {extra} rows more than requests, {unknown} unknown"
        unsent += extra
    return unrecorded, unsent


def _job_state(db_url: str) -> tuple[str, int, int]:
    ((status, completed, failed),) = query(db_url, "SELECT status, completed, failed FROM jobs")
    return str(status), int(completed), int(failed)


@pytest.mark.slow
def test_sigkilled_workers_lose_nothing_and_repeat_no_recorded_call(
    tmp_path: Path, db_url: str, figures: Figures
) -> None:
    from config.settings import Settings
    from judge.models import Outcome
    from ledger.documents import save_panel
    from ledger.ingest import record_outcomes
    from ledger.jobs import create_job

    started = time.monotonic()
    rng = random.Random(SEED)
    injector = FaultInjector(
        mix={"http_503": 0.03, "http_429": 0.02, "reset": 0.02},  # retries in flight at kills
        latency=LatencyModel(p50_ms=20, p95_ms=80),
        base=split_reply(0.7, seed=3),
        seed=SEED,
    )
    make_key(db_url, "acme")
    outcomes = [Outcome.model_validate(r) for r in synthetic_tickets(N)]
    ids = [o.id for o in outcomes]
    with FakeOpenAIServer(default=injector) as server, ledger_engine(db_url) as engine:
        for start in range(0, N, 250):
            record_outcomes(engine, "acme", outcomes[start : start + 250])
        settings = Settings(allowed_api_bases=[server.base_url])
        panel = save_panel(engine, "acme", _panel_yaml(server.base_url), settings=settings)
        create_job(engine, "acme", rubrics=RUBRICS, panel=panel.name, outcome_ids=ids)
        env = {
            **allow_api_base_env(server.base_url),
            "OUTCOME_JUDGE_LEASE_SECONDS": str(LEASE_SECONDS),
            "OUTCOME_JUDGE_WORKER_POLL_SECONDS": "0.2",
        }

        def worker(name: str) -> Process:
            args = ["worker", "--db", db_url, "--id", name, "--batch", str(BATCH)]
            return Process(
                [*args, "--concurrency", str(BATCH)], log=tmp_path / f"{name}.log", env=env
            )

        # (kill time, outcomes paid for at the kill, verdict rows at the kill)
        kills: list[tuple[float, set[str], int]] = []
        for i in range(KILLS):
            proc = worker(f"doomed-{i}")
            # At least three batches into the run: the batch a dead worker left behind (claimed
            # first, the lease having run out) is finished before the next kill, so no item is
            # killed under three workers in a row and failed as a poison item.
            target = len(injector.records) + rng.randint(3 * BATCH, N // (KILLS + 1))
            try:
                wait_for(
                    partial(_reached, injector, target, proc),
                    timeout=60,
                    what=f"worker {i} to make {target} requests",
                )
                assert proc.proc.poll() is None, f"worker {i} exited early:\n{proc.output()}"
                proc.kill(signal.SIGKILL)
            finally:
                proc.stop()
            assert proc.proc.returncode == -signal.SIGKILL
            (verdict_rows,) = query(db_url, "SELECT COUNT(*) FROM verdicts")[0]
            kills.append((time.time(), _recorded_ok(db_url), int(verdict_rows)))
            assert _job_state(db_url)[0] == "running"
            # Let the dead worker's lease run out, so the next one takes its batch over first.
            time.sleep(LEASE_SECONDS + 0.2)
        last = worker("rescuer")
        try:
            wait_for(
                lambda: _job_state(db_url)[0] in ("done", "failed"),
                timeout=90,
                what="the job to finish",
            )
        finally:
            last.stop()
        assert last.proc.returncode == 0, last.output()
        records = injector.records

    # Zero outcomes lost: every item done with its verdict; the job counts them all.
    assert _job_state(db_url) == ("done", N, 0)
    items = query(db_url, "SELECT outcome_id, status, verdict_pk, attempts FROM job_items")
    assert sorted(r[0] for r in items) == ids
    assert {r[1] for r in items} == {"done"}
    assert len({r[2] for r in items}) == N and None not in {r[2] for r in items}
    # Zero duplicate verdicts: one verdict row per outcome, the one its item points at.
    per_outcome = query(db_url, "SELECT outcome_id, COUNT(*) FROM verdicts GROUP BY outcome_id")
    assert sorted(oid for oid, _ in per_outcome) == ids
    assert {n for _, n in per_outcome} == {1}
    (linked,) = query(
        db_url,
        "SELECT COUNT(*) FROM job_items i JOIN verdicts v "
        "ON v.pk = i.verdict_pk AND v.outcome_id = i.outcome_id",
    )[0]
    assert linked == N

    # Zero judge calls repeated for recorded work: after each kill, no request reaches the
    # model for an outcome whose successful call the ledger already held.
    repeated: Counter[str] = Counter()
    for killed_at, paid_for, _ in kills:
        for r in records:
            if r.time > killed_at and r.outcome_id in paid_for:
                repeated[r.outcome_id] += 1
    assert not repeated, f"judge calls repeated after a kill: {dict(repeated)}"
    # One successful call on record per outcome: a call lost with a process is made again, but
    # never recorded (nor counted) twice. An outcome whose every attempt met a fault (the draws
    # follow the prompts, so which one does changes with the prompt's wording) has none: the
    # server never answered it, and its verdict says its judge had no reply.
    ok_rows = query(
        db_url,
        "SELECT outcome_id, COUNT(*) FROM judge_calls "
        "WHERE status = 'ok' AND cached = false GROUP BY outcome_id",
    )
    assert {n for _, n in ok_rows} == {1}
    unanswered = sorted(set(ids) - {oid for oid, _ in ok_rows})
    assert len(unanswered) <= 3, unanswered  # about 0.34 expected: 7 % faults, 3 attempts
    for oid in unanswered:
        assert not any(r.billed for r in records if r.outcome_id == oid), oid
        ((payload,),) = query(db_url, f"SELECT payload FROM verdicts WHERE outcome_id = '{oid}'")
        judged = json.loads(payload) if isinstance(payload, str) else payload
        assert [j["status"] for j in judged["judges"]] == ["error"], judged
    assert all(r.outcome_id in set(ids) for r in records)

    # Every request that reached the provider is on record: per outcome, the rows (written before
    # the request was sent) are at least the requests; a row more is an attempt recorded by a
    # worker killed before it sent it, and is among that outcome's `unknown` rows.
    unrecorded, unsent = _rows_against_requests(db_url, records)
    assert unrecorded == 0
    (pending,) = query(db_url, "SELECT COUNT(*) FROM judge_calls WHERE status = 'pending'")[0]
    assert pending == 0  # the rescuer settled every call the dead workers had in flight
    unknown, unknown_usd = query(
        db_url, "SELECT COUNT(*), COALESCE(SUM(cost_usd), 0) FROM judge_calls "
        "WHERE status = 'unknown'"
    )[0]  # fmt: skip
    # The job costs what the ledger recorded for it, unknown calls at their estimate included.
    with ledger_engine(db_url) as engine:
        from ledger.jobs import list_jobs

        [job] = list_jobs(engine, "acme")
    ((ledger_usd,),) = query(db_url, "SELECT COALESCE(SUM(cost_usd), 0) FROM judge_calls")
    # (SQLite sums NUMERIC as a float: compare at the ledger's precision, 12 decimals)
    assert job.cost_usd == Decimal(str(ledger_usd)).quantize(Decimal("1e-12"))
    assert job.cost_usd > 0
    assert job.unknown_calls == unknown
    billed = sum(r.billed for r in records)
    (billed_rows,) = query(
        db_url, "SELECT COUNT(*) FROM judge_calls WHERE cached = false AND status = 'ok'"
    )[0]
    asked = Counter(r.outcome_id for r in records if r.billed)
    figures.update(
        {
            "outcomes": N,
            "SIGKILLs (workers)": KILLS,
            "verdict rows at each kill": [n for *_, n in kills],
            "outcomes lost": 0,
            "duplicate verdicts": 0,
            "judge calls repeated for recorded work": 0,
            "provider requests (all workers)": len(records),
            "faults injected": sum(r.fault not in ("ok",) for r in records),
            "billed calls never recorded": unrecorded,
            "calls in flight at the kills (settled unknown)": int(unknown),
            "  of which recorded but never sent": unsent,
            "  their estimated cost (USD)": float(unknown_usd),
            "billed replies lost with a worker (booked at estimate)": billed - int(billed_rows),
            "job cost = ledger cost (USD)": float(job.cost_usd),
            "outcomes billed twice (lost with a worker)": sum(n > 1 for n in asked.values()),
            "max claims of one item": max(int(r[3]) for r in items),
            "wall time (s)": round(time.monotonic() - started, 1),
        }
    )
