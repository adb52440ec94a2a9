"""Tenants and their API keys.

A key looks like ``oj_<key_id>_<secret>``: ``key_id`` (12 hex digits) is stored in clear to find
the row; only the SHA-256 of the whole key is stored. The key is shown once, when created, and
nothing here logs it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from ledger.db import session
from ledger.service_tables import ApiKeyRow, WebSessionRevocationRow
from ledger.store import check_tenant_name
from ledger.tables import TenantRow, to_money, utcnow

KEY_PREFIX = "oj_"
#: What a key may change. ``submit``: send outcomes and queue verifications (a help desk's or
#: an agent platform's integration); ``review``: record human labels (the API and the review
#: page), and have labels inside submitted outcomes count as human; ``configure``: store rubrics
#: and panels. Every key reads its tenant's data. A key made without scopes has all three
#: (as every key made before scopes existed does).
KEY_SCOPES = ("submit", "review", "configure")
ALL_SCOPES = frozenset(KEY_SCOPES)
#: The largest daily budget the ledger's money column holds (NUMERIC(20, 12)).
MAX_BUDGET_USD = Decimal("99999999")
#: Key labels (``--name``) are free text for people; cap them like every other string.
MAX_KEY_NAME_CHARS = 200


class TenantExistsError(ValueError):
    """A tenant of that name exists already."""


class UnknownTenantError(LookupError):
    """No tenant of that name."""


@dataclass(frozen=True)
class TenantInfo:
    """A tenant as the service sees it."""

    name: str
    created_at: datetime
    daily_budget_usd: Decimal | None
    requests_per_minute: int | None
    active_keys: int = 0
    #: The scopes of the key that authenticated (every scope where no key is involved).
    key_scopes: frozenset[str] = ALL_SCOPES


@dataclass(frozen=True)
class KeyInfo:
    """An API key as listed: its public id and dates, never the key or its hash."""

    tenant: str
    key_id: str
    name: str | None
    created_at: datetime
    revoked_at: datetime | None
    scopes: frozenset[str] = ALL_SCOPES


@dataclass(frozen=True)
class IssuedKey:
    """A freshly made key: ``key`` is the secret, shown to the caller once and never stored."""

    tenant: str
    key_id: str
    key: str
    scopes: frozenset[str] = ALL_SCOPES


def hash_key(key: str) -> str:
    """SHA-256 hex of a key (keys carry 256 random bits: no salt or stretching is needed)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _new_key() -> tuple[str, str]:
    key_id = secrets.token_hex(6)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def _key_id_of(key: str) -> str | None:
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = key[len(KEY_PREFIX) :].partition("_")
    if not sep or len(key_id) != 12 or not secret:
        return None
    return key_id


def _check_budget(value: float | Decimal | None) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = to_money(value)
    except (ArithmeticError, ValueError):  # inf, or text that is no number
        amount = Decimal("NaN")
    if not amount.is_finite() or amount < 0 or amount > MAX_BUDGET_USD:
        raise ValueError(
            f"daily budget must be a number of USD from 0 to {MAX_BUDGET_USD}, got {value} "
            "(e.g. 25 or 2.50; no cap: leave it out, or --no-budget)"
        )
    return amount


