"""The FastAPI application: ``create_app()`` builds it (nothing happens at import time).

``judge serve`` runs it under uvicorn. On start-up it connects to the ledger, brings the schema up
to date and, with SQLite (or ``OUTCOME_JUDGE_EMBEDDED_WORKER=true``), starts a verification worker
inside the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import judge  # noqa: F401  (sets LITELLM_LOCAL_MODEL_COST_MAP before anything imports litellm)
from api import errors, web
from api.limits import AuthThrottle, BodySizeLimit, RateLimiter
from api.methods import OptionsMiddleware
from api.routers import (
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


def create_app(*, db_url: str | None = None, embedded_worker: bool | None = None) -> FastAPI:
    """Build the application for the ledger at ``db_url`` (default: ``OUTCOME_JUDGE_DB_URL``)."""
    settings = get_settings()
    url = db_url or settings.db_url
    run_worker = _embedded_worker_wanted(
        url, embedded_worker if embedded_worker is not None else settings.embedded_worker
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from ledger.db import make_engine
        from ledger.schema import migrate

        engine = make_engine(url)
        await asyncio.to_thread(migrate, engine)
        app.state.engine = engine
        # Everything loaded so far (modules, schemas, the app) lives as long as the app: out of
        # the collector's full passes, each of which otherwise walks it again (~50 ms, every few
        # ingest batches of 500, whose objects trigger them). Unfrozen at shutdown, when what
        # became garbage meanwhile is collected as usual.
        gc.freeze()
        worker_task: asyncio.Task[None] | None = None
        stop = asyncio.Event()
        if run_worker:
            from app.worker import run_worker_loop

            worker_task = asyncio.create_task(run_worker_loop(engine, stop=stop))
        try:
            yield
        finally:
            stop.set()
            if worker_task is not None:
                # Let the worker finish the batch in hand; past the grace it is cancelled, which
                # releases the batch's items for the next start (nothing is lost either way).
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                    await asyncio.wait_for(asyncio.shield(worker_task), timeout=10)
                worker_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await worker_task
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
    app.state.rate_limiter = RateLimiter()
    app.state.auth_throttle = AuthThrottle(
        max_failures=settings.auth_failures_per_minute, lockout=settings.auth_lockout_seconds
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
    ):
        app.include_router(module.router)
    return app
