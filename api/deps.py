"""Dependencies shared by the routers: the database engine and the calling tenant."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine

from api.errors import ApiError, ErrorResponse
from api.limits import Gate, Refusal
from api.web.session import key_id_of
from config.settings import Settings, get_settings
from ledger.tenants import TenantInfo

bearer = HTTPBearer(
    auto_error=False,
    description="An API key from `judge tenants create NAME` (sent as `Bearer oj_...`).",
)


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(get_engine)]


def get_meter_engine(request: Request) -> Engine | None:
    """The meters' read replica (``OUTCOME_JUDGE_METER_READ_URL``), None when unset."""
    engine: Engine | None = getattr(request.app.state, "meter_engine", None)
    return engine


MeterEngineDep = Annotated[Engine | None, Depends(get_meter_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def current_tenant(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> TenantInfo:
    """The tenant of the request's API key; 401 without a valid key, 429 over the rate or
    after too many failed key attempts (:class:`api.limits.Gate`), 503 when those limits are
    kept in a database that does not answer."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(
            401,
            "missing API key: send `Authorization: Bearer <key>` (create one with "
            "`judge tenants create NAME`)",
            headers=challenge,
        )
    gate: Gate = request.app.state.gate
    key_id, address = key_id_of(credentials.credentials), client_address(request)
    admission = await gate.admit(
        engine, credentials.credentials, key_id, address, settings.requests_per_minute
    )
    if admission.refusal is not None:
        raise throttled(admission.refusal)
    tenant = admission.tenant
    if tenant is None:
        raise ApiError(401, "unknown or revoked API key", headers=challenge)
    request.state.tenant = tenant.name
    request.state.key_id = key_id  # who did it, for what a route records (attestations)
    wait = admission.wait
    if wait is not None:
        per_minute = tenant.requests_per_minute or settings.requests_per_minute
        raise ApiError(
            429,
            f"tenant {tenant.name!r} is over its limit of {per_minute} requests per minute; "
            f"retry after {wait:.0f} s",
            details={"requests_per_minute": per_minute, "retry_after_seconds": wait},
            headers={"Retry-After": f"{wait:.0f}"},
        )
    return tenant


TenantDep = Annotated[TenantInfo, Depends(current_tenant)]


def client_address(request: Request) -> str:
    """The peer address the throttle counts by (uvicorn's, which honours X-Forwarded-For only
    from the proxies it trusts, by default 127.0.0.1)."""
    return request.client.host if request.client is not None else "unknown"


def throttled(refusal: Refusal) -> ApiError:
    """The 429 for an authentication attempt refused by the throttle."""
    return ApiError(
        429,
        refusal.message,
        details={"scope": refusal.scope, "retry_after_seconds": refusal.retry_after},
        headers={"Retry-After": str(refusal.retry_after)},
    )


#: What each scope lets a key do, for the 403's message.
_SCOPE_ACTS = {
    "submit": "send outcomes or queue verifications",
    "review": "record human labels",
    "configure": "store rubrics or panels, attest documents or choose a job's panel",
}


def _scoped(scope: str) -> Callable[[TenantInfo], Awaitable[TenantInfo]]:
    async def check(tenant: TenantDep) -> TenantInfo:
        if scope not in tenant.key_scopes:
            raise scope_refused(tenant, scope)
        return tenant

    return check


def scope_refused(tenant: TenantInfo, scope: str) -> ApiError:
    """The 403 for a key without ``scope``."""
    return ApiError(
        403,
        f"this API key may not {_SCOPE_ACTS[scope]}: it lacks the {scope!r} scope; use a key "
        f"that has it (`judge tenants add-key {tenant.name} --scope {scope}`)",
        details={"required_scope": scope, "key_scopes": sorted(tenant.key_scopes)},
    )


#: The calling tenant, for routes that change what a key scope guards (403 without it).
SubmitterDep = Annotated[TenantInfo, Depends(_scoped("submit"))]
ReviewerDep = Annotated[TenantInfo, Depends(_scoped("review"))]
ConfiguratorDep = Annotated[TenantInfo, Depends(_scoped("configure"))]

#: The OpenAPI entry of that 403, for the routes that take a scoped dependency.
SCOPE_REFUSED: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorResponse, "description": "The API key lacks the scope this route needs."}
}
