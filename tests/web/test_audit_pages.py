"""`/ui/audits`: upload an invoice, see the audit list and the dispute pack, per tenant only."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.web.test_pages import HOSTILE, Site, _csrf, _login

# The seeded site (acme with verdicts, globex empty), on SQLite and PostgreSQL:
from tests.web.test_pages import site as site


def _upload(client: TestClient, text: str, name: str = "invoice.csv", **form: str) -> object:
    page = client.get("/ui/audits")
    assert page.status_code == 200, page.text
    return client.post(
        "/ui/audits",
        data={"csrf": _csrf(page.text), **form},
        files={"claims": (name, text.encode(), "text/csv")},
        follow_redirects=False,
    )


def test_an_uploaded_invoice_becomes_an_audit_with_its_dispute_pack(site: Site) -> None:
    client = site.client
    assert _login(client, site.acme).status_code == 303  # type: ignore[attr-defined]
    invoice = (
        "outcome_id,claimed_at,claim,price_usd\n"
        f"{site.sampled},2026-01-12T10:00:00Z,assumed,0.99\n"
        "N-1,2026-01-13T10:00:00Z,confirmed,1.25\n"
        f"NOPE,2026-01-13T10:00:00Z,{HOSTILE.replace(',', ' ')},0.99\n"
    )
    made = _upload(client, invoice)
    assert made.status_code == 303, made.text  # type: ignore[attr-defined]
    location = made.headers["location"]  # type: ignore[attr-defined]
    pack = client.get(location)
    assert pack.status_code == 200
    assert "script-src" not in pack.headers["content-security-policy"]
    assert "default-src 'none'" in pack.headers["content-security-policy"]
    assert "N-1: confirmed, $1.25" in pack.text and "not verified" in pack.text
    assert "<script>" not in pack.text and "&lt;script&gt;" in pack.text
    listing = client.get("/ui/audits")
    assert location.rsplit("/", 1)[1] in listing.text and "$1.25" in listing.text

    # globex sees no audit of acme's, and no page for its id.
    client.cookies.clear()
    assert _login(client, site.globex).status_code == 303  # type: ignore[attr-defined]
    assert client.get(location).status_code == 404
    assert "No audit yet." in client.get("/ui/audits").text


def test_a_bad_upload_says_what_is_wrong_and_stores_nothing(site: Site) -> None:
    client = site.client
    _login(client, site.acme)
    missing = _upload(client, "conversation,claimed_at,claim,price_usd\nx,2026-01-01,a,1\n")
    assert missing.status_code == 422  # type: ignore[attr-defined]
    assert "no column &#39;outcome_id&#39;" in missing.text  # type: ignore[attr-defined]
    bad_row = _upload(client, "outcome_id,claimed_at,claim,price_usd\nx,later,a,1\n")
    assert "line 2: claimed_at" in bad_row.text  # type: ignore[attr-defined]
    backwards = _upload(
        client, "outcome_id,claimed_at,claim,price_usd\nx,2026-01-01,a,1\n",
        **{"from": "2026-02-01", "to": "2026-01-01"},
    )  # fmt: skip
    assert "From must be before To" in backwards.text  # type: ignore[attr-defined]
    forged = client.post(
        "/ui/audits",
        data={"csrf": "forged"},
        files={"claims": ("i.csv", b"outcome_id,claimed_at,claim,price_usd\n", "text/csv")},
    )
    assert forged.status_code == 403
    assert "No audit yet." in client.get("/ui/audits").text
