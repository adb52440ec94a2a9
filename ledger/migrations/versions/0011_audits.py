"""audits: stored reconciliations of a vendor's claims with the verdicts (POST /v1/audits)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 00:00:00

Append-only: never edit this file once released; write a new revision instead (see env.py).
An audit is a statement about the ledger at the moment it was made, kept whole (the report's
JSON) so that what was sent to the vendor can be shown again exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "audits",
        sa.Column("pk", _PK, primary_key=True),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("period_from", _TS, nullable=True),
        sa.Column("period_to", _TS, nullable=True),
        sa.Column("claimed", sa.Integer(), nullable=False),
        sa.Column("report", _JSON, nullable=False),
        sa.ForeignKeyConstraint(["tenant"], ["tenants.name"], name="fk_audits_tenant"),
    )
    op.create_index("ix_audits_tenant", "audits", ["tenant", "pk"])


def downgrade() -> None:
    op.drop_index("ix_audits_tenant", table_name="audits")
    op.drop_table("audits")
