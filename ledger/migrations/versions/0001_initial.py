"""initial: tenants, outcomes, verdicts, judge_calls, labels

Revision ID: 0001
Revises:
Create Date: 2026-03-01 00:00:00

Append-only: never edit this file once released; write a new revision instead (see env.py).
Types are spelled out here (not imported from ledger.tables) so this migration keeps its meaning:
money is NUMERIC(20, 12), timestamps are TIMESTAMP WITH TIME ZONE holding UTC, JSON is JSONB on
PostgreSQL, primary keys are BIGINT on PostgreSQL (INTEGER on SQLite, where only INTEGER
PRIMARY KEY autoincrements).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _pk() -> sa.Column:
    return sa.Column(
        "pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True
    )


def _money(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Numeric(precision=20, scale=12), nullable=nullable)


def _ts(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _tenant(table: str) -> list[sa.schema.SchemaItem]:
    return [
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["tenant"], ["tenants.name"], name=f"fk_{table}_tenant"),
    ]


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("name", name="uq_tenants_name"),
    )
    op.create_table(
        "outcomes",
        _pk(),
        *_tenant("outcomes"),
        sa.Column("outcome_id", sa.String(length=200), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("agent_name", sa.String(length=200), nullable=True),
        sa.Column("agent_version", sa.String(length=100), nullable=True),
        sa.Column("model_path", sa.String(length=200), nullable=True),
        _money("agent_cost_usd", nullable=True),
        _ts("received_at"),
        sa.UniqueConstraint("tenant", "outcome_id", "revision", name="uq_outcomes_revision"),
    )
    op.create_index("ix_outcomes_tenant_outcome", "outcomes", ["tenant", "outcome_id"])
    op.create_table(
        "verdicts",
        _pk(),
        *_tenant("verdicts"),
        sa.Column("outcome_id", sa.String(length=200), nullable=False),
        sa.Column("outcome_revision", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("tier", sa.String(length=16), nullable=True),
        sa.Column("rubric", sa.String(), nullable=False),
        sa.Column("panel", sa.String(), nullable=False),
        sa.Column("flags", _json(), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        _money("cost_usd"),
        _ts("created_at"),
        sa.ForeignKeyConstraint(
            ["tenant", "outcome_id", "outcome_revision"],
            ["outcomes.tenant", "outcomes.outcome_id", "outcomes.revision"],
            name="fk_verdicts_outcome_revision",
        ),
    )
    op.create_index("ix_verdicts_tenant_outcome", "verdicts", ["tenant", "outcome_id"])
    op.create_index("ix_verdicts_tenant_created", "verdicts", ["tenant", "created_at"])
    op.create_table(
        "judge_calls",
        _pk(),
        *_tenant("judge_calls"),
        sa.Column("outcome_id", sa.String(length=200), nullable=False),
        sa.Column("judge", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("sample", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("cache_key", sa.String(), nullable=False),
        sa.Column("prompt_digest", sa.String(), nullable=False),
        sa.Column("prompt", _json(), nullable=False),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("tokens_in", sa.Integer(), nullable=False),
        sa.Column("tokens_out", sa.Integer(), nullable=False),
        _money("cost_usd"),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("cached", sa.Boolean(), nullable=False),
        _ts("at"),
    )
    op.create_index("ix_judge_calls_cache_key", "judge_calls", ["cache_key"])
    op.create_index("ix_judge_calls_tenant_outcome", "judge_calls", ["tenant", "outcome_id"])
    op.create_table(
        "labels",
        _pk(),
        *_tenant("labels"),
        sa.Column("outcome_id", sa.String(length=200), nullable=False),
        sa.Column("resolved", sa.Boolean(), nullable=False),
        sa.Column("by", sa.String(length=200), nullable=True),
        _ts("at", nullable=True),
        sa.Column("criteria", _json(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=50), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("tenant", "outcome_id", "digest", name="uq_labels_digest"),
    )
    op.create_index("ix_labels_tenant_outcome", "labels", ["tenant", "outcome_id"])


def downgrade() -> None:
    for table in ("labels", "judge_calls", "verdicts", "outcomes", "tenants"):
        op.drop_table(table)
