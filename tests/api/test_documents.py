"""Rubrics and panels over the API: stored per tenant (versioned by content), validated with
located errors, held to the panel policy (api_base allowlist, key variables, learned paths), and
resolved for jobs by :mod:`ledger.documents`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from config.settings import Settings, get_settings
from tests.api.conftest import auth

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = (ROOT / "rubrics" / "support-resolution.yaml").read_text(encoding="utf-8")


def short_rubric(name: str, question: str = "Was the customer's problem solved?") -> str:
    return (
        f"name: {name}\nkind: support_ticket\ncriteria:\n  - id: solved\n    question: {question}\n"
    )


PANEL = "name: quick\njudges:\n  - name: mini\n    model: openai/gpt-4o-mini\n  - kind: signals\n"


def create(client: TestClient, key: str, kind: str, text: str) -> Any:
    return client.post(f"/v1/{kind}", json={"yaml": text}, headers=auth(key))


def test_a_stored_rubric_is_listed_versioned_and_private(
    client: TestClient, keys: dict[str, str]
) -> None:
    acme, globex = keys["acme"], keys["globex"]
    first = create(client, acme, "rubrics", short_rubric("tickets"))
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["name"] == "tickets" and body["source"] == "stored"
    assert body["ref"] == f"tickets@{body['version']}"
    assert body["document"]["criteria"][0]["id"] == "solved"

    second = create(client, acme, "rubrics", short_rubric("tickets", "Did it work?")).json()
    assert second["version"] != body["version"]
    detail = client.get("/v1/rubrics/tickets", headers=auth(acme)).json()
    assert detail["version"] == second["version"]
    assert [v["version"] for v in detail["versions"]] == [second["version"], body["version"]]
    assert "Did it work?" in detail["yaml"]
    pinned = client.get(f"/v1/rubrics/tickets@{body['version']}", headers=auth(acme)).json()
    assert pinned["document"]["criteria"][0]["question"] == "Was the customer's problem solved?"

    # Posting the first version again makes it current again; no new version appears.
    create(client, acme, "rubrics", short_rubric("tickets"))
    again = client.get("/v1/rubrics/tickets", headers=auth(acme)).json()
    assert again["version"] == body["version"] and len(again["versions"]) == 2

    listed = client.get("/v1/rubrics", headers=auth(acme)).json()["items"]
    assert {(d["name"], d["source"]) for d in listed} == {
        ("tickets", "stored"),
        ("support-resolution", "shipped"),
        ("report-accuracy", "shipped"),
    }
    assert client.get("/v1/rubrics/tickets", headers=auth(globex)).status_code == 404
    names = {d["name"] for d in client.get("/v1/rubrics", headers=auth(globex)).json()["items"]}
    assert names == {"support-resolution", "report-accuracy"}
    shipped = client.get("/v1/rubrics/support-resolution", headers=auth(globex)).json()
    assert shipped["source"] == "shipped" and shipped["yaml"] is None


def test_invalid_documents_are_422_with_line_and_field(
    client: TestClient, keys: dict[str, str]
) -> None:
    key = keys["acme"]
    bad_scale = short_rubric("x") + "    scale: 7\n"
    response = create(client, key, "rubrics", bad_scale)
    assert response.status_code == 422
    problem = response.json()["error"]["details"][0]
    assert problem["line"] == 6 and problem["field"] == "criteria[0].scale"
    assert "line 6" in response.json()["error"]["message"]

    for text, field in [
        ("name: x\nname: y\n", None),  # duplicate key (YAML level)
        ("a: &x 1\nb: *x\n", None),  # anchors refused
        ("name: q\njudges: []\n", "judges"),
        (
            "name: q\njudges:\n  - {name: m, model: openai/x, api_key: sk-123}\n",
            "judges[0].api_key",
        ),
    ]:
        kind = "panels" if "judges" in text else "rubrics"
        r = create(client, key, kind, text)
        assert r.status_code == 422, text
        details = r.json()["error"]["details"]
        assert details[0]["line"] is not None
        if field is not None:
            assert details[0]["field"] == field
    assert create(client, key, "rubrics", "").status_code == 422
    infinite = create(
        client, key, "panels", "name: p\njudges:\n  - {kind: signals, weight: .inf}\n"
    )
    assert infinite.status_code == 422
    assert infinite.json()["error"]["details"][0]["field"] == "judges[0].weight"
    assert client.get("/v1/panels/a%00b", headers=auth(key)).status_code == 404
    huge = create(client, key, "rubrics", "a: " + "x" * 300_000)
    assert huge.status_code == 422
    assert client.get("/v1/rubrics", headers=auth(key)).json()["items"][0]["source"] == "shipped"


REFUSED = [
    ("{name: m, model: openai/x, api_base: 'http://169.254.169.254/'}", "api_base"),
    ("{name: m, model: openai/x, api_key_env: OUTCOME_JUDGE_DB_URL}", "api_key_env"),
    ("{name: m, model: openai/x, base_url: 'http://evil.example'}", "base_url"),
    ("{name: m, model: openai/x, vertex_credentials: /etc/passwd}", "vertex_credentials"),
    ("{kind: learned, path: /etc/passwd}", "path"),
]


def test_the_panel_policy_refuses_what_could_leak_keys_or_files(
    client: TestClient, keys: dict[str, str]
) -> None:
    for judge, field in REFUSED:
        response = create(client, keys["acme"], "panels", f"name: p\njudges:\n  - {judge}\n")
        assert response.status_code == 422, judge
        error = response.json()["error"]
        assert error["details"][0]["field"] == f"judges[0].{field}"
        assert "not allowed" in error["message"] or "cannot be set" in error["message"]
    assert client.get("/v1/panels/p", headers=auth(keys["acme"])).status_code == 404


def test_api_base_on_the_allowlist_and_safe_keys_are_accepted(
    client: TestClient, keys: dict[str, str], tmp_path: Path, db_url: str
) -> None:
    model = tmp_path / "learned.joblib"
    allowed = Settings(allowed_api_bases=["http://127.0.0.1:9999/v1"], learned_model_path=model)
    client.app.dependency_overrides[get_settings] = lambda: allowed  # type: ignore[attr-defined]
    try:
        text = (
            "name: local-llm\njudges:\n"
            "  - {name: m, model: openai/x, api_base: 'http://127.0.0.1:9999/v1/', "
            "api_key_env: OPENAI_API_KEY, max_tokens: 300, seed: 1}\n"
            f"  - {{kind: learned, path: '{model}'}}\n"
        )
        response = create(client, keys["acme"], "panels", text)
        assert response.status_code == 201, response.text
        judges = response.json()["document"]["judges"]
        assert judges[0]["api_base"] == "http://127.0.0.1:9999/v1/" and judges[0]["seed"] == 1
    finally:
        client.app.dependency_overrides.clear()  # type: ignore[attr-defined]
    # With the default (empty) allowlist the same host is refused ...
    other = text.replace("local-llm", "other")
    assert create(client, keys["acme"], "panels", other).status_code == 422
    # ... and the panel stored earlier can still be read but no longer be used by a job.
    assert client.get("/v1/panels/local-llm", headers=auth(keys["acme"])).status_code == 200
    from ledger.db import make_engine
    from ledger.documents import DocumentError, resolve_panel

    engine = make_engine(db_url)
    try:
        with pytest.raises(DocumentError, match="api_base"):
            resolve_panel(engine, "acme", "local-llm", settings=Settings(learned_model_path=model))
        assert resolve_panel(engine, "acme", "local-llm", settings=allowed).name == "local-llm"
    finally:
        engine.dispose()


def test_panels_are_private_and_default_is_always_there(
    client: TestClient, keys: dict[str, str]
) -> None:
    acme, globex = keys["acme"], keys["globex"]
    created = create(client, acme, "panels", PANEL)
    assert created.status_code == 201, created.text
    assert [j["name"] for j in created.json()["document"]["judges"]] == ["mini", "signals"]
    assert client.get("/v1/panels/quick", headers=auth(acme)).json()["source"] == "stored"
    assert client.get("/v1/panels/quick", headers=auth(globex)).status_code == 404
    listed = client.get("/v1/panels", headers=auth(globex)).json()["items"]
    assert [(d["name"], d["source"]) for d in listed] == [("default", "shipped")]
    assert client.get("/v1/panels/default", headers=auth(globex)).status_code == 200


def test_resolution_for_jobs(client: TestClient, keys: dict[str, str], db_url: str) -> None:
    from ledger.db import make_engine
    from ledger.documents import UnknownDocumentError, resolve_panel, resolve_rubrics

    create(client, keys["acme"], "rubrics", short_rubric("support-resolution"))
    create(client, keys["acme"], "panels", PANEL)
    engine = make_engine(db_url)
    try:
        mine = resolve_rubrics(engine, "acme", None, ["support_ticket", "report"])
        assert mine["support_ticket"].criteria[0].id == "solved"  # the stored one wins
        assert mine["report"].name == "report-accuracy"
        theirs = resolve_rubrics(engine, "globex", {"support_ticket": "support-resolution"}, [])
        assert len(theirs["support_ticket"].criteria) > 1  # the shipped one
        assert resolve_panel(engine, "acme", "quick").name == "quick"
        assert resolve_panel(engine, "globex").judges  # the server default
        with pytest.raises(UnknownDocumentError):
            resolve_panel(engine, "globex", "quick")
        with pytest.raises(UnknownDocumentError):
            resolve_rubrics(engine, "acme", {"support_ticket": "../../etc/passwd.yaml"}, [])
        with pytest.raises(ValueError, match="for report outcomes"):
            resolve_rubrics(engine, "acme", {"support_ticket": "report-accuracy"}, [])
    finally:
        engine.dispose()
