"""Two tenants using the SAME outcome ids never see each other's rows, in every ledger read.

Outcome ids are chosen by the tenant's help desk, so ``T-1`` of acme and ``T-1`` of globex are
two unrelated tickets. Every query that looks rows up or joins them by outcome id must also
constrain the tenant; each test below reads one family of such queries for both tenants and
expects exactly that tenant's own rows (a dropped ``tenant ==`` condition makes it fail).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from judge.models import Label, Outcome
from ledger.store import Ledger
from tests.ledger.conftest import judge_call, ticket, verdict_for

#: Also on a PostgreSQL ledger partitioned by month (tests/ledger/conftest.py).
PARTITIONED_TOO = ("engine",)

MARCH = datetime(2026, 3, 1, tzinfo=UTC)
APRIL = datetime(2026, 4, 1, tzinfo=UTC)
RUBRIC = "support-resolution@3f2a9c1"
PANEL = "default@8b1d"
TENANTS = ("acme", "globex")


def _agent(model_path: str, cost: float) -> dict[str, Any]:
    return {"name": "fin", "version": "2.3", "model_path": model_path, "cost_usd": cost}


@dataclass(frozen=True)
class Seeded:
    """The seeded ledger, the pk of globex's verdict on its ``T-1`` and the shared ``U-1``."""

    engine: Engine
    globex_t1_verdict: int
    shared: Outcome


@pytest.fixture
def seeded(engine: Engine) -> Seeded:
    """acme and globex, each with its own ``T-1``, ``T-3`` and ``U-1`` (and globex ``G-only``).

    - ``T-1``: different conversations, agents, touches, labels, verdicts, judge calls (one
      cache key used by both), review minutes and revisions (acme 3, globex 2). globex's
      verdict comes first, acme's later; globex's second revision brings a CSAT of 2 and it
      gets an API label ``resolved=false`` (two reasons to revoke its verdict).
    - ``T-3``: acme's verdict abstains; globex's (recorded later) verifies, on a ticket whose
      customer wrote a day later, and globex labels it.
    - ``U-1``: the same content in both; only acme has a verdict on it.
    """
    from ledger.cost_entries import record_review

    acme, globex = Ledger(engine, tenant="acme"), Ledger(engine, tenant="globex")
    globex_agent = _agent("path-globex", 0.5)
    globex_touches = [{"actor": "bot:zed", "kind": "ai"}, {"actor": "alice", "kind": "human"}]
    globex_t1: dict[str, Any] = {
        "conversation": [
            {"role": "customer", "text": "globex: the invoice is wrong", "at": MARCH.isoformat()}
        ],
        "agent": globex_agent,
        "touches": globex_touches,
        "label": {"resolved": True, "by": "qa-globex", "at": "2026-03-02T09:00:00Z"},
    }
    judged = ticket("T-1", **globex_t1)
    call = judge_call("shared-key", outcome_id="T-1", reply="globex reply", cost_usd=0.2,
                      at=datetime(2026, 3, 1, 10, 5, tzinfo=UTC))  # fmt: skip
    recorded = globex.record_result(judged, verdict_for(judged, tier="assisted"), calls=[call])

    acme_agent = _agent("path-acme", 0.041)
    acme_touches = [{"actor": "bot:fin", "kind": "ai"}]
    acme.record_outcome(ticket("T-1", agent=acme_agent, touches=acme_touches))
    confirmed = {"customer_confirmed": True, "csat": 4}
    acme_t1 = ticket("T-1", agent=acme_agent, touches=acme_touches, signals=confirmed)
    calls = [
        judge_call("shared-key", outcome_id="T-1", reply="acme reply", cost_usd=0.01,
                   at=datetime(2026, 3, 1, 10, 6, tzinfo=UTC)),
        judge_call("acme-only-key", outcome_id="T-1", cost_usd=0.001),
    ]  # fmt: skip
    acme.record_result(acme_t1, verdict_for(acme_t1, tier="confirmed"), calls=calls)
    acme.record_outcome(
        ticket("T-1", agent=_agent("path-acme", 0.05), touches=acme_touches, signals=confirmed)
    )
    acme_t3 = ticket("T-3", agent=acme_agent, label=None)
    acme.record_result(acme_t3, verdict_for(acme_t3, decision="abstain", tier=None))
    shared = ticket("U-1", label=None)
    acme.record_result(shared, verdict_for(shared))
    record_review(engine, tenant="acme", outcome_id="T-1", minutes=10, at=MARCH)

    later = [{"role": "customer", "text": "where is my parcel?", "at": "2026-03-02T10:00:00Z"}]
    for outcome in (
        ticket("T-3", conversation=later, agent=globex_agent, label=None),
        ticket("G-only", agent=globex_agent, label=None),
    ):
        globex.record_result(outcome, verdict_for(outcome, tier="assumed"))
    globex.record_outcome(shared)
    globex.record_outcome(ticket("T-1", **globex_t1, signals={"csat": 2}))
    overturn = Label(resolved=False, by="bo", at=datetime(2026, 3, 5, tzinfo=UTC))
    globex.record_label("T-1", overturn, source="api")
    globex.record_label("T-3", Label(resolved=True, by="cy"), source="api")
    record_review(engine, tenant="globex", outcome_id="T-1", minutes=25, at=MARCH)
    return Seeded(engine, recorded.verdict_pk, shared)


