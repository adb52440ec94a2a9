"""Rate buckets and failed-key counters kept in PostgreSQL, for every API process at once.

Each request takes its tenant's token with one statement (:func:`take_token`): an ``INSERT ..
ON CONFLICT DO UPDATE .. RETURNING`` that refills the bucket for the time since its last take
and takes a token, on the database's clock, under the row's lock. Any number of API processes on
any number of hosts therefore share one bucket per tenant, and their clocks never matter.

Failed API key attempts (:func:`record_failure`, :func:`failure_state`) are counted per client
address, per key id and per (key id, address) pair in ``auth_failures`` the same way, so a
lock-out holds in every process and an attacker gains nothing by spreading guesses over them.

PostgreSQL only: a SQLite ledger is served by one process, which keeps both in memory
(:mod:`api.limits`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

#: The bucket of every authenticated request of a tenant (API routes and web pages alike).
API_SCOPE = "api"

# statement_timestamp() is read once per statement: the refill, the take and the new time all
# use the same instant. A statement that waited for the row lock behind a later one sees a
# negative elapsed time: GREATEST(0, ..) grants it nothing extra and updated_at never goes back.
_REFILLED = (
    "LEAST(CAST(:cap AS double precision), b.tokens + GREATEST(0, "
    "EXTRACT(EPOCH FROM statement_timestamp() - b.updated_at)) * :rate)"
)
_TAKE = sa.text(
    "INSERT INTO rate_buckets AS b (tenant, scope, tokens, allowed, updated_at) "
    "VALUES (:tenant, :scope, CAST(:cap AS double precision) - 1, true, statement_timestamp()) "
    "ON CONFLICT (tenant, scope) DO UPDATE SET "
    f"tokens = CASE WHEN {_REFILLED} >= 1 THEN {_REFILLED} - 1 ELSE {_REFILLED} END, "
    f"allowed = {_REFILLED} >= 1, "
    "updated_at = GREATEST(b.updated_at, statement_timestamp()) "
    "RETURNING tokens, allowed"
)


def _postgres_only(conn: Connection) -> None:
    if conn.dialect.name != "postgresql":
        raise ValueError(
            f"shared rate limits need PostgreSQL, not {conn.dialect.name}: a SQLite ledger is "
            "served by one process, which keeps its limits in memory"
        )


def take_token(
    conn: Connection, tenant: str, per_minute: int, *, scope: str = API_SCOPE
) -> float | None:
    """Take one token from the tenant's bucket: None when granted, else seconds until one is.

    The bucket holds up to ``per_minute`` tokens (the burst) and refills at ``per_minute / 60``
    a second; a changed ``per_minute`` applies from this take on. One statement, committed on
    its own when ``conn`` is in autocommit mode (what the API uses).
    """
    _postgres_only(conn)
    if per_minute < 1:
        raise ValueError(f"per_minute must be at least 1, not {per_minute}")
    rate = per_minute / 60.0
    tokens, allowed = conn.execute(
        _TAKE, {"tenant": tenant, "scope": scope, "cap": per_minute, "rate": rate}
    ).one()
    if allowed:
        return None
    return retry_after(float(tokens), rate)


def retry_after(tokens: float, rate: float) -> float:
    """Whole seconds (at least 1) until a bucket holding ``tokens`` has one, at ``rate``/s."""
    import math

    return float(max(1, math.ceil((1.0 - tokens) / rate)))


# -- failed API key attempts ------------------------------------------------------------------

_FAILED = sa.text(
    "INSERT INTO auth_failures AS f "
    "(scope, name, failures, window_start, last_failed_at, locked_until) VALUES "
    "('address', :address, 1, statement_timestamp(), statement_timestamp(), "
    "  CASE WHEN :max <= 1 THEN statement_timestamp() + :lockout * interval '1 second' END), "
    "('key_id', :key_id, 1, statement_timestamp(), statement_timestamp(), "
    "  CASE WHEN :max <= 1 THEN statement_timestamp() + :lockout * interval '1 second' END), "
    "('pair', :pair, 1, statement_timestamp(), statement_timestamp(), NULL) "
    "ON CONFLICT (scope, name) DO UPDATE SET "
    "failures = CASE WHEN f.window_start <= statement_timestamp() - :window * interval '1 second' "
    "  THEN 1 ELSE f.failures + 1 END, "
    "window_start = CASE WHEN f.window_start <= statement_timestamp() - :window "
    "  * interval '1 second' THEN statement_timestamp() ELSE f.window_start END, "
    "last_failed_at = statement_timestamp(), "
    "locked_until = CASE WHEN f.scope <> 'pair' "
    "  AND (CASE WHEN f.window_start <= statement_timestamp() - :window * interval '1 second' "
    "       THEN 1 ELSE f.failures + 1 END) >= :max "
    "  AND (f.locked_until IS NULL OR f.locked_until <= statement_timestamp()) "
    "  THEN statement_timestamp() + :lockout * interval '1 second' ELSE f.locked_until END"
)
_STATE = sa.text(
    "SELECT scope, locked_until, last_failed_at, statement_timestamp() FROM auth_failures "
    "WHERE (scope, name) IN (('address', :address), ('key_id', :key_id), ('pair', :pair))"
)
_PRUNE = sa.text(
    "DELETE FROM auth_failures WHERE last_failed_at < statement_timestamp() - :horizon "
    "* interval '1 second' AND (locked_until IS NULL OR locked_until <= statement_timestamp())"
)
#: Stands for "no key id" (a malformed key): never a real key id, which is hex.
_NO_KEY = "-"


def _pair(key_id: str | None, address: str) -> str:
    return f"{key_id or _NO_KEY} {address}"


def record_failure(
    conn: Connection,
    key_id: str | None,
    address: str,
    *,
    max_failures: int,
    window: float,
    lockout: float,
) -> None:
    """Count one failed attempt for the address, the key id and the pair (one statement).

    The rows are locked in one order (address, key id, pair), so concurrent failures never
    deadlock. A count runs in a fixed window that the first failure after the last one ended
    starts; reaching ``max_failures`` in it locks the address (or key id) for ``lockout`` s.
    """
    _postgres_only(conn)
    conn.execute(
        _FAILED,
        {
            "address": address,
            "key_id": key_id or _NO_KEY,
            "pair": _pair(key_id, address),
            "max": max_failures,
            "window": window,
            "lockout": lockout,
        },
    )


@dataclass(frozen=True)
class FailureState:
    """What the database knows of an attempt's address and key id, relative to its clock.

    ``address_locked`` and ``key_locked`` are the seconds their lock-outs still last (None when
    not locked); ``pair_age`` how long ago this address last failed for this key id.
    """

    address_locked: float | None
    key_locked: float | None
    pair_age: float | None


def failure_state(conn: Connection, key_id: str | None, address: str) -> FailureState:
    """Read the address's and key id's lock-outs (one indexed statement)."""
    _postgres_only(conn)
    rows = conn.execute(
        _STATE, {"address": address, "key_id": key_id or _NO_KEY, "pair": _pair(key_id, address)}
    ).all()
    return _state(key_id, [tuple(row) for row in rows])


# The key's row (as ledger.tenants.tenant_of_key takes it) and the attempt's failure counters,
# in one round trip: the API reads both before deciding, and looks at the key only when the
# throttle lets the attempt through.
_LOOKUP = sa.text(
    "SELECT 'key', k.key_hash, k.revoked_at, t.name, t.created_at, t.daily_budget_usd, "
    "t.requests_per_minute, k.scopes, NULL::timestamptz, NULL::timestamptz, "
    "statement_timestamp() "
    "FROM api_keys AS k JOIN tenants AS t ON t.name = k.tenant WHERE k.key_id = :key_id "
    "UNION ALL "
    "SELECT scope, NULL, NULL, NULL, NULL, NULL, NULL, NULL, locked_until, last_failed_at, "
    "statement_timestamp() FROM auth_failures "
    "WHERE (scope, name) IN (('address', :address), ('key_id', :key_id), ('pair', :pair))"
)


def lookup(
    conn: Connection, key_id: str | None, address: str
) -> tuple[FailureState, tuple[Any, ...] | None]:
    """The attempt's :class:`FailureState` and its key's row (None: no such key id), in one
    statement. The row is ``ledger.tenants.tenant_of_key``'s ``(key_hash, revoked_at, name,
    created_at, daily_budget_usd, requests_per_minute, scopes)``."""
    _postgres_only(conn)
    rows = conn.execute(
        _LOOKUP,
        {"address": address, "key_id": key_id or _NO_KEY, "pair": _pair(key_id, address)},
    ).all()
    key_row: tuple[Any, ...] | None = None
    failures = []
    for kind, *key_fields, locked_until, last_failed_at, at in rows:
        if kind == "key":
            key_row = tuple(key_fields)
        else:
            failures.append((kind, locked_until, last_failed_at, at))
    return _state(key_id, failures), key_row


def _state(key_id: str | None, rows: list[tuple[Any, ...]]) -> FailureState:
    """:class:`FailureState` from ``(scope, locked_until, last_failed_at, now)`` rows."""
    found: dict[str, tuple[datetime | None, datetime]] = {}
    now: datetime | None = None
    for scope, locked_until, last_failed_at, at in rows:
        found[str(scope)] = (locked_until, last_failed_at)
        now = at
    if now is None:
        return FailureState(None, None, None)

    def locked(scope: str) -> float | None:
        until = found.get(scope, (None, None))[0]
        if until is None or now is None:
            return None
        left = (until - now).total_seconds()
        return left if left > 0 else None

    pair = found.get("pair")
    age = (now - pair[1]).total_seconds() if pair is not None else None
    return FailureState(locked("address"), locked("key_id") if key_id else None, age)


def prune_failures(conn: Connection, *, horizon: float) -> int:
    """Delete counters whose last failure is older than ``horizon`` s and that lock nothing."""
    _postgres_only(conn)
    return int(conn.execute(_PRUNE, {"horizon": horizon}).rowcount or 0)
