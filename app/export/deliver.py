"""``judge export meter``: send the verified-outcomes meter to a billing system, once.

Each run reads the meter and what this destination already holds (:mod:`ledger.meter_exports`),
plans the events that make the target's total equal the meter (:mod:`app.export.plan`), and
sends them in batches: each batch is recorded ``pending`` (committed) before it is sent and
``sent`` after the target accepted it. Re-running sends nothing new; a run that died between
sending and recording sends the same keys again, which the target drops as duplicates.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from app.export.plan import plan_export
from app.export.targets import BATCH, CANCEL_WINDOWS, ExportError, Sender, TargetConfig
from ledger.meter_exports import export_state, mark_sent, record_pending
from ledger.tables import utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["ExportError", "ExportSummary", "export_meter"]


@dataclass
class ExportSummary:
    """What one run sent. ``meter_total`` is the meter's net count (every entry, ever);
    ``exported_total`` the net value the destination now holds from this ledger."""

    target: str
    destination: str
    planned: int = 0
    sent: Counter[str] = field(default_factory=Counter)
    resent_pending: int = 0
    already_delivered: int = 0
    requests: int = 0
    meter_total: int = 0
    exported_total: int = 0
    dry_run: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "destination": self.destination,
            "planned": self.planned,
            "sent": {k: self.sent.get(k, 0) for k in ("usage", "negative", "cancel")},
            "resent_pending": self.resent_pending,
            "already_delivered": self.already_delivered,
            "requests": self.requests,
            "meter_total": self.meter_total,
            "exported_total": self.exported_total,
            "dry_run": self.dry_run,
            "error": self.error,
        }


def export_meter(
    engine: Engine,
    config: TargetConfig,
    *,
    now: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
    dry_run: bool = False,
    on_batch: Callable[[int, int], None] | None = None,
) -> ExportSummary:
    """Send what the destination is missing; the summary says what was sent (and any error:
    the run stops at the first refused batch, and what was sent before it stays recorded)."""
    tenant, target, destination = config.tenant, config.target, config.destination
    entries, exported = export_state(engine, tenant, target, destination)
    started = now()
    actions = plan_export(
        entries,
        exported,
        tenant=tenant,
        now=started,
        cancel_window=CANCEL_WINDOWS.get(target),
    )
    summary = ExportSummary(
        target=target,
        destination=destination,
        planned=len(actions),
        resent_pending=sum(1 for e in exported if e.status == "pending"),
        meter_total=sum(e.delta for e in entries),
        exported_total=sum(e.value for e in exported if e.status == "sent"),
        dry_run=dry_run,
    )
    if dry_run or not actions:
        return summary
    sender = Sender(config, sleep=sleep)
    size = BATCH[target]
    done = 0
    try:
        for start in range(0, len(actions), size):
            batch = actions[start : start + size]
            record_pending(engine, tenant, target, destination, [a.as_exported() for a in batch])
            delivered = sender.send(batch, now())
            mark_sent(engine, tenant, target, destination, delivered, now())
            for action in batch:
                summary.sent[action.kind] += 1
                summary.exported_total += action.value
            done += len(batch)
            if on_batch is not None:
                on_batch(done, len(actions))
    except ExportError as exc:
        summary.error = str(exc)
    summary.requests = sender.requests
    summary.already_delivered = sender.already_delivered
    return summary
