"""Benchmark of the verified-outcomes meter at 1,000,000 outcomes for one tenant (or ``--rows``).

Not a test: run ``python bench/bench_meters.py`` and read the table. For each database (SQLite
in a temporary file; PostgreSQL in a dedicated schema, dropped afterwards, when
``OUTCOME_JUDGE_BENCH_PG_URL`` or ``OUTCOME_JUDGE_TEST_PG_URL`` is set) it:

1. migrates an empty ledger (so the real ``ix_meter_entries_meter`` and
   ``ix_meter_rollups_meter`` indexes are there);
2. bulk-loads the ``meter_entries`` of ``--rows`` outcomes of tenant ``acme`` (COPY on
   PostgreSQL, executemany on SQLite; 70 % verified, so 0.7 entries per outcome, 1 % of them
   late arrivals), spread over the 12 months of 2025 in roughly arrival order, over 5 agents,
   4 tiers (with None), 4 versions and 3 model paths, plus ``--other`` outcomes of two other
   tenants; then ``VACUUM ANALYZE`` / ``ANALYZE`` as a production database would have run;
3. publishes the tenant final through 2025-12-28 (the first meter read at 2026-01-01 does: it
   rolls up every final day of the year, timed once);
4. times, alternating, ``--runs`` times each on PostgreSQL (``--sqlite-runs`` on SQLite) after a
   warm-up: :func:`ledger.meters.verified_outcomes` (final days from the rollups, the rest
   live), :func:`ledger.meters.verified_outcomes_raw` (every entry: the meter before rollups),
   the same grouped sum hand-written in SQL over the entries, and over the rollups (through the
   raw driver cursor on a connection of the same engine); for one tenant-month (June 2025,
   final) three ways, and for December 2025 whose last 4 days are provisional (counted live);
   and prints p50 / p95 and the ratios.

Every path must return the same count (checked before timing). No figure here is asserted
anywhere; the targets (PostgreSQL p95 <= 5 ms at 1M facts, <= 20 ms at 10M) are read off the
table.
"""

from __future__ import annotations

