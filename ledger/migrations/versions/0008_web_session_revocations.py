"""web sessions: logged-out sessions are remembered until their cookie expires

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 00:00:00

Append-only: never edit this file once released; write a new revision instead (see env.py).
Self-contained like 0001. Logging out of the web interface used to clear the cookie only; a
copy of the signed cookie kept working until it expired (12 h). Each logout now books the
session here, and every page refuses a session listed here, in every API process.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "web_session_revocations",
        sa.Column("pk", _PK, primary_key=True),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("revoked_at", _TS, nullable=False),
        sa.UniqueConstraint("session_id", name="uq_web_session_revocations_session"),
        sa.ForeignKeyConstraint(
            ["tenant"], ["tenants.name"], name="fk_web_session_revocations_tenant"
        ),
    )
    # Expired rows are deleted by expiry (see api.web.session.revoke).
    op.create_index(
        "ix_web_session_revocations_expires", "web_session_revocations", ["expires_at"]
    )


def downgrade() -> None:
    op.drop_table("web_session_revocations")
