"""pull cursors: where `judge pull` stopped, per tenant and help-desk account

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 00:00:00

Append-only: never edit this file once released; write a new revision instead (see env.py).
Self-contained like 0001. `judge pull zendesk|intercom` saves the vendor's cursor after every
page it wrote, so an interrupted or incremental run resumes where the last one stopped.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "pull_cursors",
        sa.Column("pk", _PK, primary_key=True),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("account", sa.String(length=200), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.UniqueConstraint("tenant", "source", "account", name="uq_pull_cursors_account"),
        sa.ForeignKeyConstraint(["tenant"], ["tenants.name"], name="fk_pull_cursors_tenant"),
    )


def downgrade() -> None:
    op.drop_table("pull_cursors")
