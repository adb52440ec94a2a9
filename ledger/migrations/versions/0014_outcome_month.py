"""outcome month: the immutable month an outcome's fact is filed under (partition key)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08 00:00:00

Append-only: never edit this file once released; write a new revision instead (see env.py).
``outcome_facts.outcome_month`` is the first instant (UTC) of the month in which the ledger
received revision 1 of the outcome. It never changes for an outcome (unlike ``anchor_at``, which a
new revision may move), so on PostgreSQL ``judge db partition`` can partition the facts by it
while one fact per (tenant, outcome id) stays enforced by the database (see
``ledger.partitions``). ``uq_outcome_facts_month`` is the conflict target of the facts' upsert on
both layouts (a partitioned table only accepts unique keys that contain its partition key).
Existing facts get the month of their outcome's revision 1 (else of their ``updated_at``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)

_PG_FILL = """
UPDATE outcome_facts AS f SET outcome_month = date_trunc('month', o.received_at, 'UTC')
FROM outcomes AS o
WHERE o.tenant = f.tenant AND o.outcome_id = f.outcome_id AND o.revision = 1
"""
_PG_REST = "UPDATE outcome_facts SET outcome_month = date_trunc('month', updated_at, 'UTC') " \
    "WHERE outcome_month IS NULL"  # fmt: skip
# SQLite stores UTC timestamps as naive text 'YYYY-MM-DD HH:MM:SS.ffffff' (ledger.columns).
_SQLITE_MONTH = "strftime('%Y-%m-01 00:00:00.000000', {})"
_SQLITE_FILL = f"""
UPDATE outcome_facts SET outcome_month = COALESCE(
    (SELECT {_SQLITE_MONTH.format("o.received_at")} FROM outcomes AS o
     WHERE o.tenant = outcome_facts.tenant AND o.outcome_id = outcome_facts.outcome_id
       AND o.revision = 1),
    {_SQLITE_MONTH.format("updated_at")})
"""


def upgrade() -> None:
    with op.batch_alter_table("outcome_facts") as batch:
        batch.add_column(sa.Column("outcome_month", _TS, nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FILL)
        op.execute(_PG_REST)
    else:
        op.execute(_SQLITE_FILL)
    with op.batch_alter_table("outcome_facts") as batch:
        batch.alter_column("outcome_month", existing_type=_TS, nullable=False)
        batch.create_unique_constraint(
            "uq_outcome_facts_month", ["tenant", "outcome_id", "outcome_month"]
        )


def downgrade() -> None:
    with op.batch_alter_table("outcome_facts") as batch:
        batch.drop_constraint("uq_outcome_facts_month", type_="unique")
        batch.drop_column("outcome_month")
