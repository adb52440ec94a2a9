"""Sending to another system's HTTP API: retries that honour ``Retry-After``, errors that say
what was refused (the pulls from help desks, the billing and tracing exports)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

__all__ = ["DeliveryError", "Poster", "retry_after_seconds"]


class DeliveryError(Exception):
    """The target refused or could not be reached; the message names the request and the fix."""


@dataclass
class Poster:
    """HTTP requests with retries: a status in ``retry_statuses`` is tried again after its
    ``Retry-After`` (else 1, 2, 4 ... s), at most ``max_retries`` times, never waiting longer
    than ``max_wait`` at once; statuses in ``accept`` are returned to the caller to judge.
    Failures raise ``error`` (a :class:`DeliveryError` unless the caller has its own) with the
    caller's hints for a refused credential and for a wait too long to sit out."""

    retry_statuses: Collection[int]
    sleep: Callable[[float], None] = time.sleep
    max_retries: int = 5
    max_wait: float = 60.0
    timeout: float = 30.0
    error: type[Exception] = DeliveryError
    auth_hint: str = "check the token in the environment"
    wait_hint: str = "run the export again later: what was delivered is recorded"
    requests: int = 0
    waits: list[float] = field(default_factory=list)

    def post(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        *,
        shown: str,
        accept: Collection[int] = (),
    ) -> tuple[int, Any]:
        return self.request("POST", url, body, headers, shown=shown, accept=accept)

    def request(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        *,
        shown: str,
        accept: Collection[int] = (),
        strict_json: bool = False,
    ) -> tuple[int, Any]:
        """(status, decoded JSON body); ``strict_json``: a body that is not JSON is an error."""
        what = f"{method} {shown}"
        for attempt in range(self.max_retries + 1):
            self.requests += 1
            request = urllib.request.Request(url, data=body, method=method, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read()
                    if strict_json:
                        try:
                            return response.status, json.loads(raw.decode("utf-8"))
                        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                            raise self.error(f"{what} did not answer JSON: {exc}") from exc
                    return response.status, _json(raw)
            except urllib.error.HTTPError as exc:
                payload = _json(exc.read())
                if exc.code in accept:
                    return exc.code, payload
                retryable = exc.code in self.retry_statuses
                if not retryable or attempt == self.max_retries:
                    shown_body = payload if not isinstance(payload, dict) else json.dumps(payload)
                    hint = (
                        f" (after {attempt} retries)"
                        if retryable
                        else f"; {self.auth_hint}"
                        if exc.code in (401, 403)
                        else ""
                    )
                    detail = f": {str(shown_body)[:300]}" if payload is not None else ""
                    raise self.error(
                        f"{what} answered {exc.code} {exc.reason}{detail}{hint}"
                    ) from exc
                wait = retry_after_seconds(exc.headers.get("Retry-After"))
                wait = float(2**attempt) if wait is None else wait
                if wait > self.max_wait:
                    raise self.error(
                        f"{what} is rate limited for {wait:.0f} s (more than "
                        f"--max-wait {self.max_wait:.0f} s); {self.wait_hint}"
                    ) from exc
                self.waits.append(wait)
                self.sleep(wait)
            except urllib.error.URLError as exc:
                raise self.error(f"{what} failed: {exc.reason}") from exc
        raise self.error(f"{what}: no answer")  # pragma: no cover (the loop returns or raises)


def _json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return {"text": raw[:300].decode("utf-8", errors="replace")}


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date).

    >>> retry_after_seconds("7"), retry_after_seconds(None)
    (7.0, None)
    >>> retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT",
    ...                     now=datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC))
    10.0
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
