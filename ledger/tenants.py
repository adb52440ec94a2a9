"""Tenants and their API keys.

A key looks like ``oj_<key_id>_<secret>``: ``key_id`` (12 hex digits) is stored in clear to find
the row; only the SHA-256 of the whole key is stored. The key is shown once, when created.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from ledger.db import session
from ledger.service_tables import ApiKeyRow
from ledger.store import check_tenant_name
from ledger.tables import TenantRow, to_money, utcnow

KEY_PREFIX = "oj_"


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


@dataclass(frozen=True)
class IssuedKey:
    """A freshly made key: ``key`` is the secret, shown to the caller once and never stored."""

    tenant: str
    key_id: str
    key: str


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
    amount = to_money(value)
    if amount < 0:
        raise ValueError(f"daily budget must be >= 0 USD, got {value}")
    return amount


def _check_rate(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise ValueError(f"requests per minute must be at least 1, got {value}")
    return value


def create_tenant(
    engine: Engine,
    name: str,
    *,
    daily_budget_usd: float | Decimal | None = None,
    requests_per_minute: int | None = None,
    key_name: str | None = None,
) -> IssuedKey:
    """Create tenant ``name`` with its first API key (one transaction) and return the key.

    Raises :class:`TenantExistsError` when the tenant exists (use :func:`issue_key` to add a key).
    """
    name = check_tenant_name(name)
    budget = _check_budget(daily_budget_usd)
    rate = _check_rate(requests_per_minute)
    with session(engine) as db:
        if db.exec(select(TenantRow).where(TenantRow.name == name)).first() is not None:
            raise TenantExistsError(
                f"tenant {name!r} exists already; add a key with `judge tenants add-key {name}`"
            )
        db.add(
            TenantRow(
                name=name,
                created_at=utcnow(),
                daily_budget_usd=budget,
                requests_per_minute=rate,
            )
        )
        db.flush()
        return _add_key(db, name, key_name)


def issue_key(engine: Engine, tenant: str, *, key_name: str | None = None) -> IssuedKey:
    """Add an API key to an existing tenant (a tenant may hold several, e.g. to rotate)."""
    with session(engine) as db:
        if db.exec(select(TenantRow).where(TenantRow.name == tenant)).first() is None:
            raise UnknownTenantError(
                f"no tenant {tenant!r}; create it with `judge tenants create {tenant}`"
            )
        return _add_key(db, tenant, key_name)


def _add_key(db: object, tenant: str, key_name: str | None) -> IssuedKey:
    from sqlmodel import Session

    assert isinstance(db, Session)
    key_id, key = _new_key()
    db.add(ApiKeyRow(tenant=tenant, key_id=key_id, key_hash=hash_key(key), name=key_name))
    return IssuedKey(tenant=tenant, key_id=key_id, key=key)


def revoke_key(engine: Engine, key_id: str) -> bool:
    """Revoke the key with public id ``key_id``; False when there is no such active key."""
    with session(engine) as db:
        row = db.exec(select(ApiKeyRow).where(ApiKeyRow.key_id == key_id)).first()
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = utcnow()
        db.add(row)
        return True


def authenticate(engine: Engine, key: str) -> TenantInfo | None:
    """The tenant a key belongs to, or None for an unknown, malformed or revoked key."""
    key_id = _key_id_of(key)
    if key_id is None:
        return None
    with session(engine, readonly=True) as db:
        found = db.exec(
            select(ApiKeyRow, TenantRow)
            .join(TenantRow, TenantRow.name == ApiKeyRow.tenant)  # type: ignore[arg-type]
            .where(ApiKeyRow.key_id == key_id)
        ).first()
    if found is None:
        return None
    row, tenant = found
    if row.revoked_at is not None or not hmac.compare_digest(row.key_hash, hash_key(key)):
        return None
    return _info(tenant)


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
) -> TenantInfo:
    """Change a tenant's daily judge budget and/or request rate (``clear_budget`` lifts the cap)."""
    budget = _check_budget(daily_budget_usd)
    rate = _check_rate(requests_per_minute)
    with session(engine) as db:
        row = db.exec(select(TenantRow).where(TenantRow.name == tenant)).first()
        if row is None:
            raise UnknownTenantError(f"no tenant {tenant!r}")
        if clear_budget:
            row.daily_budget_usd = None
        elif budget is not None:
            row.daily_budget_usd = budget
        if rate is not None:
            row.requests_per_minute = rate
        db.add(row)
        db.flush()
        return _info(row)
