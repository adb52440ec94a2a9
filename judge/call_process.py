"""Model calls in a process of their own, so that litellm's CPU does not share the engine's core.

litellm spends about 4 ms of CPU on the client side of each call (building the request, its
logging and cost bookkeeping), and the engine about 3 ms more per outcome (the prompt, the
reply's parsing and evidence, the verdict, the ledger). On one event loop the two queue behind
each other: a run at ``--concurrency 32`` went at 0.75-0.8 of bare litellm. A
:class:`CallProcess` runs :func:`judge.model_client.acompletion` in a child process with its
own event loop; the engine's loop only sends the request and reads the response back (a
pickled ``ModelResponse``, about 10 µs each way).

The request, the provider, the retries, the call store and the limits are the engine's as
before: only where litellm's own work runs changes. If the child dies, the calls then in
flight fail as connection errors (retried like any), and every later call runs in this
process, with a warning: a call is never lost silently.

The child talks to its parent over an unnamed socket pair (frames of a 4-byte length and a
pickle); nothing else can reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from judge import model_client

__all__ = ["CallProcess", "RemoteCallError"]

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!I")
#: The only provider headers carried back: what the retry waits read (``_retry_after``).
_RETRY_HEADERS = frozenset({"retry-after", "retry-after-ms"})
#: Seconds past a call's own ``timeout`` after which the engine stops waiting for the child
#: (litellm enforces the timeout there; this only guards against a child that stopped answering).
GRACE_SECONDS = 30.0
DEFAULT_TIMEOUT = 600.0
#: Sent by the child once litellm is imported: the caller's clock starts after it.
_READY = "ready"


def _frame(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


async def _read(reader: asyncio.StreamReader) -> Any:
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    return pickle.loads(await reader.readexactly(size))  # our own child, on our own socket


class RemoteCallError(Exception):
    """A provider error raised in the call process, carried back with what the engine reads:
    the error's class name and text, its HTTP status, whether litellm classes it transient, the
    provider's response headers (``retry-after``) and whether it was a lost connection."""

    status_code: int | None = None
    transient: bool = False
    litellm_response_headers: dict[str, str] | None = None


_ERROR_CLASSES: dict[str, type[RemoteCallError]] = {}


def _error_class(name: str) -> type[RemoteCallError]:
    # The original class's name is kept: it is what the ledger's ``error`` and reasons show.
    found = _ERROR_CLASSES.get(name)
    if found is None:
        found = _ERROR_CLASSES[name] = type(name, (RemoteCallError,), {})
    return found


@dataclass(frozen=True)
class _ErrorInfo:
    name: str
    text: str
    status_code: int | None
    transient: bool
    headers: dict[str, str] | None
    connection: bool

    @classmethod
    def of(cls, exc: BaseException) -> _ErrorInfo:
        status = getattr(exc, "status_code", None)
        headers = getattr(exc, "litellm_response_headers", None)
        if headers is None:
            headers = getattr(getattr(exc, "response", None), "headers", None)
        waits = None
        if headers:
            waits = {
                str(key).lower(): str(value)
                for key, value in dict(headers).items()
                if str(key).lower() in _RETRY_HEADERS
            }
        return cls(
            name=type(exc).__name__,
            text=str(exc),
            status_code=status
            if isinstance(status, int) and not isinstance(status, bool)
            else None,
            transient=model_client.is_transient(exc),
            headers=waits or None,
            connection=_lost_connection(exc),
        )

    def error(self) -> RemoteCallError:
        exc = _error_class(self.name)(self.text)
        exc.status_code = self.status_code
        exc.transient = self.transient
        exc.litellm_response_headers = self.headers
        if self.connection:
            exc.__cause__ = ConnectionError(self.text)
        return exc