def test_reads_of_one_outcome_id_return_only_the_tenants_rows(seeded: Seeded) -> None:
    from ledger.ingest import list_outcomes

    def view(tenant: str) -> tuple[Any, ...]:
        ledger = Ledger(seeded.engine, tenant=tenant)
        outcome = ledger.outcome("T-1")
        assert outcome is not None
        return (
            outcome.conversation[0].text,
            [r.revision for r in ledger.revisions("T-1")],
            [t.actor for t in ledger.touches("T-1")],
            [s.verdict.tier for s in ledger.iter_verdicts(outcome_id="T-1")],
            [s.label.by for s in ledger.iter_labels(outcome_id="T-1")],
            [(o["id"], o["revision"]) for o in list_outcomes(seeded.engine, tenant)[0]],
        )

    assert view("acme") == (
        "My order 1234 arrived broken.",
        [1, 2, 3],
        ["bot:fin"],
        ["confirmed"],
        ["qa-team"],
        [("T-1", 3), ("T-3", 1), ("U-1", 1)],
    )
    assert view("globex") == (
        "globex: the invoice is wrong",
        [1, 2],
        ["bot:zed", "alice"],
        ["assisted"],
        ["qa-globex", "bo"],
        [("G-only", 1), ("T-1", 2), ("T-3", 1), ("U-1", 1)],
    )
    # Resuming a run: acme's verdict on U-1 is not globex's, though the content is the same.
    hash_ = seeded.shared.content_hash()
    found = {
        t: Ledger(seeded.engine, tenant=t).verdict_for(
            "U-1", rubric=RUBRIC, panel=PANEL, content_hash=hash_
        )
        for t in TENANTS
    }
    assert found["acme"] is not None and found["globex"] is None


def test_cost_report_and_path_measurements_count_only_the_tenants_costs(seeded: Seeded) -> None:
    from ledger.cost_entries import UnknownOutcomeError, record_review
    from ledger.cost_report import cost_report
    from ledger.counted import judged_rows

    # Review time can only be booked on the tenant's own outcomes.
    with pytest.raises(
        UnknownOutcomeError, match="'G-only' is not in the ledger for tenant 'acme'"
    ):
        record_review(seeded.engine, tenant="acme", outcome_id="G-only", minutes=5, at=MARCH)

    keys = ("outcomes", "verified", "agent_cost_usd", "judge_cost_usd", "judge_calls")
    totals = {}
    for tenant in TENANTS:
        total = cost_report(seeded.engine, tenant, dims=["model_path"], now=APRIL).to_dict()[
            "total"
        ]
        totals[tenant] = tuple(total[k] for k in (*keys, "human_review_minutes"))
    assert totals == {
        "acme": (3, 2, pytest.approx(0.123), pytest.approx(0.011), 2, 10.0),
        "globex": (3, 3, pytest.approx(1.5), pytest.approx(0.2), 1, 25.0),
    }
    rows = {
        t: {
            path: sorted(r)
            for path, r in judged_rows(seeded.engine, t, since=None, until=None).items()
        }
        for t in TENANTS
    }
    assert rows == {
        "acme": {
            "path-acme": [("abstain", 0.041), ("verified", 0.041)],
            "gpt-4o-mini": [("verified", 0.041)],
        },
        "globex": {"path-globex": [("verified", 0.5)] * 3},
    }


