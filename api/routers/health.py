"""Liveness and readiness (the only routes that need no key)."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from fastapi import APIRouter
from sqlalchemy.engine import Engine

from api.deps import EngineDep
from api.errors import ApiError, ErrorResponse
from api.schemas.health import (
    Health,
)

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up (no database access)."""
    return Health(status="ok")


def _ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


@router.get("/readyz", response_model=Health, responses={503: {"model": ErrorResponse}})
async def readyz(engine: EngineDep) -> Health:
    """The database answers: the process can serve requests."""
    try:
        await asyncio.to_thread(_ping, engine)
    except Exception as exc:
        raise ApiError(503, f"the database does not answer: {type(exc).__name__}") from None
    return Health(status="ready")
