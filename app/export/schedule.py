"""The exports the service runs on a schedule (``OUTCOME_JUDGE_EXPORTS``), from every worker.

Each configured export runs when its ``every_seconds`` have passed, in whichever worker process
takes its lock first (:func:`ledger.meter_exports.exclusive`); the others skip it that round.
A failure is logged and tried again next round: the export log makes a repeat harmless.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ledger.meter_exports import exclusive

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from config.settings import ScheduledExport

__all__ = ["ExportScheduler"]

log = logging.getLogger("outcome_judge.exports")


def _name(export: ScheduledExport) -> str:
    return f"export:{export.tenant}:{export.to}:{export.endpoint}"


class ExportScheduler:
    """Runs the due exports; :meth:`run_due` is blocking (call it in a thread)."""

    def __init__(
        self,
        engine: Engine,
        exports: Sequence[ScheduledExport],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.exports = list(exports)
        self.clock = clock
        self.last_run: dict[str, float] = {}

    def due(self) -> list[ScheduledExport]:
        now = self.clock()
        return [
            e
            for e in self.exports
            if now - self.last_run.get(_name(e), float("-inf")) >= e.every_seconds
        ]

    def run_due(self) -> dict[str, str]:
        """Run every due export this process can lock; returns what each did, by name."""
        done: dict[str, str] = {}
        for export in self.due():
            name = _name(export)
            self.last_run[name] = self.clock()
            with exclusive(self.engine, name) as mine:
                if not mine:
                    done[name] = "skipped: another process is running it"
                    continue
                try:
                    done[name] = self._run(export)
                except Exception as exc:  # an export must never stop the worker
                    done[name] = f"failed: {type(exc).__name__}: {str(exc)[:300]}"
            level = logging.ERROR if done[name].startswith(("failed", "refused")) else logging.INFO
            log.log(level, "%s: %s", name.split(":", 1)[1], done[name])
        return done

    def _run(self, export: ScheduledExport) -> str:
        if export.to == "otlp":
            from app.export.otlp import export_verdicts, otlp_headers

            result = export_verdicts(
                self.engine,
                export.tenant,
                endpoint=export.endpoint,
                headers=otlp_headers(
                    os.environ.get(export.token_env or "OTEL_EXPORTER_OTLP_HEADERS", "")
                ),
            )
            if result.error:
                return f"refused: {result.error}"
            return f"sent {result.sent} verdict(s), {result.linked} linked to spans"
        from app.export.deliver import export_meter
        from app.export.targets import TOKEN_ENV, TargetConfig

        variable = export.token_env or TOKEN_ENV[export.to]
        token = os.environ.get(variable, "")
        if not token:
            return f"failed: {variable} is not set (tokens come from the environment only)"
        summary = export_meter(
            self.engine,
            TargetConfig(
                target=export.to,
                endpoint=export.endpoint,
                token=token,
                tenant=export.tenant,
                subject=export.subject,
                customer=export.customer,
                subscription=export.subscription,
                event_name=export.event_name,
            ),
        )
        if summary.error:
            return f"refused: {summary.error}"
        sent = summary.sent
        return (
            f"sent {sent['usage']} usage, {sent['negative']} negative, {sent['cancel']} cancel "
            f"event(s); exported total {summary.exported_total} of meter {summary.meter_total}"
        )