def test_calibration_pairs_the_tenants_own_verdicts_and_labels(seeded: Seeded) -> None:
    from ledger.calibration_source import load_calibration_rows

    seen = {}
    for tenant in TENANTS:
        rows = load_calibration_rows(seeded.engine, tenant, every_verdict=True)
        verdicts, labels = rows.verdicts, rows.labels
        assert load_calibration_rows(seeded.engine, tenant).total_verdicts == len(verdicts)
        seen[tenant] = (
            sorted((v.outcome_id, v.decision, v.tier) for v in verdicts),
            [(lab.outcome_id, lab.resolved, lab.by) for lab in labels],
        )
    assert seen == {
        "acme": (
            [("T-1", "verified", "confirmed"), ("T-3", "abstain", None),
             ("U-1", "verified", "confirmed")],
            [("T-1", True, "qa-team")],
        ),
        "globex": (
            [("G-only", "verified", "assumed"), ("T-1", "verified", "assisted"),
             ("T-3", "verified", "assumed")],
            [("T-1", True, "qa-globex"), ("T-1", False, "bo"), ("T-3", True, "cy")],
        ),
    }  # fmt: skip


def test_a_revocation_scan_books_only_against_the_tenants_own_verdict(seeded: Seeded) -> None:
    from ledger.cost_report import cost_report
    from ledger.ingest import outcome_detail
    from ledger.periods import Periods, UnknownVerdictError
    from ledger.revocation import scan_revocations

    # globex's late CSAT and overturning label revoke globex's T-1; acme's T-1 has neither.
    assert scan_revocations(seeded.engine, tenant="acme") == []
    bookings = scan_revocations(seeded.engine, tenant="globex")
    got = {b.revocation.reason: b.revocation for b in bookings}
    assert sorted(got) == ["csat_low", "human_overturn"]
    assert {(r.outcome_id, r.verdict_pk) for r in got.values()} == {
        ("T-1", seeded.globex_t1_verdict)
    }
    # The late CSAT counts from when globex received it, not when acme received its own T-1.
    detail = outcome_detail(seeded.engine, "globex", "T-1")
    assert detail is not None
    assert got["csat_low"].occurred_at == detail["revisions"][-1]["received_at"]
    assert got["human_overturn"].occurred_at == datetime(2026, 3, 5, tzinfo=UTC)
    assert Periods(seeded.engine, tenant="acme").revocations(outcome_id="T-1") == []
    assert len(Periods(seeded.engine, tenant="globex").revocations(outcome_id="T-1")) == 2
    revoked = {
        t: cost_report(seeded.engine, t, dims=[], now=APRIL).revoked_outcomes for t in TENANTS
    }
    assert revoked == {"acme": 0, "globex": 1}
    # acme cannot book a revocation of globex's verdict, though both outcomes are "T-1".
    with pytest.raises(UnknownVerdictError):
        Periods(seeded.engine, tenant="acme").book_revocation(
            "T-1", verdict_pk=seeded.globex_t1_verdict, reason="human_overturn", at=MARCH
        )
    assert Periods(seeded.engine, tenant="acme").revocations() == []


def test_meters_and_back_filled_facts_are_per_tenant(seeded: Seeded) -> None:
    from ledger.facts import backfill_facts
    from ledger.meters import verified_outcomes
    from ledger.service_tables import OutcomeFactRow

    facts = OutcomeFactRow.__table__  # type: ignore[attr-defined]

    def fact_rows() -> dict[tuple[str, str], tuple[str, str | None, str | None]]:
        query = sa.select(
            facts.c.tenant, facts.c.outcome_id, facts.c.decision, facts.c.model_path, facts.c.tier
        )
        with seeded.engine.connect() as conn:
            return {(r[0], r[1]): (r[2], r[3], r[4]) for r in conn.execute(query).all()}

    counted = {
        t: sum(
            row["value"]
            for row in verified_outcomes(
                seeded.engine, t, since=MARCH, until=APRIL, window="month", now=APRIL
            )
        )
        for t in TENANTS
    }
    assert counted == {"acme": 2, "globex": 3}
    live = fact_rows()
    assert live[("acme", "T-1")] == ("verified", "path-acme", "confirmed")
    assert live[("globex", "T-1")] == ("verified", "path-globex", "assisted")
    assert live[("acme", "T-3")][0] == "abstain" and live[("globex", "T-3")][0] == "verified"
    # Facts rebuilt from the verdicts (as the 0005 migration does) come out the same.
    with seeded.engine.begin() as conn:
        conn.execute(facts.delete())
    assert backfill_facts(seeded.engine) == len(live)
    assert fact_rows() == live