import argparse
import gc
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
JUNE = (datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC))
#: December 2025: final through the 27th at NOW, its last 4 days provisional (counted live).
DECEMBER = (datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
#: The meter reads' clock: every day of 2025 up to Dec 28 is final.
NOW = datetime(2026, 1, 1, tzinfo=UTC)
AGENTS = ("bot:fin", "bot:ada", "bot:sage", "bot:echo", None)
TIERS = ("confirmed", "assumed", "assisted", None)
VERSIONS = ("fin@2.3", "fin@2.4", "ada@1.0", "sage@0.9")
PATHS = ("gpt-4o-mini", "claude-haiku", "llama-3-70b")
COLUMNS = (
    "tenant", "outcome_id", "verdict_pk", "delta", "reason", "booked_at", "anchor_at",
    "final_at", "tier", "agent", "agent_version", "model_path", "created_at",
)  # fmt: skip
SPAN = timedelta(hours=96)
#: (label, window, group_by, range) of the meter requests timed.
CASES: tuple[tuple[str, str, list[str], tuple[datetime, datetime]], ...] = (
    ("month", "month", [], JUNE),
    ("month by agent,tier", "month", ["agent", "tier"], JUNE),
    ("day by agent,tier", "day", ["agent", "tier"], JUNE),
    ("Dec. by agent,tier, 4 days live", "month", ["agent", "tier"], DECEMBER),
)
#: The paths timed: the meter from rollups, the meter from entries, hand SQL on each table.
PATHS_TIMED = ("rollup", "raw", "sql", "sql_rollup")


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


def hand_sql(dialect: str, window: str, dims: list[str], *, rollups: bool = False) -> str:
    """The meter's query as a billing engineer would write it for one range.

    By month the range is one window: no window column, just the groups. By day:
    ``date_trunc`` of the UTC time (PostgreSQL) or the day prefix of the stored UTC text
    (SQLite). ``rollups``: the same sum over the rows of ``meter_rollups`` grouped by ``dims``
    (whole final days only).
    """
    mark = "%s" if dialect == "postgresql" else "?"
    table, at, value, last = (
        ("meter_rollups", "day", "value", "last_final")
        if rollups
        else ("meter_entries", "booked_at", "delta", "final_at")
    )
    if window == "month":
        bucket = []
    elif dialect == "postgresql":
        bucket = [f"date_trunc('day', {at} AT TIME ZONE 'UTC')"]
    else:
        bucket = [f"substr({at}, 1, 10)"]
    keys = [*bucket, *dims, "reason"]
    group = f" GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}"
    if rollups:  # the rows summed by these dimensions only
        from ledger.meter_rollups import group_mask

        group = f" AND group_mask = {group_mask(dims)}{group}"
    return (
        f"SELECT {''.join(f'{k}, ' for k in keys)}sum({value}), max({last}) FROM {table} "
        f"WHERE tenant = {mark} AND {at} >= {mark} AND {at} < {mark}{group}"
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


def _params(dialect: str, since: datetime, until: datetime) -> tuple[Any, ...]:
    if dialect == "postgresql":
        return ("acme", since, until)
    return ("acme", _sqlite_text(since), _sqlite_text(until))


def _case_paths(
    engine: Any, raw: Any, window: str, dims: list[str], span: tuple[datetime, datetime]
) -> dict[str, Callable[[], int]]:
    """The four ways to count one case; each returns the net count it found."""
    from ledger.meters import verified_outcomes, verified_outcomes_raw

    dialect = engine.dialect.name
    since, until = span
    at = len(dims) + (window == "day") + 1  # the sum column (after reason)

    def meter(fn: Callable[..., list[dict[str, Any]]]) -> Callable[[], int]:
        def count() -> int:
            found = fn(engine, "acme", since=since, until=until, window=window, group_by=dims,
                       now=NOW)  # fmt: skip
            return sum(r["value"] for r in found)

        return count

    def hand(sql: str, spans: list[tuple[datetime, datetime]]) -> Callable[[], int]:
        def count() -> int:
            cur = raw.cursor()
            total = 0
            for a, b in spans:
                cur.execute(sql, _params(dialect, a, b))
                total += sum(row[at] for row in cur.fetchall())
            cur.close()
            raw.rollback()  # the meter's read-only session ends its transaction too
            return total

        return count

    # Hand SQL over the rollups: the final days from them, the live days from the entries.
    live = max(since, min(until, FINAL_THROUGH))
    rollup_spans = [(since, live)] if since < live else []
    return {
        "rollup": meter(verified_outcomes),
        "raw": meter(verified_outcomes_raw),
        "sql": hand(hand_sql(dialect, window, dims), [span]),
        "sql_rollup": _joined(
            hand(hand_sql(dialect, window, dims, rollups=True), rollup_spans),
            hand(hand_sql(dialect, window, dims), [(live, until)] if live < until else []),
        ),
    }


def _joined(*counts: Callable[[], int]) -> Callable[[], int]:
    return lambda: sum(count() for count in counts)


#: The day W reaches at NOW (settled_through, floored to the day): days before it are rolled.
FINAL_THROUGH = datetime(2025, 12, 28, tzinfo=UTC)


def measure(engine: Any, runs: int, warmup: int) -> list[dict[str, Any]]:
    dialect = engine.dialect.name
    results = []
    raw = engine.raw_connection()
    pids: dict[str, int | None] = dict.fromkeys(PATHS_TIMED)
    if dialect == "postgresql":
        pids["sql"] = pids["sql_rollup"] = _pid(raw)
        pooled = engine.raw_connection()  # the pool's other connection: the meter's sessions
        pids["rollup"] = pids["raw"] = _pid(pooled)
        pooled.close()
    # The API process that serves meters freezes its start-up heap (api/app.py): what is alive
    # now stays out of the collector's full passes, as it does there (every path alike).
    gc.collect()
    gc.freeze()
    try:
        for label, window, dims, span in CASES:
            fns = _case_paths(engine, raw, window, dims, span)
            counts = {name: fn() for name, fn in fns.items()}
            if len(set(counts.values())) != 1:
                raise SystemExit(f"{dialect} {label}: the paths disagree: {counts}")
            timed: dict[str, list[float]] = {name: [] for name in fns}
            cpu: dict[str, float] = dict.fromkeys(fns, 0.0)
            client: dict[str, list[float]] = {name: [] for name in fns}
            order = list(fns)
            for i in range(warmup + runs):
                for name in order[i % len(order) :] + order[: i % len(order)]:  # rotate
                    server, thread = _backend_cpu(pids[name]), time.thread_time()
                    start = time.perf_counter()
                    fns[name]()
                    if i >= warmup:
                        timed[name].append(time.perf_counter() - start)
                        client[name].append(time.thread_time() - thread)
                        cpu[name] += _backend_cpu(pids[name]) - server
            row: dict[str, Any] = {"db": dialect, "case": label, "verified": counts["raw"]}
            for name in fns:
                row[f"{name}_p50"], row[f"{name}_p95"] = _percentiles(timed[name])
                row[f"{name}_cpu"] = cpu[name] / runs
                row[f"{name}_client"] = statistics.median(client[name])
            row["cpu_known"] = None not in pids.values()
            results.append(row)
    finally:
        raw.close()
    return results


def plan(engine: Any) -> str:
    """The plan of the rollup query for June by agent,tier (PostgreSQL: an index-only scan)."""
    sql = hand_sql(engine.dialect.name, "month", ["agent", "tier"], rollups=True)
    with engine.connect() as conn:
        if engine.dialect.name != "postgresql":
            found = conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + sql, _params("sqlite", *JUNE)
            ).all()
            return "; ".join(str(r[-1]) for r in found)
        found = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql, ("acme", *JUNE)).all()
    return "\n".join(f"    {r[0]}" for r in found)