def _lost_connection(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    for _ in range(10):  # litellm wraps httpx/aiohttp errors several deep
        if cause is None:
            return False
        if isinstance(cause, ConnectionError) or type(cause).__name__ in (
            "ConnectError",
            "APIConnectionError",
        ):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


@dataclass
class CallProcess:
    """A child process that makes the model calls of this process.

    :meth:`spawn` starts it (it imports litellm, seconds), :meth:`ready` waits for it, and
    ``judge.model_client.using(calls.acompletion)`` sends the calls of that context to it;
    :meth:`close` ends it.

    Examples
    --------
    >>> async def run() -> bool:
    ...     calls = CallProcess()
    ...     calls.spawn()
    ...     await calls.ready()
    ...     await calls.close()
    ...     return calls.broken
    >>> asyncio.run(run())
    False
    """

    broken: bool = False
    _process: subprocess.Popen[bytes] | None = None
    _socket: socket.socket | None = None
    _writer: asyncio.StreamWriter | None = None
    _reading: asyncio.Task[None] | None = None
    _pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def pid(self) -> int | None:
        """The child's process id (``None`` before :meth:`spawn`)."""
        return None if self._process is None else self._process.pid

    def spawn(self) -> None:
        """Start the child; it imports litellm while the caller goes on."""
        ours, theirs = socket.socketpair()
        self._socket = ours
        with theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "judge.call_process", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                # stdout is the caller's (``--json`` prints there): nothing of litellm's goes in it.
                stdout=subprocess.DEVNULL,
            )

    async def ready(self) -> None:
        """Wait until the child can take calls (once; after :meth:`spawn`)."""
        if self._socket is None:
            raise RuntimeError("CallProcess.ready() before spawn()")
        reader, self._writer = await asyncio.open_connection(sock=self._socket)
        try:
            first = await _read(reader)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            self._break(f"it ended while starting ({exc!r})")
            return
        if first != _READY:
            raise RuntimeError(f"call process: unexpected first message {first!r}")
        self._reading = asyncio.create_task(self._read_replies(reader))

    async def acompletion(self, **kwargs: Any) -> Any:
        """``litellm.acompletion(**kwargs)`` in the child; its response, or its error."""
        if self.broken or self._writer is None:
            return await model_client.litellm_acompletion(**kwargs)
        try:
            request = _frame((next_id := next(self._ids), kwargs))
        except (pickle.PicklingError, TypeError, AttributeError):
            # A pass-through litellm option that cannot cross processes: this call runs here.
            return await model_client.litellm_acompletion(**kwargs)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending[next_id] = future
        limit = float(kwargs.get("timeout") or DEFAULT_TIMEOUT) + GRACE_SECONDS
        expiry = loop.call_later(limit, self._expire, next_id, limit)
        self._writer.write(request)
        try:
            return await future
        except asyncio.CancelledError:
            self._cancel_in_child(next_id)
            raise
        finally:
            expiry.cancel()
            self._pending.pop(next_id, None)

    def _cancel_in_child(self, call_id: int) -> None:
        if not self.broken and self._writer is not None and not self._writer.is_closing():
            self._writer.write(_frame((call_id, None)))

    def _expire(self, call_id: int, limit: float) -> None:
        future = self._pending.get(call_id)
        if future is not None and not future.done():
            self._cancel_in_child(call_id)
            text = f"the call process did not answer within {limit:.0f} s"
            future.set_exception(_ErrorInfo("Timeout", text, 408, True, None, False).error())

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                call_id, ok, payload = await _read(reader)
                future = self._pending.get(call_id)
                if future is None or future.done():
                    continue
                if ok:
                    future.set_result(payload)
                else:
                    future.set_exception(payload.error())
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            self._break(f"it ended ({exc!r})")
        except Exception as exc:  # a reply that cannot be read: no call may wait forever
            self._break(f"its reply could not be read ({exc!r})")

    def _break(self, why: str) -> None:
        if not self.broken:
            self.broken = True
            code = None if self._process is None else self._process.poll()
            log.warning(
                "the model-call process stopped: %s, exit code %s; the calls in flight are "
                "retried, and the rest run in this process",
                why,
                code,
            )
        for future in self._pending.values():
            if not future.done():
                future.set_exception(
                    _ErrorInfo("APIConnectionError", why, None, True, None, True).error()
                )

    async def close(self) -> None:
        """End the child (the caller has awaited its calls; any still in flight are cancelled)."""
        if self._reading is not None:
            self._reading.cancel()  # first: the child's end of file is no failure now
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading
        for future in self._pending.values():
            future.cancel()
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
        elif self._socket is not None:
            self._socket.close()
        if self._process is not None:
            try:
                await asyncio.to_thread(self._process.wait, 10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                await asyncio.to_thread(self._process.wait)


async def _serve(fd: int) -> None:
    reader, writer = await asyncio.open_connection(sock=socket.socket(fileno=fd))
    model_client.warm_up()
    writer.write(_frame(_READY))
    calls: dict[int, asyncio.Task[None]] = {}

    async def one(call_id: int, kwargs: dict[str, Any]) -> None:
        try:
            response = await model_client.litellm_acompletion(**kwargs)
            reply: tuple[int, bool, Any] = (call_id, True, response)
        except Exception as exc:
            reply = (call_id, False, _ErrorInfo.of(exc))
        finally:
            calls.pop(call_id, None)
        try:
            writer.write(_frame(reply))
        except Exception as exc:  # a response that does not pickle: say so, do not hang
            writer.write(_frame((call_id, False, _ErrorInfo.of(exc))))

    while True:
        try:
            call_id, kwargs = await _read(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            break  # the parent closed its end (or ended)
        if kwargs is None:
            task = calls.pop(call_id, None)
            if task is not None:
                task.cancel()
            continue
        calls[call_id] = asyncio.create_task(one(call_id, kwargs))
    for task in list(calls.values()):
        task.cancel()


def main(argv: list[str]) -> None:
    # Ctrl-C reaches the whole process group: the parent decides, and closes the socket.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(_serve(int(argv[0])))


if __name__ == "__main__":
    # Run from the module's own name, so that what the child pickles (``_ErrorInfo``) is
    # ``judge.call_process._ErrorInfo`` for the parent, not ``__main__._ErrorInfo``.
    from judge.call_process import main as _main

    _main(sys.argv[1:])
    sys.stderr.flush()
    os._exit(0)  # litellm's logging threads must not keep the child alive
