"""Benchmark of the verified-outcomes meter at 1,000,000 outcomes for one tenant.

Not a test: run ``python bench/bench_meters.py`` and read the table. For each database (SQLite
in a temporary file; PostgreSQL in a dedicated schema, dropped afterwards, when
``OUTCOME_JUDGE_BENCH_PG_URL`` or ``OUTCOME_JUDGE_TEST_PG_URL`` is set) it:

1. migrates an empty ledger (so the real ``ix_meter_entries_meter`` index is there);
2. bulk-loads the ``meter_entries`` of ``--rows`` outcomes of tenant ``acme`` (COPY on
   PostgreSQL, executemany on SQLite; 70 % verified, so 0.7 entries per outcome, 1 % of them
   late arrivals), spread over the 12 months of 2025 in roughly arrival order, over 5 agents,
   4 tiers (with None), plus ``--other`` outcomes of two other tenants; then
   ``VACUUM ANALYZE`` / ``ANALYZE`` as a production database would have run;
3. times :func:`ledger.meters.verified_outcomes` for ONE tenant-month (June 2025), and the
   equivalent hand-written SQL (the same grouped count and ``max(final_at)``, through the raw
   driver cursor on a connection of the same engine), alternating the two, ``--runs`` times each
   on PostgreSQL (``--sqlite-runs`` on SQLite, whose scan is slower) after a warm-up, and prints
   p50 / p95 and their ratio (meter / hand SQL).

The ratio is what the meter adds on top of the query itself (validation, SQLAlchemy, shaping
rows), so it is independent of the machine; the absolute PostgreSQL p95 is the service target
(< 50 ms). No figure here is asserted anywhere.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _pg import pg_schema  # bench/_pg.py (bench/ is the script's folder on sys.path)

YEAR = datetime(2025, 1, 1, tzinfo=UTC)
MONTH = (datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC))
AGENTS = ("bot:fin", "bot:ada", "bot:sage", "bot:echo", None)
TIERS = ("confirmed", "assumed", "assisted", None)
VERSIONS = ("fin@2.3", "fin@2.4", "ada@1.0", "sage@0.9")
PATHS = ("gpt-4o-mini", "claude-haiku", "llama-3-70b")
COLUMNS = (
    "tenant", "outcome_id", "verdict_pk", "delta", "reason", "booked_at", "anchor_at",
    "final_at", "tier", "agent", "agent_version", "model_path", "created_at",
)  # fmt: skip
SPAN = timedelta(hours=96)
#: (label, window, group_by) of the meter requests timed, all over the same tenant-month.
CASES: tuple[tuple[str, str, list[str]], ...] = (
    ("month", "month", []),
    ("month by agent,tier", "month", ["agent", "tier"]),
    ("day by agent,tier", "day", ["agent", "tier"]),
)


def rows(tenant: str, n: int, seed: int, *, text: bool) -> Iterator[tuple[Any, ...]]:
    """The meter entries of ``n`` outcomes of ``tenant`` over 2025 (one +1 per verified one),
    anchors in arrival order give or take two days.

    ``text``: timestamps as the ledger's SQLite text (naive UTC with microseconds, see
    ``ledger.tables.UTCDateTime``) instead of aware datetimes. The random draws are made in
    bulk (``choices``): generating the rows must not dominate the load.
    """
    rng = random.Random(seed)
    seconds = 365 * 86400
    jitter = [rng.randint(-172800, 172800) for _ in range(n)]
    decisions = rng.choices(("verified", "not_verified", "abstain"), (70, 20, 10), k=n)
    tiers, agents = rng.choices(TIERS, k=n), rng.choices(AGENTS, k=n)
    versions, paths = rng.choices(VERSIONS, k=n), rng.choices(PATHS, k=n)
    base = YEAR.replace(tzinfo=None) if text else YEAR
    for i in range(n):
        if decisions[i] != "verified":
            continue
        offset = max(0, min(seconds - 1, i * seconds // n + jitter[i]))
        anchor = base + timedelta(seconds=offset)
        final = anchor + SPAN
        late = i % 100 == 0
        booked = anchor + SPAN * 2 if late else anchor
        a: Any = anchor.isoformat(" ", "microseconds") if text else anchor
        f: Any = final.isoformat(" ", "microseconds") if text else final
        b: Any = booked.isoformat(" ", "microseconds") if text else booked
        yield (
            tenant, f"{tenant}-{i:08d}", i + 1, 1, "late_arrival" if late else "verified", b, a,
            f, tiers[i], agents[i], versions[i], paths[i], f,
        )  # fmt: skip


def _sqlite_text(moment: datetime) -> str:
    # The ledger's SQLite storage format (ledger.tables.UTCDateTime: naive UTC, microseconds).
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def load(engine: Any, n: int, other: int) -> float:
    """Bulk-insert the entries straight into the table; return seconds taken."""
    from ledger.store import ensure_tenant

    tenants = [("acme", n), ("initech", other // 2), ("globex", other - other // 2)]
    for name, _ in tenants:
        ensure_tenant(engine, name)
    start = time.perf_counter()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if engine.dialect.name == "postgresql":
            with cur.copy(f"COPY meter_entries ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for seed, (name, count) in enumerate(tenants):
                    for row in rows(name, count, seed, text=False):
                        copy.write_row(row)
        else:
            sql = (
                f"INSERT INTO meter_entries ({', '.join(COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in COLUMNS)})"
            )
            cur.execute("BEGIN")
            for seed, (name, count) in enumerate(tenants):
                batch: list[tuple[Any, ...]] = []
                for row in rows(name, count, seed, text=True):
                    batch.append(row)
                    if len(batch) == 50_000:
                        cur.executemany(sql, batch)
                        batch.clear()
                cur.executemany(sql, batch)
        raw.commit()
    finally:
        raw.close()
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("VACUUM ANALYZE meter_entries")
        else:
            conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - start


def hand_sql(dialect: str, window: str, dims: list[str]) -> str:
    """The meter's query as a billing engineer would write it for June 2025.

    By month the range is one window: no window column, just the groups. By day:
    ``date_trunc`` of the UTC time (PostgreSQL) or the day prefix of the stored UTC text
    (SQLite).
    """
    mark = "%s" if dialect == "postgresql" else "?"
    if window == "month":
        bucket = []
    elif dialect == "postgresql":
        bucket = ["date_trunc('day', booked_at AT TIME ZONE 'UTC')"]
    else:
        bucket = ["substr(booked_at, 1, 10)"]
    keys = [*bucket, *dims, "reason"]
    group = f" GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}"
    return (
        f"SELECT {''.join(f'{k}, ' for k in keys)}sum(delta), max(final_at) FROM meter_entries "
        f"WHERE tenant = {mark} AND booked_at >= {mark} AND booked_at < {mark}{group}"
    )


def _percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[max(0, round(0.95 * len(ordered)) - 1)]


def _backend_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) a local PostgreSQL backend has used, or 0 when unknown.

    Wall times on a busy machine include waiting for a core; the backend's CPU time does not,
    so it says what the query costs on an idle core.
    """
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pid(conn: Any) -> int | None:
    """The backend process of a PostgreSQL connection, when it runs on this machine."""
    cur = conn.cursor()
    cur.execute("SELECT pg_backend_pid()")
    pid = int(cur.fetchone()[0])
    cur.close()
    conn.rollback()
    return pid if Path(f"/proc/{pid}/stat").exists() else None


