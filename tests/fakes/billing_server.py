"""A fake of four usage-billing ingestion APIs on 127.0.0.1, for testing a usage exporter.

One ``ThreadingHTTPServer`` (port 0, daemon thread) serves:

=============================================  ==============================================
``POST /cloudevents``                          generic CloudEvents 1.0 sink (structured/batch)
``POST /api/v1/events``                        OpenMeter event ingestion
``POST /lago/api/v1/events[/batch]``           Lago usage events (``/lago`` + Lago's path)
``POST /stripe/v1/billing/meter_events``       Stripe meter events (``/stripe`` + Stripe's path)
``POST /stripe/v1/billing/meter_event_adjustments``  Stripe meter event cancellation
=============================================  ==============================================

Faithful to each vendor's public reference (request shape, content type, auth header, status
codes, error body shape, idempotency key and its window); the rules and their sources are in
``billing_vendors.py`` and ``/work/notes/billing_apis.md``. Simplified: nothing is aggregated
or invoiced, no meter/metric/customer/subscription objects exist (any name is taken), payload
keys are the defaults, and errors carry the fake's own messages except where a vendor's
wording is documented.

Every request is kept in ``server.requests`` (method, path, query, headers, raw and parsed
body, clock time). Accepted events are kept per target (``cloudevents``, ``openmeter``,
``lago``, ``stripe_events``, ``stripe_adjustments``); a duplicate is not stored again but counted
in ``server.duplicates[target]``. Knobs: ``fail_next(path, status, times, retry_after)``,
``server.now`` / ``server.advance(seconds)`` (the clock behind Stripe's windows and Lago's default
timestamp), ``api_key`` (only that token is accepted; default: any non-empty one) and
``lago_event_store`` (``"postgres"`` or ``"clickhouse"`` de-duplication).

Use it as ``with FakeBillingServer() as billing: ...``; ``billing.base_url`` is the root.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.billing_vendors import (
    BillingLedger,
    BillingRequest,
    Reply,
    parse_body,
    vendor_error,
)

__all__ = ["BillingRequest", "FakeBillingServer", "Reply"]


class FakeBillingServer(BillingLedger):
    """Start with ``with FakeBillingServer() as billing:``; all state is guarded by one lock."""

    def __init__(self, *, api_key: str | None = None, lago_event_store: str = "postgres") -> None:
        if lago_event_store not in ("postgres", "clickhouse"):
            raise ValueError(f"unknown Lago event store: {lago_event_store!r}")
        super().__init__(api_key=api_key, lago_event_store=lago_event_store)
        self.requests: list[BillingRequest] = []
        self._failures: dict[str, list[Reply]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(  # a short poll keeps shutdown (test teardown) quick
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeBillingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def fail_next(
        self,
        path: str,
        status: int,
        times: int = 1,
        retry_after: str | None = None,
        body: Any = None,
    ) -> None:
        """The next ``times`` requests to ``path`` answer ``status`` (before auth or validation).

        The body is shaped as that vendor's errors unless ``body`` is given; a 429 carries
        ``Retry-After`` (``retry_after``, default "1"). Nothing is stored, and Stripe does not
        save the answer under an ``Idempotency-Key`` (it never reached the endpoint).
        """
        if status == 429 and retry_after is None:
            retry_after = "1"
        shaped = vendor_error(path, status, "injected failure")
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        reply_body = shaped.body if body is None else body
        with self._lock:
            queue = self._failures.setdefault(path, [])
            for _ in range(times):
                queue.append(Reply(status, reply_body, shaped.content_type, dict(headers)))

    def requests_to(self, path: str) -> list[BillingRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def serve(self, req: BillingRequest) -> Reply:
        with self._lock:
            self.requests.append(req)
            queued = self._failures.get(req.path)
            if queued:
                return queued.pop(0)
            return self.dispatch(req)


def _handler(server: FakeBillingServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _serve(self) -> None:
            parsed = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body, json_error = parse_body(raw, self.headers.get("Content-Type") or "")
            req = BillingRequest(
                method=self.command,
                path=parsed.path,
                query=dict(urllib.parse.parse_qsl(parsed.query)),
                headers=dict(self.headers.items()),
                raw=raw,
                body=body,
                at=server.now,
                json_error=json_error,
            )
            reply = server.serve(req)
            data = b""
            if reply.body is not None and reply.status != 204:
                data = _encode(reply.body)
            self.send_response(reply.status)
            if data:
                self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_OPTIONS = _serve

    return Handler


def _encode(body: Any) -> bytes:
    return json.dumps(body).encode("utf-8")
