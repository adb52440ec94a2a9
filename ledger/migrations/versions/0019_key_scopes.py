"""key scopes: what an API key may change

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 11:30:00

Append-only: never edit this file once released; write a new revision instead (see env.py).
Every key could send outcomes, record labels and store rubrics, so the integration of the party
billed per resolution could label its own outcomes (and make the calibration gate pass) or
redefine the tenant's rubric. A key now carries scopes; NULL, what every existing key gets, is
every scope, so nothing stops working until a tenant issues narrower keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("scopes", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("api_keys", "scopes")
