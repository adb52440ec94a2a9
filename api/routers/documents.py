"""Rubrics and panels: the shipped ones and those a tenant stores (versioned by content hash).

A posted panel is held to the server's policy (:func:`ledger.documents.check_panel_policy`): no
``api_base`` outside ``OUTCOME_JUDGE_ALLOWED_API_BASES``, ``api_key_env`` only a provider key
variable, no litellm pass-through keys beyond a safe few, ``learned`` judges only with the
server's model.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path

from api.deps import SCOPE_REFUSED, ConfiguratorDep, EngineDep, SettingsDep, TenantDep
from api.errors import ApiError, ErrorResponse, not_found
from api.schemas.documents import (
    DocumentCreate,
    DocumentDetail,
    DocumentList,
    DocumentPublic,
    DocumentVersion,
)
from api.schemas.text import NUL
from config.settings import Settings
from judge.panel import Panel
from judge.rubric import Rubric
from ledger.documents import (
    DocumentError,
    DocumentInfo,
    UnknownDocumentError,
    get_document,
    list_documents,
    save_panel,
    save_rubric,
)

router = APIRouter(prefix="/v1", tags=["rubrics and panels"])

Kind = Literal["rubric", "panel"]
Name = Annotated[str, Path(min_length=1, max_length=200, description="name or name@version")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such document for this tenant."},
}


def _public(info: DocumentInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "version": info.version,
        "ref": f"{info.name}@{info.version}",
        "source": info.source,
        "created_at": info.created_at,
        "document": info.document.model_dump(mode="json"),
    }


def _invalid(exc: DocumentError) -> ApiError:
    return ApiError(422, exc.message, details=exc.problems)


async def _create(
    kind: Kind, engine: Any, tenant: str, text: str, settings: Settings
) -> DocumentPublic:
    try:
        if kind == "rubric":
            doc: Rubric | Panel = await asyncio.to_thread(save_rubric, engine, tenant, text)
        else:
            doc = await asyncio.to_thread(save_panel, engine, tenant, text, settings=settings)
    except DocumentError as exc:
        raise _invalid(exc) from None
    info, _ = await asyncio.to_thread(
        get_document, engine, tenant, kind, f"{doc.name}@{doc.version}", settings=settings
    )
    return DocumentPublic.model_validate(_public(info))


async def _list(kind: Kind, engine: Any, tenant: str, settings: Settings) -> DocumentList:
    try:
        infos = await asyncio.to_thread(list_documents, engine, tenant, kind, settings=settings)
    except DocumentError as exc:  # a stored panel the current policy refuses
        raise _invalid(exc) from None
    return DocumentList(items=[DocumentPublic.model_validate(_public(i)) for i in infos])


async def _get(
    kind: Kind, engine: Any, tenant: str, name: str, settings: Settings
) -> DocumentDetail:
    if NUL in name:
        raise not_found(kind, name)
    try:
        info, versions = await asyncio.to_thread(
            partial(get_document, settings=settings, check_policy=False), engine, tenant, kind, name
        )
    except UnknownDocumentError:
        raise not_found(kind, name) from None
    except DocumentError as exc:
        raise _invalid(exc) from None
    body = _public(info)
    body["yaml"] = info.text
    body["versions"] = [
        DocumentVersion(version=v.version, created_at=v.created_at)
        for v in versions
        if v.created_at is not None
    ]
    return DocumentDetail.model_validate(body)


@router.post(
    "/rubrics",
    status_code=201,
    response_model=DocumentPublic,
    responses=SCOPE_REFUSED,
)
async def post_rubric(
    body: DocumentCreate, tenant: ConfiguratorDep, engine: EngineDep, settings: SettingsDep
) -> DocumentPublic:
    """Store a rubric (YAML). 422 lists every problem with its line and field in ``details``.

    Its version is its content hash: the same content again stores nothing new (and makes that
    version the current one).
    """
    return await _create("rubric", engine, tenant.name, body.yaml, settings)


@router.get("/rubrics", response_model=DocumentList)
async def get_rubrics(tenant: TenantDep, engine: EngineDep, settings: SettingsDep) -> DocumentList:
    """The shipped rubrics and this tenant's (newest version of each name)."""
    return await _list("rubric", engine, tenant.name, settings)


@router.get("/rubrics/{name}", response_model=DocumentDetail, responses=_ERRORS)
async def get_rubric(
    name: Name, tenant: TenantDep, engine: EngineDep, settings: SettingsDep
) -> DocumentDetail:
    """The rubric a job naming ``name`` uses (stored, else shipped), with its stored versions."""
    return await _get("rubric", engine, tenant.name, name, settings)


@router.post(
    "/panels",
    status_code=201,
    response_model=DocumentPublic,
    responses=SCOPE_REFUSED,
)
async def post_panel(
    body: DocumentCreate, tenant: ConfiguratorDep, engine: EngineDep, settings: SettingsDep
) -> DocumentPublic:
    """Store a panel (YAML). 422 for an invalid panel or one the server's policy refuses
    (``api_base`` not in OUTCOME_JUDGE_ALLOWED_API_BASES, ``api_key_env`` not a provider key
    variable, unsafe litellm keys, a ``learned`` judge path other than the server's model)."""
    return await _create("panel", engine, tenant.name, body.yaml, settings)


@router.get("/panels", response_model=DocumentList)
async def get_panels(tenant: TenantDep, engine: EngineDep, settings: SettingsDep) -> DocumentList:
    """The server's ``default`` panel and this tenant's panels (newest version of each name)."""
    return await _list("panel", engine, tenant.name, settings)


@router.get("/panels/{name}", response_model=DocumentDetail, responses=_ERRORS)
async def get_panel(
    name: Name, tenant: TenantDep, engine: EngineDep, settings: SettingsDep
) -> DocumentDetail:
    """The panel a job naming ``name`` uses, with its stored versions (newest first)."""
    return await _get("panel", engine, tenant.name, name, settings)
