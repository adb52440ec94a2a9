"""billing periods and revocations

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 00:00:00

Append-only: never edit this file once released; write a new revision instead (see env.py).
Self-contained like 0001: timestamps are TIMESTAMP WITH TIME ZONE holding UTC, primary keys are
BIGINT on PostgreSQL (INTEGER on SQLite), every constraint and index is named.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _bigint() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _pk() -> sa.Column:
    return sa.Column("pk", _bigint(), primary_key=True)


def _ts(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _tenant(table: str) -> list[sa.schema.SchemaItem]:
    return [
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["tenant"], ["tenants.name"], name=f"fk_{table}_tenant"),
    ]


def upgrade() -> None:
    op.create_table(
        "billing_periods",
        _pk(),
        *_tenant("billing_periods"),
        _ts("start"),
        _ts("end"),
        sa.Column("status", sa.String(length=16), nullable=False),
        _ts("closed_at", nullable=True),
        sa.UniqueConstraint("tenant", "start", name="uq_billing_periods_start"),
        sa.CheckConstraint("status IN ('open', 'closed')", name="ck_billing_periods_status"),
        sa.CheckConstraint('"end" > start', name="ck_billing_periods_span"),
    )
    op.create_table(
        "revocations",
        _pk(),
        *_tenant("revocations"),
        sa.Column("outcome_id", sa.String(length=200), nullable=False),
        sa.Column("verdict_pk", _bigint(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        _ts("booked_period_start"),
        _ts("occurred_at"),
        _ts("created_at"),
        sa.UniqueConstraint(
            "tenant", "outcome_id", "verdict_pk", "reason", name="uq_revocations_identity"
        ),
        sa.ForeignKeyConstraint(["verdict_pk"], ["verdicts.pk"], name="fk_revocations_verdict"),
        sa.ForeignKeyConstraint(
            ["tenant", "booked_period_start"],
            ["billing_periods.tenant", "billing_periods.start"],
            name="fk_revocations_booked_period",
        ),
    )
    op.create_index("ix_revocations_tenant_outcome", "revocations", ["tenant", "outcome_id"])
    op.create_index(
        "ix_revocations_tenant_period", "revocations", ["tenant", "booked_period_start"]
    )


def downgrade() -> None:
    for table in ("revocations", "billing_periods"):
        op.drop_table(table)
