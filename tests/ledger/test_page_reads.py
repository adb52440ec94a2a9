"""Reads made once per request (a page of outcomes, the labelled verdicts an audit compares)
stay proportional to what they return on PostgreSQL, even for a tenant whose rows its
statistics have not seen yet."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.ingest import list_outcomes, record_outcomes
from tests.ledger.conftest import ticket
from tests.ledger.plans import analyze, captured, ledger_without_autovacuum, replayed_rows


@pytest.mark.postgres
def test_a_page_of_outcomes_visits_only_its_rows_before_statistics_see_the_tenant() -> None:
    """The listing joined every latest revision of the tenant to the page in one statement. For
    a tenant ingested after the last ANALYZE the planner expected one row and rescanned the page
    once per outcome of the tenant: 0.8 s a page at 30,000 outcomes, quadratic in the tenant.
    Reading the page's ids first, then their rows, visits about a page's rows."""
    with ledger_without_autovacuum("outcomes") as engine:
        record_outcomes(engine, "seen", [ticket(f"S-{i:04d}") for i in range(400)])
        analyze(engine)
        ids = [f"N-{i:04d}" for i in range(600)]
        record_outcomes(engine, "fresh", [ticket(i) for i in ids])
        changed = {"customer_confirmed": False}
        record_outcomes(engine, "fresh", [ticket(i, signals=changed) for i in ids[::7]])

        pages: list[list[dict[str, Any]]] = []
        after: str | None = None
        with captured(engine) as statements:
            while True:
                page, after = list_outcomes(engine, "fresh", limit=50, after=after)
                pages.append(page)
                if after is None:
                    break
        seen = [(o["id"], o["revision"]) for page in pages for o in page]
        assert seen == [(i, 2 if n % 7 == 0 else 1) for n, i in enumerate(ids)]
        assert len(pages) == 12

        per_page = replayed_rows(engine, statements, {"outcomes"}) / len(pages)
        # Each page: its 51 ids' index entries, then their rows (revisions included).
        assert per_page <= 4 * 51, per_page


@pytest.mark.postgres
def test_labelled_verdicts_visit_only_their_rows_before_statistics_see_the_tenant() -> None:
    """An audit's correction compares the labelled verdicts. Read as a semi-join of verdicts
    with labels, a tenant the statistics had not seen was planned as a nested loop over both:
    3.1 s at 30,000 verdicts and 600 labels, quadratic. Looked up per labelled id, it reads the
    labels and the labelled verdicts only."""
    from judge.models import Label
    from ledger.store import Ledger
    from tests.ledger.conftest import verdict_for

    with ledger_without_autovacuum("outcomes", "verdicts", "labels") as engine:
        seen = Ledger(engine, tenant="seen")
        older = [ticket(f"S-{i:04d}") for i in range(200)]
        seen.record_results([(o, verdict_for(o)) for o in older])
        analyze(engine)
        fresh = Ledger(engine, tenant="fresh")
        new = [ticket(f"N-{i:04d}", label=None) for i in range(600)]
        fresh.record_results([(o, verdict_for(o)) for o in new])
        labelled = {f"N-{i:04d}" for i in range(0, 600, 20)}
        for outcome_id in sorted(labelled):
            fresh.record_label(outcome_id, Label(resolved=True, by="qa"))

        with captured(engine) as statements:
            found = fresh.labelled_verdicts()
        assert [s.verdict.outcome_id for s in found.verdicts] == sorted(labelled)
        assert (found.total, found.outcomes) == (600, 600)

        visited = replayed_rows(engine, statements, {"verdicts", "labels"})
        # The 30 labels and the 30 labelled verdicts; the counts read the tenant's 600
        # verdicts once and the latest panel at most as many (linear, never per label:
        # 861 measured, 18,000 as a semi-join).
        assert visited <= 2 * len(labelled) + 2 * 600, visited


@pytest.mark.postgres
def test_an_audits_claims_visit_only_their_rows_before_statistics_see_the_tenant() -> None:
    """An audit reads the ledger's side of each claim, 500 claims a query. As ``IN`` lists,
    a tenant the statistics had not seen had its whole range filtered for every 500 claims
    (50-70 ms each at 100,000 outcomes). Per id: the claimed rows only."""
    from ledger.audit_source import claimed_outcomes
    from ledger.store import Ledger
    from tests.ledger.conftest import verdict_for

    with ledger_without_autovacuum("outcomes", "verdicts", "outcome_facts") as engine:
        older = [ticket(f"S-{i:04d}") for i in range(200)]
        Ledger(engine, tenant="seen").record_results([(o, verdict_for(o)) for o in older])
        analyze(engine)
        new = [ticket(f"N-{i:04d}") for i in range(600)]
        fresh = Ledger(engine, tenant="fresh")
        fresh.record_results([(o, verdict_for(o)) for o in new[:400]])
        record_outcomes(engine, "fresh", new[400:])  # stored, not judged
        claimed = [f"N-{i:04d}" for i in range(0, 600, 10)] + ["N-9999"]

        with captured(engine) as statements:
            sides = claimed_outcomes(engine, "fresh", claimed)
        assert [sides[oid].status for oid in claimed] == (
            ["verified"] * 40 + ["unjudged"] * 20 + ["unknown"]
        )

        visited = replayed_rows(engine, statements, {"outcomes", "verdicts", "outcome_facts"})
        # Per claim: its first revision, its fact and that fact's verdict.
        assert visited <= 3 * len(claimed), visited


@pytest.mark.postgres
def test_a_page_of_attested_documents_visits_only_its_rows() -> None:
    """``GET /v1/attestations`` pages a tenant's documents newest first. Without an index on
    (tenant, pk) each page read every document of the tenant (by its (tenant, digest) index,
    then sorted), or walked the primary key backwards past the other tenants' newer documents:
    paging through a tenant cost the square of its size."""
    from judge.attestation import document_digest
    from ledger.attested import attest_documents, list_attested
    from ledger.store import ensure_tenant

    with ledger_without_autovacuum("attested_documents") as engine:
        for tenant in ("buyer", "busy"):
            ensure_tenant(engine, tenant)
        mine = [(document_digest(f"brief {i}"), f"b-{i}") for i in range(1000)]
        attest_documents(engine, "buyer", mine, key_id=None)
        # Another tenant's documents, all newer than the buyer's.
        theirs = [(document_digest(f"other {i}"), None) for i in range(20_000)]
        attest_documents(engine, "busy", theirs, key_id=None)
        analyze(engine)

        pages: list[list[str]] = []
        before: int | None = None
        with captured(engine) as statements:
            while True:
                page, before = list_attested(engine, "buyer", limit=50, before=before)
                pages.append([d.digest for d in page])
                if before is None:
                    break
        assert [d for page in pages for d in page] == [d for d, _ in reversed(mine)]
        assert len(pages) == 20

        per_page = replayed_rows(engine, statements, {"attested_documents"}) / len(pages)
        assert per_page <= 2 * 51, per_page
