"""Audits of a vendor's per-resolution bill (the service side of ``judge audit``).

``POST /v1/audits`` reconciles the posted claims with this tenant's verdicts and stores the
result whole; ``GET /v1/audits`` lists them, ``GET /v1/audits/{id}`` returns one as it was made
(JSON, or with ``Accept: text/html`` the self-contained dispute pack).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import HTMLResponse

from api.deps import EngineDep, TenantDep
from api.errors import ApiError, ErrorResponse, not_found
from api.schemas.audits import AuditCreate, AuditList, AuditPublic, AuditSummary
from app.audit import run_and_store_audit
from judge.models import as_utc
from ledger.audit_source import imported_claims
from ledger.audits import StoredAudit, get_audit, list_audits
from ledger.claims import Claim

router = APIRouter(prefix="/v1", tags=["audits"])

AuditId = Annotated[int, Path(ge=1, le=2**62, description="The audit's id.")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such audit for this tenant."},
}


def _public(stored: StoredAudit) -> AuditPublic:
    assert stored.report is not None
    return AuditPublic.model_validate(
        {
            **stored.report.model_dump(by_alias=True),
            "id": stored.id,
            "created_at": stored.created_at,
        }
    )


@router.post("/audits", status_code=201, response_model=AuditPublic)
async def post_audit(
    body: AuditCreate, tenant: TenantDep, engine: EngineDep, response: Response
) -> AuditPublic:
    """Reconcile the vendor's claims with the verdicts and store the audit.

    The claims are the invoice's (``claims``), or with ``imported_price_usd`` the resolutions the
    vendor claimed in the imported conversations.

    Every claim dated in ``[from, to)`` is verified, not verified (disputed), a duplicate
    (disputed), abstained or unjudged (pending), or unknown; claims outside the period are
    listed under ``problems``. The verified count is corrected for the panel's measured error.
    """
    since = None if body.from_ is None else as_utc(body.from_)
    until = None if body.to is None else as_utc(body.to)
    if since is not None and until is not None and since >= until:
        raise ApiError(422, "from must be before to", details=[{"field": "from"}])
    if (body.claims is None) == (body.imported_price_usd is None):
        raise ApiError(
            422,
            "give either claims (the vendor's invoice) or imported_price_usd (to audit the "
            "claims imported with the conversations), not both and not neither",
            details=[{"field": "claims"}],
        )
    if body.claims is not None:
        claims = [
            Claim(i + 1, c.outcome_id, as_utc(c.claimed_at), c.claim, c.price_usd)
            for i, c in enumerate(body.claims)
        ]
    else:
        assert body.imported_price_usd is not None
        claims = await asyncio.to_thread(
            imported_claims,
            engine,
            tenant.name,
            price_usd=body.imported_price_usd,
            since=since,
            until=until,
        )
    stored = await asyncio.to_thread(
        run_and_store_audit,
        engine,
        tenant.name,
        claims,
        since=since,
        until=until,
        n_boot=body.n_boot,
        seed=body.seed,
    )
    response.headers["Location"] = f"/v1/audits/{stored.id}"
    return _public(stored)


@router.get("/audits", response_model=AuditList)
async def get_audits(tenant: TenantDep, engine: EngineDep) -> AuditList:
    """This tenant's audits, newest first (the last 100)."""
    stored = await asyncio.to_thread(list_audits, engine, tenant.name)
    return AuditList(
        items=[
            AuditSummary.model_validate(
                {
                    "id": s.id,
                    "created_at": s.created_at,
                    "from": s.period_from,
                    "to": s.period_to,
                    "claimed": s.claimed,
                    "billed_usd": s.billed_usd,
                    "disputed_usd": s.disputed_usd,
                    "disputes": s.disputes,
                }
            )
            for s in stored
        ]
    )


@router.get(
    "/audits/{audit_id}",
    response_model=AuditPublic,
    responses={**_ERRORS, 200: {"content": {"text/html": {}}}},
)
async def get_audit_by_id(
    audit_id: AuditId, request: Request, tenant: TenantDep, engine: EngineDep
) -> Any:
    """One audit as it was made. ``Accept: text/html`` gives the dispute pack page."""
    stored = await asyncio.to_thread(get_audit, engine, tenant.name, audit_id)
    if stored is None or stored.report is None:
        raise not_found("audit", str(audit_id))
    if "text/html" in request.headers.get("accept", ""):
        from ledger.audit_html import render_audit_html

        return HTMLResponse(render_audit_html(stored.report))
    return _public(stored)