def measure(engine: Any, runs: int, warmup: int) -> list[dict[str, Any]]:
    from ledger.meters import verified_outcomes

    dialect = engine.dialect.name
    now = datetime(2026, 1, 1, tzinfo=UTC)
    since, until = MONTH
    if dialect == "postgresql":
        params: tuple[Any, ...] = ("acme", since, until)
    else:
        params = ("acme", _sqlite_text(since), _sqlite_text(until))
    results = []
    raw = engine.raw_connection()
    pids: dict[str, int | None] = {"meter": None, "hand": None}
    if dialect == "postgresql":
        pids["hand"] = _pid(raw)
        pooled = engine.raw_connection()  # the pool's other connection: the meter's sessions
        pids["meter"] = _pid(pooled)
        pooled.close()
    try:
        for label, window, dims in CASES:
            sql = hand_sql(dialect, window, dims)

            def meter(window: str = window, dims: list[str] = dims) -> int:
                found = verified_outcomes(
                    engine, "acme", since=since, until=until, window=window,  # type: ignore[arg-type]
                    group_by=dims, now=now,
                )  # fmt: skip
                return sum(r["value"] for r in found)

            at = len(dims) + (window == "day") + 1  # the sum column (after reason)

            def hand(sql: str = sql, at: int = at) -> int:
                cur = raw.cursor()
                cur.execute(sql, params)
                total = sum(row[at] for row in cur.fetchall())
                cur.close()
                raw.rollback()  # the meter's read-only session ends its transaction too
                return total

            timed: dict[str, list[float]] = {"meter": [], "hand": []}
            cpu = {"meter": 0.0, "hand": 0.0, "meter_client": 0.0, "hand_client": 0.0}
            counts = {"meter": meter(), "hand": hand()}
            if counts["meter"] != counts["hand"]:
                raise SystemExit(f"{dialect} {label}: meter {counts} disagrees with hand SQL")
            fns: dict[str, Callable[[], int]] = {"meter": meter, "hand": hand}
            for i in range(warmup + runs):
                for name in ("meter", "hand") if i % 2 == 0 else ("hand", "meter"):
                    server, client = _backend_cpu(pids[name]), time.thread_time()
                    start = time.perf_counter()
                    fns[name]()
                    if i >= warmup:
                        timed[name].append(time.perf_counter() - start)
                        cpu[f"{name}_client"] += time.thread_time() - client
                        cpu[name] += _backend_cpu(pids[name]) - server
            m50, m95 = _percentiles(timed["meter"])
            h50, h95 = _percentiles(timed["hand"])
            results.append(
                {
                    "db": dialect, "case": label, "verified": counts["meter"],
                    "meter_p50": m50, "meter_p95": m95, "hand_p50": h50, "hand_p95": h95,
                    **{k: v / runs for k, v in cpu.items()},
                    "cpu_known": None not in pids.values(),
                }
            )  # fmt: skip
    finally:
        raw.close()
    return results


