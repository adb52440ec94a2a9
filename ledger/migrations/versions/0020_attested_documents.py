"""attested documents: the briefs and sources a tenant vouches for

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 15:40:00

Append-only: never edit this file once released; write a new revision instead (see env.py).
Whoever sends a report sends its brief and sources too; where that is the party billed per
verified report it can add a source backing its own figures. A panel with ``report_inputs:
attested`` verifies a report only when its brief and sources are documents the tenant's buyer
attested beforehand; the service keeps their digests here (``POST /v1/attestations``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "attested_documents",
        sa.Column("pk", _PK, primary_key=True),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("doc_id", sa.String(length=200), nullable=True),
        sa.Column("key_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant", "digest", name="uq_attested_documents_digest"),
        sa.ForeignKeyConstraint(
            ["tenant"], ["tenants.name"], name="fk_attested_documents_tenant"
        ),
    )


def downgrade() -> None:
    op.drop_table("attested_documents")
