"""Benchmark of the review queue page's read at 100,000 outcomes of one tenant.

Not a test: run ``python bench/bench_review_queue.py [--outcomes N]`` and read the table. For
SQLite (a temporary file; and PostgreSQL in a dedicated schema when
``OUTCOME_JUDGE_BENCH_PG_URL`` or ``OUTCOME_JUDGE_TEST_PG_URL`` is set) it records ``--outcomes``
verdicts through ``Ledger.record_results`` (15 % abstain, 3 % flagged, the rest verified or not;
2 % labelled), then times, alternating, ``--runs`` times each:

- **kept**: :func:`ledger.review_queue.review_queue`, which reads the kept ``review_queue``
  table through its index;
- **recomputed** (the baseline, the code before issue 16): every latest verdict of the tenant,
  every label, and each queued outcome's payload decoded for its time, in the same process.

It prints p50 / p95 of each and the ratio recomputed / kept, and the queue's size. No figure
here is asserted anywhere.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _pg import pg_schema  # noqa: E402  (bench/ is the script's folder on sys.path)

import judge  # noqa: E402,F401  (pins the local litellm price map before anything else)


def _outcome(i: int) -> Any:
    from judge.models import Outcome

    at = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=3 * i)
    later = at + timedelta(minutes=5)
    return Outcome.model_validate(
        {
            "id": f"Q-{i:07d}",
            "kind": "support_ticket",
            "conversation": [
                {"role": "customer", "text": f"My order {i} arrived broken.", "at": at.isoformat()},
                {"role": "agent", "text": "A replacement is on its way.", "author": "bot:fin"},
                {"role": "customer", "text": "Thanks!", "at": later.isoformat()},
            ],
            "signals": {"customer_confirmed": True, "csat": 5},
            "agent": {"name": "fin", "version": "2.3", "model_path": "gpt-4o-mini"},
        }
    )


def _verdict(outcome: Any, rng: random.Random) -> Any:
    from judge.verdict import Verdict

    roll = rng.random()
    decision = "abstain" if roll < 0.15 else "verified" if roll < 0.7 else "not_verified"
    flags = ["possible_prompt_injection"] if rng.random() < 0.03 else []
    return Verdict(
        outcome_id=outcome.id, decision=decision, confidence=0.8, rubric="support-resolution@b",
        panel="default@a", flags=flags, tier="confirmed" if decision == "verified" else None,
    )  # fmt: skip


def build(url: str, n: int) -> None:
    from judge.models import Label
    from ledger.db import make_engine
    from ledger.schema import migrate
    from ledger.store import Ledger

    engine = make_engine(url)
    migrate(engine)
    ledger = Ledger(engine, tenant="acme")
    rng = random.Random(16)
    started = time.perf_counter()
    for start in range(0, n, 500):
        batch = [_outcome(i) for i in range(start, min(n, start + 500))]
        ledger.record_results([(o, _verdict(o, rng)) for o in batch])
    for i in range(0, n, 50):
        ledger.record_label(f"Q-{i:07d}", Label(resolved=True, by="qa"))
    print(f"  built {n:,} outcomes in {time.perf_counter() - started:.0f} s", flush=True)
    engine.dispose()


def recomputed(engine: Any, tenant: str) -> tuple[list[Any], int]:
    """The queue as it was computed before it was kept: every latest verdict and label, and each
    queued outcome's payload decoded (the baseline)."""
    import sqlalchemy as sa
    from sqlmodel import col

    from judge.input_rules import FROM_LEDGER
    from judge.models import Outcome
    from ledger.db import session
    from ledger.review_index import in_audit_sample
    from ledger.tables import LabelRow, OutcomeRow, VerdictRow
    from ledger.windows import window_anchor

    with session(engine, readonly=True) as db:
        conn = db.connection()
        latest = (
            sa.select(sa.func.max(VerdictRow.pk).label("pk"))
            .where(col(VerdictRow.tenant) == tenant)
            .group_by(col(VerdictRow.outcome_id))
            .subquery()
        )
        rows = conn.execute(
            sa.select(
                col(VerdictRow.outcome_id), col(VerdictRow.outcome_revision),
                col(VerdictRow.decision), col(VerdictRow.flags), col(VerdictRow.created_at),
            ).join(latest, latest.c.pk == VerdictRow.pk)
        ).all()  # fmt: skip
        done = set(
            conn.execute(
                sa.select(col(LabelRow.outcome_id)).where(col(LabelRow.tenant) == tenant).distinct()
            ).scalars()
        )
        picked = {
            oid: (rev, created)
            for oid, rev, decision, flags, created in rows
            if oid not in done
            and (decision == "abstain" or flags
                 or (decision == "verified" and in_audit_sample(tenant, oid)))
        }  # fmt: skip
        items = []
        ids = sorted(picked)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for oid, rev, payload in conn.execute(
                sa.select(col(OutcomeRow.outcome_id), col(OutcomeRow.revision),
                          col(OutcomeRow.payload))
                .where(col(OutcomeRow.tenant) == tenant, col(OutcomeRow.outcome_id).in_(chunk))
            ):  # fmt: skip
                if picked[oid][0] == rev:
                    anchor = window_anchor(Outcome.model_validate(payload, context=FROM_LEDGER))
                    items.append((anchor[0] if anchor else picked[oid][1], oid))
    items.sort()
    return items[:500], len(items)


def _time(fn: Callable[[], Any], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def measure(url: str, n: int, runs: int) -> dict[str, Any]:
    from ledger.db import make_engine
    from ledger.review_queue import review_queue

    build(url, n)
    engine = make_engine(url)
    try:
        kept_items, kept_total = review_queue(engine, "acme")
        old_items, old_total = recomputed(engine, "acme")
        assert kept_total == old_total, (kept_total, old_total)
        assert [i.outcome_id for i in kept_items] == [oid for _, oid in old_items]
        kept: list[float] = []
        old: list[float] = []
        for _ in range(runs):  # alternating, so both see the same machine state
            kept += _time(lambda: review_queue(engine, "acme"), 1)
            old += _time(lambda: recomputed(engine, "acme"), 1)
    finally:
        engine.dispose()

    def p(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]

    return {
        "queue": kept_total,
        "kept": (statistics.median(kept), p(kept, 95)),
        "recomputed": (statistics.median(old), p(old, 95)),
    }


@contextmanager
def _sqlite() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{tmp}/queue.db"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outcomes", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    pg = os.environ.get("OUTCOME_JUDGE_BENCH_PG_URL") or os.environ.get("OUTCOME_JUDGE_TEST_PG_URL")
    targets: list[tuple[str, Any]] = [("SQLite", _sqlite())]
    if pg:
        targets.append(("PostgreSQL", pg_schema(pg, prefix="bench_queue")))
    print(f"review queue at {args.outcomes:,} outcomes, p50 / p95 ms of {args.runs} runs each")
    print("| database | queue | kept (p50 / p95) | recomputed (p50 / p95) | recomputed / kept |")
    print("|---|---:|---:|---:|---:|")
    for name, context in targets:
        with context if context is not None else nullcontext() as url:
            r = measure(url, args.outcomes, args.runs)
        (k50, k95), (o50, o95) = r["kept"], r["recomputed"]
        print(f"| {name} | {r['queue']:,} | {k50:.1f} / {k95:.1f} | {o50:.0f} / {o95:.0f} | "
              f"{o50 / k50:.0f}x |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
