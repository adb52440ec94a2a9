"""A worker makes its model calls in a call process (the default on more than one core): the
verdicts and the calls on record are those of a worker making them itself; a call process killed
mid-job costs no item; a test's fake model keeps its calls."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.screen_processes import beside_the_loop
from app.worker import Worker, WorkerStats
from config.settings import get_settings
from judge import model_client
from ledger.db import make_engine
from ledger.jobs import create_job, get_job
from tests.api.jobs_helpers import (
    allow_api_base_env,
    ledger_engine,
    request_outcome,
    save_llm_panel,
    store_outcomes,
    ticket,
)
from tests.fakes.openai_server import FakeOpenAIServer
from tests.process_tools import alive, children, command_line

RUBRICS = {"support_ticket": "support-resolution"}


def _queue_job(db_url: str, fake_llm: FakeOpenAIServer, size: int) -> str:
    with ledger_engine(db_url) as engine:
        panel = save_llm_panel(engine, "acme", fake_llm.base_url)
        ids = store_outcomes(engine, "acme", [ticket(i) for i in range(size)])
        return create_job(engine, "acme", rubrics=RUBRICS, panel=panel, outcome_ids=ids).job_id


def _run_worker(db_url: str, *, during: threading.Thread | None = None) -> WorkerStats:
    engine = make_engine(db_url)
    try:
        worker = Worker(engine, worker_id="w", concurrency=8, batch=8, poll_seconds=0.05)
        if during is not None:
            during.start()
        return asyncio.run(worker.run(asyncio.Event(), once=True))
    finally:
        engine.dispose()


def _ledger(db_url: str) -> tuple[dict[str, tuple[object, ...]], list[tuple[str, str, float]]]:
    """Per outcome its decision, confidence, flags and cost; every judge call's outcome, status
    and cost."""
    with ledger_engine(db_url) as engine, engine.connect() as conn:
        verdicts = conn.execute(
            sa.text("SELECT outcome_id, decision, confidence, flags, cost_usd FROM verdicts")
        )
        calls = conn.execute(
            sa.text("SELECT outcome_id, status, cost_usd FROM judge_calls ORDER BY outcome_id")
        )
        return (
            {r[0]: (r[1], r[2], str(r[3]), float(r[4])) for r in verdicts},
            [(r[0], r[1], round(float(r[2] or 0), 9)) for r in calls],
        )


def _use(monkeypatch: pytest.MonkeyPatch, fake_llm: FakeOpenAIServer, call_process: str) -> None:
    for key, value in allow_api_base_env(fake_llm.base_url).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("OUTCOME_JUDGE_CALL_PROCESS", call_process)
    get_settings.cache_clear()


def test_a_worker_records_the_same_verdicts_and_calls_with_and_without_it(
    tmp_path: Path, fake_llm: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = {}
    for setting in ("true", "false"):
        fake_llm.reset()
        db_url = f"sqlite:///{tmp_path}/{setting}.db"
        job_id = _queue_job(db_url, fake_llm, 24)
        _use(monkeypatch, fake_llm, setting)
        stats = _run_worker(db_url)
        assert (stats.done, stats.failed) == (24, 0)
        assert stats.call_processes == (1 if setting == "true" else 0)
        requests = Counter(request_outcome(r) for r in fake_llm.chat_requests())
        assert len(requests) == 24 and set(requests.values()) == {1}
        with ledger_engine(db_url) as engine:
            job = get_job(engine, "acme", job_id)
        assert job is not None and job.status == "done" and job.cost_usd > 0
        found[setting] = _ledger(db_url)
    assert found["true"] == found["false"]
    verdicts, calls = found["true"]
    assert len(verdicts) == 24 and len(calls) == 24 and {c[1] for c in calls} == {"ok"}


def test_a_call_process_killed_mid_job_costs_no_item(
    tmp_path: Path,
    fake_llm: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_llm.latency = 0.1
    db_url = f"sqlite:///{tmp_path}/ledger.db"
    _queue_job(db_url, fake_llm, 40)
    _use(monkeypatch, fake_llm, "true")
    killed: list[int] = []

    def kill_the_call_process_once_calls_are_made() -> None:
        while len(fake_llm.chat_requests()) < 8:
            threading.Event().wait(0.02)
        (child,) = [p for p in children(os.getpid()) if "judge.call_process" in command_line(p)]
        os.kill(child, signal.SIGKILL)
        killed.append(child)

    with caplog.at_level(logging.WARNING):
        stats = _run_worker(
            db_url, during=threading.Thread(target=kill_the_call_process_once_calls_are_made)
        )
    assert killed and not alive(killed[0])
    # The calls in flight failed as lost connections and were retried here; later calls too.
    assert (stats.done, stats.failed) == (40, 0)
    assert stats.call_processes == 0
    assert "call process" in caplog.text
    verdicts, calls = _ledger(db_url)
    assert len(verdicts) == 40
    assert {c[0] for c in calls if c[1] == "ok"} == set(verdicts)


def test_a_worker_has_one_by_default_on_more_than_one_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.screen_processes import open_call_process

    monkeypatch.delenv("OUTCOME_JUDGE_CALL_PROCESS")  # the tests' environment turns it off
    get_settings.cache_clear()
    assert (open_call_process(has_llm=True) is not None) == ((os.cpu_count() or 1) > 1)
    monkeypatch.setenv("OUTCOME_JUDGE_CALL_PROCESS", "false")
    get_settings.cache_clear()
    assert open_call_process(has_llm=True) is None


def test_a_fake_model_installed_by_a_test_keeps_its_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OUTCOME_JUDGE_CALL_PROCESS", "true")
    get_settings.cache_clear()

    async def fake(**_kwargs: object) -> str:
        return "the fake's reply"

    async def run() -> tuple[int, object]:
        with model_client.using(fake):
            async with beside_the_loop(has_llm=True, warm_up=lambda _pool: None) as beside:
                return beside.call_processes, await model_client.acompletion(model="m")

    assert asyncio.run(run()) == (0, "the fake's reply")
