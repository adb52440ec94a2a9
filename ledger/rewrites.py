"""Hold verified verdicts on revisions that lost messages of earlier ones (inside the write).

:meth:`ledger.store.Ledger.record_results` is the one gate every verdict passes on its way to
the ledger (``judge verify`` and the job workers alike), so the rule of
:func:`judge.history.hold_rewritten` is applied there, in the transaction that writes the
verdict: the verdict stored, counted by the meters and shown in the review queue is the held one.
Only ``verified`` verdicts on tickets that already have stored revisions cost a read: one
statement per 500 such ids, for their other revisions' payloads.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from judge.history import hold_rewritten
from judge.input_rules import FROM_LEDGER
from judge.models import Outcome
from judge.verdict import Verdict
from ledger.db import among, chunked
from ledger.tables import OutcomeRow

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = ["hold_rewrites"]


def hold_rewrites(
    conn: Connection, tenant: str, checked: Sequence[tuple[Outcome, Verdict, str]]
) -> list[tuple[Outcome, Verdict, str]]:
    """``checked`` (outcome, verdict, content hash) with each ``verified`` ticket's verdict held
    (``abstain``) when its conversation lost a message one of its stored revisions had."""
    ids = sorted({o.id for o, v, _ in checked if v.decision == "verified" and o.kind != "report"})
    if not ids:
        return list(checked)
    table = OutcomeRow.__table__  # type: ignore[attr-defined]
    stored: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for chunk in chunked(ids):
        rows = conn.execute(
            sa.select(table.c.outcome_id, table.c.content_hash, table.c.payload).where(
                table.c.tenant == tenant, among(conn, table.c.outcome_id, chunk)
            )
        )
        for outcome_id, content_hash, payload in rows:
            stored[outcome_id].append((content_hash, payload))
    held: list[tuple[Outcome, Verdict, str]] = []
    for outcome, verdict, content_hash in checked:
        others = [p for h, p in stored.get(outcome.id, ()) if h != content_hash]
        if others and verdict.decision == "verified":
            earlier = (Outcome.model_validate(p, context=FROM_LEDGER) for p in others)
            verdict = hold_rewritten(verdict, outcome, earlier)
        held.append((outcome, verdict, content_hash))
    return held
