"""Outcomes: batch ingest (native or CloudEvents, idempotent on id) and per-outcome reads.

The ingest body is parsed here rather than by FastAPI because one route takes three content
types (``application/json`` object, ``application/cloudevents+json`` single event,
``application/cloudevents-batch+json`` array) and validates item by item, so a 422 names the
failing item's index and field. Everything is validated before anything is written.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from api.deps import SCOPE_REFUSED, EngineDep, SettingsDep, SubmitterDep, TenantDep
from api.errors import ApiError, ErrorResponse, not_found
from api.schemas._openapi import inline_schema
from api.schemas.outcomes import (
    EVENT_SOURCE_KEY,
    CloudEventIn,
    IngestEnvelope,
    IngestRequest,
    IngestResult,
    OutcomeList,
    OutcomePublic,
)
from api.schemas.text import NUL, NUL_MESSAGE, raw_text_clean, text_problem
from judge.input_rules import TEXT_CHECKED, check_id
from judge.models import Outcome
from ledger.ingest import (
    IngestConflictError,
    InvalidItemError,
    list_outcomes,
    outcome_detail,
    record_outcomes,
)
from ledger.records import EMBEDDED_LABEL_SOURCE, UNREVIEWED_LABEL_SOURCE

router = APIRouter(prefix="/v1", tags=["outcomes"])

JSON = "application/json"
CE_SINGLE = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"
_MAX_DETAILS = 50
#: Deepest JSON accepted; outcomes need about 6 levels, metadata gets the rest.
MAX_DEPTH = 64
_TOO_DEEP = object()

_REQUEST_BODY = {
    "required": True,
    "content": {
        JSON: {"schema": inline_schema(IngestRequest)},
        CE_SINGLE: {"schema": inline_schema(CloudEventIn)},
        CE_BATCH: {"schema": inline_schema(list[CloudEventIn])},
    },
}


def _problem(loc: tuple[Any, ...], message: str, index: int | None) -> dict[str, Any]:
    return {
        "field": ".".join(str(p) for p in loc) or "body",
        "location": "body",
        "message": message,
        "index": index,
    }


def _invalid(problems: list[dict[str, Any]], what: str = "outcome") -> ApiError:
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    where = f" {what} {first['index']}" if first.get("index") is not None else ""
    return ApiError(
        422,
        f"{first['field']}: {first['message']}{more}; nothing was written (fix{where} and resend)",
        code="invalid",
        details=problems[:_MAX_DETAILS],
    )


def _errors(exc: ValidationError, prefix: tuple[Any, ...], index: int | None) -> list[Any]:
    return [
        _problem((*prefix, *err.get("loc", ())), str(err.get("msg", "invalid")), index)
        for err in exc.errors()
    ]


def _item(
    raw: Any, prefix: tuple[Any, ...], index: int, clean: bool
) -> tuple[Outcome | None, list[Any]]:
    """One item: a CloudEvent (it has ``specversion``) or a native outcome.

    ``clean``: the raw body can hold no NUL and no lone surrogate (:func:`raw_text_clean`), so
    neither this item nor the models walk its text looking for them.
    """
    context = TEXT_CHECKED if clean else None
    found = None if clean else text_problem(raw)
    if found is not None:
        where, message = found
        return None, [_problem((*prefix, *where), message, index)]
    if isinstance(raw, dict) and "specversion" in raw:
        try:
            event = CloudEventIn.model_validate(raw, context=context)
        except ValidationError as exc:
            return None, _errors(exc, prefix, index)
        data = dict(event.data)
        data.setdefault("id", event.id)
        metadata = data.get("metadata")
        if metadata is None or isinstance(metadata, dict):
            data["metadata"] = {EVENT_SOURCE_KEY: event.source, **(metadata or {})}
        try:
            return Outcome.model_validate(data, context=context), []
        except ValidationError as exc:
            return None, _errors(exc, (*prefix, "data"), index)
    try:
        return Outcome.model_validate(raw, context=context), []
    except ValidationError as exc:
        return None, _errors(exc, prefix, index)


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON (a scalar is 1, ``[1]`` is 2), without recursion (so any
    depth is safe to measure); once past :data:`MAX_DEPTH` it stops at ``MAX_DEPTH + 1``.

    Level by level: each level's nodes are the children of the level above, gathered with
    ``list.extend`` (most nodes are scalars, which then cost one type check each).

    >>> _depth(1), _depth([]), _depth({"a": [1, {}]}), _depth([[[]], 2])
    (1, 1, 3, 3)
    """
    level, nodes = 0, [value]
    while nodes and level <= MAX_DEPTH:
        level += 1
        below: list[Any] = []
        for node in nodes:
            if isinstance(node, dict):
                below.extend(node.values())
            elif isinstance(node, list):
                below.extend(node)
        nodes = below
    return level


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value; send a number or null")


