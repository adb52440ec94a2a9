"""`judge export meter`: each verified outcome reaches a billing system once, each revocation as
one correction, across re-runs, failures and crashes (local fakes of the vendors' APIs)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from app.export.deliver import export_meter
from app.export.plan import plan_export
from app.export.targets import CANCEL_WINDOWS, TargetConfig
from judge.models import Outcome
from ledger.meter_exports import ExportedEvent, MeterEntry
from ledger.revocation import scan_revocations
from ledger.store import Ledger
from tests.fakes.billing_server import FakeBillingServer
from tests.ledger.conftest import TICKETS, run, ticket, verdict_for

TARGETS = ["cloudevents", "openmeter", "lago", "stripe"]
CUSTOMER, SUBSCRIPTION = "cus_acme", "sub_acme"


@pytest.fixture
def billing() -> Iterator[FakeBillingServer]:
    with FakeBillingServer() as server:
        yield server


def _config(billing: FakeBillingServer, target: str, tenant: str = "acme") -> TargetConfig:
    endpoint = {
        "cloudevents": f"{billing.base_url}/cloudevents",
        "openmeter": billing.base_url,
        "lago": f"{billing.base_url}/lago",
        "stripe": f"{billing.base_url}/stripe",
    }[target]
    return TargetConfig(
        target=target, endpoint=endpoint, token="tok", tenant=tenant,
        customer=CUSTOMER, subscription=SUBSCRIPTION,
    )  # fmt: skip


def _held(billing: FakeBillingServer, target: str) -> tuple[int, int]:
    """(events stored, net value) the fake holds for ``target``."""
    if target == "stripe":
        live = [e for e in billing.stripe_events if e["identifier"] not in billing.stripe_cancelled]
        return len(billing.stripe_events), sum(int(e["payload"]["value"]) for e in live)
    events = {"cloudevents": billing.cloudevents, "openmeter": billing.openmeter,
              "lago": billing.lago}[target]  # fmt: skip
    key = "properties" if target == "lago" else "data"
    return len(events), sum(int(e[key]["value"]) for e in events)


def _meter_net(engine: Engine) -> tuple[int, int]:
    import sqlalchemy as sa

    with engine.connect() as conn:
        plus = conn.execute(sa.text("SELECT count(*) FROM meter_entries WHERE delta = 1"))
        net = conn.execute(sa.text("SELECT coalesce(sum(delta), 0) FROM meter_entries"))
        return int(plus.scalar_one()), int(net.scalar_one())


def _reopen(engine: Engine, outcome: Outcome) -> None:
    """A later revision of ``outcome`` reopened 21 h after close; then the revocation scan."""
    data = outcome.model_dump(mode="json")
    closed = datetime.fromisoformat(
        (data["signals"].get("closed_at") or data["conversation"][-1]["at"]).replace("Z", "+00:00")
    )
    data["signals"] = {**data["signals"], "closed_at": closed.isoformat(),
                       "reopened_at": (closed + timedelta(hours=21)).isoformat()}  # fmt: skip
    Ledger(engine, tenant=outcome.tenant or "acme").record_outcome(Outcome.model_validate(data))
    scan_revocations(engine, tenant=outcome.tenant or "acme")


@pytest.mark.parametrize("target", TARGETS)
def test_the_shipped_sample_reaches_each_target_once_and_a_revocation_as_one_correction(
    target: str, ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    billing: FakeBillingServer,
) -> None:  # fmt: skip
    from ledger.db import make_engine

    for key in ("OUTCOME_JUDGE_MODEL", "OUTCOME_JUDGE_API_BASE", "OUTCOME_JUDGE_DB_URL"):
        monkeypatch.delenv(key, raising=False)
    out = tmp_path / "v.jsonl"
    assert run("verify", str(TICKETS), "--db", ledger_url, "--out", str(out)).exit_code == 0
    engine = make_engine(ledger_url)
    try:
        verified, net = _meter_net(engine)
        assert (
            verified
            == net
            == sum(
                json.loads(line)["decision"] == "verified" for line in out.read_text().splitlines()
            )
        )
        first = export_meter(engine, _config(billing, target))
        assert first.error is None and first.sent["usage"] == verified
        assert _held(billing, target) == (verified, verified)
        again = export_meter(engine, _config(billing, target))
        assert again.planned == 0 and again.requests == 0
        assert _held(billing, target) == (verified, verified)

        counted = next(
            Outcome.model_validate(json.loads(line))
            for line in TICKETS.read_text().splitlines()
            if json.loads(line)["id"] in _verified_ids(out)
        )
        _reopen(engine, counted)
        _, net_after = _meter_net(engine)
        assert net_after == verified - 1
        third = export_meter(engine, _config(billing, target))
        assert third.planned == 1 and third.error is None
        kind = "cancel" if target == "stripe" else "negative"
        assert third.sent[kind] == 1
        assert _held(billing, target)[1] == net_after == third.exported_total
        assert export_meter(engine, _config(billing, target)).planned == 0
    finally:
        engine.dispose()


def _verified_ids(verdicts: Path) -> set[str]:
    rows = [json.loads(line) for line in verdicts.read_text().splitlines()]
    return {r["outcome_id"] for r in rows if r["decision"] == "verified"}


def test_stripe_cancels_within_24_hours_and_sends_a_negative_event_after(
    engine: Engine, billing: FakeBillingServer
) -> None:
    ledger = Ledger(engine, tenant="acme")
    outcomes = [ticket(f"S-{i}") for i in range(2)]
    for outcome in outcomes:
        ledger.record_result(outcome, verdict_for(outcome))
    start = datetime.now(UTC) - timedelta(days=3)  # the labels below must not be in the future
    billing.now = start.timestamp()
    clock = {"now": start}
    config = _config(billing, "stripe")
    assert export_meter(engine, config, now=lambda: clock["now"]).sent["usage"] == 2
    # A human overturns S-0 within the hour: Stripe can still cancel the event.
    clock["now"] += timedelta(hours=1)
    billing.now = clock["now"].timestamp()
    _overturn(ledger, "S-0", clock["now"])
    first = export_meter(engine, config, now=lambda: clock["now"])
    assert first.sent["cancel"] == 1
    assert billing.stripe_cancelled == {billing.stripe_events[0]["identifier"]}
    # S-1 is overturned two days later: too late to cancel, so a negative event.
    clock["now"] += timedelta(days=2)
    billing.now = clock["now"].timestamp()
    _overturn(ledger, "S-1", clock["now"])
    second = export_meter(engine, config, now=lambda: clock["now"])
    assert second.sent["negative"] == 1, second
    assert billing.stripe_total(CUSTOMER) == 0 == _meter_net(engine)[1]


def _overturn(ledger: Ledger, outcome_id: str, at: datetime) -> None:
    from judge.models import Label

    ledger.record_label(outcome_id, Label(resolved=False, by="qa", at=at))
    scan_revocations(ledger.engine, tenant="acme")


def test_a_retracted_provisional_count_is_taken_back(
    engine: Engine, billing: FakeBillingServer
) -> None:
    ledger = Ledger(engine, tenant="acme")
    recent = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    conversation = [{"role": "customer", "text": "My order 1234 arrived broken.", "at": recent}]
    outcome = ticket("P-1", conversation=conversation)  # its window is open: provisional
    ledger.record_result(outcome, verdict_for(outcome))
    config = _config(billing, "lago")
    assert export_meter(engine, config).sent["usage"] == 1
    # A newer verdict says not verified while the window is open: the +1 entry is deleted.
    revised = ticket(
        "P-1", conversation=conversation, signals={"customer_confirmed": False, "csat": 1}
    )
    ledger.record_result(revised, verdict_for(revised, decision="not_verified"))
    assert _meter_net(engine) == (0, 0)
    again = export_meter(engine, config)
    assert again.sent["negative"] == 1
    assert _held(billing, "lago") == (2, 0)
    usage_key = billing.lago[0]["transaction_id"]
    assert billing.lago[-1]["transaction_id"] == f"{usage_key}:retracted"


def test_a_refused_batch_stops_the_run_and_the_next_run_sends_nothing_twice(
    engine: Engine, billing: FakeBillingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(engine, tenant="acme")
    for i in range(3):
        outcome = ticket(f"F-{i}")
        ledger.record_result(outcome, verdict_for(outcome))
    config = _config(billing, "lago")
    billing.fail_next("/lago/api/v1/events/batch", 500, times=10)
    failed = export_meter(engine, config, sleep=lambda _: None)
    assert failed.error is not None and "500" in failed.error
    assert _held(billing, "lago") == (0, 0)
    # The target took the batch but the run died before recording it: the keys stay pending.
    import app.export.deliver as deliver

    real = deliver.mark_sent
    monkeypatch.setattr(deliver, "mark_sent", _raise)
    billing.fail_next("/lago/api/v1/events/batch", 500, times=0)
    with pytest.raises(RuntimeError):
        export_meter(engine, config)
    assert _held(billing, "lago") == (3, 3)
    monkeypatch.setattr(deliver, "mark_sent", real)
    resumed = export_meter(engine, config)
    assert resumed.resent_pending == 3 and resumed.already_delivered == 3
    assert _held(billing, "lago") == (3, 3) and resumed.exported_total == 3


def _raise(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("killed between sending and recording")


def test_the_cli_reads_the_token_from_the_environment_only(
    tmp_path: Path, billing: FakeBillingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledger.db import make_engine
    from ledger.schema import migrate

    url = f"sqlite:///{tmp_path / 'l.db'}"
    engine = make_engine(url)
    migrate(engine)
    outcome = ticket("C-1")
    Ledger(engine, tenant="acme").record_result(outcome, verdict_for(outcome))
    engine.dispose()
    args = ["export", "meter", "--to", "openmeter", "--endpoint", billing.base_url, "--db", url]
    monkeypatch.delenv("OPENMETER_API_KEY", raising=False)
    missing = run(*args)
    assert missing.exit_code == 2 and "set OPENMETER_API_KEY" in missing.output
    monkeypatch.setenv("OPENMETER_API_KEY", "secret-token")
    done = run(*args, "--json")
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["sent"]["usage"] == 1 and summary["exported_total"] == 1
    assert billing.requests[-1].headers["Authorization"] == "Bearer secret-token"
    assert "secret-token" not in done.output
    assert run(*args, "--json").exit_code == 0 and len(billing.openmeter) == 1
    refused = run("export", "meter", "--to", "stripe", "--endpoint", billing.base_url, "--db", url)
    assert refused.exit_code == 2 and "--customer is required" in refused.output


# -- the plan, on any history of the meter ------------------------------------------------------

_history = st.lists(
    st.tuples(st.sampled_from(["plus", "minus", "delete", "export"]), st.integers(0, 4)),
    max_size=40,
)


@settings(max_examples=200)
@given(_history, st.sampled_from([None, timedelta(hours=1)]))
def test_after_every_export_the_target_holds_the_meter_total(
    history: list[tuple[str, int]], window: timedelta | None
) -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    entries: list[MeterEntry] = []
    exported: list[ExportedEvent] = []
    target: dict[str, int] = {}  # live usage keys -> value, plus corrections
    next_pk = 1
    for step, outcome_no in history:
        outcome = f"o{outcome_no}"
        now += timedelta(minutes=20)
        mine = [e for e in entries if e.outcome_id == outcome]
        counts = sum(e.delta for e in mine)
        if step == "plus" and counts == 0:
            entries.append(MeterEntry(next_pk, outcome, next_pk, 1, "verified", now))
            next_pk += 1
        elif step == "minus" and counts == 1:
            entries.append(MeterEntry(next_pk, outcome, mine[-1].verdict_pk, -1, "reopened", now))
            next_pk += 1
        elif step == "delete" and counts == 1 and mine[-1].delta == 1:
            entries.remove(mine[-1])
        elif step == "export":
            for action in plan_export(entries, exported, tenant="t", now=now,
                                      cancel_window=window):  # fmt: skip
                assert action.key not in target, "a key is never sent twice"
                if action.kind == "cancel":
                    assert action.corrects is not None and target[action.corrects] == 1
                    target[action.corrects] = 0
                    target[action.key] = 0
                else:
                    target[action.key] = action.value
                exported.append(
                    ExportedEvent(action.key, action.kind, action.entry_pk, action.outcome_id,
                                  action.value, action.corrects, "sent", now)
                )  # fmt: skip
            assert sum(target.values()) == sum(e.delta for e in entries)
    assert CANCEL_WINDOWS["stripe"] < timedelta(hours=24)


def test_the_worker_runs_scheduled_exports_one_process_at_a_time(
    engine: Engine, billing: FakeBillingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from app.worker import Worker
    from config.settings import Settings
    from ledger.meter_exports import exclusive

    ledger = Ledger(engine, tenant="acme")
    for i in range(2):
        outcome = ticket(f"W-{i}")
        ledger.record_result(outcome, verdict_for(outcome))
    monkeypatch.setenv("LAGO_API_KEY", "tok")
    export = {
        "tenant": "acme",
        "to": "lago",
        "endpoint": f"{billing.base_url}/lago",
        "subscription": SUBSCRIPTION,
        "every_seconds": 60,
    }
    settings = Settings(exports=[export])
    worker = Worker(engine, settings=settings, poll_seconds=0.01)
    asyncio.run(worker.run(asyncio.Event(), once=True))
    assert _held(billing, "lago") == (2, 2)
    assert worker.exports is not None and worker.exports.due() == []  # not again within 60 s
    # Another process holding the export's lock: this one skips the round.
    worker.exports.last_run.clear()
    name = f"export:acme:lago:{billing.base_url}/lago"
    with exclusive(engine, name) as mine:
        assert mine
        with exclusive(engine, name) as other:
            assert not other
        assert worker.exports.run_due() == {name: "skipped: another process is running it"}
    # A missing token is said, not fatal.
    monkeypatch.delenv("LAGO_API_KEY")
    worker.exports.last_run.clear()
    assert "LAGO_API_KEY is not set" in worker.exports.run_due()[name]


def test_a_scheduled_export_is_validated_at_start() -> None:
    from pydantic import ValidationError

    from config.settings import Settings

    with pytest.raises(ValidationError, match="endpoint"):
        Settings(exports=[{"tenant": "acme", "to": "lago", "endpoint": "ftp://x"}])
    with pytest.raises(ValidationError, match="to"):
        Settings(exports=[{"tenant": "acme", "to": "paypal", "endpoint": "https://x"}])
