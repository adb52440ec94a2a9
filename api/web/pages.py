"""Rendering and the signed-in reviewer: templates, security headers, the session dependency.

A page that needs a reviewer takes :data:`UserDep`: it reads the session cookie, checks its
signature and expiry, and re-checks that the API key behind it is still active and the session
was not logged out (a revoked key or a logged-out cookie goes back to the login form). The
tenant's request rate applies as on the API.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from api.deps import EngineDep
from api.errors import ApiError
from api.web import session as sessions

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
PREFIX = "/ui"

#: Sent with every page: nothing but this server may supply scripts, styles, frames or forms.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class LoginRequired(Exception):
    """No valid session: the handler redirects to the login form (and clears the cookie)."""

    def __init__(self, next_path: str, message: str | None = None) -> None:
        super().__init__(message or "login required")
        self.next_path = next_path
        self.message = message


class PageError(Exception):
    """An error shown as an HTML page (404 for another tenant's outcome, 403 bad CSRF, ...)."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


@dataclass(frozen=True)
class WebUser:
    """The signed-in reviewer: the tenant, the key's public id, the session's CSRF token and
    the verified session itself (logout revokes it)."""

    tenant: str
    key_id: str
    csrf: str
    session: sessions.Session
    #: The scopes of the key the reviewer logged in with (``ledger.tenants.KEY_SCOPES``).
    scopes: frozenset[str] = frozenset()

    @property
    def can_label(self) -> bool:
        """Whether the key may record labels (the ``review`` scope)."""
        return "review" in self.scopes


def outcome_url(outcome_id: str) -> str:
    """The review page of an outcome (its id URL-encoded: ids are arbitrary text)."""
    return f"{PREFIX}/review/{quote(outcome_id, safe='')}"


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{float(value):.1%}"


def _usd(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    return f"${float(value):,.{digits}f}"


def _when(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return str(value.strftime("%Y-%m-%d %H:%M UTC"))


@lru_cache(maxsize=1)
def templates() -> Jinja2Templates:
    """The Jinja2 environment (autoescaping on for .html: outcome text is untrusted)."""
    env = Jinja2Templates(directory=str(TEMPLATES_DIR))
    env.env.filters.update(num=_num, pct=_pct, usd=_usd, when=_when)
    env.env.globals.update(outcome_url=outcome_url, prefix=PREFIX)
    return env


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    user: WebUser | None = None,
    status: int = 200,
) -> HTMLResponse:
    """A template as an HTML response with the security headers."""
    response = templates().TemplateResponse(
        request, name, {"user": user, **context}, status_code=status
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def redirect(url: str, *, status: int = 303) -> RedirectResponse:
    response = RedirectResponse(url, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


def safe_next(value: str | None) -> str:
    """Where to go after login: a page of this interface, never another site."""
    if (
        value
        and value.startswith(f"{PREFIX}/")
        and not value.startswith("//")
        and "\\" not in value
    ):
        return value
    return f"{PREFIX}/review"


def login_url(next_path: str) -> str:
    return f"{PREFIX}/login?" + urlencode({"next": safe_next(next_path)})


def set_session_cookie(response: Response, token: str) -> None:
    response.set_cookie(
        sessions.SESSION_COOKIE,
        token,
        max_age=int(sessions.SESSION_HOURS * 3600),
        path=PREFIX,
        httponly=True,
        secure=True,
        samesite="strict",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(
        sessions.SESSION_COOKIE, path=PREFIX, httponly=True, secure=True, samesite="strict"
    )


async def current_user(request: Request, engine: EngineDep) -> WebUser:
    """The reviewer of the session cookie, re-checked against the key table on every request."""
    path = request.url.path
    if request.url.query:
        path += "?" + request.url.query
    found = sessions.verify(request.cookies.get(sessions.SESSION_COOKIE))
    if found is None:
        expired = sessions.SESSION_COOKIE in request.cookies
        raise LoginRequired(path, "Your session expired; log in again." if expired else None)
    tenant = await asyncio.to_thread(sessions.session_tenant, engine, found)
    if isinstance(tenant, str):
        raise LoginRequired(path, tenant)
    from config.settings import get_settings

    per_minute = tenant.requests_per_minute or get_settings().requests_per_minute
    try:
        wait = await request.app.state.gate.take(tenant.name, per_minute)
    except ApiError as exc:  # the shared limits' database does not answer (503)
        raise PageError(exc.status, "Service unavailable", exc.message) from None
    if wait is not None:
        raise PageError(
            429,
            "Too many requests",
            f"Tenant {tenant.name} is over its limit of {per_minute} requests per minute; "
            f"try again in {wait:.0f} s.",
        )
    request.state.tenant = tenant.name
    return WebUser(
        tenant=tenant.name,
        key_id=found.key_id,
        csrf=found.csrf,
        session=found,
        scopes=tenant.key_scopes,
    )


UserDep = Annotated[WebUser, Depends(current_user)]


def check_csrf(request: Request, user: WebUser, submitted: object) -> None:
    """403 unless the form carries this session's CSRF token."""
    found = sessions.verify(request.cookies.get(sessions.SESSION_COOKIE))
    if (
        found is None
        or found.csrf != user.csrf
        or not sessions.csrf_ok(found, str(submitted or ""))
    ):
        raise PageError(
            403,
            "Form expired",
            "This form's security token does not match your session (it may be from an earlier "
            "session). Reload the page and submit again.",
        )
