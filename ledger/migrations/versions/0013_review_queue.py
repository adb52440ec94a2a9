"""review queue: the outcomes waiting for a label, kept as verdicts and labels are written

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 02:00:00

Append-only: never edit this file once released; write a new revision instead (see env.py).
The review pages read the queue from this table (oldest first, through its index) instead of
every latest verdict and every queued outcome's payload on each request. Rows for a ledger's
existing verdicts are filled by ``ledger.review_index.backfill_review_queue``, which
``ledger.schema.migrate`` runs after upgrading across this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "review_queue",
        sa.Column("pk", _PK, primary_key=True),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("outcome_id", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("sort_at", _TS, nullable=False),
        sa.Column("anchor_at", _TS, nullable=True),
        sa.Column("verdict_at", _TS, nullable=False),
        sa.Column("verdict_pk", _PK, nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("flags", _JSON, nullable=False),
        sa.Column("rubric", sa.String(), nullable=False),
        sa.Column("panel", sa.String(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.UniqueConstraint("tenant", "outcome_id", name="uq_review_queue_outcome"),
        sa.ForeignKeyConstraint(["tenant"], ["tenants.name"], name="fk_review_queue_tenant"),
    )
    op.create_index(
        "ix_review_queue_order", "review_queue", ["tenant", "sort_at", "verdict_at", "outcome_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_review_queue_order", table_name="review_queue")
    op.drop_table("review_queue")
