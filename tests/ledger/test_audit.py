"""`judge audit`: vendor claims reconciled with the verdicts, recomputed from ledger rows."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from ledger.audit import reconcile
from ledger.audit_source import JudgedClaim
from ledger.claims import Claim, ClaimColumns, ClaimsInputError, parse_claims
from ledger.revocation import scan_revocations
from ledger.store import Ledger
from tests.ledger.conftest import TICKETS, run, ticket, verdict_for

JANUARY = datetime(2026, 1, 1, tzinfo=UTC)
FEBRUARY = datetime(2026, 2, 1, tzinfo=UTC)
KINDS = ("confirmed", "assumed", "automated_resolution")


def _verified_ledger(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("OUTCOME_JUDGE_MODEL", "OUTCOME_JUDGE_API_BASE", "OUTCOME_JUDGE_DB_URL"):
        monkeypatch.delenv(key, raising=False)
    from config.settings import get_settings

    get_settings.cache_clear()
    result = run("verify", str(TICKETS), "--db", url, "--out", str(tmp_path / "v.jsonl"))
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output


def _latest_decisions(url: str) -> dict[str, str]:
    """Each outcome's latest verdict, read straight from the verdicts table."""
    from ledger.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT outcome_id, decision FROM verdicts ORDER BY pk")
            ).all()
    finally:
        engine.dispose()
    return {oid: decision for oid, decision in rows}


def _claims_file(path: Path, ids: list[str]) -> list[dict[str, Any]]:
    """Confirmed, assumed and automated claims on every sample ticket, then wrong ones."""
    rows = [
        {
            "outcome_id": oid,
            "claimed_at": f"2026-01-{10 + i % 15:02d}T12:00:00Z",
            "claim": KINDS[i % 3],
            "price_usd": ["0.99", "1.50", "2.00"][i % 3],
        }
        for i, oid in enumerate(ids)
    ]
    rows += [
        {"outcome_id": ids[0], "claimed_at": "2026-01-20T09:00:00Z", "claim": "assumed",
         "price_usd": "0.99"},  # billed twice
        {"outcome_id": "T-NOPE", "claimed_at": "2026-01-21T09:00:00Z", "claim": "assumed",
         "price_usd": "0.99"},  # no such conversation
        {"outcome_id": ids[1], "claimed_at": "2025-12-31T23:59:59Z", "claim": "confirmed",
         "price_usd": "0.99"},  # before the period
    ]  # fmt: skip
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=["outcome_id", "claimed_at", "claim", "price_usd"])
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return rows


