"""A listing of stored audits reads their figures from columns, never their reports (an audit of
50,000 claims is megabytes of JSON), and the audits stored before the columns get them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.audits import get_audit, list_audits
from ledger.claims import Claim
from ledger.columns import JSONType
from ledger.db import make_engine
from ledger.schema import migrate
from ledger.store import Ledger
from tests.ledger.conftest import ticket, verdict_for
from tests.ledger.plans import captured


def _report(billed: float, disputed: float, disputes: int) -> dict[str, object]:
    return {"billed_usd": billed, "disputed_usd": disputed, "disputes": [{}] * disputes}


def test_audits_stored_before_the_summary_columns_are_listed_with_their_figures(
    ledger_url: str,
) -> None:
    engine = make_engine(ledger_url)
    try:
        migrate(engine, revision="0017")
        # The tenant as that revision stores it (today's models have columns it lacks).
        tenants = sa.table(
            "tenants", sa.column("name", sa.String()), sa.column("created_at", sa.DateTime())
        )
        with engine.begin() as conn:
            conn.execute(tenants.insert().values(name="acme", created_at=datetime.now(UTC)))
        audits = sa.table(
            "audits",
            sa.column("tenant", sa.String()),
            sa.column("created_at", sa.DateTime(timezone=True)),
            sa.column("claimed", sa.Integer()),
            sa.column("report", JSONType),
        )
        stored = [(3, _report(2.97, 0.99, 1)), (5, _report(5.46, 2.49, 2)), (1, _report(0, 0, 0))]
        with engine.begin() as conn:
            for claimed, report in stored:
                conn.execute(
                    audits.insert().values(
                        tenant="acme", created_at=datetime.now(UTC), claimed=claimed, report=report
                    )
                )
        migrate(engine)
        listed = list_audits(engine, "acme")
        assert [(a.claimed, a.billed_usd, a.disputed_usd, a.disputes) for a in listed] == [
            (1, 0.0, 0.0, 0), (5, 5.46, 2.49, 2), (3, 2.97, 0.99, 1),
        ]  # fmt: skip
        assert all(a.report is None for a in listed)
    finally:
        engine.dispose()


def test_a_listing_does_not_read_the_reports(engine: Engine) -> None:
    from app.audit import run_and_store_audit

    ledger = Ledger(engine, tenant="acme")
    for oid, decision in (("A-1", "verified"), ("A-2", "not_verified")):
        outcome = ticket(oid)
        ledger.record_result(outcome, verdict_for(outcome, decision=decision))
    at = datetime(2026, 3, 2, tzinfo=UTC)
    claims = [
        Claim(line=n, outcome_id=oid, claimed_at=at, claim="assumed", price_usd=Decimal(price))
        for n, (oid, price) in enumerate((("A-1", "0.99"), ("A-2", "1.50"), ("A-9", "0.99")))
    ]
    saved = run_and_store_audit(engine, "acme", claims, n_boot=100)
    assert saved.report is not None
    with captured(engine) as statements:
        (listed,) = list_audits(engine, "acme")
    assert (listed.id, listed.claimed, listed.billed_usd, listed.disputed_usd, listed.disputes) == (
        saved.id, 3, 3.48, 1.5, len(saved.report.disputes),
    )  # fmt: skip
    assert listed.disputes == 1
    assert not any("report" in statement for statement, _ in statements)
    whole = get_audit(engine, "acme", saved.id)
    assert whole is not None and whole.report == saved.report
