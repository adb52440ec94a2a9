"""The cost report reads only the revisions it prices: outcomes judged outside its range, and
older revisions of those it prices, are never loaded, and a range's outcomes are read a chunk at
a time (the report's memory follows what it reports on, not the size of the ledger)."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import ledger.cost_report as cost_report_module
from judge.models import Outcome
from judge.verdict import Verdict
from ledger.cost_report import cost_report
from ledger.store import Ledger

BULK = "x" * 60_000  # a long conversation: ~60 kB of payload per revision


def _outcome(oid: str, at: datetime, text: str) -> Outcome:
    return Outcome.model_validate(
        {
            "id": oid,
            "kind": "support_ticket",
            "agent": {"name": "fin", "cost_usd": 0.01},
            "conversation": [
                {"role": "customer", "text": f"help {oid}", "at": at.isoformat()},
                {"role": "agent", "text": f"Done. {text}"},
            ],
        }
    )


def _verdict(oid: str) -> Verdict:
    return Verdict(
        outcome_id=oid, decision="verified", confidence=0.9, tier="assumed",
        rubric="support-resolution@1", panel="p",
    )  # fmt: skip


def _record(ledger: Ledger, outcomes: list[Outcome]) -> None:
    ledger.record_results(
        [(o, _verdict(o.id)) for o in outcomes], windows={"support-resolution@1": 72.0}
    )


def _peak_bytes(call: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _figures(report: object) -> tuple[int, int]:
    total = report.total  # type: ignore[attr-defined]
    return total.outcomes, total.verified


def test_outcomes_judged_outside_the_range_are_never_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path}/ledger.db", tenant="acme")
    at = datetime.now(UTC) - timedelta(hours=1)  # the verdicts' range is when they were recorded
    # 300 long outcomes, each revised once and judged twice, before the report's range...
    old = [_outcome(f"OLD-{i}", at, BULK) for i in range(300)]
    _record(ledger, old)
    _record(ledger, [_outcome(o.id, at, BULK + "!") for o in old])
    # ...and 40 judged in it, whose first (long) revision was judged before it.
    new = [_outcome(f"NEW-{i}", at, BULK) for i in range(40)]
    _record(ledger, new)
    since = datetime.now(UTC)
    time.sleep(0.01)
    _record(ledger, [_outcome(o.id, at, "short") for o in new])
    engine = ledger.engine
    stored = 2 * 340 * len(BULK)  # about 40 MB of payload text in the ledger

    def recent() -> object:
        return cost_report(engine, "acme", dims=["agent"], since=since)

    assert _figures(recent()) == (40, 40)
    # Neither the earlier outcomes nor the older, long revisions of these are loaded.
    assert _peak_bytes(recent) < stored / 20

    # Over the whole history every judged revision is read, a chunk at a time: with chunks of
    # 50 the peak stays well under the 300 long payloads priced.
    monkeypatch.setattr(cost_report_module, "_CHUNK", 50)

    def everything() -> object:
        return cost_report(engine, "acme", dims=["agent"])

    assert _figures(everything()) == (340, 340)
    assert _peak_bytes(everything) < 300 * len(BULK) / 2
    ledger.close()
