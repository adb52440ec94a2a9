"""The web interface for reviewers, served under ``/ui`` by ``judge serve``.

Server-rendered Jinja2 pages with one small script for keyboard shortcuts (the pages work
without it) and one stylesheet; plots are PNGs rendered on the server and embedded, so no page
fetches anything from the internet. Signing in takes a tenant's API key and sets a signed,
HttpOnly, Secure, SameSite=Strict session cookie (see :mod:`api.web.session`).

- ``/ui/login``: the API key form; ``/ui/logout``.
- ``/ui/review``: the review queue; ``/ui/review/{outcome_id}``: one outcome and the label form.
- ``/ui/calibration``: agreement with the labels, drift and the calibration gate.
- ``/ui/cost``: cost per verified outcome and the comparison of two model paths.
- ``/ui/audits``: audits of the vendor's claims (upload an invoice); ``/ui/audits/{id}``: one
  audit as its dispute pack.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles


def install(app: FastAPI) -> None:
    """Mount the pages, their static files and their error handling on ``app``."""
    from api.web.audit_pages import router as audit_router
    from api.web.pages import (
        PREFIX,
        SECURITY_HEADERS,
        STATIC_DIR,
        LoginRequired,
        PageError,
        clear_session_cookie,
        login_url,
        redirect,
        render,
    )
    from api.web.routes import router
    from api.web.session import session_secret

    # Fail at start-up, not on the first login, when OUTCOME_JUDGE_SESSION_SECRET is unusable.
    session_secret()
    app.include_router(router)
    app.include_router(audit_router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC_DIR), name="ui-static")

    @app.exception_handler(LoginRequired)
    async def _login_required(_: Request, exc: LoginRequired) -> Response:
        url = login_url(exc.next_path)
        if exc.message:
            from urllib.parse import quote

            url += "&reason=" + quote(exc.message)
        response = redirect(url)
        clear_session_cookie(response)
        return response

    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError) -> Response:
        response = render(
            request,
            "error.html",
            {"title": exc.title, "message": exc.message, "status": exc.status},
            status=exc.status,
        )
        response.headers.update(SECURITY_HEADERS)
        return response
