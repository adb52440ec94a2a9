"""meter rollups: the meter entries of final UTC days, summed per grouping, group and reason

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08 02:00:00

Append-only: never edit this file once released; write a new revision instead (see env.py).
The meters read final days from this table (for each of the 16 groupings by agent, tier,
agent_version and model_path, one row per day, group and reason) instead of every entry. Rows for the days a ledger has already published final (or closed) are filled by
``ledger.meter_rollups.backfill_rollups``, which ``ledger.schema.migrate`` runs after upgrading
across this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "meter_rollups",
        sa.Column("pk", _PK, primary_key=True),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("group_mask", sa.SmallInteger(), nullable=False),
        sa.Column("day", _TS, nullable=False),
        sa.Column("tier", sa.String(length=16), nullable=True),
        sa.Column("agent", sa.String(length=200), nullable=True),
        sa.Column("agent_version", sa.String(length=310), nullable=True),
        sa.Column("model_path", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("last_final", _TS, nullable=False),
        sa.ForeignKeyConstraint(["tenant"], ["tenants.name"], name="fk_meter_rollups_tenant"),
    )
    # One tenant's days of one grouping in order, covering what the meter reads on PostgreSQL
    # (INCLUDE; SQLite ignores it).
    op.create_index(
        "ix_meter_rollups_meter",
        "meter_rollups",
        ["tenant", "group_mask", "day"],
        postgresql_include=[
            "agent", "tier", "agent_version", "model_path", "reason", "value", "last_final",
        ],
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_meter_rollups_meter", table_name="meter_rollups")
    op.drop_table("meter_rollups")
