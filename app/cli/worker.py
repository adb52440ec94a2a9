"""`judge worker`: a verification worker that runs the jobs queued through the API."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli._common import (
    CallProcessOpt,
    LedgerUrlOpt,
    ScreenProcessesOpt,
    fail,
    stderr,
    use_call_process,
    use_screen_processes,
)


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)


def worker(
    db: LedgerUrlOpt = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            min=1,
            max=1024,
            help="Outcomes judged at once. Default: OUTCOME_JUDGE_CONCURRENCY (16).",
        ),
    ] = None,
    batch: Annotated[
        int | None,
        typer.Option(
            "--batch",
            min=1,
            max=1000,
            help="Job items claimed at a time. Default: OUTCOME_JUDGE_WORKER_BATCH (16).",
        ),
    ] = None,
    once: Annotated[
        bool,
        typer.Option("--once", help="Run until nothing is left to claim, then exit 0."),
    ] = False,
    worker_id: Annotated[
        str | None,
        typer.Option(
            "--id", help="Name of this worker in leases and logs (default: host:pid); unique."
        ),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info or warning.")] = "info",
    screen_processes: ScreenProcessesOpt = None,
    call_process: CallProcessOpt = None,
) -> None:
    """Run verification jobs queued with POST /v1/verifications.

    Claims job items in batches under a lease and records a verdict for each.
    Run any number of workers on one PostgreSQL database: an item goes to one
    worker at a time (SELECT ... FOR UPDATE SKIP LOCKED).
    A dead worker's items are taken over once its lease expires
    (OUTCOME_JUDGE_LEASE_SECONDS, default 60); judge calls already recorded
    are not made again.

    SIGTERM or Ctrl-C finishes the batch in hand, then exits;
    a second signal gives the batch back to the queue at once.
    """

    import asyncio
    import logging
    import signal

    from app.worker import Worker
    from config.settings import get_settings
    from ledger.db import LedgerDatabaseError, make_engine
    from ledger.schema import migrate

    use_screen_processes(screen_processes)
    use_call_process(call_process)
    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        fail(f"unknown --log-level {log_level!r}; use debug, info or warning")
    # The worker's own lines at the level asked; libraries (alembic, litellm) only warnings.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("outcome_judge").setLevel(level)
    logging.getLogger("LiteLLM").setLevel(max(level, logging.WARNING))
    url = db or get_settings().db_url
    try:
        engine = make_engine(url)
        migrate(engine)
    except LedgerDatabaseError as exc:
        fail(str(exc))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        runner = Worker(engine, worker_id=worker_id, concurrency=concurrency, batch=batch)
        task = asyncio.current_task()
        assert task is not None
        signals = 0

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            if signals == 1:
                stderr.print("stopping after the current batch (again to stop now)")
                stop.set()
            else:
                task.cancel()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        stats = await runner.run(stop, once=once)
        stderr.print(
            f"worker {runner.worker_id}: {stats.done} item(s) done "
            f"({stats.resumed} reused a recorded verdict), {stats.failed} failed, "
            f"in {stats.batches} batch(es)",
            highlight=False,
        )

    try:
        asyncio.run(main())
    except asyncio.CancelledError:
        stderr.print("stopped; the unfinished items were given back to the queue")
    finally:
        engine.dispose()
