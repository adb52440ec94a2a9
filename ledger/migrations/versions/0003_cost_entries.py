"""cost entries (human review time)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 00:00:00

Append-only: never edit this file once released; write a new revision instead (see env.py).
Self-contained like 0001: money is NUMERIC(20, 12), minutes NUMERIC(12, 4), timestamps are
TIMESTAMP WITH TIME ZONE holding UTC, primary keys are BIGINT on PostgreSQL (INTEGER on SQLite),
every constraint and index is named.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _pk() -> sa.Column:
    return sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)


def _money(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Numeric(precision=20, scale=12), nullable=nullable)


def _ts(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "cost_entries",
        _pk(),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("outcome_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("minutes", sa.Numeric(precision=12, scale=4), nullable=True),
        _money("amount_usd", nullable=True),
        _money("labour_rate_usd_per_hour", nullable=True),
        sa.Column("by", sa.String(length=200), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        _ts("at"),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["tenant"], ["tenants.name"], name="fk_cost_entries_tenant"),
        sa.CheckConstraint("kind IN ('human_review')", name="ck_cost_entries_kind"),
        sa.CheckConstraint("minutes IS NULL OR minutes >= 0", name="ck_cost_entries_minutes"),
        sa.CheckConstraint("amount_usd IS NULL OR amount_usd >= 0", name="ck_cost_entries_amount"),
        sa.CheckConstraint(
            "labour_rate_usd_per_hour IS NULL OR labour_rate_usd_per_hour >= 0",
            name="ck_cost_entries_labour_rate",
        ),
    )
    op.create_index("ix_cost_entries_tenant_outcome", "cost_entries", ["tenant", "outcome_id"])


def downgrade() -> None:
    op.drop_table("cost_entries")