def _finite_float(text: str) -> float:
    # Python reads 1e999 as infinity, which neither the ledger nor strict JSON can hold.
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", JSON).split(";", 1)[0].strip().lower() or JSON


def _parse(raw: bytes, media: str, max_batch: int) -> tuple[list[Outcome], dict[str, int] | None]:
    if media not in (JSON, CE_SINGLE, CE_BATCH):
        raise ApiError(
            415,
            f'unsupported Content-Type {media!r}; send {JSON} ({{"outcomes": [...]}}), '
            f"{CE_SINGLE} (one event) or {CE_BATCH} (an array of events)",
        )
    try:
        body = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _invalid([_problem((), f"the body is not valid JSON: {exc}", None)]) from None
    except RecursionError:
        body = _TOO_DEEP
    if body is _TOO_DEEP or _depth(body) > MAX_DEPTH:
        raise _invalid([_problem((), f"JSON nested deeper than {MAX_DEPTH} levels", None)])
    bases: dict[str, int] | None = None
    prefix: tuple[str, ...] = ()
    if media == JSON:
        try:
            envelope = IngestEnvelope.model_validate(body)
        except ValidationError as exc:
            raise _invalid(_errors(exc, (), None)) from None
        items, prefix, bases = envelope.outcomes, ("outcomes",), envelope.base_revisions
    elif media == CE_SINGLE:
        items = [body]
    elif isinstance(body, list) and body:
        items = body
    else:
        raise _invalid([_problem((), "a CloudEvents batch is a non-empty JSON array", None)])
    if len(items) > max_batch:
        raise ApiError(
            413,
            f"{len(items)} outcomes in one request; send at most {max_batch} per request "
            "(OUTCOME_JUDGE_MAX_BATCH) and split the rest into further requests",
            details={"max_batch": max_batch, "count": len(items)},
        )
    outcomes: list[Outcome] = []
    problems: list[Any] = []
    clean = raw_text_clean(raw)
    for index, raw_item in enumerate(items):
        loc = (*prefix, index) if media != CE_SINGLE else ()
        outcome, errors = _item(raw_item, loc, index, clean)
        problems += errors
        if outcome is not None:
            outcomes.append(outcome)
        if len(problems) >= _MAX_DETAILS:
            break
    if problems:
        raise _invalid(problems)
    return outcomes, bases


@router.post(
    "/outcomes",
    response_model=IngestResult,
    openapi_extra={"requestBody": _REQUEST_BODY},
    responses={
        **SCOPE_REFUSED,
        409: {"model": ErrorResponse, "description": "Conflicting revisions; nothing written."},
        413: {"model": ErrorResponse, "description": "Over the batch cap or the body limit."},
        415: {"model": ErrorResponse, "description": "Unsupported Content-Type."},
    },
)
async def ingest_outcomes(
    request: Request, tenant: SubmitterDep, engine: EngineDep, settings: SettingsDep
) -> Response:
    """Store a batch of outcomes (idempotent on outcome id; all or nothing).

    Needs a key with the ``submit`` scope. A ``label`` inside an outcome is stored as a human
    label only when the key also has ``review``; otherwise as ``submitted`` (kept, not counted).

    Each item is a native outcome or a CloudEvents envelope whose ``data`` is the outcome. The
    same payload again is ``unchanged``; a changed payload is stored as a new revision
    (``revised``). 422 names the failing item (``outcomes.3.conversation.0.role``); an outcome
    naming another tenant or carrying a future timestamp is 422 too; 409 for the same id twice
    with different payloads or a stale ``base_revisions`` entry; 413 over the batch cap.
    """
    raw = await request.body()
    media = _media_type(request)
    # A label inside an outcome counts as a person's only from a key that may label: the
    # integration of the party billed per resolution must not calibrate its own judge.
    labels = EMBEDDED_LABEL_SOURCE if "review" in tenant.key_scopes else UNREVIEWED_LABEL_SOURCE
    # Parsing, validating and storing run in one worker thread: the event loop stays free for
    # other requests (a batch of 500 takes tens of ms to validate), and one hand-off per request.
    body = await asyncio.to_thread(
        _ingest, raw, media, settings.max_batch, engine, tenant.name, labels
    )
    return Response(body, media_type=JSON)


