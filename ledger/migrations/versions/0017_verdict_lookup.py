"""verdict look-up: the (tenant, outcome_id) index of verdicts ends with pk

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 20:00:00

Append-only: never edit this file once released; write a new revision instead (see env.py).
A worker asks, per outcome of a claimed batch, for the latest verdict of one key (ORDER BY pk
DESC LIMIT 1). With pk last in the index its order is the index's, so PostgreSQL reads one
entry per key; with (tenant, outcome_id) alone, a tenant its statistics had not seen yet (its
verdicts being written by that very job) looked like one row to the planner, which then picked
(tenant, created_at) and filtered the tenant's whole range for every key. The new index covers
every query the old one served (its columns are a prefix).
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


def downgrade() -> None:
    op.create_index("ix_verdicts_tenant_outcome", "verdicts", ["tenant", "outcome_id"])
    op.drop_index("ix_verdicts_tenant_outcome_pk", table_name="verdicts")