def _check_rate(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise ValueError(f"requests per minute must be at least 1, got {value}")
    return value


def _check_key_name(value: str | None) -> str | None:
    if value is not None and len(value) > MAX_KEY_NAME_CHARS:
        raise ValueError(f"key name must be at most {MAX_KEY_NAME_CHARS} characters")
    return value


def check_scopes(values: Collection[str] | None) -> frozenset[str]:
    """The scopes a key is made with: every scope when none is given.

    >>> sorted(check_scopes(["submit"])), check_scopes(None) == ALL_SCOPES
    (['submit'], True)
    >>> check_scopes(["admin"])
    Traceback (most recent call last):
    ...
    ValueError: unknown key scope 'admin'; the scopes are submit, review, configure
    """
    if values is None:
        return ALL_SCOPES
    if not values:
        raise ValueError(
            "no key scope given; give one or more of submit, review, configure (or none at all "
            "for a key with every scope)"
        )
    for value in values:
        if value not in ALL_SCOPES:
            raise ValueError(f"unknown key scope {value!r}; the scopes are {', '.join(KEY_SCOPES)}")
    return frozenset(values)


def _stored_scopes(scopes: frozenset[str]) -> str | None:
    # NULL is "every scope": what keys made before scopes hold, so they keep working.
    return None if scopes == ALL_SCOPES else ",".join(s for s in KEY_SCOPES if s in scopes)


def scopes_of(stored: str | None) -> frozenset[str]:
    """A key's scopes from its ``api_keys.scopes`` column (NULL: every scope).

    An unknown word (written by a later version) grants nothing.
    """
    if stored is None:
        return ALL_SCOPES
    return frozenset(s for s in stored.split(",") if s in ALL_SCOPES)


def _exists_error(name: str) -> TenantExistsError:
    return TenantExistsError(
        f"tenant {name!r} exists already; add a key with `judge tenants add-key {name}`"
    )


def tenant_row(db: Session, name: str) -> TenantRow:
    """The tenant ``name``.

    Raises
    ------
    UnknownTenantError
        When the ledger has none, naming the command that makes it.
    """
    row = db.exec(select(TenantRow).where(TenantRow.name == name)).first()
    if row is None:
        raise _unknown_tenant(name)
    return row


def _unknown_tenant(name: str) -> UnknownTenantError:
    return UnknownTenantError(
        f"no tenant {name!r}; create it with `judge tenants create {name}` "
        "(`judge tenants list` shows the tenants)"
    )


def create_tenant(
    engine: Engine,
    name: str,
    *,
    daily_budget_usd: float | Decimal | None = None,
    requests_per_minute: int | None = None,
    key_name: str | None = None,
    scopes: Collection[str] | None = None,
) -> IssuedKey:
    """Create tenant ``name`` with its first API key (one transaction) and return the key.

    Raises :class:`TenantExistsError` when the tenant exists (use :func:`issue_key` to add a key).
    """
    name = check_tenant_name(name)
    budget = _check_budget(daily_budget_usd)
    rate = _check_rate(requests_per_minute)
    key_name = _check_key_name(key_name)
    granted = check_scopes(scopes)
    try:
        with session(engine) as db:
            if db.exec(select(TenantRow).where(TenantRow.name == name)).first() is not None:
                raise _exists_error(name)
            db.add(
                TenantRow(
                    name=name,
                    created_at=utcnow(),
                    daily_budget_usd=budget,
                    requests_per_minute=rate,
                )
            )
            db.flush()
            issued = _add_key(db, name, key_name, granted)
    except IntegrityError:
        # Another process created the same tenant between our check and our commit.
        raise _exists_error(name) from None
    return issued


def issue_key(
    engine: Engine,
    tenant: str,
    *,
    key_name: str | None = None,
    scopes: Collection[str] | None = None,
) -> IssuedKey:
    """Add an API key to an existing tenant (a tenant may hold several: to rotate, or one per
    party with its own ``scopes``, see :data:`KEY_SCOPES`)."""
    key_name = _check_key_name(key_name)
    granted = check_scopes(scopes)
    with session(engine) as db:
        tenant_row(db, tenant)
        issued = _add_key(db, tenant, key_name, granted)
    return issued


def _add_key(db: Session, tenant: str, key_name: str | None, scopes: frozenset[str]) -> IssuedKey:
    key_id, key = _new_key()
    db.add(
        ApiKeyRow(
            tenant=tenant,
            key_id=key_id,
            key_hash=hash_key(key),
            name=key_name,
            scopes=_stored_scopes(scopes),
            created_at=utcnow(),
        )
    )
    return IssuedKey(tenant=tenant, key_id=key_id, key=key, scopes=scopes)


def key_id_of(key_or_id: str) -> str:
    """The public id of a key, given the id itself or a whole ``oj_<id>_<secret>`` key."""
    return _key_id_of(key_or_id) or key_or_id


def revoke_key(engine: Engine, key_id: str) -> bool:
    """Revoke the key with public id ``key_id``; False when there is no such active key.

    A whole key is accepted too (its id is used), so a leaked key can be revoked as pasted.
    """
    key_id = key_id_of(key_id)
    with session(engine) as db:
        row = db.exec(select(ApiKeyRow).where(ApiKeyRow.key_id == key_id)).first()
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = utcnow()
        db.add(row)
        return True


def list_keys(engine: Engine, tenant: str | None = None) -> list[KeyInfo]:
    """API keys (active and revoked) of one tenant or of all, oldest first; never the secrets."""
    query = select(ApiKeyRow).order_by(ApiKeyRow.tenant, ApiKeyRow.created_at, ApiKeyRow.pk)  # type: ignore[arg-type]
    if tenant is not None:
        query = query.where(ApiKeyRow.tenant == tenant)
    with session(engine, readonly=True) as db:
        rows = db.exec(query).all()
    return [
        KeyInfo(
            tenant=row.tenant,
            key_id=row.key_id,
            name=row.name,
            created_at=row.created_at,
            revoked_at=row.revoked_at,
            scopes=scopes_of(row.scopes),
        )
        for row in rows
    ]


def authenticate(engine: Engine, key: str) -> TenantInfo | None:
    """The tenant a key belongs to, or None for an unknown, malformed or revoked key."""
    if _key_id_of(key) is None:
        return None
    with session(engine, readonly=True) as db:
        return authenticate_on(db.connection(), key)


def authenticate_on(conn: Connection, key: str) -> TenantInfo | None:
    """:func:`authenticate` on an open connection (one indexed statement, no ORM objects)."""
    key_id = _key_id_of(key)
    if key_id is None:
        return None
    keys = ApiKeyRow.__table__.c  # type: ignore[attr-defined]
    tenants = TenantRow.__table__.c  # type: ignore[attr-defined]
    found = conn.execute(
        sa.select(
            keys.key_hash,
            keys.revoked_at,
            tenants.name,
            tenants.created_at,
            tenants.daily_budget_usd,
            tenants.requests_per_minute,
            keys.scopes,
        )
        .join_from(ApiKeyRow.__table__, TenantRow.__table__, tenants.name == keys.tenant)  # type: ignore[attr-defined]
        .where(keys.key_id == key_id)
    ).first()
    return None if found is None else tenant_of_key(key, found)


def tenant_of_key(key: str, row: Sequence[Any]) -> TenantInfo | None:
    """The tenant of ``key`` given its ``api_keys`` row joined to its tenant, as
    ``(key_hash, revoked_at, name, created_at, daily_budget_usd, requests_per_minute,
    scopes)``; None when the key is revoked or its hash differs (compared in constant time).
    ``key_scopes`` is the key's."""
    key_hash, revoked_at, name, created_at, budget, per_minute, scopes = row
    if revoked_at is not None or not hmac.compare_digest(key_hash, hash_key(key)):
        return None
    return TenantInfo(
        name=name,
        created_at=created_at,
        daily_budget_usd=None if budget is None else to_money(budget),
        requests_per_minute=per_minute,
        key_scopes=scopes_of(scopes),
    )


def _info(row: TenantRow, active_keys: int = 0) -> TenantInfo:
    return TenantInfo(
        name=row.name,
        created_at=row.created_at,
        daily_budget_usd=row.daily_budget_usd,
        requests_per_minute=row.requests_per_minute,
        active_keys=active_keys,
    )


def list_tenants(engine: Engine) -> list[TenantInfo]:
    """Every tenant with its count of active keys, by name."""
    with session(engine, readonly=True) as db:
        keys = dict(
            db.exec(
                select(ApiKeyRow.tenant, sa.func.count())
                .where(ApiKeyRow.revoked_at.is_(None))  # type: ignore[union-attr]
                .group_by(ApiKeyRow.tenant)
            ).all()
        )
        rows = db.exec(select(TenantRow).order_by(TenantRow.name)).all()
    return [_info(row, keys.get(row.name, 0)) for row in rows]


def set_limits(
    engine: Engine,
    tenant: str,
    *,
    daily_budget_usd: float | Decimal | None = None,
    requests_per_minute: int | None = None,
    clear_budget: bool = False,
    clear_rate: bool = False,
) -> TenantInfo:
    """Change a tenant's daily judge budget and/or request rate.

    ``clear_budget`` lifts the budget cap; ``clear_rate`` returns the tenant to the service's
    default rate (``OUTCOME_JUDGE_REQUESTS_PER_MINUTE``). Takes effect on the next request.
    """
    if clear_budget and daily_budget_usd is not None:
        raise ValueError("give a daily budget or lift it (--no-budget), not both")
    if clear_rate and requests_per_minute is not None:
        raise ValueError("give a rate or return to the default (--default-rate), not both")
    budget = _check_budget(daily_budget_usd)
    rate = _check_rate(requests_per_minute)
    with session(engine) as db:
        row = tenant_row(db, tenant)
        if clear_budget:
            row.daily_budget_usd = None
        elif budget is not None:
            row.daily_budget_usd = budget
        if clear_rate:
            row.requests_per_minute = None
        elif rate is not None:
            row.requests_per_minute = rate
        db.add(row)
        db.flush()
        active = db.exec(
            select(sa.func.count())
            .select_from(ApiKeyRow)
            .where(ApiKeyRow.tenant == tenant, ApiKeyRow.revoked_at.is_(None))  # type: ignore[union-attr]
        ).one()
        return _info(row, int(active))


# -- browser sessions (the web pages' cookies) --------------------------------------------------


def active_tenant(engine: Engine, key_id: str) -> TenantInfo | None:
    """The tenant of the key ``key_id`` while that key is active (``key_scopes``: that key's);
    None once revoked or unknown."""
    with session(engine, readonly=True) as db:
        found = db.exec(
            select(ApiKeyRow.revoked_at, ApiKeyRow.scopes, TenantRow)
            .join(TenantRow, TenantRow.name == ApiKeyRow.tenant)  # type: ignore[arg-type]
            .where(ApiKeyRow.key_id == key_id)
        ).first()
    if found is None or found[0] is not None:
        return None
    return replace(_info(found[2]), key_scopes=scopes_of(found[1]))


def session_logged_out(engine: Engine, session_id: str) -> bool:
    """Whether the browser session ``session_id`` was logged out (in any API process)."""
    with session(engine, readonly=True) as db:
        found = db.exec(
            select(WebSessionRevocationRow.pk).where(
                WebSessionRevocationRow.session_id == session_id
            )
        ).first()
    return found is not None


def record_logout(
    engine: Engine, tenant: str, *, session_id: str, key_id: str, expires_at: datetime
) -> None:
    """Record that a browser session was logged out (idempotent); forget expired ones."""
    table = WebSessionRevocationRow.__table__  # type: ignore[attr-defined]
    try:
        with session(engine) as db:
            db.add(
                WebSessionRevocationRow(
                    tenant=tenant, session_id=session_id, key_id=key_id, expires_at=expires_at
                )
            )
            db.flush()
            db.connection().execute(sa.delete(table).where(table.c.expires_at < utcnow()))
    except IntegrityError:
        pass  # logged out already (another tab, another process): nothing more to do
