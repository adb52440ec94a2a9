"""`judge serve`: the HTTP API (uvicorn) over the ledger."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from app.cli._common import LedgerUrlOpt, fail, stderr

#: uvicorn's log levels.
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    db: LedgerUrlOpt = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="API processes (PostgreSQL only; SQLite serves from one process).",
        ),
    ] = 1,
    embedded_worker: Annotated[
        bool | None,
        typer.Option(
            "--embedded-worker/--no-embedded-worker",
            help="Run a verification worker in the API process. Default: on for SQLite, off for "
            "PostgreSQL (start `judge worker` processes instead).",
        ),
    ] = None,
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level", help=f"uvicorn log level: {', '.join(LOG_LEVELS)}.", metavar="LEVEL"
        ),
    ] = "info",
) -> None:
    """Serve the API: ingest outcomes, run verification jobs, label, calibrate, meter.

    Every route but /healthz and /readyz needs a key: create a tenant and its key first with
    `judge tenants create NAME --db URL`. OpenAPI documentation is at /docs once running;
    Prometheus metrics of the calling tenant at /metrics.

    Quick start (SQLite, one process, verification worker inside): judge serve

    Production (PostgreSQL, several API processes, separate workers):
    judge serve --db postgresql+psycopg://user:pw@host/db --host 0.0.0.0 --workers 4
    and `judge worker --db ...` on as many machines as needed. Rate limits, failed-key
    lock-outs and /metrics request counts are kept in PostgreSQL, shared by every API process
    on every host (see docs/scaling.md).
    """
    import uvicorn

    from app.cli._common import redact_url
    from config.settings import get_settings
    from ledger.db import LedgerDatabaseError, make_engine
    from ledger.schema import migrate

    if log_level.lower() not in LOG_LEVELS:
        fail(f"--log-level: {log_level!r} is not a log level; use one of {', '.join(LOG_LEVELS)}")
    url = db or get_settings().db_url
    if workers > 1 and url.startswith("sqlite"):
        fail(
            "--workers > 1 needs PostgreSQL: SQLite serves from one process. Pass "
            "--db postgresql+psycopg://... or drop --workers"
        )
    from api.app import shared_limits_wanted

    try:
        shared_limits_wanted(url, get_settings().shared_limits)
    except ValueError as exc:
        fail(str(exc))
    if get_settings().meter_read_url and url.startswith("sqlite"):
        fail("OUTCOME_JUDGE_METER_READ_URL names a replica of a PostgreSQL ledger: unset it")
    try:
        # Fail here, with the fix, rather than inside every uvicorn process.
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
    except LedgerDatabaseError as exc:
        fail(str(exc))
    # The app factory reads these in each process uvicorn starts.
    os.environ["OUTCOME_JUDGE_DB_URL"] = url
    if embedded_worker is not None:
        os.environ["OUTCOME_JUDGE_EMBEDDED_WORKER"] = "true" if embedded_worker else "false"
    get_settings.cache_clear()
    stderr.print(
        f"serving {redact_url(url)} on http://{host}:{port} with {workers} API process"
        f"{'es' if workers > 1 else ''} (docs at /docs)",
        highlight=False,
    )
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level.lower(),
        access_log=False,
    )