def test_job_selection_and_resume_see_only_the_tenants_outcomes(seeded: Seeded) -> None:
    from ledger.jobs import JobFilter, UnknownOutcomesError, select_outcomes
    from ledger.store import Ledger

    with pytest.raises(UnknownOutcomesError) as unknown:
        select_outcomes(seeded.engine, "acme", outcome_ids=["T-1", "G-only"])
    assert unknown.value.missing == ["G-only"]
    assert select_outcomes(seeded.engine, "globex", outcome_ids=["G-only"]).outcome_ids == [
        "G-only"
    ]
    # globex's T-1 is at revision 2, acme's at 3: each filter looks at its own latest revision.
    tickets = {
        t: select_outcomes(seeded.engine, t, filter=JobFilter(kind="support_ticket")).outcome_ids
        for t in TENANTS
    }
    assert tickets == {"acme": ["T-1", "T-3", "U-1"], "globex": ["G-only", "T-1", "T-3", "U-1"]}
    # U-1 has the same content in both tenants, but only acme has a verdict on it (and globex's
    # T-1 has a new revision nobody judged yet).
    unverified = {
        t: select_outcomes(seeded.engine, t, filter=JobFilter(unverified_only=True)).outcome_ids
        for t in TENANTS
    }
    assert unverified == {"acme": [], "globex": ["T-1", "U-1"]}
    hash_ = seeded.shared.content_hash()
    prior = {
        t: Ledger(seeded.engine, tenant=t).recorded_verdict(
            "U-1", rubric=RUBRIC, panel=PANEL, content_hash=hash_
        )
        for t in TENANTS
    }
    assert prior["globex"] is None
    assert prior["acme"] is not None and prior["acme"].verdict.decision == "verified"


def test_the_judge_call_cache_never_serves_another_tenants_reply(seeded: Seeded) -> None:
    from ledger.callstore import DbCallStore

    replies = {}
    for tenant in TENANTS:
        store = DbCallStore(seeded.engine, tenant=tenant)
        hit = store.lookup_sync("shared-key")
        replies[tenant] = None if hit is None else hit.reply
    assert replies == {"acme": "acme reply", "globex": "globex reply"}
    assert DbCallStore(seeded.engine, tenant="globex").lookup_sync("acme-only-key") is None


def test_review_queue_and_page_show_only_the_tenants_outcome(seeded: Seeded) -> None:
    from ledger.review_queue import review_item, review_queue

    # acme's T-3 abstained; globex labelled its own T-3, which takes nothing out of acme's queue.
    queues = {
        t: [
            (i.outcome_id, i.reason, i.at)
            for i in review_queue(seeded.engine, t, audit_share=0.0)[0]
        ]
        for t in TENANTS
    }
    acme_t3_at = datetime(2026, 3, 1, 10, tzinfo=UTC)  # not globex's T-3 (a day later)
    assert queues == {"acme": [("T-3", "abstain", acme_t3_at)], "globex": []}
    pages = {}
    for tenant in TENANTS:
        view = review_item(seeded.engine, tenant, "T-1")
        assert view is not None
        pages[tenant] = (
            view.revision,
            [s.verdict.tier for s in view.verdicts],
            [s.label.by for s in view.labels],
            [t.actor for t in view.touches],
        )
    assert pages == {
        "acme": (3, ["confirmed"], ["qa-team"], ["bot:fin"]),
        "globex": (2, ["assisted"], ["qa-globex", "bo"], ["bot:zed", "alice"]),
    }
    assert review_item(seeded.engine, "acme", "G-only") is None


def test_a_fact_without_timestamps_is_anchored_at_the_tenants_own_receipt(engine: Engine) -> None:
    """The anchor of an outcome without any timestamp is when THIS tenant received it."""
    from ledger.ingest import outcome_detail
    from ledger.service_tables import OutcomeFactRow

    untimed = ticket("N-1", conversation=[{"role": "customer", "text": "help"}])
    for tenant in TENANTS:
        Ledger(engine, tenant=tenant).record_result(untimed, verdict_for(untimed))
    facts = OutcomeFactRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        anchors = dict(conn.execute(sa.select(facts.c.tenant, facts.c.anchor_at)).all())
    received = {}
    for tenant in TENANTS:
        detail = outcome_detail(engine, tenant, "N-1")
        assert detail is not None
        received[tenant] = detail["revisions"][0]["received_at"]
    assert anchors == received
