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

The child talks to its parent over an unnamed socket pair; nothing else can reach it. A frame
is a header (the pickle's length and the call's number) and a pickle, so that a payload one side
cannot read fails that call alone, with its reason, and never the stream.
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

_HEADER = struct.Struct("!IQ")  # payload length, call number
#: The only provider headers carried back: what the retry waits read (``_retry_after``).
_RETRY_HEADERS = frozenset({"retry-after", "retry-after-ms"})
#: Seconds past a call's own ``timeout`` after which the engine stops waiting for the child
#: (litellm enforces the timeout there; this only guards against a child that stopped answering).
GRACE_SECONDS = 30.0
DEFAULT_TIMEOUT = 600.0
#: Seconds the child may take to import litellm and say it is ready.
START_SECONDS = 120.0
#: Sent by the child (as call 0) once litellm is imported: the caller's clock starts after it.
_READY = "ready"


def _frame(call_id: int, payload: object) -> bytes:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data), call_id) + data


async def _read(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The next frame: its call number and its payload, not yet unpickled."""
    size, call_id = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    return call_id, await reader.readexactly(size)


def _seconds(timeout: object) -> float:
    """A call's ``timeout`` in seconds (litellm also takes an ``httpx.Timeout``: its largest
    figure), else :data:`DEFAULT_TIMEOUT`."""
    if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0:
        return float(timeout)
    parts = [getattr(timeout, name, None) for name in ("connect", "read", "write", "pool")]
    numbers = [float(part) for part in parts if isinstance(part, int | float)]
    return max(numbers) if numbers else DEFAULT_TIMEOUT


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
    def safely(cls, exc: BaseException) -> _ErrorInfo:
        """:meth:`of`, or the bare name and text when reading ``exc`` fails too."""
        try:
            return cls.of(exc)
        except Exception:
            return cls(type(exc).__name__, str(exc)[:500], None, False, None, False)

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
            connection=model_client.is_lost_connection(exc),
        )

    def error(self) -> RemoteCallError:
        exc = _error_class(self.name)(self.text)
        exc.status_code = self.status_code
        exc.transient = self.transient
        exc.litellm_response_headers = self.headers
        if self.connection:
            exc.__cause__ = ConnectionError(self.text)
        return exc


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
    _closed: bool = False
    _process: subprocess.Popen[bytes] | None = None
    _socket: socket.socket | None = None
    _writer: asyncio.StreamWriter | None = None
    _reading: asyncio.Task[None] | None = None
    _pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    #: Call numbers; 0 is the child's "ready".
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

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
            _, first = await asyncio.wait_for(_read(reader), START_SECONDS)
        except TimeoutError:
            self._break(f"it was not ready within {START_SECONDS:.0f} s")
            return
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            self._break(f"it ended while starting ({exc!r})")
            return
        if pickle.loads(first) != _READY:
            self._break(f"its first message was not {_READY!r}")
            return
        self._reading = asyncio.create_task(self._read_replies(reader))

    async def acompletion(self, **kwargs: Any) -> Any:
        """``litellm.acompletion(**kwargs)`` in the child; its response, or its error."""
        if self.broken or self._closed or self._writer is None:
            return await model_client.litellm_acompletion(**kwargs)
        next_id = next(self._ids)
        try:
            request = _frame(next_id, kwargs)
        except (pickle.PicklingError, TypeError, AttributeError):
            # A pass-through litellm option that cannot cross processes: this call runs here.
            return await model_client.litellm_acompletion(**kwargs)
        limit = _seconds(kwargs.get("timeout")) + GRACE_SECONDS
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending[next_id] = future
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
            self._writer.write(_frame(call_id, None))

    def _expire(self, call_id: int, limit: float) -> None:
        future = self._pending.get(call_id)
        if future is not None and not future.done():
            # litellm enforces the timeout in the child: a child past it has stopped answering.
            self._break(f"it did not answer a call within {limit:.0f} s")

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                call_id, data = await _read(reader)
                future = self._pending.get(call_id)
                if future is None or future.done():
                    continue
                try:
                    ok, payload = pickle.loads(data)  # our own child, on our own socket
                except Exception as exc:  # this reply only; not retried (it may be billed)
                    text = f"the call process's reply could not be read: {exc!r}"
                    future.set_exception(
                        _ErrorInfo("ReplyUnreadable", text, None, False, None, False).error()
                    )
                    continue
                if ok:
                    future.set_result(payload)
                else:
                    future.set_exception(payload.error())
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            self._break(f"it ended ({exc!r})")

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
        # A child that stopped answering must not go on making (billed) calls while the
        # engine retries the same ones here.
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        lost = _ErrorInfo("APIConnectionError", f"call process: {why}", None, True, None, True)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(lost.error())

    async def close(self) -> None:
        """End the child (the caller has awaited its calls; any still in flight are cancelled,
        and a call made after this runs in this process)."""
        self._closed = True
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
    writer.write(_frame(0, _READY))
    calls: dict[int, asyncio.Task[None]] = {}

    def fail(call_id: int, exc: BaseException) -> None:
        writer.write(_frame(call_id, (False, _ErrorInfo.safely(exc))))

    async def one(call_id: int, kwargs: dict[str, Any]) -> None:
        try:
            response = await model_client.litellm_acompletion(**kwargs)
        except Exception as exc:
            fail(call_id, exc)
            return
        finally:
            calls.pop(call_id, None)
        try:
            writer.write(_frame(call_id, (True, response)))
        except Exception as exc:  # a response that does not pickle: that call fails, said why
            fail(call_id, exc)

    while True:
        try:
            call_id, data = await _read(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            break  # the parent closed its end (or ended)
        try:
            kwargs = pickle.loads(data)  # our own parent, on our own socket
        except Exception as exc:  # this request only: answered, so the caller never waits
            fail(call_id, exc)
            continue
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
    try:
        asyncio.run(_serve(int(argv[0])))
    finally:
        sys.stderr.flush()
        os._exit(0)  # whatever happened: litellm's logging threads must not keep the child alive


if __name__ == "__main__":
    # Run from the module's own name, so that what the child pickles (``_ErrorInfo``) is
    # ``judge.call_process._ErrorInfo`` for the parent, not ``__main__._ErrorInfo``.
    from judge.call_process import main as _main

    _main(sys.argv[1:])
