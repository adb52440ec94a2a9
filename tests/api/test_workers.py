"""Real `judge worker` processes on one queue: two workers share it with no item or judge call
done twice; a worker killed with SIGKILL mid-job is taken over once its lease runs out; the API
process runs jobs itself on SQLite (the embedded worker)."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tests.api.conftest import auth, make_key
from tests.api.jobs_helpers import (
    allow_api_base_env,
    item_rows,
    judge_call_rows,
    ledger_engine,
    request_outcome,
    save_llm_panel,
    store_outcomes,
    ticket,
    verdict_counts,
    wait_for,
)
from tests.api.live import LiveServer, Process
from tests.fakes.openai_server import FakeOpenAIServer
from tests.ledger.conftest import _pg_schema

RUBRICS = {"support_ticket": "support-resolution"}


@pytest.fixture
def pg_url() -> Iterator[str]:
    with _pg_schema() as url:
        yield url


def _jobs(engine: Engine, sizes: list[int], panel: str) -> list[str]:
    from ledger.jobs import create_job

    job_ids, start = [], 0
    for size in sizes:
        ids = store_outcomes(engine, "acme", [ticket(i) for i in range(start, start + size)])
        job = create_job(engine, "acme", rubrics=RUBRICS, panel=panel, outcome_ids=ids)
        job_ids.append(job.job_id)
        start += size
    return job_ids


def _all_done(engine: Engine, job_ids: list[str]) -> bool:
    from ledger.jobs import get_job

    jobs = [get_job(engine, "acme", j) for j in job_ids]
    return all(j is not None and j.status in ("done", "failed") for j in jobs)


def _worker(db_url: str, name: str, tmp_path: Path, env: dict[str, str], *args: str) -> Process:
    return Process(
        ["worker", "--db", db_url, "--id", name, "--batch", "4", "--concurrency", "4", *args],
        log=tmp_path / f"{name}.log",
        env={"OUTCOME_JUDGE_WORKER_POLL_SECONDS": "0.2", **env},
    )


def _stop(*workers: Process) -> None:
    for w in workers:
        w.stop()
    for w in workers:
        assert w.proc.returncode == 0, w.log_path.read_text()


@pytest.mark.slow
@pytest.mark.postgres
def test_two_workers_share_one_queue_without_doing_anything_twice(
    pg_url: str, tmp_path: Path, fake_llm: FakeOpenAIServer
) -> None:
    fake_llm.latency = 0.05
    with ledger_engine(pg_url) as engine:
        panel = save_llm_panel(engine, "acme", fake_llm.base_url)
        job_ids = _jobs(engine, [40, 50, 30], panel)
        env = allow_api_base_env(fake_llm.base_url)
        workers = [_worker(pg_url, name, tmp_path, env) for name in ("wa", "wb")]
        try:
            wait_for(lambda: _all_done(engine, job_ids), timeout=180, what="the jobs to finish")
        finally:
            _stop(*workers)
        items = item_rows(engine)
        assert len(items) == 120
        assert {r.status for r in items} == {"done"}
        assert Counter(r.lease_owner for r in items).keys() == {"wa", "wb"}, "both took items"
        # One verdict per outcome, one model request per outcome (samples: 1), one call on record.
        assert set(verdict_counts(engine, "acme").values()) == {1}
        assert len(verdict_counts(engine, "acme")) == 120
        requests = Counter(request_outcome(r) for r in fake_llm.chat_requests())
        assert len(requests) == 120 and set(requests.values()) == {1}, requests.most_common(3)
        calls = judge_call_rows(engine, "acme")
        assert Counter(c.outcome_id for c in calls if c.status == "ok").most_common(1)[0][1] == 1
        from ledger.jobs import get_job

        for job_id, size in zip(job_ids, [40, 50, 30], strict=True):
            job = get_job(engine, "acme", job_id)
            assert job is not None
            assert (job.status, job.completed, job.failed) == ("done", size, 0)
            assert job.counts["verified"] == size and job.cost_usd > 0


@pytest.mark.slow
@pytest.mark.postgres
def test_a_killed_worker_is_taken_over_without_repeating_recorded_work(
    pg_url: str, tmp_path: Path, fake_llm: FakeOpenAIServer
) -> None:
    fake_llm.latency = 0.15
    env = {**allow_api_base_env(fake_llm.base_url), "OUTCOME_JUDGE_LEASE_SECONDS": "2"}
    with ledger_engine(pg_url) as engine:
        panel = save_llm_panel(engine, "acme", fake_llm.base_url)
        (job_id,) = _jobs(engine, [48], panel)
        # One outcome at a time, 8 a batch: slow enough to be killed mid-batch, with some of
        # the batch's judge calls on record (the call store writes every 0.5 s) but no verdict.
        first = _worker(pg_url, "doomed", tmp_path, env, "--concurrency", "1", "--batch", "8")

        def mid_batch() -> bool:
            verdicts = verdict_counts(engine, "acme")
            if len(verdicts) < 8:
                return False
            held = {
                r.outcome_id for r in item_rows(engine) if r.status == "pending" and r.lease_owner
            }
            # Held items without a verdict: the first batch's items keep their lease for a
            # moment after their verdicts are written; killing then would leave nothing held.
            judged = {c.outcome_id for c in judge_call_rows(engine, "acme")}
            return bool((held - set(verdicts)) & judged)

        try:
            wait_for(mid_batch, timeout=120, what="verdicts and a batch half judged")
            first.kill(signal.SIGKILL)
        finally:
            first.stop()
        killed_at = time.time()
        assert first.proc.returncode == -signal.SIGKILL
        recorded = {c.outcome_id for c in judge_call_rows(engine, "acme") if c.status == "ok"}
        verdicts_before = verdict_counts(engine, "acme")
        held = [r for r in item_rows(engine) if r.status == "pending" and r.lease_owner]
        states = Counter((r.status, r.lease_owner) for r in item_rows(engine))
        assert held, f"the killed worker held a batch: {states}\n{first.log_path.read_text()}"

        second = _worker(pg_url, "rescuer", tmp_path, env)
        try:
            wait_for(lambda: _all_done(engine, [job_id]), timeout=120, what="the job to finish")
        finally:
            _stop(second)

        from ledger.jobs import get_job

        job = get_job(engine, "acme", job_id)
        assert job is not None and (job.status, job.completed, job.failed) == ("done", 48, 0)
        assert verdict_counts(engine, "acme") == {f"W-{i:04d}": 1 for i in range(48)}
        assert all(verdict_counts(engine, "acme")[o] == 1 for o in verdicts_before)
        # Nothing the dead worker had on record was asked of the model again ...
        later = [request_outcome(r) for r in fake_llm.chat_requests() if r.time > killed_at]
        assert later and not set(later) & recorded
        # ... and only what it had in flight (unrecorded) was asked twice.
        twice = {
            o for o, n in Counter(map(request_outcome, fake_llm.chat_requests())).items() if n > 1
        }
        assert twice <= {r.outcome_id for r in held}
        assert max(r.attempts for r in item_rows(engine)) == 2
        ok_calls = Counter(
            c.outcome_id
            for c in judge_call_rows(engine, "acme")
            if c.status == "ok" and not c.cached
        )
        assert set(ok_calls.values()) == {1} and len(ok_calls) == 48


@pytest.mark.slow
def test_worker_once_drains_the_queue_and_exits(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path}/worker.db"
    with ledger_engine(db_url) as engine:
        (job_id,) = _jobs(engine, [6], "default")
        # The screen and the model calls in processes of the worker's own (the default on a
        # machine with more than one core; the tests' environment says no, the options win).
        worker = _worker(
            db_url, "once", tmp_path, {}, "--once", "--screen-processes", "1", "--call-process"
        )
        assert worker.proc.wait(timeout=120) == 0, worker.output()
        worker.stop()
        assert _all_done(engine, [job_id])
        assert len(verdict_counts(engine, "acme")) == 6
    log = worker.log_path.read_text()
    assert "6 item(s) done" in log and "screening processes 1, call processes 1)" in log


def test_worker_with_a_bad_database_url_says_how_to_fix_it(tmp_path: Path) -> None:
    worker = Process(["worker", "--db", "mysql://x@localhost/db", "--once"], log=tmp_path / "w.log")
    assert worker.proc.wait(timeout=60) != 0
    worker.stop()
    assert "sqlite:///path/to/ledger.db" in worker.log_path.read_text()


@pytest.mark.slow
def test_the_api_process_runs_jobs_on_sqlite(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path}/embedded.db"
    key = make_key(db_url, "acme")
    with ledger_engine(db_url) as engine:
        ids = store_outcomes(engine, "acme", [ticket(i) for i in range(5)])
    server = LiveServer(
        db_url, log=tmp_path / "serve.log", env={"OUTCOME_JUDGE_WORKER_POLL_SECONDS": "0.2"}
    )
    try:
        with server.client(key) as http:
            created = http.post("/v1/verifications", json={"outcome_ids": ids})
            assert created.status_code == 202, created.text
            url = f"/v1/verifications/{created.json()['id']}"

            def finished() -> dict[str, object] | None:
                job: dict[str, object] = http.get(url).json()
                return job if job["status"] == "done" else None

            job = wait_for(finished, timeout=60, what="the embedded worker to finish the job")
            assert job["progress"]["completed"] == 5
            assert http.get(url, headers=auth("oj_bad_key")).status_code == 401
    finally:
        server.stop()
    with ledger_engine(db_url) as engine:
        assert verdict_counts(engine, "acme") == {i: 1 for i in ids}