def _ingest(
    raw: bytes, media: str, max_batch: int, engine: Engine, tenant: str, label_source: str
) -> bytes:
    """The ingest route's work, off the event loop: the response body, or an :class:`ApiError`."""
    outcomes, bases = _parse(raw, media, max_batch)
    prefix = "outcomes." if media == JSON else ""
    try:
        items = record_outcomes(
            engine, tenant, outcomes, base_revisions=bases, label_source=label_source
        )
    except InvalidItemError as exc:
        field = f"{prefix}{exc.index}" + (f".{exc.field}" if exc.field else "")
        raise _invalid([_problem((field,), exc.message, exc.index)]) from None
    except IngestConflictError as exc:
        raise ApiError(409, exc.message, details=exc.details) from None
    except ValueError as exc:
        raise _invalid([_problem(("base_revisions",), str(exc), None)]) from None
    totals = {"created": 0, "revised": 0, "unchanged": 0}
    for item in items:
        totals[item["status"]] += 1
    # The items are plain values record_outcomes built (ints, strs, one of three statuses):
    # encoded once here, rather than validated into IngestResult, dumped back to dicts,
    # validated again and encoded by FastAPI (most of the response's cost at 500 items).
    answer = {"count": len(items), "totals": totals, "items": items}
    return json.dumps(answer, ensure_ascii=False).encode("utf-8")


def _decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise ApiError(
            422,
            "cursor: not a cursor this API returned; pass next_cursor from the previous page",
            details=[{"field": "cursor", "location": "query", "message": "invalid cursor"}],
        ) from None


def _encode_cursor(after: str | None) -> str | None:
    if after is None:
        return None
    return base64.urlsafe_b64encode(after.encode("utf-8")).decode("ascii").rstrip("=")


@router.get("/outcomes", response_model=OutcomeList)
async def get_outcomes(
    tenant: TenantDep,
    engine: EngineDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
    cursor: Annotated[
        str | None, Query(max_length=400, description="next_cursor of the previous page.")
    ] = None,
) -> OutcomeList:
    """This tenant's outcomes (latest revision each), ordered by id, a page at a time."""
    after = _decode_cursor(cursor)
    if after is not None and NUL in after:
        raise _invalid([_problem(("cursor",), NUL_MESSAGE, None)])
    page, next_after = await asyncio.to_thread(
        list_outcomes, engine, tenant.name, limit=limit, after=after
    )
    return OutcomeList.model_validate({"items": page, "next_cursor": _encode_cursor(next_after)})


@router.get(
    "/outcomes/{outcome_id:path}",
    response_model=OutcomePublic,
    responses={404: {"model": ErrorResponse, "description": "No such outcome for this tenant."}},
)
async def get_outcome(
    tenant: TenantDep,
    engine: EngineDep,
    outcome_id: Annotated[str, Path(min_length=1, max_length=200)],
) -> OutcomePublic:
    """One outcome: its latest payload, every revision, its verdicts (newest first), labels.

    The id is read as ingest stores it (NFC), so either spelling of an accented id finds it.
    """
    if NUL in outcome_id:
        raise not_found("outcome", outcome_id)
    try:
        outcome_id = check_id(outcome_id)
    except ValueError as exc:
        raise ApiError(
            422,
            f"outcome_id: {exc}",
            details=[{"field": "outcome_id", "location": "path", "message": str(exc)}],
        ) from None
    detail = await asyncio.to_thread(outcome_detail, engine, tenant.name, outcome_id)
    if detail is None:
        raise not_found("outcome", outcome_id)
    return OutcomePublic.model_validate(detail)
