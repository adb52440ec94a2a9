"""A PostgreSQL ledger partitioned by month (``judge db partition``, ledger.partitions).

Converting a populated ledger keeps every row and every answer; the uniqueness the ledger relies
on still raises in the database; time-bounded reads are pruned to their months (EXPLAIN);
upkeep creates the months ahead and never splits DEFAULT behind anyone's back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

from judge.models import Outcome
from ledger.cost_entries import record_review
from ledger.cost_report import cost_report
from ledger.db import make_engine
from ledger.ingest import outcome_detail
from ledger.meters import verified_outcomes, verified_outcomes_raw
from ledger.partition_upkeep import ensure_partitions, move_default_rows
from ledger.partitions import KEY_TABLES, PartitionError, convert, partitioned_tables
from ledger.periods import Periods
from ledger.review_queue import review_queue
from ledger.schema import migrate
from ledger.store import Ledger
from tests.ledger.conftest import _pg_schema, judge_call, run, ticket, verdict_for

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 7, 15, 12, tzinfo=UTC)  # the clock of every read, before and after
MONTHS = (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC),
          datetime(2026, 4, 1, tzinfo=UTC))  # fmt: skip
DECISIONS = ("verified", "verified", "not_verified", "abstain")


@pytest.fixture
def pg() -> Iterator[Engine]:
    with _pg_schema() as url:
        eng = make_engine(url)
        migrate(eng)
        yield eng
        eng.dispose()


def _ticket(outcome_id: str, moment: datetime, **changes: Any) -> Outcome:
    stamp = moment.isoformat().replace("+00:00", "Z")
    if outcome_id.endswith(("-1", "-4")):  # some outcomes come labelled (not in the queue)
        changes.setdefault("label", {"resolved": True, "by": "qa", "at": stamp})
    changes.setdefault("label", None)
    conversation = [{"role": "customer", "text": "broken", "at": stamp},
                    {"role": "agent", "text": "refunded"}]  # fmt: skip
    return ticket(outcome_id, conversation=conversation,
                  touches=[{"actor": "bot:fin", "kind": "ai"}], **changes)  # fmt: skip


def set_clock(monkeypatch: pytest.MonkeyPatch, moment: datetime) -> None:
    """The write time of the rows the ledger stores (an outcome's ``received_at``, which picks
    its partition): the row-by-row writer's clock and the set-based one's."""
    for module in ("ledger.store", "ledger.ingest_batch", "ledger.verdict_batch"):
        monkeypatch.setattr(f"{module}.utcnow", lambda: moment)


def populate(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outcomes received in Feb, Mar and Apr 2026 (two tenants), revised, judged, called,
    labelled, reviewed and revoked, so that every partitioned table spans several months."""
    for tenant in ("acme", "globex"):
        ledger = Ledger(engine, tenant=tenant)
        for m, month in enumerate(MONTHS):
            received = month + timedelta(days=20)
            set_clock(monkeypatch, received)
            items, calls = [], []
            for i in range(6):
                oid = f"{tenant[0].upper()}-{m}-{i}"
                outcome = _ticket(oid, month + timedelta(days=3 + i, hours=i))
                verdict = verdict_for(outcome, decision=DECISIONS[i % 4], tier="confirmed")
                items.append((outcome, verdict))
                calls.append(judge_call(f"{oid}-k", outcome_id=oid, at=received))
            ledger.record_results(items, calls=calls, now=received)
            # A revision received a week later, judged again (the fact follows it).
            later = received + timedelta(days=7)
            set_clock(monkeypatch, later)
            revised = _ticket(f"{tenant[0].upper()}-{m}-0", month + timedelta(days=4),
                              signals={"csat": 4})  # fmt: skip
            ledger.record_results([(revised, verdict_for(revised, decision="abstain"))], now=later)
    monkeypatch.undo()
    reviewed = MONTHS[1] + timedelta(days=25)
    record_review(engine, tenant="acme", outcome_id="A-1-1", minutes=7, at=reviewed, now=NOW)
    with engine.connect() as conn:
        verified = conn.execute(sa.text("SELECT pk FROM verdicts WHERE outcome_id = 'A-2-1'"))
        verdict_pk = verified.scalar_one()
    Periods(engine, tenant="acme").book_revocation(
        "A-2-1", verdict_pk=verdict_pk, reason="reopened", detail="came back",
        at=MONTHS[2] + timedelta(days=10), now=NOW,
    )  # fmt: skip


def rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every ledger table, in primary key order."""
    out = {}
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            order = [c for c in table.primary_key.columns] or list(table.columns)
            out[table.name] = [tuple(r) for r in conn.execute(sa.select(table).order_by(*order))]
    return out


def answers(engine: Engine) -> dict[str, Any]:
    """What the ledger answers: meters, review queue, cost report, outcome detail, counts."""
    since, until = MONTHS[0], MONTHS[2] + timedelta(days=61)
    found: dict[str, Any] = {}
    for tenant in ("acme", "globex"):
        windows: tuple[tuple[Literal["day", "month"], list[str]], ...] = (
            ("month", ["agent", "tier"]),
            ("day", []),
        )
        for window, group_by in windows:
            found[f"meter {tenant} {window}"] = verified_outcomes(
                engine, tenant, since=since, until=until, window=window, group_by=group_by, now=NOW
            )
        queue, total = review_queue(engine, tenant)
        found[f"queue {tenant}"] = (total, [repr(item) for item in queue])
        report = cost_report(engine, tenant, dims=["agent_version"], since=since, until=until,
                             now=NOW, labor_rate=30.0)  # fmt: skip
        found[f"cost {tenant}"] = report.model_dump(mode="json", by_alias=True)
        every = cost_report(engine, tenant, dims=["agent_version"], now=NOW, labor_rate=30.0)
        found[f"cost all {tenant}"] = every.model_dump(mode="json", by_alias=True)
        found[f"counts {tenant}"] = Ledger(engine, tenant=tenant).counts()
        for oid in (f"{tenant[0].upper()}-0-0", f"{tenant[0].upper()}-2-1"):
            found[f"detail {tenant} {oid}"] = json.dumps(
                outcome_detail(engine, tenant, oid), default=str, sort_keys=True
            )
    return found


def test_converting_keeps_every_row_and_every_answer(
    pg: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(pg, monkeypatch)
    before_answers = answers(pg)
    before_rows = rows(pg)
    # The answers compared are not empty ones.
    assert sum(r["value"] for r in before_answers["meter acme month"]) > 0
    assert before_answers["queue acme"][0] > 0 and before_answers["queue globex"][0] > 0
    assert before_answers["cost all acme"]["groups"], before_answers["cost all acme"]
    report = convert(pg, now=NOW)
    assert report.converted
    assert rows(pg) == before_rows
    assert answers(pg) == before_answers
    with pg.connect() as conn:
        assert partitioned_tables(conn) == {"outcomes", "outcome_facts", "judge_calls",
                                            "meter_entries"}  # fmt: skip
        by_partition = "SELECT tableoid::regclass::text, count(*) FROM outcomes GROUP BY 1"
        spread: dict[str, int] = {n: c for n, c in conn.execute(sa.text(by_partition)).all()}
        keys = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in KEY_TABLES}  # fmt: skip
    # Per month: 2 tenants x (6 outcomes + 1 revision); one month key per outcome.
    assert spread == {"outcomes_p202602": 14, "outcomes_p202603": 14, "outcomes_p202604": 14}
    assert keys == {"outcome_revisions": 42, "outcome_months": 36}
    # Partitioned, the ledger goes on writing: a new revision, a new outcome and its verdict.
    ledger = Ledger(pg, tenant="acme")
    again = _ticket("A-0-1", MONTHS[0] + timedelta(days=4, hours=1), signals={"csat": 2})
    [result] = ledger.record_results([(again, verdict_for(again))])
    assert result.outcome.revision == 2
    assert convert(pg).converted is False  # idempotent


def test_uniqueness_is_still_enforced_by_the_database(pg: Engine) -> None:
    ledger = Ledger(pg, tenant="acme")
    outcome = ticket("T-1")
    ledger.record_results([(outcome, verdict_for(outcome))])
    convert(pg)
    with pg.connect() as conn:
        row = dict(conn.execute(sa.text("SELECT * FROM outcomes")).mappings().one())
        fact = dict(conn.execute(sa.text("SELECT * FROM outcome_facts")).mappings().one())
    row.pop("pk"), fact.pop("pk")
    later = row["received_at"] + timedelta(days=40)  # another month: another partition
    duplicates = [
        ("outcomes", row),  # the same revision again, same partition
        ("outcomes", {**row, "received_at": later}),  # the same revision in another month
        ("outcome_facts", fact),
        ("outcome_facts", {**fact, "outcome_month": datetime(2026, 1, 1, tzinfo=UTC)}),
    ]
    for table, values in duplicates:
        columns = ", ".join(values)
        marks = ", ".join(f":{k}" for k in values)
        stmt = sa.text(f"INSERT INTO {table} ({columns}) VALUES ({marks})")
        if table == "outcomes":
            stmt = stmt.bindparams(sa.bindparam("payload", type_=sa.JSON))
        with pytest.raises(IntegrityError), pg.begin() as conn:
            conn.execute(stmt, values)
    # A verdict must name an existing revision.
    with pytest.raises(IntegrityError), pg.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO verdicts (tenant, outcome_id, outcome_revision, content_hash, decision,"
            " confidence, rubric, panel, flags, payload, cost_usd, created_at) VALUES ('acme',"
            " 'T-1', 2, 'h', 'verified', 1, 'r', 'p', '[]', '{}', 0, now())"))  # fmt: skip
    # Through the ledger, the same outcome again is still one row.
    assert ledger.record_outcome(outcome).created is False
    assert ledger.counts()["outcome_revisions"] == 1


def _relations(engine: Engine, run_reads: Any, marker: str, *, required: bool = True) -> set[str]:
    """The tables and partitions the plans of the reads' statements touching ``marker`` scan."""
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if marker in statement and statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        run_reads()
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    assert seen or not required, f"no statement read {marker}"
    found: set[str] = set()
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, parameters in seen:
            cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
            plan = cursor.fetchone()
            assert plan is not None
            found |= _plan_relations(plan[0][0]["Plan"])
    finally:
        raw.close()
    return found


