"""touches: who acted on each outcome revision

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 00:00:00

Append-only: never edit this file once released; write a new revision instead (see env.py).
Self-contained like 0001: timestamps are TIMESTAMP WITH TIME ZONE holding UTC, primary keys are
BIGINT on PostgreSQL (INTEGER on SQLite), every constraint and index is named.

Outcomes stored before this revision keep their touches in ``outcomes.payload`` only; no rows are
back-filled for them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "touches",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("outcome_id", sa.String(length=200), nullable=False),
        sa.Column("outcome_revision", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint(
            "tenant", "outcome_id", "outcome_revision", "seq", name="uq_touches_position"
        ),
        sa.CheckConstraint(
            "kind IN ('ai', 'human', 'router', 'automation')", name="ck_touches_kind"
        ),
        sa.CheckConstraint("seq >= 0", name="ck_touches_seq"),
        sa.ForeignKeyConstraint(
            ["tenant", "outcome_id", "outcome_revision"],
            ["outcomes.tenant", "outcomes.outcome_id", "outcomes.revision"],
            name="fk_touches_outcome_revision",
        ),
        sa.ForeignKeyConstraint(["tenant"], ["tenants.name"], name="fk_touches_tenant"),
    )
    op.create_index("ix_touches_tenant_actor", "touches", ["tenant", "actor"])


def downgrade() -> None:
    op.drop_table("touches")
