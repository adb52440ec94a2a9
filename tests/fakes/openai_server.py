"""A local, scriptable OpenAI-compatible HTTP server for tests and benchmarks (127.0.0.1 only).

Every LLM test goes through litellm's real HTTP path against this server: it speaks
``POST /v1/chat/completions`` and ``GET /v1/models`` and can be told, per model, what to answer
next: content, latency, HTTP errors (429 with ``retry-after``, 5xx, 400), a malformed JSON body, a
truncated body, a connection reset, or a hang longer than the client's timeout. For seeded fault
mixes, latency distributions and a gullible model, pass a :class:`tests.fakes.faults.FaultInjector`
as ``default`` (``bench/fault_server.py`` runs that standalone).

>>> with FakeOpenAIServer() as server:  # doctest: +SKIP
...     server.enqueue("gpt-4o-mini", Reply(content='{"criteria": {}}'))
...     # point litellm at server.base_url with model "openai/gpt-4o-mini"

Standalone, for benchmarks::

    python -m tests.fakes.openai_server --port 8099 --latency-ms 200

answers every request, after the given latency, with a JSON reply that passes every criterion of
the rubric found in the prompt (or with ``--content TEXT``).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from judge.rubric import INDEPENDENT_EVIDENCE

__all__ = [
    "FakeOpenAIServer",
    "RecordedRequest",
    "Reply",
    "cite",
    "evidence_criteria",
    "guard_reply",
    "is_guard_request",
    "passing_reply",
    "passing_scores",
    "prompt_messages",
    "report_parts",
]


@dataclass(frozen=True)
class Reply:
    """What the server does with one chat-completion request.

    Parameters
    ----------
    content : str
        The assistant message text (``choices[0].message.content``).
    delay : float
        Seconds to wait before answering (injected latency).
    status : int
        HTTP status; anything but 200 answers an OpenAI-style error body.
    retry_after : float or None
        Sent as the ``retry-after`` header (seconds), typically with status 429.
    malformed : bool
        Answer 200 with a body that is not JSON.
    truncated : bool
        Announce a ``Content-Length`` larger than the bytes sent, then close the connection.
    reset : bool
        Close the socket without answering anything.
    hang : float or None
        Sleep this many seconds before answering (longer than the client's timeout).
    finish_reason : str
        ``choices[0].finish_reason``.
    prompt_tokens, completion_tokens : int or None
        Usage to report; estimated from the text (4 characters a token) when ``None``.
    """

    content: str = ""
    delay: float = 0.0
    status: int = 200
    retry_after: float | None = None
    malformed: bool = False
    truncated: bool = False
    reset: bool = False
    hang: float | None = None
    finish_reason: str = "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    @classmethod
    def error(cls, status: int, *, retry_after: float | None = None, delay: float = 0.0) -> Reply:
        """An HTTP error reply (429, 500, 503, 400, ...)."""
        return cls(status=status, retry_after=retry_after, delay=delay)

    @classmethod
    def json(cls, payload: Any, *, delay: float = 0.0) -> Reply:
        """A reply whose content is ``payload`` serialised as JSON."""
        return cls(content=json.dumps(payload), delay=delay)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received (chat completions and model listings)."""

    path: str
    model: str | None
    messages: list[dict[str, Any]]
    response_format: dict[str, Any] | None
    headers: dict[str, str]
    body: dict[str, Any]
    time: float

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


Responder = Callable[[dict[str, Any]], Reply]

# The judge's system prompt lists one line per criterion: "- id: <id> | scale: <lo> to <hi> | ...".
_CRITERION_LINE = re.compile(
    r"^- id: (?P<id>[a-z][a-z0-9_]*) \| scale: (?P<lo>-?\d+(?:\.\d+)?) to (?P<hi>-?\d+(?:\.\d+)?)",
    re.MULTILINE,
)


def passing_scores(request_json: dict[str, Any]) -> dict[str, float]:
    """The top of the scale for every criterion named in the request's system prompt."""
    text = "\n".join(
        m.get("content", "") for m in request_json.get("messages", []) if m.get("role") == "system"
    )
    return {m["id"]: float(m["hi"]) for m in _CRITERION_LINE.finditer(text)}


_EVIDENCE_LINE = re.compile(r"^- id: (?P<id>[a-z][a-z0-9_]*) \|.*\| evidence: (?P<kind>\w+)$", re.M)
_BLOCK_RE = re.compile(
    r"<<<BEGIN message (?P<n>\d+) nonce=(?P<nonce>[0-9a-f]+) role=(?P<role>\w+)[^\n]*>>>\n"
    r"(?P<text>.*?)\n<<<END message (?P=n) nonce=(?P=nonce)>>>",
    re.DOTALL,
)
_SIGNAL_LINE = re.compile(
    r"^- (customer confirmed the resolution|CSAT \(1-5\)): (?!unknown).+$", re.M
)


def _system(request_json: dict[str, Any]) -> str:
    return "\n".join(
        str(m.get("content", ""))
        for m in request_json.get("messages", [])
        if m.get("role") == "system"
    )


def _user(request_json: dict[str, Any]) -> str:
    return "\n".join(
        str(m.get("content", ""))
        for m in request_json.get("messages", [])
        if m.get("role") == "user"
    )


_PART_RE = re.compile(
    r"<<<BEGIN (?P<label>report|source (?P<n>\d+)) nonce=(?P<nonce>[0-9a-f]+)>>>\n"
    r"(?P<text>.*?)\n<<<END (?P=label) nonce=(?P=nonce)>>>",
    re.DOTALL,
)


def report_parts(request_json: dict[str, Any]) -> list[tuple[int, str, str]]:
    """``(number, "report" | "source", text)`` of a report prompt's citable parts: 0 is the
    report, ``n`` its ``n``-th source (marker removed); empty for a conversation."""
    return [
        (int(m["n"]) if m["n"] else 0, m["label"].split()[0], m["text"].replace("\u02c6", " "))
        for m in _PART_RE.finditer(_user(request_json))
    ]


def evidence_criteria(request_json: dict[str, Any]) -> dict[str, str]:
    """``{criterion id: "any" | "customer_state" | "source" | "customer_last"}`` for criteria
    whose prompt line asks for it."""
    return {m["id"]: m["kind"] for m in _EVIDENCE_LINE.finditer(_system(request_json))}


def prompt_messages(request_json: dict[str, Any]) -> list[tuple[int, str, str]]:
    """``(number, role, text)`` of every message block of the judge prompt (marker removed)."""
    return [
        (int(m["n"]), m["role"], m["text"].replace("\u02c6", " "))
        for m in _BLOCK_RE.finditer(_user(request_json))
    ]


def cite(
    request_json: dict[str, Any], kind: str, *, number: int | None = None
) -> list[dict[str, Any]]:
    """A citation a diligent judge would give: message ``number`` if given, else the last
    customer message (else tool result) with words in it, else a platform signal. For a report:
    part ``number`` if given, else its first source with words in it (``source``) or the report
    itself (``any``)."""
    parts = report_parts(request_json)
    if parts:
        texts = {n: text for n, _, text in parts}
        if number is None:
            wanted = [n for n, label, t in parts if label == "source" and len(t) >= 12]
            number = 0 if kind == "any" else (wanted[0] if wanted else None)
        if number is None or number not in texts:
            return []
        return [{"message": number, "quote": " ".join(texts[number].split())[:60]}]
    messages = {n: (role, text) for n, role, text in prompt_messages(request_json)}
    if number is None and kind == "customer_last":
        speakers = [n for n, (role, _) in sorted(messages.items()) if role in ("customer", "agent")]
        if speakers and messages[speakers[-1]][0] == "customer":
            number = speakers[-1]  # the customer wrote last: quoted whole, however short
    if number is None:
        independent = kind in INDEPENDENT_EVIDENCE
        for wanted in ("customer", "tool") if independent else ("customer", "agent"):
            found = [
                n for n, (role, text) in messages.items() if role == wanted and len(text) >= 12
            ]
            if found:
                number = found[-1]
                break
    if number is not None and number in messages:
        return [{"message": number, "quote": " ".join(messages[number][1].split())[:60]}]
    signal = _SIGNAL_LINE.search(_user(request_json))
    return [{"message": 0, "quote": signal.group(0)[2:]}] if signal else []


GUARD_SYSTEM_MARK = "You are an injection screen"


def is_guard_request(request_json: dict[str, Any]) -> bool:
    """Whether the request is a ``guard`` judge's screen (not a grading prompt)."""
    return _system(request_json).startswith(GUARD_SYSTEM_MARK)


def guard_reply(request_json: dict[str, Any], *, attack: bool = False) -> Reply:
    """A guard's answer: every question ``attack`` (yes or no)."""
    answers: dict[str, Any] = {
        key: attack for key in ("influences_evaluator", "claims_evaluation_result", "forges_turns")
    }
    answers |= {"quote": "", "rationale": "scripted screen"}
    return Reply.json(answers)


def passing_reply(request_json: dict[str, Any]) -> Reply:
    """Default responder: a JSON reply scoring every criterion of the prompt's rubric as passing,
    citing evidence where the rubric asks for it (see :func:`cite`)."""
    if is_guard_request(request_json):
        return guard_reply(request_json)
    scores = passing_scores(request_json)
    wanted = evidence_criteria(request_json)
    criteria: dict[str, Any] = {}
    for cid, s in scores.items():
        criteria[cid] = {"score": s, "rationale": "Meets the criterion."}
        if cid in wanted:
            criteria[cid]["evidence"] = cite(request_json, wanted[cid])
    return Reply.json({"criteria": criteria, "rationale": "Every criterion is met."})


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    # -- routing --------------------------------------------------------------------------------
    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self.server.owner._record(self, "GET", {})
            body = {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                    for m in self.server.owner.models()
                ],
            }
            self._send_json(200, body)
        else:
            self._send_json(
                404, {"error": {"message": f"no route {self.path}", "type": "not_found"}}
            )

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._send_json(
                404, {"error": {"message": f"no route {self.path}", "type": "not_found"}}
            )
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._send_json(
                400, {"error": {"message": "request body is not JSON", "type": "invalid"}}
            )
            return
        owner = self.server.owner
        owner._record(self, "POST", body)
        reply = owner._next_reply(body)
        with owner._in_flight():
            self._answer(body, reply)

    # -- answers --------------------------------------------------------------------------------
    def _answer(self, body: dict[str, Any], reply: Reply) -> None:
        owner = self.server.owner
        if reply.delay:
            owner._sleep(reply.delay)
        if reply.hang is not None:
            owner._sleep(reply.hang)
        if reply.reset:
            self._reset()
            return
        if reply.status != 200:
            headers = {}
            if reply.retry_after is not None:
                headers["retry-after"] = f"{reply.retry_after:g}"
            err_type = "rate_limit_exceeded" if reply.status == 429 else "server_error"
            if 400 <= reply.status < 500 and reply.status != 429:
                err_type = "invalid_request_error"
            payload = {"error": {"message": f"fake error {reply.status}", "type": err_type}}
            self._send_json(reply.status, payload, headers=headers)
            return
        if reply.malformed:
            self._send_raw(200, b'{"id": "chatcmpl-broken", "choices": [ {"message": ', close=False)
            return
        payload = self._completion(body, reply)
        data = json.dumps(payload).encode()
        if reply.truncated:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data) + 500))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self._reset()
            return
        self._send_raw(200, data)

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        prompt_text = "".join(str(m.get("content", "")) for m in body.get("messages", []))
        prompt_tokens = (
            reply.prompt_tokens
            if reply.prompt_tokens is not None
            else _estimate_tokens(prompt_text)
        )
        completion_tokens = (
            reply.completion_tokens
            if reply.completion_tokens is not None
            else _estimate_tokens(reply.content)
        )
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "unknown"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.content},
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _send_json(
        self, status: int, payload: dict[str, Any], *, headers: dict[str, str] | None = None
    ) -> None:
        self._send_raw(status, json.dumps(payload).encode(), headers=headers)

    def _send_raw(
        self,
        status: int,
        data: bytes,
        *,
        headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if close:
            self.send_header("connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _reset(self) -> None:
        self.close_connection = True
        try:
            # SO_LINGER 0 turns close() into a TCP RST: the client sees a reset, not an answer.
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.connection.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: FakeOpenAIServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that give up (timeouts, resets) make writes fail; that is expected here.
        return


class FakeOpenAIServer:
    """An OpenAI-compatible server on 127.0.0.1 with scripted replies.

    Parameters
    ----------
    port : int
        0 (the default) picks a free port.
    default : callable, optional
        ``(request_json) -> Reply`` used when the model's queue is empty; by default
        :func:`passing_reply` (every criterion of the prompt's rubric passes).
    latency : float
        Seconds added before every answer (on top of a reply's own ``delay``).
    """

    def __init__(
        self, *, port: int = 0, default: Responder | None = None, latency: float = 0.0
    ) -> None:
        if latency < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {latency}")
        self._port = port
        self.default: Responder = default or passing_reply
        self.latency = latency
        self._queues: dict[str, deque[Reply]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._active = 0
        self.max_in_flight = 0

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> FakeOpenAIServer:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", self._port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-openai-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()  # wakes sleeping (hanging) handlers
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake server is not started; call start() first")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting ------------------------------------------------------------------------------
    def enqueue(self, model: str, *replies: Reply) -> None:
        """Queue replies for ``model`` (the name the server receives, e.g. ``gpt-4o-mini``)."""
        if not replies:
            raise ValueError("enqueue needs at least one Reply")
        with self._lock:
            self._queues[model].extend(replies)

    def pending(self, model: str) -> int:
        with self._lock:
            return len(self._queues.get(model, ()))

    def reset(self) -> None:
        """Forget queued replies, recorded requests and the in-flight peak."""
        with self._lock:
            self._queues.clear()
            self._requests.clear()
            self.max_in_flight = 0

    def models(self) -> list[str]:
        with self._lock:
            return sorted(self._queues) or ["fake-model"]

    # -- inspection -----------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def chat_requests(self, model: str | None = None) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if r.path.endswith("chat/completions") and (model is None or r.model == model)
        ]

    # -- internals used by the handler ------------------------------------------------------------
    def _record(self, handler: _Handler, method: str, body: dict[str, Any]) -> None:
        request = RecordedRequest(
            path=handler.path,
            model=body.get("model"),
            messages=list(body.get("messages") or []),
            response_format=body.get("response_format"),
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
            time=time.time(),
        )
        with self._lock:
            self._requests.append(request)

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        model = str(body.get("model", ""))
        with self._lock:
            queue = self._queues.get(model)
            if queue:
                reply = queue.popleft()
                return _with_latency(reply, self.latency)
        return _with_latency(self.default(body), self.latency)

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def _in_flight(self) -> _InFlight:
        return _InFlight(self)


def _with_latency(reply: Reply, latency: float) -> Reply:
    if not latency:
        return reply
    return Reply(**{**reply.__dict__, "delay": reply.delay + latency})


class _InFlight:
    def __init__(self, owner: FakeOpenAIServer) -> None:
        self.owner = owner

    def __enter__(self) -> None:
        with self.owner._lock:
            self.owner._active += 1
            self.owner.max_in_flight = max(self.owner.max_in_flight, self.owner._active)

    def __exit__(self, *exc: object) -> None:
        with self.owner._lock:
            self.owner._active -= 1


def _fixed(content: str) -> Responder:
    def respond(_: dict[str, Any]) -> Reply:
        return Reply(content=content)

    return respond


def serve(argv: list[str] | None = None) -> None:
    """Run the fake server in the foreground until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.openai_server")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before every answer")
    parser.add_argument(
        "--content", default=None, help="fixed reply text (default: pass every rubric criterion)"
    )
    args = parser.parse_args(argv)
    if args.latency_ms < 0:
        parser.error("--latency-ms must be >= 0")
    server = FakeOpenAIServer(
        port=args.port,
        latency=args.latency_ms / 1000,
        default=_fixed(args.content) if args.content is not None else None,
    )
    server.start()
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    print(f"fake OpenAI server listening on {server.base_url}", flush=True)
    try:
        done.wait()
    finally:
        server.stop()


if __name__ == "__main__":
    serve()
