"""A small JSON-over-HTTPS client for `judge pull`: rate limits honoured, credentials kept home.

Standard library only (``urllib``): the pulls make a few sequential requests, so no HTTP
dependency earns its place. A 429 (or 503) answer is retried after its ``Retry-After`` (seconds
or an HTTP date; exponential backoff when absent), at most ``max_retries`` times and never for
longer than ``max_wait`` seconds at once. A ``next`` link on another host is refused: the
credentials in the headers go only to the configured base URL.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.http_retry import Poster

RETRY_STATUSES = frozenset({429, 503})


class PullError(Exception):
    """The pull cannot go on; the message names the request and the fix."""


@dataclass
class HttpClient:
    """GET/POST JSON against one base URL with fixed headers (credentials included)."""

    base_url: str
    headers: dict[str, str]
    max_retries: int = 5
    max_wait: float = 120.0
    timeout: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    poster: Poster = field(init=False)

    def __post_init__(self) -> None:
        parsed = urllib.parse.urlsplit(self.base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise PullError(f"base URL {self.base_url!r} is not an http(s) URL")
        self.base_url = self.base_url.rstrip("/")
        self._host = parsed.netloc
        self.poster = Poster(
            RETRY_STATUSES,
            sleep=self.sleep,
            max_retries=self.max_retries,
            max_wait=self.max_wait,
            timeout=self.timeout,
            error=PullError,
            auth_hint="check the credentials and the account in the environment",
            wait_hint="run the pull again later: it resumes from the saved cursor",
        )

    def url(self, path_or_url: str, params: dict[str, Any] | None = None) -> str:
        """An absolute URL on the base host (a ``next`` link elsewhere is refused)."""
        if path_or_url.startswith(("http://", "https://")):
            url = path_or_url
            host = urllib.parse.urlsplit(url).netloc
            if host != self._host:
                raise PullError(
                    f"the server sent a next-page link to another host ({host}); refusing to "
                    f"send credentials there (expected {self._host})"
                )
        else:
            url = self.base_url + "/" + path_or_url.lstrip("/")
        if params:
            query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
            url += ("&" if "?" in url else "?") + query
        return url

    def get(self, path_or_url: str, params: dict[str, Any] | None = None) -> Any:
        return self._request("GET", self.url(path_or_url, params), None)

    def post(self, path: str, body: Any) -> Any:
        return self._request("POST", self.url(path), json.dumps(body).encode("utf-8"))

    def _request(self, method: str, url: str, data: bytes | None) -> Any:
        headers = {"Accept": "application/json", **self.headers}
        if data is not None:
            headers["Content-Type"] = "application/json"
        _, payload = self.poster.request(
            method, url, data, headers, shown=url.split("?")[0], strict_json=True
        )
        return payload
