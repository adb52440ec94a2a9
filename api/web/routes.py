"""The pages: login/logout, the review queue and item, calibration and cost.

Server-rendered; every route is ``async`` and does its database work in a thread.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from api.deps import EngineDep, client_address
from api.limits import Gate
from api.schemas.text import NUL
from api.web import dashboards
from api.web import session as sessions
from api.web.pages import (
    PREFIX,
    PageError,
    UserDep,
    check_csrf,
    clear_session_cookie,
    outcome_url,
    redirect,
    render,
    safe_next,
    set_session_cookie,
)
from judge.input_rules import check_id
from ledger import review_queue as review

router = APIRouter(prefix=PREFIX, include_in_schema=False)

_MAX_KEY_CHARS = 200
_MAX_NOTE_CHARS = 10_000
_MAX_REF_CHARS = 200


# ---- login ---------------------------------------------------------------------------------


def _login_page(
    request: Request, next_path: str, *, error: str | None = None, status: int = 200
) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        {"next": safe_next(next_path), "csrf": token, "error": error},
        status=status,
    )
    # Double-submit token for the login form itself (there is no session yet to bind it to).
    response.set_cookie(
        sessions.LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        path=f"{PREFIX}/login",
        httponly=True,
        secure=True,
        samesite="strict",
    )
    return response


@router.get("", response_class=RedirectResponse, response_model=None)
async def home() -> RedirectResponse:
    return redirect(f"{PREFIX}/review")


@router.get("/login", response_class=HTMLResponse, response_model=None)
async def login_form(
    request: Request,
    next_path: Annotated[str | None, Query(alias="next", max_length=2000)] = None,
    reason: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    return _login_page(request, next_path or "", error=reason)


@router.post("/login", response_class=HTMLResponse, response_model=None)
async def login(request: Request, engine: EngineDep) -> HTMLResponse | RedirectResponse:
    from ledger.tenants import authenticate

    form = await request.form()
    next_path = str(form.get("next") or "")[:2000]
    expected = request.cookies.get(sessions.LOGIN_CSRF_COOKIE)
    submitted = str(form.get("csrf") or "")
    if not expected or not secrets.compare_digest(expected, submitted):
        return _login_page(
            request, next_path, error="The login form expired; try again.", status=403
        )
    key = str(form.get("key") or "").strip()[:_MAX_KEY_CHARS]
    key_id = sessions.key_id_of(key)
    gate: Gate = request.app.state.gate
    address = client_address(request)
    refusal = await gate.refused(key_id, address) if key else None
    if refusal is not None:
        page = _login_page(
            request, next_path, error=f"Too many failed logins: {refusal.message}.", status=429
        )
        page.headers["Retry-After"] = str(refusal.retry_after)
        return page
    tenant = await asyncio.to_thread(authenticate, engine, key) if key else None
    if tenant is None or key_id is None:
        if key:
            await gate.failed(key_id, address)
        return _login_page(
            request,
            next_path,
            error="Unknown or revoked API key. Create one with `judge tenants create NAME`.",
            status=401,
        )
    # The dashboards' first plot pays for importing matplotlib and scipy (seconds); start that
    # now, while the reviewer looks at the queue.
    asyncio.get_running_loop().run_in_executor(None, _warm_up_plots)
    response = redirect(safe_next(next_path))
    set_session_cookie(response, sessions.issue(key_id))
    response.delete_cookie(sessions.LOGIN_CSRF_COOKIE, path=f"{PREFIX}/login")
    return response


def _warm_up_plots() -> None:
    import matplotlib.backends.backend_agg  # noqa: F401
    import scipy.stats  # noqa: F401


@router.post("/logout", response_class=RedirectResponse, response_model=None)
async def logout(request: Request, engine: EngineDep, user: UserDep) -> RedirectResponse:
    form = await request.form()
    check_csrf(request, user, form.get("csrf"))
    # Clearing the cookie is not enough: a copy of it (another tab, a stolen one) would verify
    # until it expires. Booking the session as ended refuses it in every API process.
    await asyncio.to_thread(sessions.revoke, engine, user.tenant, user.session)
    response = redirect(f"{PREFIX}/login?reason=You+are+logged+out.")
    clear_session_cookie(response)
    return response


# ---- review --------------------------------------------------------------------------------


@router.get("/review", response_class=HTMLResponse, response_model=None)
async def review_queue(
    request: Request,
    engine: EngineDep,
    user: UserDep,
    saved: Annotated[str | None, Query(max_length=_MAX_REF_CHARS)] = None,
) -> HTMLResponse:
    items, total = await asyncio.to_thread(review.review_queue, engine, user.tenant)
    return render(
        request,
        "queue.html",
        {"items": items, "total": total, "saved": saved, "audit_share": review.AUDIT_SHARE},
        user=user,
    )


def _neighbours(items: list[review.QueueItem], outcome_id: str) -> tuple[str | None, str | None]:
    ids = [i.outcome_id for i in items]
    if outcome_id not in ids:
        return None, ids[0] if ids else None
    at = ids.index(outcome_id)
    return (ids[at - 1] if at > 0 else None), (ids[at + 1] if at + 1 < len(ids) else None)


def _review_id(outcome_id: str) -> str:
    """The path's outcome id as ingest stores it (NFC); 404 for an id no outcome can have.

    An id with a NUL or another control character can never have been stored, and PostgreSQL
    cannot even be asked about one (a NUL in a query is an error, not a miss).
    """
    try:
        return check_id(outcome_id)
    except ValueError:
        raise PageError(
            404, "Not found", "There is no outcome with that id to review here."
        ) from None


async def _item_page(
    request: Request,
    engine: Any,
    user: Any,
    outcome_id: str,
    *,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    view = await asyncio.to_thread(review.review_item, engine, user.tenant, outcome_id)
    if view is None:
        raise PageError(404, "Not found", f"There is no outcome {outcome_id!r} to review here.")
    items, _ = await asyncio.to_thread(review.review_queue, engine, user.tenant)
    previous, following = _neighbours(items, outcome_id)
    position = next((n for n, i in enumerate(items, 1) if i.outcome_id == outcome_id), None)
    return render(
        request,
        "item.html",
        {
            "view": view,
            "outcome": view.outcome,
            "latest": view.latest,
            "previous": previous,
            "following": following,
            "position": position,
            "queue_size": len(items),
            "error": error,
        },
        user=user,
        status=status,
    )


@router.get("/review/{outcome_id:path}", response_class=HTMLResponse, response_model=None)
async def review_item(
    request: Request, engine: EngineDep, user: UserDep, outcome_id: str
) -> HTMLResponse:
    return await _item_page(request, engine, user, _review_id(outcome_id))


@router.post("/review/{outcome_id:path}", response_class=HTMLResponse, response_model=None)
async def record_label(
    request: Request, engine: EngineDep, user: UserDep, outcome_id: str
) -> HTMLResponse | RedirectResponse:
    outcome_id = _review_id(outcome_id)
    form = await request.form()
    check_csrf(request, user, form.get("csrf"))
    if not user.can_label:
        raise PageError(
            403,
            "Not allowed",
            "The API key you logged in with may not record labels (it lacks the review "
            f"scope). Log in with a reviewer's key (`judge tenants add-key {user.tenant} "
            "--scope review`).",
        )
    verdict = form.get("resolved")
    if verdict not in ("yes", "no"):
        return await _item_page(
            request,
            engine,
            user,
            outcome_id,
            error="Choose resolved (r) or not resolved (n) before saving.",
            status=422,
        )
    note = str(form.get("note") or "").strip()
    if len(note) > _MAX_NOTE_CHARS:
        return await _item_page(
            request,
            engine,
            user,
            outcome_id,
            error=f"The note is {len(note)} characters; keep it under {_MAX_NOTE_CHARS}.",
            status=422,
        )
    if NUL in note:
        # PostgreSQL cannot store it; refused here so both databases answer the same.
        return await _item_page(
            request,
            engine,
            user,
            outcome_id,
            error="The note contains the NUL character (\\u0000), which cannot be stored; "
            "remove it and save again.",
            status=422,
        )
    view = await asyncio.to_thread(review.review_item, engine, user.tenant, outcome_id)
    if view is None:
        raise PageError(404, "Not found", f"There is no outcome {outcome_id!r} to review here.")
    criteria: dict[str, bool] = {}
    if form.get("rate_criteria") and view.criteria_ids:
        passed = {str(v) for v in form.getlist("criteria")}
        criteria = {cid: cid in passed for cid in view.criteria_ids}
    await asyncio.to_thread(
        review.save_label,
        engine,
        user.tenant,
        outcome_id,
        resolved=verdict == "yes",
        criteria=criteria,
        note=note,
        by=f"web:{user.key_id}",
    )
    following = str(form.get("following") or "")[:_MAX_REF_CHARS]
    from urllib.parse import urlencode

    saved = urlencode({"saved": outcome_id})
    if following:
        return redirect(f"{outcome_url(following)}?{saved}")
    return redirect(f"{PREFIX}/review?{saved}")


# ---- dashboards ----------------------------------------------------------------------------


@router.get("/calibration", response_class=HTMLResponse, response_model=None)
async def calibration_page(
    request: Request,
    engine: EngineDep,
    user: UserDep,
    panel: Annotated[str | None, Query(max_length=_MAX_REF_CHARS)] = None,
    rubric: Annotated[str | None, Query(max_length=_MAX_REF_CHARS)] = None,
) -> HTMLResponse:
    view = await asyncio.to_thread(
        dashboards.calibration_view, engine, user.tenant, panel=panel or None, rubric=rubric or None
    )
    return render(request, "calibration.html", {"view": view}, user=user)


@router.get("/cost", response_class=HTMLResponse, response_model=None)
async def cost_page(
    request: Request,
    engine: EngineDep,
    user: UserDep,
    path_a: Annotated[str | None, Query(max_length=_MAX_REF_CHARS)] = None,
    path_b: Annotated[str | None, Query(max_length=_MAX_REF_CHARS)] = None,
    labor: Annotated[str | None, Query(max_length=40)] = None,
    rate: Annotated[str | None, Query(max_length=40)] = None,
) -> HTMLResponse:
    problems = []
    labor_value = _number(labor, dashboards.DEFAULT_LABOR, positive=True)
    if labor_value is None:
        problems.append(f"Labour cost per failed task must be a number > 0; got {labor!r}.")
        labor_value = dashboards.DEFAULT_LABOR
    rate_value = _number(rate, None, positive=False)
    if rate and rate_value is None:
        problems.append(f"Review labour rate must be a number >= 0 USD per hour; got {rate!r}.")
    view = await asyncio.to_thread(
        dashboards.cost_view,
        engine,
        user.tenant,
        path_a=path_a or None,
        path_b=path_b or None,
        labor=labor_value,
        labor_rate=rate_value,
    )
    return render(
        request,
        "cost.html",
        {"view": view, "problems": problems, "rate": rate_value},
        user=user,
        status=422 if problems else 200,
    )


def _number(text: str | None, default: float | None, *, positive: bool) -> float | None:
    """A form number, ``default`` when empty, None when invalid (not finite, or out of range)."""
    import math

    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0 or (positive and value == 0) or value > 1e9:
        return None
    return value
