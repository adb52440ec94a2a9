"""Dependencies shared by the routers: the database engine and the calling tenant."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine

from api.errors import ApiError
from judge.settings import Settings, get_settings
from ledger.tenants import TenantInfo, authenticate

bearer = HTTPBearer(
    auto_error=False,
    description="An API key from `judge tenants create NAME` (sent as `Bearer oj_...`).",
)


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def current_tenant(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> TenantInfo:
    """The tenant of the request's API key; 401 without a valid key, 429 over the rate."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(
            401,
            "missing API key: send `Authorization: Bearer <key>` (create one with "
            "`judge tenants create NAME`)",
            headers=challenge,
        )
    tenant = await asyncio.to_thread(authenticate, engine, credentials.credentials)
    if tenant is None:
        raise ApiError(401, "unknown or revoked API key", headers=challenge)
    request.state.tenant = tenant.name
    per_minute = tenant.requests_per_minute or settings.requests_per_minute
    wait = request.app.state.rate_limiter.check(tenant.name, per_minute)
    if wait is not None:
        raise ApiError(
            429,
            f"tenant {tenant.name!r} is over its limit of {per_minute} requests per minute; "
            f"retry after {wait:.0f} s",
            details={"requests_per_minute": per_minute, "retry_after_seconds": wait},
            headers={"Retry-After": f"{wait:.0f}"},
        )
    return tenant


TenantDep = Annotated[TenantInfo, Depends(current_tenant)]
