"""Throughput of a real `judge worker` process draining a queued job, against bare litellm.

Not a test: run ``python bench/bench_worker.py`` and read the table. Against the fake
OpenAI-compatible server (200 ms latency, its own process, 127.0.0.1), for each database
(SQLite in a temporary file; PostgreSQL in a dedicated schema, dropped afterwards, when
``OUTCOME_JUDGE_BENCH_PG_URL`` or ``OUTCOME_JUDGE_TEST_PG_URL`` is set), three times each,
alternating:

- ``worker``: ``--outcomes`` outcomes stored, one verification job over them (an LLM panel on the
  fake server), then one ``judge worker --once`` process drains it at ``--concurrency``; the rate
  is the job's own clock (the job's ``started_at``, set by the first claim, to its
  ``finished_at``, set when its last item is marked done), so it holds claiming, reading,
  judging, recording the calls and verdicts and marking the items; process start-up and
  litellm's import come before the first claim and are not in it;
- ``bare``: the same number of requests (same prompts, same response format) sent with
  ``litellm.acompletion`` at the same concurrency from this process: what the model calls alone
  allow on this machine.

Prints outcomes per second (min / median of 3) and the ratio worker / bare of the medians and
of each run's pair. Nothing here is asserted anywhere; the ratios are the comparable part.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import judge  # noqa: F401  (pins the local litellm price map before litellm is imported)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _pg import pg_schema  # bench/_pg.py
from bench_verify import _bare, _free_port, _outcome, _start_server

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 3


def _queue_job(db_url: str, base: str, tenant: str, n: int, concurrency: int, seed: int) -> str:
    """Store ``n`` new outcomes for ``tenant``, an LLM panel on ``base`` and a job over them."""
    from config.settings import Settings
    from judge.models import Outcome
    from ledger.db import make_engine
    from ledger.documents import save_panel
    from ledger.ingest import record_outcomes
    from ledger.jobs import create_job
    from ledger.schema import migrate

    engine = make_engine(db_url)
    try:
        migrate(engine)
        outcomes = [
            Outcome.model_validate({**_outcome(seed * 100_000 + i), "tenant": tenant})
            for i in range(n)
        ]
        for start in range(0, n, 500):
            record_outcomes(engine, tenant, outcomes[start : start + 500])
        judge_spec = {
            "name": "llm",
            "model": "openai/gpt-4o-mini",
            "api_base": base,
            "samples": 1,
            "max_concurrency": concurrency,
        }
        panel = save_panel(
            engine,
            tenant,
            json.dumps({"name": "bench-worker", "judges": [judge_spec]}),
            settings=Settings(allowed_api_bases=[base]),
        )
        job = create_job(
            engine,
            tenant,
            rubrics={"support_ticket": "support-resolution"},
            panel=panel.name,
            outcome_ids=[o.id for o in outcomes],
        )
        return job.job_id
    finally:
        engine.dispose()


def _job_rate(db_url: str, tenant: str, job_id: str) -> float:
    from ledger.db import make_engine
    from ledger.jobs import get_job

    engine = make_engine(db_url)
    try:
        job = get_job(engine, tenant, job_id)
    finally:
        engine.dispose()
    assert job is not None and job.status == "done", job
    assert job.started_at is not None and job.finished_at is not None
    return job.completed / (job.finished_at - job.started_at).total_seconds()


def _worker_rate(
    db_url: str,
    base: str,
    n: int,
    concurrency: int,
    batch: int,
    seed: int,
    screen_processes: int | None = None,
    call_process: str | None = None,
) -> float:
    tenant = f"bench{seed}"
    job_id = _queue_job(db_url, base, tenant, n, concurrency, seed)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTCOME_JUDGE_")}
    env.update(
        OUTCOME_JUDGE_ALLOWED_API_BASES=json.dumps([base]),
        OPENAI_API_KEY="bench",
        PYTHONPATH=str(ROOT),
    )
    if screen_processes is not None:
        env["OUTCOME_JUDGE_SCREEN_PROCESSES"] = str(screen_processes)
    if call_process is not None:
        env["OUTCOME_JUDGE_CALL_PROCESS"] = call_process
    subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "worker",
            "--db",
            db_url,
            "--once",
            "--concurrency",
            str(concurrency),
            "--batch",
            str(batch),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        check=True,
    )
    return _job_rate(db_url, tenant, job_id)


def _measure(
    name: str, db_url: str, base: str, args: argparse.Namespace, seed: int
) -> tuple[list[float], list[float]]:
    bares, workers = [], []
    for repeat in range(REPEATS):
        bares.append(asyncio.run(_bare(base, args.concurrency, calls=args.outcomes)))
        workers.append(
            _worker_rate(
                db_url,
                base,
                args.outcomes,
                args.concurrency,
                args.batch,
                seed + repeat,
                args.screen_processes,
                args.call_process,
            )
        )
        print(
            f"  {name} run {repeat + 1}: bare {bares[-1]:.1f}/s, worker {workers[-1]:.1f}/s "
            f"({workers[-1] / bares[-1]:.2f})",
            flush=True,
        )
    return bares, workers


def _row(name: str, concurrency: int, bares: list[float], workers: list[float]) -> str:
    ratios = sorted(w / b for w, b in zip(workers, bares, strict=True))
    return (
        f"| {name} | {concurrency} | {min(bares):.1f} / {statistics.median(bares):.1f} | "
        f"{min(workers):.1f} / {statistics.median(workers):.1f} | "
        f"{statistics.median(workers) / statistics.median(bares):.2f} | "
        f"{ratios[0]:.2f} / {statistics.median(ratios):.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outcomes", type=int, default=640)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument(
        "--screen-processes",
        type=int,
        default=None,
        help="OUTCOME_JUDGE_SCREEN_PROCESSES for the worker (default: the worker's own default, "
        "one screening process on a machine with more than one core; 0 screens on its loop)",
    )
    parser.add_argument(
        "--call-process",
        choices=["true", "false"],
        default=None,
        help="OUTCOME_JUDGE_CALL_PROCESS for the worker (default: the worker's own default, a "
        "call process on a machine with more than one core)",
    )
    args = parser.parse_args()
    port = _free_port()
    base = f"http://127.0.0.1:{port}/v1"
    os.environ["BENCH_KEY"] = "bench"
    server = _start_server(port)
    rows = []
    started = time.perf_counter()
    try:
        if not args.skip_sqlite:
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite:///{tmp}/worker.db"
                measured = _measure("SQLite", url, base, args, 1)
                rows.append(_row("SQLite", args.concurrency, *measured))
        pg = os.environ.get("OUTCOME_JUDGE_BENCH_PG_URL") or os.environ.get(
            "OUTCOME_JUDGE_TEST_PG_URL"
        )
        if pg and not args.skip_pg:
            with pg_schema(pg, prefix="bench_worker") as url:
                measured = _measure("PostgreSQL", url, base, args, 11)
                rows.append(_row("PostgreSQL", args.concurrency, *measured))
        elif not args.skip_pg:
            print("PostgreSQL skipped: set OUTCOME_JUDGE_BENCH_PG_URL or OUTCOME_JUDGE_TEST_PG_URL")
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(
        f"\n`judge worker --once` draining {args.outcomes} outcomes (batch {args.batch}) vs bare "
        f"litellm, fake server at 200 ms, {REPEATS} alternating runs, screening processes "
        f"{'default' if args.screen_processes is None else args.screen_processes}, call process "
        f"{args.call_process or 'default'} ({time.perf_counter() - started:.0f} s)"
    )
    print(
        "| ledger | concurrency | bare litellm (calls/s, min / median) | worker (outcomes/s, "
        "min / median) | worker / bare (medians) | worker / bare per run (min / median) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
