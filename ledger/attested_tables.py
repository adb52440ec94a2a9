"""The table of documents a tenant attested for its reports (:mod:`judge.attestation`).

Registered on ``SQLModel.metadata`` by :mod:`ledger.tables` (which imports this module at its
end). Append-only: an attested document stays attested (a verdict that counted it must stay
explicable); attesting it again changes nothing.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from ledger.columns import _now_column, _pk_column, _tenant_column, _tenant_fk


class AttestedDocumentRow(SQLModel, table=True):
    """One document a tenant attested, by its digest (:func:`judge.attestation.document_digest`):
    the text itself is not kept. ``doc_id`` is the buyer's own name for it, ``key_id`` the API
    key that attested it (NULL: the command line)."""

    __tablename__ = "attested_documents"
    __table_args__ = (
        sa.UniqueConstraint("tenant", "digest", name="uq_attested_documents_digest"),
        # A tenant's pages, newest first (``list_attested``), without other tenants' rows.
        sa.Index("ix_attested_documents_tenant_pk", "tenant", "pk"),
        _tenant_fk("attested_documents"),
    )

    pk: int | None = _pk_column()
    tenant: str = _tenant_column()
    digest: str = Field(sa_column=sa.Column("digest", sa.String(64), nullable=False))
    doc_id: str | None = Field(default=None, sa_column=sa.Column("doc_id", sa.String(200)))
    key_id: str | None = Field(default=None, sa_column=sa.Column("key_id", sa.String(32)))
    created_at: datetime = _now_column("created_at")


ATTESTED_TABLES: tuple[type[SQLModel], ...] = (AttestedDocumentRow,)