def _plan_relations(node: dict[str, Any]) -> set[str]:
    here = {node["Relation Name"]} if "Relation Name" in node else set()
    for child in node.get("Plans", []):
        here |= _plan_relations(child)
    return here


def _scanned(found: set[str], table: str) -> set[str]:
    return {name for name in found if name == table or name.startswith(f"{table}_")}


def test_time_bounded_reads_touch_only_their_months(
    pg: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(pg, monkeypatch)
    convert(pg, now=NOW)
    march, april = MONTHS[1], MONTHS[2]

    def meter() -> None:
        verified_outcomes(pg, "acme", since=march, until=april, window="day", now=NOW)

    def raw_meter() -> None:
        verified_outcomes_raw(pg, "acme", since=march, until=april, window="day", now=NOW)

    meter()  # the first read publishes the final mark (and rolls up the days it makes final)
    found = _relations(pg, raw_meter, "meter_entries")
    assert _scanned(found, "meter_entries") == {"meter_entries_p202603"}
    # The meter itself reads March's final days from the rollups; whatever it still reads
    # from the entries (provisional days) stays in March's partition.
    live = _relations(pg, meter, "meter_entries", required=False)
    assert _scanned(live, "meter_entries") <= {"meter_entries_p202603"}

    def costs() -> None:
        cost_report(pg, "acme", dims=[], since=march, until=april, now=NOW)

    calls = _relations(pg, costs, "judge_calls")
    assert _scanned(calls, "judge_calls") == {"judge_calls_p202603"}
    entries = _relations(pg, costs, "meter_entries")
    assert _scanned(entries, "meter_entries") == {"meter_entries_p202603"}

    # Without a time bound every month is read: the assertion above can fail.
    def everything() -> None:
        cost_report(pg, "acme", dims=[], now=NOW)

    assert len(_scanned(_relations(pg, everything, "judge_calls"), "judge_calls")) > 3


def test_upkeep_creates_months_ahead_and_moves_default_rows(pg: Engine) -> None:
    convert(pg, months_ahead=1, now=NOW)
    later = datetime(2031, 5, 1, tzinfo=UTC)
    made = ensure_partitions(pg, months_ahead=2, now=later)
    assert {n for n in made.created if n.startswith("judge_calls")} == {
        "judge_calls_p203105", "judge_calls_p203106", "judge_calls_p203107"}  # fmt: skip
    assert ensure_partitions(pg, months_ahead=2, now=later).created == []  # nothing twice
    # A call in a month without a partition lands in DEFAULT; upkeep does not split it.
    stray = datetime(2033, 2, 3, tzinfo=UTC)
    ledger = Ledger(pg, tenant="acme")
    ledger.record_calls([judge_call("k-stray", at=stray)])
    found = ensure_partitions(pg, months_ahead=0, now=stray)
    assert "judge_calls_p203302" in found.blocked
    assert found.default_rows == {"judge_calls": 1}
    assert move_default_rows(pg) == {"judge_calls": 1}
    with pg.connect() as conn:
        where = conn.execute(sa.text("SELECT tableoid::regclass::text FROM judge_calls "
                                     "WHERE cache_key = 'k-stray'")).scalar_one()  # fmt: skip
    assert where == "judge_calls_p203302"
    assert ensure_partitions(pg, months_ahead=0, now=stray).default_rows == {}


def test_outcomes_move_out_of_default_with_their_keys(
    pg: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    convert(pg, months_ahead=0, now=NOW)
    received = datetime(2035, 1, 9, tzinfo=UTC)  # no partition: DEFAULT
    set_clock(monkeypatch, received)
    outcome = ticket("T-9", label=None)
    Ledger(pg, tenant="acme").record_results([(outcome, verdict_for(outcome))], now=received)
    moved = move_default_rows(pg)
    assert moved["outcomes"] == 1 and moved["outcome_facts"] == 1
    assert Ledger(pg, tenant="acme").counts()["outcome_revisions"] == 1


def test_the_command_converts_once_and_refuses_sqlite(pg: Engine, tmp_path: Any) -> None:
    url = pg.url.render_as_string(hide_password=False)
    first = run("db", "partition", "--db", url)
    assert first.exit_code == 0, first.output
    assert "partitioned" in first.output and "already" not in first.output
    second = run("db", "partition", "--db", url)
    assert second.exit_code == 0 and "already partitioned" in second.output
    refused = run("db", "partition", "--db", f"sqlite:///{tmp_path}/x.db")
    assert refused.exit_code == 2
    assert "needs PostgreSQL" in refused.output and "postgresql+psycopg://" in refused.output


def test_conversion_is_all_or_nothing(pg: Engine) -> None:
    """A fact whose month contradicts its outcome is refused, and nothing is changed."""
    ledger = Ledger(pg, tenant="acme")
    outcome = ticket("T-1")
    ledger.record_results([(outcome, verdict_for(outcome))])
    with pg.begin() as conn:
        conn.execute(sa.text("UPDATE outcome_facts SET outcome_month = '2020-01-01Z'"))
    with pytest.raises(PartitionError, match="fk_outcome_facts_month"):
        convert(pg)
    with pg.connect() as conn:
        assert partitioned_tables(conn) == set()
        assert conn.execute(sa.text("SELECT count(*) FROM outcomes")).scalar_one() == 1
