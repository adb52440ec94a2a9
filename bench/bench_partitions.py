"""Benchmark of a ledger partitioned by month against the plain layout, at 10,000,000 facts.

Not a test: run ``python bench/bench_partitions.py`` (PostgreSQL only: the URL comes from
``OUTCOME_JUDGE_BENCH_PG_URL`` or ``OUTCOME_JUDGE_TEST_PG_URL``) and read the table. It:

1. migrates two empty ledgers in two throwaway schemas of one database (dropped afterwards), and
   partitions one of them with :func:`ledger.partitions.convert` (``judge db partition``);
2. COPYs ``--facts`` outcome facts (default 10,000,000; 80 % tenant ``acme``, the rest two other
   tenants) received over the 24 months of 2024-2025, and their meter entries (70 % verified:
   one +1 each, at the verification anchor), into the plain ledger, then the same rows into the
   partitioned one (``INSERT .. SELECT``, rows routed to their months). The facts' outcomes are
   not loaded (their payloads would be tens of GB and no query here reads them), so the load
   runs with ``session_replication_role = replica``: the partitioned facts' foreign key to
   ``outcome_months`` is not checked for these rows; then ``VACUUM ANALYZE`` both;
3. prints the EXPLAIN of each query on the partitioned ledger (the pruning), and times each,
   alternating the two layouts, ``--runs`` times after a warm-up, p50 / p95 and their ratio
   (partitioned / plain):

   - the verified-outcomes meter of one tenant-month (:func:`ledger.meters.verified_outcomes`,
     June 2025, by agent and tier): ``meter_entries`` by ``booked_at``;
   - the same count in hand-written SQL (so the figure stands if the meter changes its source);
   - the facts of outcomes received in one month, counted by decision (``outcome_month``; the
     plain layout has no index on it, so it reads every fact).

Check the disk first (``df -h``): the two copies take about 1.2 GB per million facts (12 GB and
17 minutes at 10,000,000 on a 2-core machine).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from _pg import pg_schema  # bench/_pg.py (bench/ is the script's folder on sys.path)

START = datetime(2024, 1, 1, tzinfo=UTC)
MONTHS = 24
MONTH = (datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC))
AGENTS = ("bot:fin", "bot:ada", "bot:sage", "bot:echo", None)
TIERS = ("confirmed", "assumed", "assisted", None)
VERSIONS = ("fin@2.3", "fin@2.4", "ada@1.0", "sage@0.9")
PATHS = ("gpt-4o-mini", "claude-haiku", "llama-3-70b")
SPAN = timedelta(hours=96)
FACT_COLUMNS = (
    "tenant", "outcome_id", "outcome_revision", "verdict_pk", "decision", "tier", "agent",
    "agent_version", "model_path", "anchor_at", "final_at", "updated_at", "booked_at",
    "booked_entry_pk", "booking_reason", "outcome_month",
)  # fmt: skip
ENTRY_COLUMNS = (
    "pk", "tenant", "outcome_id", "verdict_pk", "delta", "reason", "booked_at", "anchor_at",
    "final_at", "tier", "agent", "agent_version", "model_path", "created_at",
)  # fmt: skip
HAND_METER = (
    "SELECT agent, tier, reason, sum(delta), max(final_at) FROM meter_entries "
    "WHERE tenant = %s AND booked_at >= %s AND booked_at < %s GROUP BY 1, 2, 3"
)
FACTS_MONTH = (
    "SELECT decision, count(*) FROM outcome_facts "
    "WHERE tenant = %s AND outcome_month = %s GROUP BY 1"
)


def _month_start(moment: datetime) -> datetime:
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def generate(n: int, seed: int = 7) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...] | None]]:
    """(fact row, meter entry row or None) of ``n`` outcomes over 24 months, in arrival order.

    Random draws are made in bulk per chunk: generating the rows must not dominate the load.
    """
    rng = random.Random(seed)
    seconds = MONTHS * 30 * 86400
    chunk = 100_000
    tenants = ("acme",) * 8 + ("initech", "globex")
    for base in range(0, n, chunk):
        size = min(chunk, n - base)
        decisions = rng.choices(("verified", "not_verified", "abstain"), (70, 20, 10), k=size)
        tiers, agents = rng.choices(TIERS, k=size), rng.choices(AGENTS, k=size)
        versions, paths = rng.choices(VERSIONS, k=size), rng.choices(PATHS, k=size)
        owners = rng.choices(tenants, k=size)
        for j in range(size):
            i = base + j
            anchor = START + timedelta(seconds=i * seconds // n)
            received = anchor + timedelta(hours=1)
            verified = decisions[j] == "verified"
            final = anchor + SPAN
            tenant, oid = owners[j], f"o-{i:09d}"
            fact = (
                tenant, oid, 1, i + 1, decisions[j], tiers[j], agents[j], versions[j],
                paths[j], anchor, final, received, anchor if verified else None,
                i + 1 if verified else None, "verified" if verified else None,
                _month_start(received),
            )  # fmt: skip
            entry = (
                (i + 1, tenant, oid, i + 1, 1, "verified", anchor, anchor, final, tiers[j],
                 agents[j], versions[j], paths[j], received)
                if verified else None
            )  # fmt: skip
            yield fact, entry


def load(plain: Any, parted: Any, schemas: tuple[str, str], n: int) -> float:
    """COPY the rows into the plain ledger, then the same rows into the partitioned one."""
    from ledger.store import ensure_tenant

    for engine in (plain, parted):
        for name in ("acme", "initech", "globex"):
            ensure_tenant(engine, name)
    start = time.perf_counter()
    raw = plain.raw_connection()
    try:
        cur = raw.cursor()
        entries: list[tuple[Any, ...]] = []
        with cur.copy(f"COPY outcome_facts ({', '.join(FACT_COLUMNS)}) FROM STDIN") as copy:
            for fact, entry in generate(n):
                copy.write_row(fact)
                if entry is not None:
                    entries.append(entry)
        with cur.copy(f"COPY meter_entries ({', '.join(ENTRY_COLUMNS)}) FROM STDIN") as copy:
            for entry in entries:
                copy.write_row(entry)
        entries.clear()
        raw.commit()
        print(f"  plain: {time.perf_counter() - start:.0f} s", flush=True)
        cur.execute("SET session_replication_role = replica")  # see the module docstring
        for table in ("outcome_facts", "meter_entries"):
            cur.execute(f'INSERT INTO "{schemas[1]}".{table} SELECT * FROM "{schemas[0]}".{table}')
        raw.commit()
        print(f"  partitioned: {time.perf_counter() - start:.0f} s", flush=True)
    finally:
        raw.close()
    for engine in (plain, parted):
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("VACUUM ANALYZE outcome_facts")
            conn.exec_driver_sql("VACUUM ANALYZE meter_entries")
    return time.perf_counter() - start


def _percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[max(0, round(0.95 * len(ordered)) - 1)]


def explain(engine: Any, sql: str, params: tuple[Any, ...]) -> str:
    with engine.connect() as conn:
        found = conn.exec_driver_sql("EXPLAIN (ANALYZE, COSTS OFF) " + sql, params).all()
    return "\n".join(f"    {r[0]}" for r in found)


def cases(engines: dict[str, Any]) -> dict[str, dict[str, Callable[[], Any]]]:
    """Per query, per layout, a function that runs it once and returns its answer."""
    from ledger.meters import verified_outcomes

    now = datetime(2026, 1, 1, tzinfo=UTC)

    def meter(engine: Any) -> Callable[[], Any]:
        def run() -> Any:
            found = verified_outcomes(
                engine, "acme", since=MONTH[0], until=MONTH[1], window="month",
                group_by=["agent", "tier"], now=now,
            )  # fmt: skip
            return sorted((str(r["group"]), r["value"]) for r in found)

        return run

    def sql(engine: Any, text: str, params: tuple[Any, ...]) -> Callable[[], Any]:
        def run() -> Any:
            with engine.connect() as conn:
                return sorted((tuple(r) for r in conn.exec_driver_sql(text, params)), key=repr)

        return run

    return {
        "meter, one tenant-month": {k: meter(e) for k, e in engines.items()},
        "meter SQL, one tenant-month": {
            k: sql(e, HAND_METER, ("acme", *MONTH)) for k, e in engines.items()
        },
        "facts received in one month": {
            k: sql(e, FACTS_MONTH, ("acme", MONTH[0])) for k, e in engines.items()
        },
    }


def measure(engines: dict[str, Any], runs: int, warmup: int) -> list[dict[str, Any]]:
    results = []
    for label, fns in cases(engines).items():
        answers = {k: fn() for k, fn in fns.items()}
        if answers["plain"] != answers["partitioned"]:
            raise SystemExit(f"{label}: the layouts disagree: {answers}")
        timed: dict[str, list[float]] = {"plain": [], "partitioned": []}
        for i in range(warmup + runs):
            for name in ("plain", "partitioned") if i % 2 == 0 else ("partitioned", "plain"):
                start = time.perf_counter()
                fns[name]()
                if i >= warmup:
                    timed[name].append(time.perf_counter() - start)
        p50, p95 = _percentiles(timed["plain"])
        q50, q95 = _percentiles(timed["partitioned"])
        results.append({"case": label, "plain": (p50, p95), "partitioned": (q50, q95)})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", type=int, default=10_000_000, help="outcome facts to load")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per query and layout")
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    pg = os.environ.get("OUTCOME_JUDGE_BENCH_PG_URL") or os.environ.get("OUTCOME_JUDGE_TEST_PG_URL")
    if not pg:
        sys.exit(
            "set OUTCOME_JUDGE_BENCH_PG_URL (or OUTCOME_JUDGE_TEST_PG_URL) to a PostgreSQL URL"
        )

    from sqlalchemy.engine import make_url

    from ledger.db import make_engine
    from ledger.partitions import convert
    from ledger.schema import migrate

    with pg_schema(pg, prefix="bench_plain") as plain_url, \
            pg_schema(pg, prefix="bench_parted") as parted_url:  # fmt: skip
        engines = {"plain": make_engine(plain_url), "partitioned": make_engine(parted_url)}
        schemas = tuple(
            make_url(u).query["options"].split("=", 1)[1]  # type: ignore[union-attr]
            for u in (plain_url, parted_url)
        )
        try:
            for engine in engines.values():
                migrate(engine)
            # Partitions for the 24 months of the load: judge db partition creates them ahead.
            report = convert(engines["partitioned"], months_ahead=MONTHS - 1, now=START)
            print(f"partitioned: {len(report.partitions['outcome_facts'])} partitions per table "
                  "(24 months and DEFAULT)", flush=True)  # fmt: skip
            print(f"loading {args.facts:,} facts and their meter entries ...", flush=True)
            seconds = load(engines["plain"], engines["partitioned"], schemas, args.facts)  # type: ignore[arg-type]
            print(f"loaded both layouts in {seconds:.0f} s\n", flush=True)
            for title, sql, params in (
                ("meter SQL, one tenant-month", HAND_METER, ("acme", *MONTH)),
                ("facts received in one month", FACTS_MONTH, ("acme", MONTH[0])),
            ):
                print(f"EXPLAIN ANALYZE, partitioned, {title}:")
                print(explain(engines["partitioned"], sql, params), flush=True)
            results = measure(engines, args.runs, args.warmup)
        finally:
            for engine in engines.values():
                engine.dispose()

    print(f"\n{args.facts:,} facts, one tenant-month (June 2025 of 24 months), "
          f"{args.runs} runs each, alternating (ms)")  # fmt: skip
    print("| query | plain p50 / p95 | partitioned p50 / p95 | partitioned / plain p50 |")
    print("|---|---|---|---|")
    for r in results:
        (p50, p95), (q50, q95) = r["plain"], r["partitioned"]
        print(f"| {r['case']} | {p50 * 1e3:.1f} / {p95 * 1e3:.1f} | "
              f"{q50 * 1e3:.1f} / {q95 * 1e3:.1f} | {q50 / p50:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
