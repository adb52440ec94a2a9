"""Issue 17, section 4, in the web interface: NUL characters in review paths and notes, logout
that really ends the session (also in another API process), throttled failed logins.

SQLite and PostgreSQL (PostgreSQL cannot store or even compare a NUL, which once made these 500).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.api.live import LiveServer
from tests.ledger.conftest import BACKENDS, _pg_schema
from tests.web.test_pages import Site, _csrf, _labels, _login, _seed

SECRET = "s" * 48


@pytest.fixture(params=BACKENDS)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    """The seeded site of test_pages (outcomes with verdicts, tenants acme and globex)."""
    from api.app import create_app

    with _pg_schema() if request.param != "sqlite" else nullcontext() as pg_url:
        db_url = pg_url or f"sqlite:///{tmp_path}/pages.db"
        acme, globex, sampled, unsampled = _seed(db_url)
        app = create_app(db_url=db_url, embedded_worker=False)
        with TestClient(app, base_url="https://testserver") as client:
            yield Site(client, db_url, acme, globex, sampled, unsampled)


def test_a_nul_in_the_review_path_is_404_and_writes_nothing(site: Site) -> None:
    client = site.client
    _login(client, site.acme)
    csrf = _csrf(client.get("/ui/review").text)
    for path in ("/ui/review/A-early%00", "/ui/review/%00", "/ui/review/A%E2%80%AEearly"):
        page = client.get(path)
        assert page.status_code == 404 and "text/html" in page.headers["content-type"], page.text
        posted = client.post(path, data={"csrf": csrf, "resolved": "yes"})
        assert posted.status_code == 404, posted.text
    assert _labels(site.db_url) == []


def test_a_nul_in_the_review_note_is_422_with_the_fix_and_writes_nothing(site: Site) -> None:
    client = site.client
    _login(client, site.acme)
    csrf = _csrf(client.get("/ui/review/A-early").text)
    posted = client.post(
        "/ui/review/A-early", data={"csrf": csrf, "resolved": "no", "note": "came\x00back"}
    )
    assert posted.status_code == 422, posted.text
    assert "NUL character" in posted.text and "remove it" in posted.text
    assert _labels(site.db_url) == []
    saved = client.post(
        "/ui/review/A-early",
        data={"csrf": csrf, "resolved": "no", "note": "came back"},
        follow_redirects=False,
    )
    assert saved.status_code == 303 and len(_labels(site.db_url)) == 1


def _session_cookie(response: httpx.Response) -> str:
    found = re.search(r"oj_session=([^;]+)", response.headers.get("set-cookie", ""))
    assert found is not None, response.headers
    return found.group(1)


def test_after_logout_the_old_cookie_is_refused(site: Site) -> None:
    client = site.client
    cookie = _session_cookie(_login(client, site.acme))  # type: ignore[arg-type]
    csrf = _csrf(client.get("/ui/review").text)
    out = client.post("/ui/logout", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303
    client.cookies.clear()
    client.cookies.set("oj_session", cookie, domain="testserver.local", path="/ui")
    replay = client.get("/ui/review", follow_redirects=False)
    assert replay.status_code == 303 and replay.headers["location"].startswith("/ui/login")
    assert "logged out" in unquote(replay.headers["location"])
    # A forged form post with the old cookie is refused too, before anything is written.
    posted = client.post(
        "/ui/review/A-early", data={"csrf": csrf, "resolved": "yes"}, follow_redirects=False
    )
    assert posted.status_code == 303 and _labels(site.db_url) == []
    # Only that session ended: the key logs in again as before.
    client.cookies.clear()
    assert _login(client, site.acme).status_code == 303  # type: ignore[attr-defined]
    assert client.get("/ui/review", follow_redirects=False).status_code == 200


def _login_over_http(http: httpx.Client, key: str) -> str:
    form = http.get("/ui/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    response = http.post(
        "/ui/login",
        data={"key": key, "csrf": token.group(1), "next": "/ui/review"},
        headers={"Cookie": f"oj_login_csrf={token.group(1)}"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return _session_cookie(response)


@pytest.mark.slow
def test_logout_in_one_api_process_ends_the_session_in_another(site: Site, tmp_path: Path) -> None:
    """Two `judge serve` processes on one database: the revocation is in the ledger, not memory."""
    env = {"OUTCOME_JUDGE_SESSION_SECRET": SECRET, "OUTCOME_JUDGE_EMBEDDED_WORKER": "false"}
    first = LiveServer(site.db_url, log=tmp_path / "a.log", env=env)
    try:
        second = LiveServer(site.db_url, log=tmp_path / "b.log", env=env)
        try:
            with first.client() as a, second.client() as b:
                cookie = _login_over_http(a, site.acme)
                jar = {"Cookie": f"oj_session={cookie}"}
                page = b.get("/ui/review", headers=jar, follow_redirects=False)
                assert page.status_code == 200, page.text
                csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
                assert csrf is not None
                out = a.post(
                    "/ui/logout",
                    data={"csrf": csrf.group(1)},
                    headers=jar,
                    follow_redirects=False,
                )
                assert out.status_code == 303, out.text
                replay = b.get("/ui/review", headers=jar, follow_redirects=False)
                assert replay.status_code == 303
                assert replay.headers["location"].startswith("/ui/login")
        finally:
            second.stop()
    finally:
        first.stop()


def test_failed_logins_are_throttled_per_address_not_for_other_clients(site: Site) -> None:
    client = site.client
    wrong = site.acme[:-4] + "xxxx"
    for _ in range(10):
        assert _login(client, wrong).status_code == 401  # type: ignore[attr-defined]
    refused = _login(client, wrong)
    assert refused.status_code == 429  # type: ignore[attr-defined]
    assert int(refused.headers["retry-after"]) > 0  # type: ignore[attr-defined]
    assert "Too many failed logins" in refused.text  # type: ignore[attr-defined]
    # The right key from this address waits too; from another client it is let in.
    assert _login(client, site.acme).status_code == 429  # type: ignore[attr-defined]
    elsewhere = TestClient(client.app, base_url="https://testserver", client=("10.1.2.3", 5000))
    assert _login(elsewhere, site.acme).status_code == 303  # type: ignore[attr-defined]
