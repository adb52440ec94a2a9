"""call purpose: why each judge call was made (verify, bias, canary)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 00:00:00

Append-only: never edit this file once released; write a new revision instead (see env.py).
Every paid model call is on the ledger, including the ones `judge bias` and `judge canary` make;
`purpose` says which. Only `verify` calls are ever served again as a verification's cache hit
(a probe's prompt is perturbed, and a canary exists to ask again), and the cost report counts
only `verify` calls in the cost per verified outcome while showing the others beside it. Rows
written before this revision were all verification calls.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("judge_calls") as batch:
        batch.add_column(
            sa.Column("purpose", sa.String(length=16), nullable=False, server_default="verify")
        )


def downgrade() -> None:
    with op.batch_alter_table("judge_calls") as batch:
        batch.drop_column("purpose")