def roll_up(engine: Any) -> tuple[float, int]:
    """The first meter read's publication of 2025 as final (rolls up every final day)."""
    import sqlalchemy as sa

    from ledger.bookings import publish_final_through

    start = time.perf_counter()
    publish_final_through(engine, "acme", NOW)
    seconds = time.perf_counter() - start
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        rows = conn.execute(sa.text("SELECT count(*) FROM meter_rollups")).scalar_one()
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("VACUUM ANALYZE meter_rollups")  # as autovacuum would
        else:
            conn.exec_driver_sql("ANALYZE")
    return seconds, int(rows)


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
        seconds, rolled = roll_up(engine)
        print(
            f"{engine.dialect.name}: rolled 2025 up to Dec 28 into {rolled:,} rows in "
            f"{seconds:.1f} s (once: each later day is rolled by the read that makes it final)",
            flush=True,
        )
        if args.plan:
            print(plan(engine), flush=True)
        runs = args.runs if engine.dialect.name == "postgresql" else args.sqlite_runs
        return measure(engine, runs, args.warmup)
    finally:
        engine.dispose()


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}" if seconds < 0.01 else f"{seconds * 1e3:.1f}"


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"\nmeter of one tenant of {args.rows:,} outcomes ({args.runs} runs each on PostgreSQL, "
        f"{args.sqlite_runs} on SQLite, ms): rollups = verified_outcomes (final days from "
        "meter_rollups, the rest live), raw = verified_outcomes_raw (every entry), SQL = the "
        "hand-written grouped sum over the entries, SQL rollups = over the rollups"
    )
    head = ["db", "query", "verified", "rollups p50 / p95", "raw p50 / p95", "SQL p50 / p95"]
    head += ["SQL rollups p50 / p95", "raw / rollups p50", "rollups / SQL rollups p50"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in results:
        cells = [r["db"], r["case"], f"{r['verified']:,}"]
        cells += [f"{_ms(r[f'{n}_p50'])} / {_ms(r[f'{n}_p95'])}" for n in PATHS_TIMED]
        cells += [
            f"{r['raw_p50'] / r['rollup_p50']:.1f}x",
            f"{r['rollup_p50'] / r['sql_rollup_p50']:.2f}x",
        ]
        print("| " + " | ".join(cells) + " |")
    print(
        "\nCPU per query (ms): the client's (Python thread, median) and, on PostgreSQL, the "
        "backend's (user+system, mean; 10 ms ticks, so an average): what a query costs on an "
        "idle core, whatever the machine's load"
    )
    print("| db | query | rollups | raw | SQL | SQL rollups |")
    print("|---|---|---|---|---|---|")
    for r in results:
        cells = [
            f"{_ms(r[f'{n}_client'])} + {_ms(r[f'{n}_cpu'])}" if r.get("cpu_known")
            else _ms(r[f"{n}_client"])
            for n in PATHS_TIMED
        ]  # fmt: skip
        print(f"| {r['db']} | {r['case']} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="outcomes of the tenant")
    parser.add_argument("--other", type=int, default=100_000, help="outcomes of other tenants")
    parser.add_argument("--runs", type=int, default=50, help="timed runs per query (PostgreSQL)")
    parser.add_argument(
        "--sqlite-runs", type=int, default=15, help="timed runs per query on SQLite (slower)"
    )
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--plan", action="store_true", help="print the rollup query's plan")
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
    report(results, args)


if __name__ == "__main__":
    main()
