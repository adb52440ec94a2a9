"""batch look-ups: verdicts and judge calls indexed in the order a per-key look-up reads them

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 20:00:00

Append-only: never edit this file once released; write a new revision instead (see env.py).
A worker asks, per outcome of a claimed batch, for the latest verdict of one key (ORDER BY pk
DESC LIMIT 1) and the latest servable call of one cache key (ORDER BY at DESC, pk DESC LIMIT
1). With the index in that order PostgreSQL reads one entry per key. With (tenant, outcome_id)
and (cache_key) alone, a tenant its statistics had not seen yet (its verdicts and calls being
written by that very job) looked like one row to the planner, which then picked (tenant,
created_at) or (tenant, at) and filtered the tenant's whole range for every key. The verdicts'
new index covers every query the old one served (its columns are a prefix); every look-up of a
call by cache key also names the tenant.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_verdicts_tenant_outcome_pk", "verdicts", ["tenant", "outcome_id", "pk"])
    op.drop_index("ix_verdicts_tenant_outcome", table_name="verdicts")
    op.create_index(
        "ix_judge_calls_tenant_key", "judge_calls", ["tenant", "cache_key", "at", "pk"]
    )
    op.drop_index("ix_judge_calls_cache_key", table_name="judge_calls")


def downgrade() -> None:
    op.create_index("ix_judge_calls_cache_key", "judge_calls", ["cache_key"])
    op.drop_index("ix_judge_calls_tenant_key", table_name="judge_calls")
    op.create_index("ix_verdicts_tenant_outcome", "verdicts", ["tenant", "outcome_id"])
    op.drop_index("ix_verdicts_tenant_outcome_pk", table_name="verdicts")
