"""The rate limit and the failed-key throttle kept in PostgreSQL, shared by every API process.

``judge serve --workers N`` on PostgreSQL, on one host or many behind a load balancer, takes each
tenant's tokens from one bucket in the database (:func:`ledger.shared_limits.take_token`: one
``INSERT .. ON CONFLICT DO UPDATE .. RETURNING`` per request, on the database's clock), so the N
processes together allow the configured rate, not N times it. Failed key attempts are counted in
the database too, so a lock-out holds in every process.

Each check is one statement on an autocommit connection of the ledger's pool. When the database
does not answer, the request fails closed: 503 with ``Retry-After`` and a message naming the fix
(:class:`LimitsUnavailable`). Failing open would let a flood through exactly when the database is
struggling, and every route needs the database anyway (the key itself is checked there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from api.errors import ApiError
from api.limits import Admission, Gate, Refusal, refusal_for
from ledger.shared_limits import (
    failure_state,
    lookup,
    prune_failures,
    record_failure,
    take_token,
)
from ledger.tenants import tenant_of_key

log = logging.getLogger("outcome_judge.api")

_T = TypeVar("_T")

#: Seconds a client is asked to wait when the limits cannot be read.
UNAVAILABLE_RETRY_AFTER = 5


class LimitsUnavailable(ApiError):
    """The shared limits cannot be checked (the database does not answer): 503."""

    def __init__(self, exc: BaseException) -> None:
        first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0]
        super().__init__(
            503,
            "the request could not be admitted: the rate limits of the API processes are kept "
            f"in PostgreSQL, which did not answer ({type(exc).__name__}: {first[:200]}); check "
            "that the database is up and reachable from this host (GET /readyz answers 200 "
            f"when it is), then retry after {UNAVAILABLE_RETRY_AFTER} s",
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
        )


class _Shared:
    """One statement at a time on an autocommit connection of the ledger's pool."""

    def __init__(self, engine: Engine) -> None:
        # Autocommit: the statement commits alone, no BEGIN/COMMIT round trips around it.
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                yield conn
        except DBAPIError as exc:
            log.warning("shared limits: the database did not answer: %s", exc)
            raise LimitsUnavailable(exc) from None

    def _run(self, fn: Callable[[Connection], _T]) -> _T:
        with self.connection() as conn:
            return fn(conn)


class SharedRateLimiter(_Shared):
    """A token bucket per tenant in ``rate_buckets``: the same interface and arithmetic as
    :class:`api.limits.RateLimiter`, for every API process at once."""

    def check(self, tenant: str, per_minute: int) -> float | None:
        """Take one token; None when allowed, else the seconds until a token is free."""
        return self._run(lambda conn: take_token(conn, tenant, per_minute))


class SharedAuthThrottle(_Shared):
    """:class:`api.limits.AuthThrottle`'s rules on counters in ``auth_failures``.

    One difference: the failures are counted in a fixed window that the first failure starts
    (not a sliding one), so a minute straddling two windows can hold up to
    ``2 * max_failures - 1`` failures before a lock (plus attempts in flight when it lands),
    whatever the number of processes: every process sees the same count.
    """

    def __init__(
        self, engine: Engine, *, max_failures: int, lockout: float, window: float = 60.0
    ) -> None:
        super().__init__(engine)
        self.max_failures = max_failures
        self.lockout = lockout
        self.window = window

    def refused(self, key_id: str | None, address: str) -> Refusal | None:
        """The refusal for an attempt that must not be checked, else None (check the key)."""
        state = self._run(lambda conn: failure_state(conn, key_id, address))
        return refusal_for(
            state, key_id, max_failures=self.max_failures, window=self.window, lockout=self.lockout
        )

    def failed(self, key_id: str | None, address: str) -> None:
        """Count a failed attempt (an unknown, wrong, malformed or revoked key)."""
        self._run(lambda conn: self.record(conn, key_id, address))

    def record(self, conn: Connection, key_id: str | None, address: str) -> None:
        """:meth:`failed` on an open connection."""
        record_failure(
            conn,
            key_id,
            address,
            max_failures=self.max_failures,
            window=self.window,
            lockout=self.lockout,
        )

    def prune(self) -> int:
        """Delete the counters that can no longer matter (run now and then)."""
        return self._run(lambda conn: prune_failures(conn, horizon=self.window + self.lockout))


class SharedGate(Gate):
    """:class:`api.limits.Gate` on the shared limits: each call runs in a worker thread, and
    :meth:`admit` reads the throttle, checks the key and takes the token on one connection (one
    thread hop and one pool checkout per request, as checking the key alone took before)."""

    def __init__(self, limiter: SharedRateLimiter, throttle: SharedAuthThrottle) -> None:
        self.shared_limiter = limiter
        self.shared_throttle = throttle

    def _admit(self, key: str, key_id: str | None, address: str, default_rate: int) -> Admission:
        throttle = self.shared_throttle
        with throttle.connection() as conn:
            state, key_row = lookup(conn, key_id, address)
            refusal = refusal_for(
                state,
                key_id,
                max_failures=throttle.max_failures,
                window=throttle.window,
                lockout=throttle.lockout,
            )
            if refusal is not None:
                return Admission(refusal=refusal)
            # The key is looked at only now, when the throttle let the attempt through.
            tenant = None if key_row is None or key_id is None else tenant_of_key(key, key_row)
            if tenant is None:
                throttle.record(conn, key_id, address)
                return Admission()
            per_minute = tenant.requests_per_minute or default_rate
            return Admission(tenant=tenant, wait=take_token(conn, tenant.name, per_minute))

    async def admit(
        self, engine: Engine, key: str, key_id: str | None, address: str, default_rate: int
    ) -> Admission:
        """Throttle, check the key, take the token: one thread, one connection, 2 statements."""
        return await asyncio.to_thread(self._admit, key, key_id, address, default_rate)

    async def take(self, tenant: str, per_minute: int) -> float | None:
        return await asyncio.to_thread(self.shared_limiter.check, tenant, per_minute)

    async def refused(self, key_id: str | None, address: str) -> Refusal | None:
        return await asyncio.to_thread(self.shared_throttle.refused, key_id, address)

    async def failed(self, key_id: str | None, address: str) -> None:
        await asyncio.to_thread(self.shared_throttle.failed, key_id, address)


async def repeat(stop: asyncio.Event, seconds: float, job: Callable[[], object], what: str) -> None:
    """Run ``job`` in a thread every ``seconds``; once ``stop`` is set, run it once more (a run
    that starts after the stop: the counters' last write) and end.

    A failure is logged and the job runs again next time (request counts stay in memory).
    """
    while True:
        stopping = stop.is_set()
        if not stopping:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=seconds)
        try:
            await asyncio.to_thread(job)
        except Exception as exc:
            log.warning("%s failed (tried again in %.0f s): %s", what, seconds, exc)
        if stopping:
            return
