"""A tenant's attested documents: written by the buyer's key, read by the workers
(:mod:`judge.attestation` says what they are for)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from judge.attestation import report_digests
from judge.models import Outcome
from ledger.attested_tables import AttestedDocumentRow
from ledger.columns import utcnow
from ledger.db import chunked, insert_for, session
from ledger.tenants import tenant_row

__all__ = [
    "AttestedDocument",
    "attest_documents",
    "attested_among",
    "attested_in_reports",
    "list_attested",
    "tenant_attested_any",
]


@dataclass(frozen=True)
class AttestedDocument:
    digest: str
    doc_id: str | None
    key_id: str | None
    created_at: datetime


def attest_documents(
    engine: Engine,
    tenant: str,
    documents: Sequence[tuple[str, str | None]],
    *,
    key_id: str | None,
) -> list[str]:
    """Attest ``documents`` (``(digest, the buyer's id or None)``) for ``tenant`` in one
    transaction; the digests newly attested, in order (one attested before stays as it was).

    Raises
    ------
    UnknownTenantError
        When the ledger has no tenant ``tenant``; nothing is written.
    """
    table = AttestedDocumentRow.__table__  # type: ignore[attr-defined]
    added: list[str] = []
    now = utcnow()
    with session(engine) as db:
        tenant_row(db, tenant)
        conn = db.connection()
        stmt = (
            insert_for(conn.dialect.name, table)
            .on_conflict_do_nothing(index_elements=["tenant", "digest"])
            .returning(table.c.digest)
        )
        rows: dict[str, dict[str, object]] = {}
        for digest, doc_id in documents:
            rows.setdefault(
                digest,
                {
                    "tenant": tenant,
                    "digest": digest,
                    "doc_id": doc_id,
                    "key_id": key_id,
                    "created_at": now,
                },
            )
        # One statement for the batch (SQLAlchemy sends it as multi-row VALUES): the rows
        # written come back, those attested before do not.
        for chunk in chunked(list(rows.values()), 500):
            written = {r[0] for r in conn.execute(stmt, chunk)}
            added += [str(row["digest"]) for row in chunk if row["digest"] in written]
    return added


def attested_among(engine: Engine, tenant: str, digests: Collection[str]) -> set[str]:
    """Which of ``digests`` ``tenant`` attested (no read for none)."""
    table = AttestedDocumentRow.__table__  # type: ignore[attr-defined]
    found: set[str] = set()
    if not digests:
        return found
    with session(engine, readonly=True) as db:
        for chunk in chunked(sorted(set(digests))):
            query = sa.select(table.c.digest).where(
                table.c.tenant == tenant, table.c.digest.in_(chunk)
            )
            found.update(db.connection().execute(query).scalars())
    return found


def tenant_attested_any(engine: Engine, tenant: str) -> bool:
    """Whether ``tenant`` attested any document."""
    table = AttestedDocumentRow.__table__  # type: ignore[attr-defined]
    query = sa.select(table.c.pk).where(table.c.tenant == tenant).limit(1)
    with session(engine, readonly=True) as db:
        return db.connection().execute(query).first() is not None


def attested_in_reports(engine: Engine, tenant: str, reports: Iterable[Outcome]) -> set[str]:
    """The digests of the briefs and sources of ``reports`` that ``tenant`` attested: one read
    (per 500 digests) for them all."""
    return attested_among(engine, tenant, {d for o in reports for d in report_digests(o)})


def list_attested(
    engine: Engine, tenant: str, *, limit: int, before: int | None = None
) -> tuple[list[AttestedDocument], int | None]:
    """``tenant``'s attested documents, newest first, at most ``limit``; and the cursor of the
    next page (``before``), None after the last."""
    table = AttestedDocumentRow.__table__  # type: ignore[attr-defined]
    query = sa.select(table).where(table.c.tenant == tenant)
    if before is not None:
        query = query.where(table.c.pk < before)
    query = query.order_by(table.c.pk.desc()).limit(limit + 1)
    with session(engine, readonly=True) as db:
        rows = db.connection().execute(query).all()
    page = [AttestedDocument(r.digest, r.doc_id, r.key_id, r.created_at) for r in rows[:limit]]
    return page, (rows[limit - 1].pk if len(rows) > limit else None)
