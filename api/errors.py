"""One error shape for every failure: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.methods import allow_header, allowed_methods
from judge.input_rules import escape_surrogates

log = logging.getLogger("outcome_judge.api")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    503: "unavailable",
}


#: The detail of the 400 FastAPI raises for a request body it cannot decode.
_FASTAPI_BODY_ERROR = "There was an error parsing the body"


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `invalid`, `not_found`.")
    message: str = Field(description="What is wrong and how to fix it.")
    details: Any = Field(default=None, description="Per-field problems and other specifics.")


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorBody


class ApiError(Exception):
    """An error to answer with ``status``; raise it from routes and dependencies."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message
        self.details = details
        self.headers = headers


def not_found(what: str, ident: str) -> ApiError:
    """404 for an id that does not exist *for this tenant* (another tenant's ids look the same)."""
    return ApiError(404, f"no {what} {ident!r}", details={"id": ident})


def printable(value: Any) -> Any:
    """``value`` with every string (and key) safe to encode as UTF-8: lone surrogates escaped.

    An error message or field name may quote the client's input, and a lone surrogate in it
    (JSON ``"\\ud800"``) would make the error response itself fail to encode, turning a 422
    into a 500. Escaping (``\\ud800`` as text) keeps the quote readable.
    """
    if isinstance(value, str):
        return escape_surrogates(value)
    if isinstance(value, dict):
        return {printable(k): printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable(item) for item in value]
    return value


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(
        error=ErrorBody(
            code=code or _CODES.get(status, "error"),
            message=printable(message),
            details=printable(details),
        )
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        return ".".join(parts[1:]) or parts[0]
    return ".".join(parts)


def validation_details(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic errors as ``[{"field", "location", "message"}]`` (no input echoed back)."""
    out = []
    for err in errors[:50]:
        loc = err.get("loc", ())
        out.append(
            {
                "field": _field(loc),
                "location": str(loc[0]) if loc else "body",
                "message": str(err.get("msg", "invalid")),
            }
        )
    return out


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into the one shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(
            exc.status, exc.message, code=exc.code, details=exc.details, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = validation_details(list(exc.errors()))
        first = details[0] if details else {"field": "body", "message": "invalid"}
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        return error_response(
            422, f"{first['field']}: {first['message']}{more}", code="invalid", details=details
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == _FASTAPI_BODY_ERROR:
            # FastAPI's answer to a body it cannot decode (e.g. not UTF-8): an invalid input,
            # like malformed JSON, so 422 with the shape every other invalid body gets.
            return error_response(
                422,
                "request body could not be read: send UTF-8 encoded JSON",
                code="invalid",
                details=[{"field": "body", "location": "body", "message": "not UTF-8 JSON"}],
            )
        message = exc.detail if isinstance(exc.detail, str) else _CODES.get(exc.status_code, "")
        headers = dict(getattr(exc, "headers", None) or {})
        methods = allowed_methods(request.app, request.scope) if exc.status_code == 405 else set()
        if methods:
            # Starlette's Allow names only the first route of the path; RFC 9110 wants all.
            headers["Allow"] = allow_header(methods)
            message = (
                f"{request.method} is not allowed on {request.url.path}; use "
                f"{', '.join(sorted(methods - {'OPTIONS'}))}"
            )
        return error_response(exc.status_code, message, headers=headers or None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(
            500, "internal error; the request wrote nothing. See the server log.", code="internal"
        )
