"""pending judge calls: recorded before they are sent; jobs own their calls

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 00:00:00

Append-only: never edit this file once released; write a new revision instead (see env.py).
Self-contained. ``judge_calls`` gains the write-ahead columns: ``call_id`` (the attempt's id,
which completes its ``pending`` row), ``estimated_cost_usd`` (prompt tokens at the model's price,
what a call left ``pending`` by a killed process is settled at as ``unknown``) and
``expires_at``, ``owner`` (``host:pid`` of the process making it: a dead owner's calls are
settled at once); and ``job_pk``, the verification job a call was made for (a job's cost is the sum
of its calls in the ledger).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)
_MONEY = sa.Numeric(precision=20, scale=12)


def upgrade() -> None:
    op.add_column("judge_calls", sa.Column("call_id", sa.String(length=32), nullable=True))
    op.add_column("judge_calls", sa.Column("estimated_cost_usd", _MONEY, nullable=True))
    op.add_column("judge_calls", sa.Column("expires_at", _TS, nullable=True))
    op.add_column("judge_calls", sa.Column("job_pk", _PK, nullable=True))
    op.add_column("judge_calls", sa.Column("owner", sa.String(length=200), nullable=True))
    op.create_index("ix_judge_calls_call_id", "judge_calls", ["call_id"])
    op.create_index("ix_judge_calls_pending", "judge_calls", ["status", "expires_at"])
    op.create_index("ix_judge_calls_job", "judge_calls", ["job_pk"])


def downgrade() -> None:
    op.drop_index("ix_judge_calls_job", table_name="judge_calls")
    op.drop_index("ix_judge_calls_pending", table_name="judge_calls")
    op.drop_index("ix_judge_calls_call_id", table_name="judge_calls")
    with op.batch_alter_table("judge_calls") as batch:
        batch.drop_column("owner")
        batch.drop_column("job_pk")
        batch.drop_column("expires_at")
        batch.drop_column("estimated_cost_usd")
        batch.drop_column("call_id")
