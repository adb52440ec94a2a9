"""The audit pages: ``/ui/audits`` lists the tenant's audits and takes an invoice export to audit;
``/ui/audits/{id}`` shows one as its dispute pack (the same page ``judge audit --html`` writes).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from api.deps import EngineDep
from api.web.pages import PREFIX, SECURITY_HEADERS, PageError, UserDep, check_csrf, redirect, render

router = APIRouter(prefix=PREFIX, include_in_schema=False)

#: An invoice uploaded on the page: larger ones go through ``judge audit`` or the API.
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
#: The dispute pack styles itself inline and runs no script: only that is allowed.
PACK_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


async def _list_page(
    request: Request, engine: Any, user: Any, *, error: str | None = None, status: int = 200
) -> HTMLResponse:
    from ledger.audits import list_audits

    audits = await asyncio.to_thread(list_audits, engine, user.tenant)
    return render(
        request,
        "audits.html",
        {"audits": audits, "error": error, "max_mb": MAX_UPLOAD_BYTES // (1024 * 1024)},
        user=user,
        status=status,
    )


@router.get("/audits", response_class=HTMLResponse, response_model=None)
async def audits_page(request: Request, engine: EngineDep, user: UserDep) -> HTMLResponse:
    return await _list_page(request, engine, user)


@router.post("/audits", response_class=HTMLResponse, response_model=None)
async def upload_audit(
    request: Request, engine: EngineDep, user: UserDep
) -> HTMLResponse | RedirectResponse:
    from app.audit import run_and_store_audit
    from judge.models import as_utc
    from ledger.claims import ClaimsInputError, parse_claims

    form = await request.form(max_files=1, max_fields=10)
    check_csrf(request, user, form.get("csrf"))
    upload = form.get("claims")
    if upload is None or isinstance(upload, str) or not upload.filename:
        return await _list_page(
            request, engine, user, error="Choose the invoice export (CSV or JSONL).", status=422
        )
    data = await upload.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        return await _list_page(
            request,
            engine,
            user,
            error=f"The file is over {MAX_UPLOAD_BYTES // (1024 * 1024)} MB; audit it with "
            "judge audit --claims FILE or POST /v1/audits.",
            status=413,
        )
    try:
        text = data.decode("utf-8-sig")
        claims = parse_claims(text, jsonl=upload.filename.lower().endswith((".jsonl", ".ndjson")))
    except UnicodeDecodeError:
        return await _list_page(
            request, engine, user, error="The file is not UTF-8 text.", status=422
        )
    except ClaimsInputError as exc:
        return await _list_page(request, engine, user, error=str(exc), status=422)
    try:
        since, until = _period(form.get("from"), form.get("to"))
    except ValueError as exc:
        return await _list_page(request, engine, user, error=str(exc), status=422)
    stored = await asyncio.to_thread(
        run_and_store_audit,
        engine,
        user.tenant,
        claims,
        since=None if since is None else as_utc(since),
        until=None if until is None else as_utc(until),
    )
    return redirect(f"{PREFIX}/audits/{stored.id}")


def _period(start: object, end: object) -> tuple[Any, Any]:
    from datetime import datetime

    def parse(value: object, name: str) -> datetime | None:
        text = str(value or "").strip()
        if not text:
            return None
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{name}: {text[:40]!r} is not a date (e.g. 2026-03-01)") from None

    since, until = parse(start, "From"), parse(end, "To")
    if since is not None and until is not None and since >= until:
        raise ValueError("From must be before To")
    return since, until


@router.get("/audits/{audit_id}", response_class=HTMLResponse, response_model=None)
async def audit_page(engine: EngineDep, user: UserDep, audit_id: str) -> HTMLResponse:
    from ledger.audit_html import render_audit_html
    from ledger.audits import get_audit

    if not audit_id.isdigit() or len(audit_id) > 18:
        raise PageError(404, "Not found", f"There is no audit {audit_id[:40]!r} here.")
    stored = await asyncio.to_thread(get_audit, engine, user.tenant, int(audit_id))
    if stored is None or stored.report is None:
        raise PageError(404, "Not found", f"There is no audit {audit_id} here.")
    title = f"Audit {stored.id} of the vendor's claims ({stored.created_at:%Y-%m-%d %H:%M} UTC)"
    response = HTMLResponse(render_audit_html(stored.report, title=title))
    response.headers.update({**SECURITY_HEADERS, "Content-Security-Policy": PACK_CSP})
    return response
