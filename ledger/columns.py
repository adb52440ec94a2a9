"""Column types and helpers every ledger table uses: money, UTC timestamps, JSON, keys.

Kept apart from :mod:`ledger.tables` so the service's tables (:mod:`ledger.service_tables`) can
share them without importing the core tables module (which registers the service's tables).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, overload

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlmodel import Field

MONEY_PRECISION = 20
MONEY_SCALE = 12
_MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)

#: JSON on SQLite, JSONB on PostgreSQL (indexable, compact, equality-comparable).
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


@overload
def to_money(value: None) -> None: ...
@overload
def to_money(value: float | int | Decimal | str) -> Decimal: ...
def to_money(value: float | int | Decimal | str | None) -> Decimal | None:
    """Round a USD amount to the ledger's precision (12 decimal places, half-even).

    Floats go through their shortest ``repr`` so that ``0.1`` stays ``0.1``.

    >>> to_money(0.1)
    Decimal('0.100000000000')
    >>> to_money(1.5e-13)
    Decimal('0E-12')
    >>> to_money(None) is None
    True
    """
    if value is None:
        return None
    if isinstance(value, float):
        value = repr(value)
    return Decimal(value).quantize(_MONEY_QUANTUM, rounding=ROUND_HALF_EVEN)


class Money(sa.types.TypeDecorator[Decimal]):
    """A USD amount: ``NUMERIC(20, 12)``, written rounded to 12 places, read back as Decimal."""

    impl = sa.Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Decimal | None:
        return to_money(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return to_money(value)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (UTC).

    A naive datetime handed in is taken to be UTC already. SQLite has no time zones, so the value
    is stored there as naive UTC text (which also keeps lexical order equal to time order).
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


#: BIGINT primary keys on PostgreSQL; INTEGER on SQLite (only INTEGER PRIMARY KEY autoincrements).
BigPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _pk_column() -> Any:
    return Field(default=None, sa_column=sa.Column("pk", BigPK, primary_key=True))


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["tenant"], ["tenants.name"], name=f"fk_{table}_tenant")


def _tenant_column() -> Any:
    return Field(sa_column=sa.Column("tenant", sa.String(100), nullable=False))


def _now_column(name: str) -> Any:
    return Field(default_factory=utcnow, sa_column=sa.Column(name, UTCDateTime(), nullable=False))


def _money_column(name: str, *, nullable: bool = False) -> Any:
    default = None if nullable else Decimal(0)
    return Field(default=default, sa_column=sa.Column(name, Money(), nullable=nullable))


def _json_column(name: str, *, nullable: bool = False) -> Any:
    return Field(sa_column=sa.Column(name, JSONType, nullable=nullable))
