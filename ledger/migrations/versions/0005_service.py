"""service: API keys, tenant limits, verification jobs, stored documents, outcome facts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 00:00:00

Append-only: never edit this file once released; write a new revision instead (see env.py).
Self-contained like 0001. ``outcome_facts`` is back-filled from the verdicts already stored
(the latest verdict of each outcome), so the meters count outcomes verified before this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)
_MONEY = sa.Numeric(precision=20, scale=12)
_JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite has it): a batch "move and copy" would drop `tenants`, which every
    # other table references.
    op.add_column("tenants", sa.Column("daily_budget_usd", _MONEY, nullable=True))
    op.add_column("tenants", sa.Column("requests_per_minute", sa.Integer(), nullable=True))
    op.create_index("ix_judge_calls_tenant_at", "judge_calls", ["tenant", "at"])

    op.create_table(
        "api_keys",
        sa.Column("pk", _PK, primary_key=True),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.UniqueConstraint("key_id", name="uq_api_keys_key_id"),
        sa.ForeignKeyConstraint(["tenant"], ["tenants.name"], name="fk_api_keys_tenant"),
    )
    op.create_index("ix_api_keys_tenant", "api_keys", ["tenant"])

    op.create_table(
        "jobs",
        sa.Column("pk", _PK, primary_key=True),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rubrics", _JSON, nullable=False),
        sa.Column("panel", sa.String(length=200), nullable=False),
        sa.Column("selection", _JSON, nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("counts", _JSON, nullable=False),
        sa.Column("cost_usd", _MONEY, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("waiting_reason", sa.Text(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("started_at", _TS, nullable=True),
        sa.Column("finished_at", _TS, nullable=True),
        sa.UniqueConstraint("job_id", name="uq_jobs_job_id"),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'waiting', 'done', 'failed', 'cancelled')",
            name="ck_jobs_status",
        ),
        sa.ForeignKeyConstraint(["tenant"], ["tenants.name"], name="fk_jobs_tenant"),
    )
    op.create_index("ix_jobs_tenant_created", "jobs", ["tenant", "created_at"])
    op.create_index("ix_jobs_status", "jobs", ["status"])

    op.create_table(
        "job_items",
        sa.Column("pk", _PK, primary_key=True),
        sa.Column("job_pk", _PK, nullable=False),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("outcome_id", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_expires_at", _TS, nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("verdict_pk", _PK, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("finished_at", _TS, nullable=True),
        sa.UniqueConstraint("job_pk", "outcome_id", name="uq_job_items_outcome"),
        sa.CheckConstraint("status IN ('pending', 'done', 'failed')", name="ck_job_items_status"),
        sa.ForeignKeyConstraint(["job_pk"], ["jobs.pk"], name="fk_job_items_job"),
    )
    op.create_index("ix_job_items_claim", "job_items", ["status", "lease_expires_at"])

    op.create_table(
        "documents",
        sa.Column("pk", _PK, primary_key=True),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("tenant", "kind", "name", "version", name="uq_documents_version"),
        sa.CheckConstraint("kind IN ('rubric', 'panel')", name="ck_documents_kind"),
        sa.ForeignKeyConstraint(["tenant"], ["tenants.name"], name="fk_documents_tenant"),
    )
    op.create_index("ix_documents_tenant_kind_name", "documents", ["tenant", "kind", "name"])

    op.create_table(
        "outcome_facts",
        sa.Column("pk", _PK, primary_key=True),
        sa.Column("tenant", sa.String(length=100), nullable=False),
        sa.Column("outcome_id", sa.String(length=200), nullable=False),
        sa.Column("outcome_revision", sa.Integer(), nullable=False),
        sa.Column("verdict_pk", _PK, nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("tier", sa.String(length=16), nullable=True),
        sa.Column("agent", sa.String(length=200), nullable=True),
        sa.Column("agent_version", sa.String(length=310), nullable=True),
        sa.Column("model_path", sa.String(length=200), nullable=True),
        sa.Column("anchor_at", _TS, nullable=False),
        sa.Column("final_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.UniqueConstraint("tenant", "outcome_id", name="uq_outcome_facts_outcome"),
        sa.ForeignKeyConstraint(["tenant"], ["tenants.name"], name="fk_outcome_facts_tenant"),
    )
    # The meter's index: a range scan of one tenant's verified outcomes by anchor. PostgreSQL:
    # covering what the meter reads (INCLUDE, outside the key), so counting is an index-only
    # scan; SQLite ignores INCLUDE.
    op.create_index(
        "ix_outcome_facts_meter",
        "outcome_facts",
        ["tenant", "decision", "anchor_at"],
        postgresql_include=["final_at", "agent", "tier", "agent_version", "model_path"],
    )
    # Back-fill of outcome_facts from existing verdicts: done by ledger.facts.backfill_facts,
    # which `ledger.db.migrate` runs after upgrading (it needs the rubric windows and the
    # attribution rules, which a self-contained migration must not import).


def downgrade() -> None:
    op.drop_table("outcome_facts")
    op.drop_table("documents")
    op.drop_table("job_items")
    op.drop_table("jobs")
    op.drop_table("api_keys")
    op.drop_index("ix_judge_calls_tenant_at", table_name="judge_calls")
    # DROP COLUMN in place (SQLite >= 3.35), for the same reason as in upgrade().
    op.drop_column("tenants", "requests_per_minute")
    op.drop_column("tenants", "daily_budget_usd")
