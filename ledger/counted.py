"""Which verdict of each outcome a figure uses: the billed one, or the latest judgement.

- **Billed** (:func:`counted_verdicts`): an outcome counts by its latest verdict, except that a
  verdict recorded after the outcome was already final (its fact frozen, see
  :mod:`ledger.facts`) changes nothing: the meters keep the count they published, and a later
  reopen or overturn is a revocation. The meters follow this through ``outcome_facts``; the cost
  report (:func:`ledger.cost_report.cost_report`) replays verdicts over a range with the same
  rule, so its denominator is the verified count that is billed.
- **Latest judgement** (:func:`judged_rows`): the path comparison (``judge cost breakeven``) and
  the leaderboard ask how often a model path succeeds, not what was billed, so a re-verification
  after the outcome was final (a better panel, a corrected revision) does count there.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import col

from ledger.db import session
from ledger.service_tables import OutcomeFactRow
from ledger.tables import OutcomeRow, VerdictRow

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["counted_verdicts", "judged_rows"]


def counted_verdicts(
    columns: Sequence[str], tenant: str, *, since: datetime | None, until: datetime | None
) -> sa.Select[Any]:
    """The tenant's verdicts recorded in ``[since, until)`` that can count, oldest first.

    ``columns`` are ``verdicts`` column names; the last row of each outcome is the verdict that
    counts for it in the range.
    """
    facts = OutcomeFactRow.__table__  # type: ignore[attr-defined]
    query = (
        sa.select(*(col(getattr(VerdictRow, c)) for c in columns))
        .select_from(
            sa.outerjoin(
                VerdictRow,
                facts,
                sa.and_(
                    facts.c.tenant == col(VerdictRow.tenant),
                    facts.c.outcome_id == col(VerdictRow.outcome_id),
                ),
            )
        )
        .where(
            col(VerdictRow.tenant) == tenant,
            # Newer than the fact's verdict means recorded after the fact was frozen.
            sa.or_(facts.c.verdict_pk.is_(None), col(VerdictRow.pk) <= facts.c.verdict_pk),
        )
        .order_by(col(VerdictRow.pk))
    )
    if since is not None:
        query = query.where(col(VerdictRow.created_at) >= since)
    if until is not None:
        query = query.where(col(VerdictRow.created_at) < until)
    return query


def judged_rows(
    engine: Engine, tenant: str, *, since: datetime | None, until: datetime | None
) -> dict[str | None, list[tuple[str, float | None]]]:
    """(decision, agent cost) of each outcome's latest verdict, by model path.

    The input of :func:`ledger.economics.path_stats`: verdicts recorded in ``[since, until)``
    (None: unbounded), the latest judgement of each outcome (see the module docstring).
    """
    query = (
        sa.select(
            col(VerdictRow.outcome_id), col(VerdictRow.outcome_revision), col(VerdictRow.decision)
        )
        .where(col(VerdictRow.tenant) == tenant)
        .order_by(col(VerdictRow.pk))
    )
    if since is not None:
        query = query.where(col(VerdictRow.created_at) >= since)
    if until is not None:
        query = query.where(col(VerdictRow.created_at) < until)
    with session(engine, readonly=True) as db:
        latest = {
            oid: (rev, decision) for oid, rev, decision in db.connection().execute(query).all()
        }
        outcomes = (
            db.connection()
            .execute(
                sa.select(
                    col(OutcomeRow.outcome_id),
                    col(OutcomeRow.revision),
                    col(OutcomeRow.model_path),
                    col(OutcomeRow.agent_cost_usd),
                ).where(col(OutcomeRow.tenant) == tenant)
            )
            .all()
        )
    info = {(oid, rev): (path, cost) for oid, rev, path, cost in outcomes}
    grouped: dict[str | None, list[tuple[str, float | None]]] = {}
    for oid, (rev, decision) in latest.items():
        path, cost = info[(oid, rev)]
        grouped.setdefault(path, []).append((decision, None if cost is None else float(cost)))
    return grouped
