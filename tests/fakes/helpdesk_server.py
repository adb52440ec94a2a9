"""A fake Zendesk + Intercom API on 127.0.0.1 for `judge pull` tests.

It serves the fixture payloads with each vendor's pagination: Zendesk's cursor-based
incremental ticket export (``after_cursor``, ``end_of_stream``) and cursor-paginated audits
(``meta.has_more``, ``links.next``); Intercom's conversation search (``pages.next.starting_after``)
and conversation retrieval. ``throttle`` makes the next request to a path answer 429 with a
``Retry-After``. Every request is recorded (method, path, query, body, headers, time).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]
    at: float


@dataclass
class HelpDeskData:
    """What the fake serves."""

    export_pages: list[list[dict[str, Any]]] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)
    audits: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    conversations: list[dict[str, Any]] = field(default_factory=list)
    search_page_size: int = 2


class FakeHelpDesk:
    """Start with ``with FakeHelpDesk(data) as desk:``; ``desk.base_url`` is the root."""

    def __init__(self, data: HelpDeskData) -> None:
        self.data = data
        self.seen: list[Seen] = []
        self.throttled: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def throttle(self, path: str, retry_after: str) -> None:
        """The next request to ``path`` answers 429 with this ``Retry-After``."""
        self.throttled[path] = retry_after

    def requests_to(self, prefix: str) -> list[Seen]:
        return [s for s in self.seen if s.path.startswith(prefix)]

    def __enter__(self) -> FakeHelpDesk:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------ routes

    def route(self, seen: Seen) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.seen.append(seen)
            retry = self.throttled.pop(seen.path, None)
        if retry is not None:
            return 429, {"error": "TooManyRequests"}, {"Retry-After": retry}
        if seen.path == "/api/v2/incremental/tickets/cursor.json":
            return 200, self._export(seen.query), {}
        if seen.path.startswith("/api/v2/tickets/") and seen.path.endswith("/audits.json"):
            return 200, self._audits(seen.path.split("/")[4], seen.query), {}
        if seen.path == "/conversations/search" and seen.method == "POST":
            return 200, self._search(seen.body), {}
        if seen.path.startswith("/conversations/"):
            cid = seen.path.split("/")[2]
            found = next((c for c in self.data.conversations if c["id"] == cid), None)
            if found is not None:
                return 200, found, {}
        return 404, {"error": "RecordNotFound"}, {}

    def _export(self, query: dict[str, str]) -> dict[str, Any]:
        index = int(query["cursor"].removeprefix("c")) if "cursor" in query else 0
        pages = self.data.export_pages
        tickets = pages[index] if index < len(pages) else []
        nxt = f"c{min(index + 1, len(pages))}"
        return {
            "after_cursor": nxt,
            "after_url": f"{self.base_url}/api/v2/incremental/tickets/cursor.json?cursor={nxt}",
            "before_cursor": None,
            "before_url": None,
            "end_of_stream": index + 1 >= len(pages),
            "tickets": tickets,
            "users": self.data.users,
        }

    def _audits(self, ticket_id: str, query: dict[str, str]) -> dict[str, Any]:
        audits = self.data.audits.get(ticket_id, [])
        size = int(query.get("page[size]", "100"))
        start = int(query.get("page[after]", "0"))
        chunk = audits[start : start + size]
        more = start + size < len(audits)
        after = str(start + size)
        link = f"{self.base_url}/api/v2/tickets/{ticket_id}/audits.json?page[size]={size}"
        return {
            "audits": chunk,
            "meta": {"has_more": more, "after_cursor": after if more else None},
            "links": {"next": f"{link}&page[after]={after}" if more else None, "prev": None},
        }

    def _search(self, body: Any) -> dict[str, Any]:
        since = int(body["query"]["value"])
        size = int(body["pagination"].get("per_page", self.data.search_page_size))
        start = int(body["pagination"].get("starting_after") or 0)
        hits = [c for c in self.data.conversations if c["updated_at"] > since]
        listed = [
            {k: v for k, v in c.items() if k != "conversation_parts"}
            for c in hits[start : start + size]
        ]
        more = start + size < len(hits)
        pages: dict[str, Any] = {"type": "pages", "page": start // size + 1, "per_page": size}
        if more:
            pages["next"] = {"page": start // size + 2, "starting_after": str(start + size)}
        return {
            "type": "conversation.list",
            "pages": pages,
            "total_count": len(hits),
            "conversations": listed,
        }


def _handler(desk: FakeHelpDesk) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _serve(self, method: str) -> None:
            parsed = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            seen = Seen(
                method=method,
                path=parsed.path,
                query=dict(urllib.parse.parse_qsl(parsed.query)),
                body=json.loads(raw) if raw else None,
                headers={k: v for k, v in self.headers.items()},
                at=time.monotonic(),
            )
            status, payload, headers = desk.route(seen)
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

    return Handler