def test_audit_of_the_shipped_sample_is_recomputed_from_the_ledger(
    ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _verified_ledger(ledger_url, tmp_path, monkeypatch)
    decisions = _latest_decisions(ledger_url)
    ids = sorted(decisions)
    claims = _claims_file(tmp_path / "claims.csv", ids)
    disputes = tmp_path / "disputes.csv"
    result = run(
        "audit", "--claims", str(tmp_path / "claims.csv"), "--db", ledger_url,
        "--from", "2026-01-01", "--to", "2026-02-01", "--csv", str(disputes), "--json",
        "--html", str(tmp_path / "audit.html"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)

    # Recompute every figure from the claims and the verdicts table (nothing is revoked here).
    expected: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    amounts: dict[str, Decimal] = defaultdict(Decimal)
    seen: set[str] = set()
    for row in claims:
        if row["claimed_at"] < "2026-01-01":
            continue
        oid, price = row["outcome_id"], Decimal(row["price_usd"])
        status = (
            "duplicate" if oid in seen else decisions.get(oid, "unknown")
        )  # an unknown id has no verdict
        seen.add(oid)
        key = (row["claimed_at"][:7], row["claim"])
        expected[key]["claimed"] += 1
        expected[key][status] += 1
        amounts["billed_usd"] += price
        if status == "verified":
            amounts["supported_usd"] += price
        elif status in ("not_verified", "duplicate"):
            amounts["disputed_usd"] += price
        elif status == "abstain":
            amounts["pending_usd"] += price
        else:
            amounts["unknown_usd"] += price
    totals: Counter[str] = sum(expected.values(), Counter())
    for key in ("claimed", "verified", "not_verified", "abstain", "duplicate", "unknown"):
        assert data[key] == totals[key], key
    assert data["unjudged"] == 0
    for key, value in amounts.items():
        assert data[key] == pytest.approx(float(value)), key
    assert data["billed_usd"] == pytest.approx(
        data["supported_usd"] + data["disputed_usd"] + data["pending_usd"] + data["unknown_usd"]
    )
    by_row = {(r["period"], r["claim"]): r for r in data["by_period"]}
    assert set(by_row) == set(expected)
    for key, counts in expected.items():
        for status in ("claimed", "verified", "not_verified", "abstain", "duplicate", "unknown"):
            assert by_row[key][status] == counts[status], (key, status)
    # Nothing dropped silently: each wrong claim is listed with its line.
    problems = data["problems"]
    assert [(p["outcome_id"], p["line"]) for p in problems["duplicate"]] == [(ids[0], len(ids) + 2)]
    assert [p["outcome_id"] for p in problems["unknown_id"]] == ["T-NOPE"]
    assert [p["outcome_id"] for p in problems["outside_period"]] == [ids[1]]
    # The disputes are the not-verified claims and the duplicate, in file order, in JSON and CSV.
    disputed = [d["outcome_id"] for d in data["disputes"]]
    assert disputed == [oid for oid in ids if decisions[oid] == "not_verified"] + [ids[0]]
    with disputes.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["outcome_id"] for r in rows] == disputed
    assert all(r["rubric"].startswith("support-resolution@") for r in rows[:-1])
    # The sample's embedded labels measure the panel's error: a corrected count with an interval.
    corrected = data["corrected_verified"]
    assert corrected["value"] is not None and corrected["ci"][0] <= corrected["value"]
    assert corrected["value"] <= corrected["ci"][1]
    low, high = data["corrected_disputed_usd"]["ci"]
    assert low <= data["corrected_disputed_usd"]["value"] <= high
    assert data["correction"]["n_judged"] == totals["verified"] + totals["not_verified"]
    # The dispute pack: each disputed conversation's transcript and judges, also as HTML.
    for d in data["disputes"]:
        assert d["detail"]["judges"] and d["detail"]["excerpt"], d["outcome_id"]
    page = (tmp_path / "audit.html").read_text(encoding="utf-8")
    assert page.count("<article class='dispute'") == len(data["disputes"])
    # Every verified outcome was claimed, so the vendor left none unbilled.
    assert data["verified_unclaimed"]["count"] == 0


def test_a_revoked_outcome_is_disputed_with_the_reason(engine: Engine) -> None:
    ledger = Ledger(engine, tenant="acme")
    outcome = ticket()
    ledger.record_result(outcome, verdict_for(outcome))
    data = outcome.model_dump(mode="json")
    closed = datetime(2026, 3, 1, 12, tzinfo=UTC)
    data["signals"] = {
        **data["signals"],
        "closed_at": closed.isoformat(),
        "reopened_at": (closed + timedelta(hours=21)).isoformat(),
    }
    from judge.models import Outcome

    ledger.record_outcome(Outcome.model_validate(data))
    from app.audit import run_audit

    claim = Claim(1, outcome.id, closed, "assumed", Decimal("0.99"))
    before = run_audit(engine, "acme", [claim])
    scan_revocations(engine, tenant="acme")
    after = run_audit(engine, "acme", [claim])
    assert (before.verified, before.not_verified) == (1, 0)
    assert (after.verified, after.not_verified) == (0, 1)
    assert after.disputes[0].reason == "revoked: reopened"
    assert after.disputed_usd == pytest.approx(0.99)


def test_one_conversation_claimed_under_several_ids_is_billed_once(engine: Engine) -> None:
    """A red-team pass billed one conversation 5 times under 5 ids ("T-7001", "T-7001-a" ...):
    each was verified and counted, and the audit found duplicates by id only. The same judged
    content (every message, time and signal) under another id is a duplicate, disputed."""
    from app.audit import run_audit

    ledger = Ledger(engine, tenant="acme")
    ids = ["T-7001", "T-7001-a", "T-7001 (1)"]
    for oid in ids:
        outcome = ticket(oid, label=None)
        ledger.record_result(outcome, verdict_for(outcome))
    other = ticket("T-7002", label=None, signals={"customer_confirmed": True, "csat": 4})
    ledger.record_result(other, verdict_for(other))  # another conversation: its own claim
    at = datetime(2026, 3, 2, tzinfo=UTC)
    claims = [Claim(n, oid, at, "assumed", Decimal("0.99")) for n, oid in
              enumerate([*ids, "T-7002"], start=2)]  # fmt: skip
    report = run_audit(engine, "acme", claims)
    assert (report.claimed, report.verified, report.duplicate) == (4, 2, 2)
    assert [(d.outcome_id, d.status) for d in report.disputes] == [
        ("T-7001-a", "duplicate"),
        ("T-7001 (1)", "duplicate"),
    ]
    reason = report.disputes[0].reason
    assert reason == "the same conversation as T-7001, billed above under that id"
    assert report.disputed_usd == pytest.approx(1.98)


def test_bad_claims_files_say_what_is_wrong_and_audit_nothing(tmp_path: Path) -> None:
    with pytest.raises(ClaimsInputError, match=r"no column 'outcome_id'.*--column"):
        parse_claims("conversation_id,claimed_at,claim,price_usd\nc1,2026-01-02,x,1\n", jsonl=False)
    mapped = parse_claims(
        "conversation_id,claimed_at,claim,price_usd\nc1,2026-01-02,x,1\n",
        jsonl=False,
        columns=ClaimColumns.parse(["outcome_id=conversation_id"]),
    )
    assert mapped[0].outcome_id == "c1"
    text = (
        "outcome_id,claimed_at,claim,price_usd\n"
        "a,2026-01-02,x,1\n"
        "b,yesterday,x,1\n"
        "c,2026-01-02,x,-3\n"
        "d,2026-01-02,,1\n"
    )
    with pytest.raises(ClaimsInputError) as info:
        parse_claims(text, jsonl=False)
    message = str(info.value)
    assert "3 bad claim row(s), nothing audited" in message
    assert "line 3: claimed_at: 'yesterday' is not an ISO 8601 time" in message
    assert "line 4: price_usd: '-3' is not a non-negative amount" in message
    assert "line 5: claim: missing" in message
    jsonl = parse_claims(
        '{"outcome_id": "a", "claimed_at": "2026-01-02T10:00:00+02:00", "claim": "assumed",'
        ' "price_usd": 0.99}\n\n',
        jsonl=True,
    )
    assert jsonl[0].claimed_at == datetime(2026, 1, 2, 8, tzinfo=UTC)
    with pytest.raises(ClaimsInputError, match="line 1: not JSON"):
        parse_claims("{oops\n", jsonl=True)
    with pytest.raises(ClaimsInputError, match="unknown field 'id'"):
        ClaimColumns.parse(["id=conversation"])


def test_the_cli_exits_2_on_a_bad_file_and_prints_no_report(tmp_path: Path) -> None:
    bad = tmp_path / "claims.csv"
    bad.write_text("outcome_id,claimed_at,claim,price_usd\nT-1,2026-01-02,assumed,abc\n")
    result = run("audit", "--claims", str(bad), "--db", f"sqlite:///{tmp_path / 'none.db'}")
    assert result.exit_code == 2
    assert "line 2: price_usd: 'abc' is not a number" in result.output
    assert "Vendor claims" not in result.output


_STATUS = st.sampled_from(["verified", "not_verified", "abstain", "unjudged", "unknown"])


@given(
    st.lists(
        st.tuples(
            st.sampled_from([f"o{i}" for i in range(8)]),
            st.integers(min_value=0, max_value=90),
            st.sampled_from(KINDS),
            st.decimals(min_value=0, max_value=5, places=2),
        ),
        max_size=40,
    ),
    st.dictionaries(st.sampled_from([f"o{i}" for i in range(8)]), _STATUS),
)
def test_every_claim_lands_in_exactly_one_bucket(
    raw: list[tuple[str, int, str, Decimal]], statuses: dict[str, str]
) -> None:
    claims = [
        Claim(i + 2, oid, JANUARY - timedelta(days=10) + timedelta(days=day), kind, price)
        for i, (oid, day, kind, price) in enumerate(raw)
    ]
    judged = {f"o{i}": JudgedClaim(status=statuses.get(f"o{i}", "unknown")) for i in range(8)}  # type: ignore[arg-type]
    report = reconcile(
        claims, judged, tenant="t", since=JANUARY, until=FEBRUARY, verified_ids=[],
        correct=lambda v, n: "no labels",
    )  # fmt: skip
    inside = [c for c in claims if JANUARY <= c.claimed_at < FEBRUARY]
    assert report.claimed == len(inside)
    assert len(report.problems["outside_period"]) == len(claims) - len(inside)
    assert report.claimed == sum(
        getattr(report, k)
        for k in ("verified", "not_verified", "abstain", "unjudged", "unknown", "duplicate")
    )
    assert report.duplicate == len(inside) - len({c.outcome_id for c in inside})
    parts = report.supported_usd + report.disputed_usd + report.pending_usd + report.unknown_usd
    assert report.billed_usd == pytest.approx(parts)
    assert report.billed_usd == pytest.approx(float(sum((c.price_usd for c in inside), Decimal(0))))
    assert sum(r.claimed for r in report.by_period) == report.claimed
    assert len(report.disputes) == report.not_verified + report.duplicate


def test_claims_imported_with_the_conversations_are_audited(engine: Engine, tmp_path: Path) -> None:
    """Without an invoice: the vendor_claim the importers keep, at one price per resolution."""
    from app.audit import run_audit
    from ledger.audit_source import imported_claims

    ledger = Ledger(engine, tenant="acme")
    cases = {
        # id: (vendor_claim, closed_at, our decision)
        "I-1": ({"vendor": "intercom", "resolution_state": "assumed_resolution",
                 "automated": True}, "2026-03-02T10:00:00Z", "not_verified"),
        "I-2": ({"vendor": "intercom", "resolution_state": "confirmed_resolution",
                 "automated": True}, "2026-03-03T10:00:00Z", "verified"),
        "I-3": ({"vendor": "intercom", "resolution_state": "escalated", "automated": False},
                "2026-03-03T10:00:00Z", "not_verified"),  # not claimed
        "Z-4": ({"vendor": "zendesk", "status": "solved", "automated": True}, None, "verified"),
        "I-5": ({"vendor": "intercom", "resolution_state": "assumed_resolution",
                 "automated": True}, "2026-04-02T10:00:00Z", "verified"),  # next month
        "N-6": (None, "2026-03-02T10:00:00Z", "verified"),  # no claim: verified, not billed
    }  # fmt: skip
    for oid, (claim, closed, decision) in cases.items():
        outcome = ticket(oid, vendor_claim=claim, signals={"closed_at": closed})
        ledger.record_result(outcome, verdict_for(outcome, decision=decision))
    march, april = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
    # Z-4 has no closed_at: it is dated when the ledger received it (now), outside March.
    claims = imported_claims(engine, "acme", price_usd=Decimal("0.99"), since=march, until=april)
    assert [(c.outcome_id, c.claim) for c in claims] == [
        ("I-1", "assumed_resolution"),
        ("I-2", "confirmed_resolution"),
    ]
    everything = imported_claims(engine, "acme", price_usd=Decimal("0.99"), since=None, until=None)
    assert [c.outcome_id for c in everything] == ["I-1", "I-2", "I-5", "Z-4"]
    assert {c.claim for c in everything if c.outcome_id == "Z-4"} == {"automated_resolution"}
    report = run_audit(engine, "acme", claims, since=march, until=april)
    assert (report.claimed, report.verified, report.not_verified) == (2, 1, 1)
    assert report.disputes[0].outcome_id == "I-1"
    assert report.billed_usd == pytest.approx(1.98)
    assert report.disputed_usd == pytest.approx(0.99)


def test_the_cli_audits_imported_claims_at_a_price(tmp_path: Path) -> None:
    from ledger.db import make_engine
    from ledger.schema import migrate

    url = f"sqlite:///{tmp_path / 'l.db'}"
    engine = make_engine(url)
    migrate(engine)
    outcome = ticket(
        "I-1",
        vendor_claim={"vendor": "intercom", "resolution_state": "assumed_resolution",
                      "automated": True},
        signals={"closed_at": "2026-03-02T10:00:00Z"},
    )  # fmt: skip
    Ledger(engine, tenant="acme").record_result(
        outcome, verdict_for(outcome, decision="not_verified")
    )
    engine.dispose()
    neither = run("audit", "--db", url)
    assert neither.exit_code == 2 and "--price USD" in neither.output
    result = run("audit", "--db", url, "--price", "0.99", "--from", "2026-03-01", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["claimed"], data["not_verified"], data["disputed_usd"]) == (1, 1, 0.99)
    assert data["by_period"][0]["claim"] == "assumed_resolution"


def _disputed_with_evidence(engine: Engine) -> Any:
    """An LLM judge's not-verified verdict with cited evidence and hostile text, then an audit."""
    from app.audit import run_audit
    from tests.ledger.conftest import judge_call

    ledger = Ledger(engine, tenant="acme")
    outcome = ticket(
        "T-EV",
        conversation=[
            {"role": "customer", "text": f"message {i} <script>alert(1)</script>"}
            for i in range(15)
        ],
        signals={"csat": 2, "closed_at": "2026-03-02T10:00:00Z"},
    )
    reply = json.dumps(
        {
            "criteria": {
                "customer_confirmed": {
                    "score": 0,
                    "evidence": [{"message": 14, "quote": "message 14 <script>"}],
                }
            },
            "rationale": "The customer never confirmed.",
        }
    )
    verdict = verdict_for(
        outcome,
        decision="not_verified",
        reasons=["The customer did not confirm & CSAT was 2."],
        judges=[
            {"judge": "grader", "model": "openai/gpt-4o-mini", "decision": "not_verified",
             "scores": {"customer_confirmed": 0.0}, "rationale": "<b>never confirmed</b>"},
        ],
    )  # fmt: skip
    call = judge_call("k-ev", outcome_id="T-EV", judge="grader", reply=reply)
    ledger.record_result(outcome, verdict, calls=[call])
    claim = Claim(2, "T-EV", datetime(2026, 3, 2, tzinfo=UTC), "assumed", Decimal("0.99"))
    return run_audit(engine, "acme", [claim])


def test_the_dispute_pack_holds_transcript_judges_evidence_and_signals(engine: Engine) -> None:
    report = _disputed_with_evidence(engine)
    [dispute] = report.disputes
    detail = dispute.detail
    assert detail is not None and detail.messages_total == 15
    assert [m.index for m in detail.excerpt] == list(range(3, 15))  # the last twelve
    assert detail.signals == {"csat": 2, "closed_at": "2026-03-02T10:00:00Z"}
    assert detail.reasons == ["The customer did not confirm & CSAT was 2."]
    [judge] = detail.judges
    assert (judge.judge, judge.decision, judge.scores) == (
        "grader",
        "not_verified",
        {"customer_confirmed": 0.0},
    )
    assert [(c.message, c.quote) for c in judge.evidence["customer_confirmed"]] == [
        (14, "message 14 <script>")
    ]
    assert report.to_dict()["disputes"][0]["detail"]["judges"][0]["judge"] == "grader"


def test_intercoms_own_confirmed_resolution_does_not_support_its_claim(tmp_path: Path) -> None:
    """Fin's ``confirmed_resolution`` is the claim Intercom bills on. Read as the customer's
    confirmation it verified a conversation whose customer wrote "No, it still says expired",
    and the audit then supported the claim with itself."""
    part = {"type": "conversation_part", "part_type": "comment"}
    fin = {"type": "bot", "id": "b-1", "name": "Fin"}
    lena = {"type": "user", "id": "u-1", "name": "Lena"}
    conversation = {
        "type": "conversation", "id": "9901", "created_at": 1772445600,
        "updated_at": 1772446500, "state": "closed",
        "source": {"type": "conversation", "id": "s1", "delivered_as": "customer_initiated",
                   "subject": "", "body": "<p>My promo code SPRING26 says expired.</p>",
                   "author": lena},
        "conversation_parts": {"type": "conversation_part.list", "total_count": 3,
                               "conversation_parts": [
            {**part, "id": "1", "created_at": 1772445640, "author": fin,
             "body": "<p>I have re-enabled the code, please try again.</p>"},
            {**part, "id": "2", "created_at": 1772445900, "author": lena,
             "body": "<p>No, it still says expired. This did not help at all.</p>"},
            {**part, "id": "3", "part_type": "close", "created_at": 1772446500, "author": fin,
             "body": None},
        ]},
        "statistics": {"type": "conversation_statistics", "last_close_at": 1772446500},
        "ai_agent_participated": True,
        "ai_agent": {"source_type": "essentials_plan_setup",
                     "resolution_state": "confirmed_resolution"},
    }  # fmt: skip
    export = tmp_path / "intercom.json"
    export.write_text(json.dumps({"type": "conversation.list", "conversations": [conversation]}))
    url = f"sqlite:///{tmp_path / 'l.db'}"
    verdicts = tmp_path / "verdicts.jsonl"
    verified = run("verify", str(export), "--db", url, "--out", str(verdicts))
    assert verified.exit_code == 0, verified.output
    (verdict,) = [json.loads(line) for line in verdicts.read_text().splitlines()]
    assert verdict["outcome_id"] == "intercom-9901" and verdict["decision"] != "verified"

    audit = run("audit", "--db", url, "--price", "0.99", "--from", "2026-03-01", "--json")
    assert audit.exit_code == 0, audit.output
    data = json.loads(audit.stdout)
    # The local panel has nothing to go on but the text: a reviewer decides, the claim waits.
    assert (data["claimed"], data["verified"], data["abstain"]) == (1, 0, 1)
    assert (data["supported_usd"], data["pending_usd"]) == pytest.approx((0.0, 0.99))
