"""Request-size and request-rate limits, and the throttle on failed authentication.

The body limit is an ASGI middleware, so an oversize body is refused (413) before any of it is
parsed, whether it announces its length or streams it. The rate limit is a token bucket per
tenant (:class:`RateLimiter`) and failed key attempts are throttled per key id and per client
address (:class:`AuthThrottle`), both kept in this process's memory: what a SQLite ledger, served
by one process, uses. With PostgreSQL both live in the database instead, shared by every API
process (:mod:`api.shared_state`); the routes reach either through a :class:`Gate`.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response
from ledger.shared_limits import FailureState
from ledger.tenants import TenantInfo, authenticate

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413 and the error shape."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _refuse(self) -> object:
        return error_response(
            413,
            f"request body is larger than {self.max_bytes} bytes; send fewer outcomes per "
            "request (the limit is OUTCOME_JUDGE_MAX_BODY_BYTES)",
            details={"max_bytes": self.max_bytes},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._refuse()(scope, receive, send)  # type: ignore[operator]
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse()(scope, receive, send)  # type: ignore[operator]


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per tenant: ``per_minute`` requests a minute, bursts up to the same.

    In this process's memory: one process's limit (SQLite). With PostgreSQL the bucket lives in
    the database (:class:`api.shared_state.SharedRateLimiter`), with the same arithmetic.
    """

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def check(self, tenant: str, per_minute: int) -> float | None:
        """Take one token; None when allowed, else the seconds until a token is free."""
        now = time.monotonic()
        rate = per_minute / 60.0
        with self._lock:
            bucket = self._buckets.get(tenant)
            if bucket is None:
                bucket = self._buckets[tenant] = _Bucket(tokens=float(per_minute), updated=now)
            bucket.tokens = min(float(per_minute), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return max(1.0, math.ceil((1.0 - bucket.tokens) / rate))


@dataclass
class _Failures:
    times: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


@dataclass(frozen=True)
class Refusal:
    """Why an authentication attempt is refused before its key is checked, and for how long."""

    scope: Literal["address", "key_id"]
    retry_after: int
    message: str


class AuthThrottle:
    """Throttle failed authentications per API key id and per client address (this process).

    A key carries 256 random bits, so guessing one is hopeless; the throttle stops the attempt
    itself from being free (and keeps a scan from filling the logs). Two limits:

    - **Per address:** ``max_failures`` failed attempts within ``window`` seconds from one client
      address lock that address out for ``lockout`` seconds: every attempt from it answers 429
      without the key being checked.
    - **Per key id** (the public ``oj_<key_id>_`` part): ``max_failures`` failures for one key
      id, from any addresses, lock the key id. While it is locked, an address that has failed
      for it is refused (429) without its key being checked; an address that has not, is
      checked as usual. So a spray from many addresses gets one guess per address per lockout,
      while the key's owner, who sends the right key and so never fails, is never blocked.

    Counters live in this process (the throttle of a SQLite ledger's one API process; with
    PostgreSQL, :class:`api.shared_state.SharedAuthThrottle` keeps them in the database for every
    process, with the same rules and :func:`refusal_for`). Entries expire after
    ``window + lockout`` seconds and the tables are capped, so a scan cannot grow them unbounded.
    """

    MAX_ENTRIES = 100_000

    def __init__(
        self,
        *,
        max_failures: int,
        lockout: float,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.lockout = lockout
        self.window = window
        self._clock = clock
        self._by_address: dict[str, _Failures] = {}
        self._by_key: dict[str, _Failures] = {}
        #: Last failure of an address for a key id.
        self._pairs: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def refused(self, key_id: str | None, address: str) -> Refusal | None:
        """The refusal for an attempt that must not be checked, else None (check the key)."""
        now = self._clock()
        with self._lock:
            by_address = self._by_address.get(address)
            by_key = self._by_key.get(key_id) if key_id is not None else None
            failed_at = self._pairs.get((key_id, address)) if key_id is not None else None
            state = FailureState(
                address_locked=_left(by_address, now),
                key_locked=_left(by_key, now),
                pair_age=None if failed_at is None else now - failed_at,
            )
        return refusal_for(
            state, key_id, max_failures=self.max_failures, window=self.window, lockout=self.lockout
        )

    def failed(self, key_id: str | None, address: str) -> None:
        """Count a failed attempt (an unknown, wrong, malformed or revoked key)."""
        now = self._clock()
        with self._lock:
            self._count(self._by_address, address, now)
            if key_id is not None:
                self._count(self._by_key, key_id, now)
                self._pairs[(key_id, address)] = now
            if len(self._by_address) + len(self._by_key) + len(self._pairs) > self.MAX_ENTRIES:
                self._prune(now)

    def _count(self, table: dict[str, _Failures], name: str, now: float) -> None:
        entry = table.setdefault(name, _Failures())
        entry.times.append(now)
        while entry.times and entry.times[0] <= now - self.window:
            entry.times.popleft()
        if len(entry.times) >= self.max_failures and entry.locked_until <= now:
            entry.locked_until = now + self.lockout

    def _prune(self, now: float) -> None:
        horizon = now - self.window - self.lockout
        for table in (self._by_address, self._by_key):
            for name in [
                n
                for n, e in table.items()
                if e.locked_until <= now and (not e.times or e.times[-1] <= horizon)
            ]:
                del table[name]
        for pair in [p for p, at in self._pairs.items() if at <= horizon]:
            del self._pairs[pair]
        if len(self._by_address) + len(self._by_key) + len(self._pairs) > self.MAX_ENTRIES:
            # Still full of live entries (a scan from very many addresses): forget the pairs
            # first (they only narrow who a locked key id refuses), then everything. Failing
            # open here costs a scanner nothing it could use: the keys are unguessable.
            self._pairs.clear()
            if len(self._by_address) + len(self._by_key) > self.MAX_ENTRIES:
                self._by_address.clear()
                self._by_key.clear()


def _left(entry: _Failures | None, now: float) -> float | None:
    """Seconds the entry's lock-out still lasts, None when it is not locked."""
    if entry is None or entry.locked_until <= now:
        return None
    return entry.locked_until - now


def refusal_for(
    state: FailureState, key_id: str | None, *, max_failures: int, window: float, lockout: float
) -> Refusal | None:
    """The rules of :class:`AuthThrottle`, on what is known of an attempt's address and key id.

    A locked address is refused; a locked key id refuses the addresses that failed for it since
    shortly before the lock (within ``window`` of it), and checks every other address.
    """
    if state.address_locked is not None:
        wait = math.ceil(state.address_locked)
        return Refusal(
            "address",
            wait,
            f"too many failed API key attempts from this address ({max_failures} "
            f"in {window:.0f} s); retry after {wait} s",
        )
    if key_id is None or state.key_locked is None or state.pair_age is None:
        return None
    # The key id was locked at (key_locked - lockout) s from now; the pair counts when it
    # failed after (lock time - window), i.e. for the failures that led to the lock and later.
    if -state.pair_age > state.key_locked - lockout - window:
        wait = math.ceil(state.key_locked)
        return Refusal(
            "key_id",
            wait,
            f"too many failed attempts for API key id {key_id}; retry after {wait} s "
            "(the right key from an address without failed attempts is still accepted)",
        )
    return None


@dataclass(frozen=True)
class Admission:
    """What the limits say of a request with an API key.

    ``refusal``: the throttle refused the attempt before its key was checked (429). Else
    ``tenant`` None: the key is unknown, wrong, malformed or revoked (401, counted as a failure).
    Else ``wait``: seconds until the tenant's bucket has a token (429), None when it took one.
    """

    tenant: TenantInfo | None = None
    refusal: Refusal | None = None
    wait: float | None = None


class Gate(ABC):
    """The rate limit and the failed-key throttle as the routes use them: :class:`LocalGate`
    (this process's memory, for SQLite) or :class:`api.shared_state.SharedGate` (PostgreSQL)."""

    @abstractmethod
    async def admit(
        self, engine: Engine, key: str, key_id: str | None, address: str, default_rate: int
    ) -> Admission:
        """Throttle, check the key, take the tenant's token (``default_rate`` when it has none)."""

    @abstractmethod
    async def take(self, tenant: str, per_minute: int) -> float | None:
        """Take a token of the tenant's bucket: None when granted, else seconds to wait."""

    @abstractmethod
    async def refused(self, key_id: str | None, address: str) -> Refusal | None:
        """The refusal of an attempt whose key must not be checked, else None."""

    @abstractmethod
    async def failed(self, key_id: str | None, address: str) -> None:
        """Count a failed attempt."""


class LocalGate(Gate):
    """:class:`Gate` on :class:`RateLimiter` and :class:`AuthThrottle` (answers on the event
    loop: a dictionary look-up under a lock)."""

    def __init__(self, limiter: RateLimiter, throttle: AuthThrottle) -> None:
        self.limiter = limiter
        self.throttle = throttle

    async def admit(
        self, engine: Engine, key: str, key_id: str | None, address: str, default_rate: int
    ) -> Admission:
        refusal = self.throttle.refused(key_id, address)
        if refusal is not None:
            return Admission(refusal=refusal)
        tenant = await asyncio.to_thread(authenticate, engine, key)
        if tenant is None:
            self.throttle.failed(key_id, address)
            return Admission()
        per_minute = tenant.requests_per_minute or default_rate
        return Admission(tenant=tenant, wait=self.limiter.check(tenant.name, per_minute))

    async def take(self, tenant: str, per_minute: int) -> float | None:
        return self.limiter.check(tenant, per_minute)

    async def refused(self, key_id: str | None, address: str) -> Refusal | None:
        return self.throttle.refused(key_id, address)

    async def failed(self, key_id: str | None, address: str) -> None:
        self.throttle.failed(key_id, address)
