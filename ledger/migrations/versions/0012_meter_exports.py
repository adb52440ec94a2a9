"""meter exports: the events sent to billing systems for each meter entry

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 01:00:00

Append-only: never edit this file once released; write a new revision instead (see env.py).
`judge export meter` sends every meter entry to a billing system (CloudEvents, OpenMeter, Lago,
Stripe) once: each event is written `pending` before it is sent and `sent` after, with the
target's idempotency key, so re-running sends nothing new and a crashed run re-sends the same
key. A correction (a negative event or a Stripe cancel) names the usage event it takes back.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "meter_exports",
        sa.Column("pk", _PK, primary_key=True),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("target", sa.String(length=20), nullable=False),
        sa.Column("destination", sa.String(length=500), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("entry_pk", _PK, nullable=False),
        sa.Column("outcome_id", sa.String(length=200), nullable=False),
        sa.Column("value", sa.SmallInteger(), nullable=False),
        sa.Column("corrects", sa.String(length=300), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("sent_at", _TS, nullable=True),
        sa.UniqueConstraint("tenant", "target", "destination", "key", name="uq_meter_exports_key"),
        sa.ForeignKeyConstraint(["tenant"], ["tenants.name"], name="fk_meter_exports_tenant"),
    )
    op.create_index(
        "ix_meter_exports_destination", "meter_exports", ["tenant", "target", "destination"]
    )


def downgrade() -> None:
    op.drop_index("ix_meter_exports_destination", table_name="meter_exports")
    op.drop_table("meter_exports")
