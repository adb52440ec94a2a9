"""audit summaries: a stored audit's listed figures in columns of their own

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 23:00:00

Append-only: never edit this file once released; write a new revision instead (see env.py).
Listing a tenant's audits (``GET /v1/audits``, the audits page) read every listed report, a JSON
document that holds every claim's row and dispute (megabytes for an invoice of 50,000 claims),
to show three figures. They are copied into columns; the rows stored before are filled from
their reports here, a few at a time. The server default only serves that fill.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_FILL_CHUNK = 20


def upgrade() -> None:
    op.add_column(
        "audits", sa.Column("billed_usd", sa.Double(), nullable=False, server_default="0")
    )
    op.add_column(
        "audits", sa.Column("disputed_usd", sa.Double(), nullable=False, server_default="0")
    )
    op.add_column("audits", sa.Column("disputes", sa.Integer(), nullable=False, server_default="0"))
    audits = sa.table(
        "audits",
        sa.column("pk", sa.BigInteger()),
        sa.column("report", _JSON),
        sa.column("billed_usd", sa.Double()),
        sa.column("disputed_usd", sa.Double()),
        sa.column("disputes", sa.Integer()),
    )
    conn = op.get_bind()
    pks = list(conn.execute(sa.select(audits.c.pk).order_by(audits.c.pk)).scalars())
    for start in range(0, len(pks), _FILL_CHUNK):
        chunk = pks[start : start + _FILL_CHUNK]
        rows = conn.execute(
            sa.select(audits.c.pk, audits.c.report).where(audits.c.pk.in_(chunk))
        ).all()
        for pk, report in rows:
            conn.execute(
                audits.update()
                .where(audits.c.pk == pk)
                .values(
                    billed_usd=float(report["billed_usd"]),
                    disputed_usd=float(report["disputed_usd"]),
                    disputes=len(report["disputes"]),
                )
            )


def downgrade() -> None:
    op.drop_column("audits", "disputes")
    op.drop_column("audits", "disputed_usd")
    op.drop_column("audits", "billed_usd")
