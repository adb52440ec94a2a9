"""The FastAPI application: ``create_app()`` builds it (nothing happens at import time).

``judge serve`` runs it under uvicorn. On start-up it connects to the ledger, brings the schema up
to date and, with SQLite (or ``OUTCOME_JUDGE_EMBEDDED_WORKER=true``), starts a verification worker
inside the process. With PostgreSQL the rate limits, failed-key counters and request counters are
kept in the database for every API process (:mod:`api.shared_state`, :mod:`api.shared_metrics`);
a SQLite ledger's one process keeps them in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.engine import Engine

import judge  # noqa: F401  (sets LITELLM_LOCAL_MODEL_COST_MAP before anything imports litellm)
from api import errors, web
from api.limits import AuthThrottle, BodySizeLimit, LocalGate, RateLimiter
from api.methods import OptionsMiddleware
from api.routers import (
    attestations,
    audits,
    calibration,
    documents,
    health,
    labels,
    meters,
    metrics,
    outcomes,
    tenant,
    verifications,
)
from config.settings import get_settings

API_DESCRIPTION = """\
Independent, calibrated verification of AI customer-support resolutions and generated reports.

Every route except `/healthz` and `/readyz` needs `Authorization: Bearer <key>`; a key sees only
its own tenant's data (another tenant's ids answer 404). Errors are
`{"error": {"code", "message", "details"}}`.
"""


def _embedded_worker_wanted(db_url: str, setting: bool | None) -> bool:
    if setting is not None:
        return setting
    return db_url.startswith("sqlite")


def shared_limits_wanted(db_url: str, setting: bool | None) -> bool:
    """Whether limits and request counters live in the database (default: with PostgreSQL).

    Raises ``ValueError`` when asked for on SQLite, which one process serves.
    """
    sqlite = db_url.startswith("sqlite")
    if setting and sqlite:
        raise ValueError(
            "OUTCOME_JUDGE_SHARED_LIMITS=true needs PostgreSQL: a SQLite ledger is served by one "
            "API process, which keeps its limits in memory; unset it or use a PostgreSQL ledger"
        )
    return not sqlite if setting is None else setting


def _start_limits(
    app: FastAPI, engine: Engine, stop: asyncio.Event, *, shared: bool
) -> list[asyncio.Task[None]]:
    """Put the rate limit and throttle on ``app.state.gate``; start the shared state's chores."""
    settings = get_settings()
    failures, lockout = settings.auth_failures_per_minute, settings.auth_lockout_seconds
    if not shared:
        throttle_here = AuthThrottle(max_failures=failures, lockout=lockout)
        app.state.gate = LocalGate(RateLimiter(), throttle_here)
        app.state.shared_counters = None
        return []
    from api.shared_metrics import SharedCounters
    from api.shared_state import SharedAuthThrottle, SharedGate, SharedRateLimiter, repeat

    throttle = SharedAuthThrottle(engine, max_failures=failures, lockout=lockout)
    app.state.gate = SharedGate(SharedRateLimiter(engine), throttle)
    interval = settings.metrics_flush_seconds
    counters = SharedCounters(engine, app.state.request_stats, interval=interval)
    app.state.shared_counters = counters
    return [
        asyncio.create_task(repeat(stop, interval, counters.flush, "writing request counters")),
        asyncio.create_task(repeat(stop, 60.0, throttle.prune, "pruning failed-key counters")),
    ]


def create_app(*, db_url: str | None = None, embedded_worker: bool | None = None) -> FastAPI:
    """Build the application for the ledger at ``db_url`` (default: ``OUTCOME_JUDGE_DB_URL``)."""
    settings = get_settings()
    url = db_url or settings.db_url
    run_worker = _embedded_worker_wanted(
        url, embedded_worker if embedded_worker is not None else settings.embedded_worker
    )
    shared = shared_limits_wanted(url, settings.shared_limits)
    meter_url = settings.meter_read_url
    if meter_url and url.startswith("sqlite"):
        raise ValueError(
            "OUTCOME_JUDGE_METER_READ_URL names a read replica of a PostgreSQL ledger; this "
            "ledger is SQLite: unset it"
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from ledger.db import make_engine
        from ledger.schema import migrate

        engine = make_engine(url)
        await asyncio.to_thread(migrate, engine)
        app.state.engine = engine
        # Not connected now: a replica that is down must not keep the API from starting (the
        # meter then reads the ledger itself).
        app.state.meter_engine = make_engine(meter_url, check=False) if meter_url else None
        # Everything loaded so far (modules, schemas, the app) lives as long as the app: out of
        # the collector's full passes, each of which otherwise walks it again (~50 ms, every few
        # ingest batches of 500, whose objects trigger them). Unfrozen at shutdown, when what
        # became garbage meanwhile is collected as usual.
        gc.freeze()
        worker_task: asyncio.Task[None] | None = None
        stop = asyncio.Event()
        chores = _start_limits(app, engine, stop, shared=shared)
        if run_worker:
            from app.worker import run_worker_loop

            worker_task = asyncio.create_task(run_worker_loop(engine, stop=stop))
        try:
            yield
        finally:
            stop.set()
            # The last write of the request counters, so a clean stop loses none.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*chores), timeout=10)
            if worker_task is not None:
                # Let the worker finish the batch in hand; past the grace it is cancelled, which
                # releases the batch's items for the next start (nothing is lost either way).
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                    await asyncio.wait_for(asyncio.shield(worker_task), timeout=10)
                worker_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await worker_task
            if app.state.meter_engine is not None:
                app.state.meter_engine.dispose()
            engine.dispose()
            gc.unfreeze()

    app = FastAPI(
        title="outcome-judge",
        version="1",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        responses={
            401: {"model": errors.ErrorResponse, "description": "Missing or unknown API key."},
            413: {"model": errors.ErrorResponse, "description": "Request body too large."},
            422: {"model": errors.ErrorResponse, "description": "Invalid input."},
            429: {
                "model": errors.ErrorResponse,
                "description": "Over the tenant's rate, or too many failed key attempts.",
            },
        },
    )
    app.state.embedded_worker = run_worker
    errors.install(app)
    metrics.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(OptionsMiddleware)
    app.include_router(health.router)
    web.install(app)
    for module in (
        tenant,
        outcomes,
        labels,
        documents,
        verifications,
        calibration,
        meters,
        metrics,
        audits,
        attestations,
    ):
        app.include_router(module.router)
    return app
