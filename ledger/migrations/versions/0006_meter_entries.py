"""meter entries: final meter values never change; late and moved outcomes are adjustments

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 00:00:00

Append-only: never edit this file once released; write a new revision instead (see env.py).
Self-contained. The meters read ``meter_entries`` (signed, append-only counts placed by their
booking moment) instead of ``outcome_facts``; ``tenants.meter_final_through`` records how far
meter windows were published as final. The entries of verdicts and revocations already stored are
back-filled by ``ledger.bookings.backfill_entries``, which ``ledger.db.migrate`` runs after
upgrading across this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite has it): a batch "move and copy" would drop `tenants`, which every
    # other table references.
    op.add_column("tenants", sa.Column("meter_final_through", _TS, nullable=True))
    op.add_column("revocations", sa.Column("booked_at", _TS, nullable=True))
    op.add_column("outcome_facts", sa.Column("booked_at", _TS, nullable=True))
    op.add_column("outcome_facts", sa.Column("booked_entry_pk", _PK, nullable=True))
    op.add_column("outcome_facts", sa.Column("booking_reason", sa.String(length=32), nullable=True))
    # The meters no longer read outcome_facts.
    op.drop_index("ix_outcome_facts_meter", table_name="outcome_facts")

    op.create_table(
        "meter_entries",
        sa.Column("pk", _PK, primary_key=True),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("outcome_id", sa.String(length=200), nullable=False),
        sa.Column("verdict_pk", _PK, nullable=False),
        sa.Column("delta", sa.SmallInteger(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("booked_at", _TS, nullable=False),
        sa.Column("anchor_at", _TS, nullable=False),
        sa.Column("final_at", _TS, nullable=False),
        sa.Column("tier", sa.String(length=16), nullable=True),
        sa.Column("agent", sa.String(length=200), nullable=True),
        sa.Column("agent_version", sa.String(length=310), nullable=True),
        sa.Column("model_path", sa.String(length=200), nullable=True),
        sa.Column("revocation_pk", _PK, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.CheckConstraint("delta IN (-1, 1)", name="ck_meter_entries_delta"),
        sa.ForeignKeyConstraint(["tenant"], ["tenants.name"], name="fk_meter_entries_tenant"),
    )
    # The meter's index: one tenant's entries by booking moment, covering what the meter reads on
    # PostgreSQL (INCLUDE); SQLite ignores INCLUDE.
    op.create_index(
        "ix_meter_entries_meter",
        "meter_entries",
        ["tenant", "booked_at"],
        postgresql_include=[
            "delta", "reason", "final_at", "agent", "tier", "agent_version", "model_path",
        ],
    )  # fmt: skip
    op.create_index("ix_meter_entries_outcome", "meter_entries", ["tenant", "outcome_id"])


def downgrade() -> None:
    op.drop_table("meter_entries")
    op.create_index(
        "ix_outcome_facts_meter",
        "outcome_facts",
        ["tenant", "decision", "anchor_at"],
        postgresql_include=["final_at", "agent", "tier", "agent_version", "model_path"],
    )
    with op.batch_alter_table("outcome_facts") as batch:
        batch.drop_column("booking_reason")
        batch.drop_column("booked_entry_pk")
        batch.drop_column("booked_at")
    with op.batch_alter_table("revocations") as batch:
        batch.drop_column("booked_at")
    op.drop_column("tenants", "meter_final_through")
