"""Tables of the state that several API processes share: rate buckets, failed-key counters and
request counters.

With PostgreSQL, ``judge serve --workers N`` on any number of hosts keeps one token bucket per
tenant (``rate_buckets``), one failed-authentication count per client address and key id
(``auth_failures``), and one total per request counter (``metric_counters``) in the database, so
N processes together enforce the configured rate and ``/metrics`` shows every process's requests.
A SQLite ledger is served by one process, which keeps this state in memory; the tables exist
there too (one schema for both), empty.

Registered on ``SQLModel.metadata`` by :mod:`ledger.tables` (which imports this module at its
end). These rows are counters, not records: they are overwritten in place and may be deleted
(expired failures) at any time; nothing in the ledger's history depends on them.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from ledger.columns import UTCDateTime, _tenant_fk


class RateBucketRow(SQLModel, table=True):
    """A tenant's token bucket (``scope`` ``api``: every authenticated API and web request).

    ``tokens`` as of ``updated_at`` (the database's clock); ``allowed`` says whether the last
    take got a token (the upsert returns it, see :mod:`ledger.shared_limits`).
    """

    __tablename__ = "rate_buckets"
    __table_args__ = (_tenant_fk("rate_buckets"),)

    tenant: str = Field(sa_column=sa.Column("tenant", sa.String(100), primary_key=True))
    scope: str = Field(sa_column=sa.Column("scope", sa.String(32), primary_key=True))
    tokens: float = Field(sa_column=sa.Column("tokens", sa.Float, nullable=False))
    allowed: bool = Field(sa_column=sa.Column("allowed", sa.Boolean, nullable=False))
    updated_at: datetime = Field(sa_column=sa.Column("updated_at", UTCDateTime(), nullable=False))


class AuthFailureRow(SQLModel, table=True):
    """Failed API key attempts of one client address (``scope`` ``address``), one key id
    (``key_id``) or one address for one key id (``pair``, ``name`` ``<key id> <address>``).

    ``failures`` counts the failures since ``window_start`` (a fixed window, restarted by the
    first failure after it ends); ``locked_until`` is set when they reach the limit.
    """

    __tablename__ = "auth_failures"
    __table_args__ = (sa.Index("ix_auth_failures_last", "last_failed_at"),)

    scope: str = Field(sa_column=sa.Column("scope", sa.String(16), primary_key=True))
    name: str = Field(sa_column=sa.Column("name", sa.String(300), primary_key=True))
    failures: int = Field(sa_column=sa.Column("failures", sa.Integer, nullable=False))
    window_start: datetime = Field(
        sa_column=sa.Column("window_start", UTCDateTime(), nullable=False)
    )
    last_failed_at: datetime = Field(
        sa_column=sa.Column("last_failed_at", UTCDateTime(), nullable=False)
    )
    locked_until: datetime | None = Field(
        default=None, sa_column=sa.Column("locked_until", UTCDateTime(), nullable=True)
    )


class MetricCounterRow(SQLModel, table=True):
    """The total of one request counter of a tenant over every API process.

    ``name`` is the counter (``http_requests``, ``http_latency_bucket``, ...), ``labels`` its
    label values as a JSON array; processes add their counts with an upsert every few seconds
    (:mod:`ledger.metric_counters`).
    """

    __tablename__ = "metric_counters"
    __table_args__ = (_tenant_fk("metric_counters"),)

    tenant: str = Field(sa_column=sa.Column("tenant", sa.String(100), primary_key=True))
    name: str = Field(sa_column=sa.Column("name", sa.String(64), primary_key=True))
    labels: str = Field(sa_column=sa.Column("labels", sa.String(1000), primary_key=True))
    value: float = Field(sa_column=sa.Column("value", sa.Float, nullable=False))


SHARED_STATE_TABLES: tuple[type[SQLModel], ...] = (RateBucketRow, AuthFailureRow, MetricCounterRow)
