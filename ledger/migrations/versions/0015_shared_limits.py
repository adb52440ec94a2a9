"""shared state of the API processes: rate buckets, failed-key counters, request counters

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08 02:00:00

Append-only: never edit this file once released; write a new revision instead (see env.py).
With PostgreSQL, every API process (on any host) takes its tenants' rate tokens from
``rate_buckets``, counts failed API keys in ``auth_failures`` and adds its request counts to
``metric_counters``, so limits and ``/metrics`` hold across processes (issue 16). Rows are
counters overwritten in place; nothing to back-fill.

On PostgreSQL ``rate_buckets`` and ``auth_failures`` are UNLOGGED: every request writes its
bucket, and a logged write would wait for a WAL flush at commit (3.6 ms a take on this machine,
against 0.2 ms unlogged) and ship one WAL record per request to every replica. The price: a
database crash empties them (every bucket full again, every lock-out lifted, as a restart of the
API processes did before), and replicas do not have them (they need not). ``metric_counters`` is
written once per process every few seconds and stays logged, so totals survive a crash.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # UNLOGGED is PostgreSQL's; SQLite has no such thing (and no WAL flush per commit to avoid).
    unlogged = ["UNLOGGED"] if op.get_bind().dialect.name == "postgresql" else []
    op.create_table(
        "rate_buckets",
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("tenant", "scope", name="pk_rate_buckets"),
        sa.ForeignKeyConstraint(["tenant"], ["tenants.name"], name="fk_rate_buckets_tenant"),
        prefixes=unlogged,
    )
    op.create_table(
        "auth_failures",
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", _TS, nullable=False),
        sa.Column("last_failed_at", _TS, nullable=False),
        sa.Column("locked_until", _TS, nullable=True),
        sa.PrimaryKeyConstraint("scope", "name", name="pk_auth_failures"),
        prefixes=unlogged,
    )
    op.create_index("ix_auth_failures_last", "auth_failures", ["last_failed_at"])
    op.create_table(
        "metric_counters",
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("labels", sa.String(length=1000), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "name", "labels", name="pk_metric_counters"),
        sa.ForeignKeyConstraint(["tenant"], ["tenants.name"], name="fk_metric_counters_tenant"),
    )


def downgrade() -> None:
    op.drop_table("metric_counters")
    op.drop_index("ix_auth_failures_last", table_name="auth_failures")
    op.drop_table("auth_failures")
    op.drop_table("rate_buckets")
