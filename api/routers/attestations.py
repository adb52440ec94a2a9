"""Attested documents: the briefs and sources a tenant's buyer vouches for, so that a panel with
``report_inputs: attested`` verifies only reports made of them (:mod:`judge.attestation`)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.deps import SCOPE_REFUSED, ConfiguratorDep, EngineDep, SettingsDep, TenantDep
from api.errors import ApiError, ErrorResponse
from api.schemas.attestations import (
    AttestationBatch,
    AttestationPage,
    AttestationResult,
    AttestedDocumentPublic,
)
from ledger.attested import attest_documents, list_attested

router = APIRouter(prefix="/v1", tags=["attested documents"])


@router.post(
    "/attestations",
    response_model=AttestationResult,
    responses={
        **SCOPE_REFUSED,
        413: {"model": ErrorResponse, "description": "Over the batch cap or the body limit."},
    },
)
async def post_attestations(
    body: AttestationBatch,
    request: Request,
    tenant: ConfiguratorDep,
    engine: EngineDep,
    settings: SettingsDep,
) -> AttestationResult:
    """Attest documents (all in one transaction): a report whose brief and sources are all
    attested can be verified under a panel with ``report_inputs: attested``; one with any other
    is held back for review. Needs the ``configure`` scope: the buyer's key, not the key of the
    integration that sends the reports. Only digests are stored; attesting one again changes
    nothing. A report held back before is judged again by a later job that selects it
    (``unverified_only`` skips it: it has a verdict)."""
    if len(body.documents) > settings.max_batch:
        raise ApiError(
            413,
            f"{len(body.documents)} documents in one request; send at most "
            f"{settings.max_batch} per request (OUTCOME_JUDGE_MAX_BATCH)",
            details={"max_batch": settings.max_batch, "count": len(body.documents)},
        )
    documents = [(doc.digest(), doc.id) for doc in body.documents]
    key_id = getattr(request.state, "key_id", None)
    created = await asyncio.to_thread(
        attest_documents, engine, tenant.name, documents, key_id=key_id
    )
    distinct = len({digest for digest, _ in documents})
    return AttestationResult(
        count=distinct,
        created=len(created),
        unchanged=distinct - len(created),
        sha256=[digest for digest, _ in documents],
    )


@router.get("/attestations", response_model=AttestationPage)
async def get_attestations(
    tenant: TenantDep,
    engine: EngineDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1, description="`next_before` of a page")] = None,
) -> AttestationPage:
    """The tenant's attested documents, newest first (digests, never texts)."""
    page, next_before = await asyncio.to_thread(
        list_attested, engine, tenant.name, limit=limit, before=before
    )
    return AttestationPage(
        items=[
            AttestedDocumentPublic(
                id=doc.doc_id, sha256=doc.digest, key_id=doc.key_id, created_at=doc.created_at
            )
            for doc in page
        ],
        next_before=next_before,
    )