def plan(engine: Any) -> str:
    """The plan of the month-by-agent,tier query (PostgreSQL: the index-only scan)."""
    if engine.dialect.name != "postgresql":
        with engine.connect() as conn:
            sql = "EXPLAIN QUERY PLAN " + hand_sql("sqlite", "month", ["agent", "tier"])
            found = conn.exec_driver_sql(
                sql, ("acme", _sqlite_text(MONTH[0]), _sqlite_text(MONTH[1]))
            ).all()
        return "; ".join(str(r[-1]) for r in found)
    with engine.connect() as conn:
        sql = "EXPLAIN (ANALYZE, BUFFERS) " + hand_sql("postgresql", "month", ["agent", "tier"])
        found = conn.exec_driver_sql(sql, ("acme", *MONTH)).all()
    return "\n".join(f"    {r[0]}" for r in found)


def run(url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    from ledger.db import make_engine
    from ledger.schema import migrate

    engine = make_engine(url)
    try:
        migrate(engine)
        seconds = load(engine, args.rows, args.other)
        print(
            f"{engine.dialect.name}: loaded the entries of {args.rows + args.other:,} outcomes "
            f"in {seconds:.1f} s",
            flush=True,
        )
        if args.plan:
            print(plan(engine), flush=True)
        runs = args.runs if engine.dialect.name == "postgresql" else args.sqlite_runs
        return measure(engine, runs, args.warmup)
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="outcomes of the tenant")
    parser.add_argument("--other", type=int, default=100_000, help="outcomes of other tenants")
    parser.add_argument("--runs", type=int, default=50, help="timed runs per query (PostgreSQL)")
    parser.add_argument(
        "--sqlite-runs", type=int, default=15, help="timed runs per query on SQLite (slower)"
    )
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--plan", action="store_true", help="print the query plan")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()

    results: list[dict[str, Any]] = []
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory(prefix="bench-meters-") as tmp:
            results += run(f"sqlite:///{Path(tmp) / 'meters.db'}", args)
    pg = os.environ.get("OUTCOME_JUDGE_BENCH_PG_URL") or os.environ.get("OUTCOME_JUDGE_TEST_PG_URL")
    if pg:
        with pg_schema(pg, prefix="bench_meters") as url:
            results += run(url, args)
    else:
        print("PostgreSQL skipped: set OUTCOME_JUDGE_BENCH_PG_URL (or OUTCOME_JUDGE_TEST_PG_URL)")

    print(
        f"\nmeter query, one tenant-month (June 2025) of {args.rows:,} outcomes, "
        f"{args.runs} runs each on PostgreSQL, {args.sqlite_runs} on SQLite (ms)"
    )
    head = ["db", "query", "verified", "meter p50", "meter p95", "SQL p50", "SQL p95"]
    head += ["ratio p50", "ratio p95"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in results:
        print(
            f"| {r['db']} | {r['case']} | {r['verified']:,} | {r['meter_p50'] * 1e3:.1f} | "
            f"{r['meter_p95'] * 1e3:.1f} | {r['hand_p50'] * 1e3:.1f} | "
            f"{r['hand_p95'] * 1e3:.1f} | {r['meter_p50'] / r['hand_p50']:.2f}x | "
            f"{r['meter_p95'] / r['hand_p95']:.2f}x |"
        )
    cpu_rows = [r for r in results if r.get("cpu_known")]
    if cpu_rows:
        print(
            "\nCPU per query (ms, mean): the PostgreSQL backend's user+system time and the "
            "client's (Python) thread time: what a query costs on an idle core"
        )
        print("| query | meter: server | meter: client | SQL: server | SQL: client |")
        print("|---|---|---|---|---|")
        for r in cpu_rows:
            print(
                f"| {r['case']} | {r['meter'] * 1e3:.1f} | {r['meter_client'] * 1e3:.1f} | "
                f"{r['hand'] * 1e3:.1f} | {r['hand_client'] * 1e3:.1f} |"
            )


if __name__ == "__main__":
    main()
