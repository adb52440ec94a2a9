"""attested documents: an index for a tenant's pages, newest first

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 18:30:00

Append-only: never edit this file once released; write a new revision instead (see env.py).
``GET /v1/attestations`` pages a tenant's attested documents by primary key, newest first. The
table had only (tenant, digest) unique, so a page was read by walking the primary key backwards
past every other tenant's newer documents, or by scanning the table: each page cost the whole
table. (tenant, pk) reads a page's rows only.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_attested_documents_tenant_pk", "attested_documents", ["tenant", "pk"])


def downgrade() -> None:
    op.drop_index("ix_attested_documents_tenant_pk", table_name="attested_documents")
