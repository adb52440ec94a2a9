"""The web interface in-process (no browser): sessions, CSRF, escaping, isolation, the queue.

Runs on SQLite and PostgreSQL. The client talks HTTPS to the test app, because the session
cookie is ``Secure`` and would not be sent back over plain HTTP.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.ledger.conftest import BACKENDS, _pg_schema

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@dataclass
class Site:
    client: TestClient
    db_url: str
    acme: str
    globex: str
    sampled: str
    unsampled: str


def _verdict(outcome_id: str, decision: str, flags: list[str] | None = None) -> object:
    from judge.verdict import Judgment, Verdict

    return Verdict(
        outcome_id=outcome_id,
        decision=decision,  # type: ignore[arg-type]
        confidence=0.0 if decision == "abstain" else 0.9,
        rubric="support-resolution@test",
        panel="local@test",
        flags=flags or [],
        judges=[Judgment(judge="signals", model="local:signals", kind="signals",
                         decision=decision, rationale=f"rationale {HOSTILE}")],  # type: ignore[arg-type]
    )  # fmt: skip


def _outcome(outcome_id: str, day: int) -> object:
    from judge.models import Outcome

    return Outcome.model_validate(
        {
            "id": outcome_id,
            "kind": "support_ticket",
            "conversation": [
                {"role": "customer", "text": f"help {HOSTILE}", "at": f"2026-03-{day:02d}T10:00Z"},
                {"role": "agent", "text": "done", "at": f"2026-03-{day:02d}T10:05Z"},
            ],
            "touches": [{"actor": "bot:fin", "kind": "ai"}],
            "agent": {"name": "fin", "version": "1", "model_path": "m", "cost_usd": 0.01},
        }
    )


def _seed(db_url: str) -> tuple[str, str, str, str]:
    from ledger.db import make_engine
    from ledger.review_queue import in_audit_sample
    from ledger.schema import migrate
    from ledger.store import Ledger
    from ledger.tenants import create_tenant

    ids = [f"V-{i}" for i in range(200)]
    sampled = next(i for i in ids if in_audit_sample("acme", i))
    unsampled = next(i for i in ids if not in_audit_sample("acme", i))
    engine = make_engine(db_url)
    try:
        migrate(engine)
        acme, globex = create_tenant(engine, "acme"), create_tenant(engine, "globex")
        ledger = Ledger(engine, tenant="acme")
        pairs = [
            ("A-late", "abstain", None, 20),
            ("A-early", "abstain", None, 2),
            ("F-1", "not_verified", ["possible_prompt_injection"], 10),
            ("N-1", "not_verified", None, 11),
            (sampled, "verified", None, 12),
            (unsampled, "verified", None, 13),
        ]
        ledger.record_results([(_outcome(i, d), _verdict(i, dec, f)) for i, dec, f, d in pairs])  # type: ignore[misc]
    finally:
        engine.dispose()
    return acme.key, globex.key, sampled, unsampled


@pytest.fixture(params=BACKENDS)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    from api.app import create_app

    with _pg_schema() if request.param != "sqlite" else nullcontext() as pg_url:
        db_url = pg_url or f"sqlite:///{tmp_path}/pages.db"
        acme, globex, sampled, unsampled = _seed(db_url)
        app = create_app(db_url=db_url, embedded_worker=False)
        with TestClient(app, base_url="https://testserver") as client:
            yield Site(client, db_url, acme, globex, sampled, unsampled)


def _login(client: TestClient, key: str, next_path: str = "/ui/review") -> object:
    form = client.get("/ui/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    return client.post(
        "/ui/login",
        data={"key": key, "csrf": csrf.group(1), "next": next_path},
        follow_redirects=False,
    )


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def _labels(db_url: str, tenant: str = "acme") -> list[object]:
    from ledger.db import make_engine
    from ledger.store import Ledger

    engine = make_engine(db_url)
    try:
        return list(Ledger(engine, tenant=tenant).iter_labels())
    finally:
        engine.dispose()


def test_login_sets_a_signed_strict_cookie_and_refuses_bad_keys(site: Site) -> None:
    client = site.client
    assert (
        client.get("/ui/review", follow_redirects=False)
        .headers["location"]
        .startswith("/ui/login?next=")
    )
    bad = _login(client, site.acme + "x")
    assert bad.status_code == 401 and "Unknown or revoked API key" in bad.text  # type: ignore[attr-defined]
    no_csrf = client.post("/ui/login", data={"key": site.acme}, follow_redirects=False)
    assert no_csrf.status_code == 403
    ok = _login(client, site.acme)
    assert ok.status_code == 303  # type: ignore[attr-defined]
    cookie = next(c for c in ok.headers.get_list("set-cookie") if c.startswith("oj_session="))  # type: ignore[attr-defined]
    attrs = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "secure", "samesite"} <= attrs and "samesite=strict" in cookie.lower()
    # The key is oj_<key id>_<secret>, and the secret (urlsafe base64) may itself hold "_": its
    # last "_"-piece can be one character, which any cookie may contain (this test's old flake).
    secret = site.acme.split("_", 2)[2]
    assert site.acme not in cookie and secret not in cookie
    page = client.get("/ui/review")
    assert page.status_code == 200 and "tenant <strong" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/v1/tenant"])
def test_login_never_redirects_off_the_interface(site: Site, target: str) -> None:
    response = _login(site.client, site.acme, target)
    assert response.headers["location"] == "/ui/review"  # type: ignore[attr-defined]


def test_forged_or_expired_session_goes_back_to_login(site: Site) -> None:
    from api.web import session as sessions

    client = site.client
    key_id = sessions.key_id_of(site.acme)
    assert key_id is not None
    good = sessions.issue(key_id)
    forged = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    expired = sessions.issue(key_id, now=time.time() - 24 * 3600, hours=1)
    for token in (forged, expired, f"{key_id}.9999999999.x.y", "garbage"):
        client.cookies.set("oj_session", token, domain="testserver.local", path="/ui")
        response = client.get("/ui/review", follow_redirects=False)
        assert response.status_code == 303, token
        client.cookies.clear()
    client.cookies.set("oj_session", good, domain="testserver.local", path="/ui")
    assert client.get("/ui/review", follow_redirects=False).status_code == 200


def test_queue_holds_abstained_flagged_and_sampled_oldest_first(site: Site) -> None:
    client = site.client
    _login(client, site.acme)
    page = client.get("/ui/review").text
    listed = re.findall(r'data-testid="queue-item">([^<]+)</a>', page)
    # Oldest first by the last customer message; N-1 (plain not_verified) and the unsampled
    # verified outcome are not queued.
    assert listed == ["A-early", "F-1", site.sampled, "A-late"]


def test_outcome_text_is_escaped(site: Site) -> None:
    client = site.client
    _login(client, site.acme)
    page = client.get("/ui/review/F-1").text
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "possible_prompt_injection" in page and "request_understood" in page


def test_label_needs_the_session_csrf_token_and_a_choice(site: Site) -> None:
    client = site.client
    _login(client, site.acme)
    html = client.get("/ui/review/A-early").text
    for token in (None, "wrong"):
        data = {"resolved": "yes"} | ({"csrf": token} if token else {})
        assert client.post("/ui/review/A-early", data=data).status_code == 403
    missing = client.post("/ui/review/A-early", data={"csrf": _csrf(html)})
    assert missing.status_code == 422 and "Choose resolved" in missing.text
    assert _labels(site.db_url) == []
    saved = client.post(
        "/ui/review/A-early",
        data={"csrf": _csrf(html), "resolved": "yes", "rate_criteria": "1",
              "criteria": ["answer_correct", "not_a_criterion"], "note": "fine",
              "following": "F-1"},
        follow_redirects=False,
    )  # fmt: skip
    assert saved.status_code == 303 and saved.headers["location"] == "/ui/review/F-1?saved=A-early"
    (stored,) = _labels(site.db_url)
    label = stored.label  # type: ignore[attr-defined]
    assert label.resolved is True and label.note == "fine"
    assert label.criteria["answer_correct"] is True and "not_a_criterion" not in label.criteria
    assert "A-early" not in client.get("/ui/review").text  # labelled: out of the queue


def test_other_tenant_gets_404_and_cannot_label(site: Site) -> None:
    client = site.client
    _login(client, site.globex)
    queue = client.get("/ui/review")
    assert 'data-testid="queue-empty"' in queue.text
    page = client.get("/ui/review/F-1")
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    posted = client.post("/ui/review/F-1", data={"csrf": _csrf(queue.text), "resolved": "no"})
    assert posted.status_code == 404
    assert _labels(site.db_url, "acme") == [] and _labels(site.db_url, "globex") == []


def test_a_key_without_the_review_scope_reads_the_queue_but_cannot_label(site: Site) -> None:
    from ledger.db import make_engine
    from ledger.tenants import issue_key

    engine = make_engine(site.db_url)
    try:
        sync = issue_key(engine, "acme", key_name="zendesk-sync", scopes=["submit"]).key
    finally:
        engine.dispose()
    client = site.client
    _login(client, sync)
    assert "A-early" in client.get("/ui/review").text
    page = client.get("/ui/review/A-early")
    assert page.status_code == 200 and 'data-testid="read-only"' in page.text
    assert "data-label-form" not in page.text
    posted = client.post("/ui/review/A-early", data={"csrf": _csrf(page.text), "resolved": "yes"})
    assert posted.status_code == 403 and "--scope review" in posted.text
    assert _labels(site.db_url) == []


def test_a_submitted_label_is_shown_as_such_and_labels_nothing(site: Site) -> None:
    from judge.models import Label
    from ledger.db import make_engine
    from ledger.records import UNREVIEWED_LABEL_SOURCE
    from ledger.store import Ledger

    engine = make_engine(site.db_url)
    try:
        for outcome_id in (site.unsampled, "A-early"):
            Ledger(engine, tenant="acme").record_label(
                outcome_id, Label(resolved=True, by="bot"), source=UNREVIEWED_LABEL_SOURCE
            )
    finally:
        engine.dispose()
    _login(site.client, site.acme)
    assert "A-early" in site.client.get("/ui/review").text  # still waiting for a person
    page = site.client.get(f"/ui/review/{site.unsampled}").text
    assert "sent inside the outcome by a key that may not label, not counted" in page
    assert "Already labelled" not in page


def test_logout_ends_the_session(site: Site) -> None:
    client = site.client
    _login(client, site.acme)
    html = client.get("/ui/review").text
    out = client.post("/ui/logout", data={"csrf": _csrf(html)}, follow_redirects=False)
    assert out.status_code == 303 and 'oj_session=""' in out.headers["set-cookie"]
    assert client.get("/ui/review", follow_redirects=False).status_code == 303


def test_cost_page_checks_the_labour_cost(site: Site) -> None:
    client = site.client
    _login(client, site.acme)
    bad = client.get("/ui/cost", params={"labor": "-3"})
    assert bad.status_code == 422 and "must be a number &gt; 0" in bad.text
    good = client.get("/ui/cost", params={"labor": "12.5"})
    assert good.status_code == 200 and 'value="12.5"' in good.text
    calibration = client.get("/ui/calibration")
    assert calibration.status_code == 200 and 'data-testid="labelled-count">0<' in calibration.text


def test_revoked_key_is_logged_out_on_the_next_page(site: Site) -> None:
    from api.web.session import key_id_of
    from ledger.db import make_engine
    from ledger.tenants import revoke_key

    client = site.client
    _login(client, site.acme)
    assert client.get("/ui/cost", follow_redirects=False).status_code == 200
    engine = make_engine(site.db_url)
    try:
        key_id = key_id_of(site.acme)
        assert key_id is not None and revoke_key(engine, key_id)
    finally:
        engine.dispose()
    response = client.get("/ui/cost", follow_redirects=False)
    assert response.status_code == 303
    assert "revoked" in response.headers["location"]
    assert 'oj_session=""' in response.headers["set-cookie"]
