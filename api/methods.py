"""Which methods a path allows: the ``Allow`` header of 405 answers, and ``OPTIONS`` requests.

RFC 9110 (15.5.6) requires a 405 to say, in ``Allow``, which methods the resource supports;
Starlette names only the first route that matched the path (``POST`` for ``/v1/outcomes``, which
also answers ``GET``). :func:`allowed_methods` collects every route of the path instead, and
:class:`OptionsMiddleware` answers ``OPTIONS`` on any existing path with 204 and that list (no
CORS: the API is not meant to be called from other origins' pages).
"""

from __future__ import annotations

from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

#: What a mounted static-file app answers (``/ui/static``).
_STATIC_METHODS = frozenset({"GET", "HEAD"})


def allowed_methods(app: Any, scope: Scope) -> set[str]:
    """Every method some route of ``app`` answers for ``scope``'s path (empty: no such path).

    ``OPTIONS`` is included whenever the path exists (:class:`OptionsMiddleware` answers it).
    """
    # Inside a mount (the static files) ``root_path`` includes the mount's path; the app's own
    # root path is kept in ``app_root_path``.
    root = scope.get("app_root_path", scope.get("root_path", ""))
    probe = {**scope, "type": "http", "root_path": root}
    methods: set[str] = set()
    # FastAPI keeps included routers nested; iter_route_contexts flattens them (its OpenAPI
    # generator walks the routes the same way), each context matching with its full path.
    for context in iter_route_contexts(getattr(app, "routes", ())):
        match, _ = context.matches(probe)
        if match is Match.NONE:
            continue
        if isinstance(context.original_route, Mount):
            methods |= _STATIC_METHODS
        else:
            methods |= set(context.methods or ())
    return methods | {"OPTIONS"} if methods else methods


def allow_header(methods: set[str]) -> str:
    """The ``Allow`` value: methods in a stable order.

    >>> allow_header({"POST", "GET", "OPTIONS"})
    'GET, OPTIONS, POST'
    """
    return ", ".join(sorted(methods))


class OptionsMiddleware:
    """Answer ``OPTIONS`` on an existing path with ``204 No Content`` and ``Allow``.

    Unknown paths pass through (and answer 404 as any other method would). No key is needed:
    the answer is the same for everyone and reveals nothing a 405 would not.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "OPTIONS":
            await self.app(scope, receive, send)
            return
        methods = allowed_methods(scope.get("app"), scope)
        if not methods:
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [(b"allow", allow_header(methods).encode("ascii"))],
            }
        )
        await send({"type": "http.response.body", "body": b""})
