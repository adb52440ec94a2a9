"""Where `judge pull` stopped: one cursor per (tenant, source, account), saved after each page.

The cursor is written only after the page it points past was durably written to the pull's
output, so a run killed at any moment resumes without a gap (at worst a page is fetched twice,
and the importers keep the latest version of a repeated ticket or conversation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import select

from ledger.db import session
from ledger.service_tables import PullCursorRow
from ledger.store import ensure_tenant
from ledger.tables import utcnow


@dataclass(frozen=True)
class PullState:
    """A saved position and how much the pulls of this account have fetched so far."""

    cursor: dict[str, Any]
    pages: int
    records: int


def load_cursor(engine: Engine, *, tenant: str, source: str, account: str) -> PullState | None:
    """The saved position of ``account`` (``None`` before the first page of the first pull)."""
    with session(engine, readonly=True) as db:
        row = db.exec(
            select(PullCursorRow).where(
                PullCursorRow.tenant == tenant,
                PullCursorRow.source == source,
                PullCursorRow.account == account,
            )
        ).first()
    if row is None:
        return None
    return PullState(cursor=json.loads(row.cursor), pages=row.pages, records=row.records)


def save_cursor(
    engine: Engine,
    *,
    tenant: str,
    source: str,
    account: str,
    cursor: dict[str, Any],
    pages: int = 1,
    records: int = 0,
) -> PullState:
    """Store ``cursor`` as the position of ``account``, adding ``pages`` and ``records``."""
    ensure_tenant(engine, tenant)
    text = json.dumps(cursor, sort_keys=True)
    with session(engine) as db:
        row = db.exec(
            select(PullCursorRow).where(
                PullCursorRow.tenant == tenant,
                PullCursorRow.source == source,
                PullCursorRow.account == account,
            )
        ).first()
        if row is None:
            row = PullCursorRow(
                tenant=tenant, source=source, account=account, cursor=text, pages=0, records=0
            )
        row.cursor = text
        row.pages += pages
        row.records += records
        row.updated_at = utcnow()
        db.add(row)
        state = PullState(cursor=cursor, pages=row.pages, records=row.records)
    return state
