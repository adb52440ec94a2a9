"""`judge tenants` through the real CLI, keys stored only as hashes, and GET /v1/tenant.

Every test runs on SQLite and PostgreSQL (``db_url``); the API side uses the in-process client.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import app as cli
from tests.api.conftest import auth

KEY_RE = re.compile(r"^oj_([0-9a-f]{12})_[A-Za-z0-9_-]{40,}$")


class Cli:
    """`judge tenants ...` against one ledger, in-process (stdout and stderr kept apart)."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.runner = CliRunner()

    def __call__(self, *args: str, ok: bool = True) -> tuple[int, str, str]:
        result = self.runner.invoke(cli, ["tenants", *args, "--db", self.db_url])
        if ok:
            assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        return result.exit_code, result.stdout, result.stderr

    def create(self, name: str, *args: str) -> str:
        _, out, err = self(*("create", name, *args))
        key = out.strip()
        assert KEY_RE.match(key), out
        assert "shown once" in err and key not in err
        return key


@pytest.fixture
def tenants(db_url: str) -> Cli:
    return Cli(db_url)


@pytest.fixture
def api(db_url: str) -> Iterator[TestClient]:
    """An in-process API over the same ledger (its lifespan migrates it)."""
    from api.app import create_app

    with TestClient(create_app(db_url=db_url, embedded_worker=False)) as client:
        yield client


def _dump(db_url: str) -> str:
    """Every row of every table of the ledger, as text (what a stolen database would reveal)."""
    from ledger.db import make_engine

    engine = make_engine(db_url)
    try:
        meta = sa.MetaData()
        meta.reflect(bind=engine)
        with engine.connect() as conn:
            rows = [
                repr(tuple(row))
                for table in meta.sorted_tables
                for row in conn.execute(table.select())
            ]
    finally:
        engine.dispose()
    return "\n".join(rows)


def _sqlite_bytes(db_url: str) -> bytes:
    """The SQLite file and its WAL, raw (a key must not hide in a page not yet checkpointed)."""
    path = Path(db_url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def test_key_is_shown_once_and_only_its_hash_is_stored(tenants: Cli, db_url: str) -> None:
    key = tenants.create("acme")
    key_id = KEY_RE.match(key).group(1)  # type: ignore[union-attr]
    second = tenants("add-key", "acme", "--name", "ci")[1].strip()
    assert KEY_RE.match(second) and second != key

    dump = _dump(db_url)
    for secret in (key, second):
        assert secret not in dump
        # not even the random part alone (it may itself contain '_': strip the known prefix)
        assert secret[len("oj_") + 12 + 1 :] not in dump
        assert hashlib.sha256(secret.encode()).hexdigest() in dump
    if db_url.startswith("sqlite"):
        raw = _sqlite_bytes(db_url)
        assert key.encode() not in raw and second.encode() not in raw

    from ledger.db import make_engine

    engine = make_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT key_id, key_hash, name FROM api_keys ORDER BY pk")
        ).all()
    engine.dispose()
    assert [r[0] for r in rows] == [key_id, KEY_RE.match(second).group(1)]  # type: ignore[union-attr]
    assert rows[0][1] == hashlib.sha256(key.encode()).hexdigest()
    assert rows[1][2] == "ci"


def test_create_then_the_key_authenticates_with_its_limits(tenants: Cli, api: TestClient) -> None:
    key = tenants.create("acme", "--daily-budget", "2.50", "--rate-limit", "7")
    body = api.get("/v1/tenant", headers=auth(key)).json()
    assert body["name"] == "acme"
    assert Decimal(body["daily_budget_usd"]) == Decimal("2.5")
    assert body["requests_per_minute"] == 7
    assert Decimal(body["spent_today_usd"]) == 0 and body["budget_reached"] is False


def test_create_json_output(tenants: Cli) -> None:
    _, out, _ = tenants("create", "acme", "--daily-budget", "3", "--json")
    data = json.loads(out)
    assert KEY_RE.match(data["key"]) and data["key"].startswith(f"oj_{data['key_id']}_")
    assert data["tenant"] == "acme" and data["daily_budget_usd"] == "3"


def test_keys_carry_the_scopes_they_were_made_with(tenants: Cli, api: TestClient) -> None:
    full = tenants.create("acme")
    _, out, err = tenants(
        "add-key", "acme", "--name", "zendesk-sync", "--scope", "submit", "--json"
    )
    made = json.loads(out)
    assert made["scopes"] == ["submit"] and "every scope" not in err
    assert "--scope submit" in tenants("add-key", "acme")[2]  # an all-scope key says so
    _, out, _ = tenants("add-key", "acme", "--scope", "configure", "--scope", "review", "--json")
    assert json.loads(out)["scopes"] == ["review", "configure"]  # in the scopes' own order
    listed = json.loads(tenants("list", "--keys", "--json")[1])["tenants"][0]["keys"]
    assert [k["scopes"] for k in listed] == [
        ["submit", "review", "configure"],
        ["submit"],
        ["submit", "review", "configure"],
        ["review", "configure"],
    ]
    text = tenants("list", "--keys")[1]
    assert f"key {made['key_id']} (zendesk-sync)" in text and "scopes submit\n" in text
    code, _, err = tenants("add-key", "acme", "--scope", "admin", ok=False)
    assert code != 0 and "--scope: unknown key scope 'admin'" in err
    # A narrow key authenticates and reads like any other.
    assert api.get("/v1/tenant", headers=auth(made["key"])).status_code == 200
    assert api.get("/v1/tenant", headers=auth(full)).status_code == 200


def test_list_shows_budget_rate_and_active_keys(tenants: Cli) -> None:
    from config.settings import get_settings

    tenants.create("acme", "--daily-budget", "12.5")
    tenants.create("globex", "--rate-limit", "30")
    tenants("add-key", "acme")

    data = json.loads(tenants("list", "--json", "--keys")[1])["tenants"]
    assert [t["name"] for t in data] == ["acme", "globex"]
    acme, globex = data
    assert acme["daily_budget_usd"] == "12.5" and acme["active_keys"] == 2
    assert acme["requests_per_minute"] is None
    assert acme["effective_requests_per_minute"] == get_settings().requests_per_minute
    assert globex["daily_budget_usd"] is None and globex["requests_per_minute"] == 30
    assert len(acme["keys"]) == 2 and all(k["revoked_at"] is None for k in acme["keys"])
    datetime.fromisoformat(acme["created_at"])

    text = tenants("list")[1].splitlines()
    assert text[0].split()[:2] == ["NAME", "CREATED"]
    assert text[1].split()[0] == "acme" and "12.5" in text[1] and text[1].split()[-1] == "2"
    assert text[2].split()[0] == "globex" and " 30 " in text[2]


def test_revoked_key_answers_401_and_others_keep_working(tenants: Cli, api: TestClient) -> None:
    first = tenants.create("acme")
    second = tenants("add-key", "acme")[1].strip()
    first_id = KEY_RE.match(first).group(1)  # type: ignore[union-attr]
    assert api.get("/v1/tenant", headers=auth(first)).status_code == 200

    _, out, _ = tenants("revoke-key", first_id)
    assert first_id in out
    refused = api.get("/v1/tenant", headers=auth(first))
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert api.get("/v1/tenant", headers=auth(second)).json()["name"] == "acme"

    listed = json.loads(tenants("list", "--json", "--keys")[1])["tenants"][0]
    assert listed["active_keys"] == 1
    assert {k["key_id"]: k["revoked_at"] is not None for k in listed["keys"]}[first_id]

    code, _, err = tenants("revoke-key", first_id, ok=False)
    assert code != 0 and "already revoked" in err and "judge tenants list --keys" in err
    # A whole key pasted in is revoked by its id.
    tenants("revoke-key", second)
    assert api.get("/v1/tenant", headers=auth(second)).status_code == 401


def test_set_limits_applies_to_the_next_request(tenants: Cli, api: TestClient) -> None:
    from config.settings import get_settings

    key = tenants.create("acme")

    def current() -> dict[str, object]:
        body: dict[str, object] = api.get("/v1/tenant", headers=auth(key)).json()
        return body

    assert current()["daily_budget_usd"] is None
    tenants("set-limits", "acme", "--daily-budget", "4", "--rate-limit", "9")
    assert (
        Decimal(str(current()["daily_budget_usd"])) == 4 and current()["requests_per_minute"] == 9
    )
    _, out, _ = tenants("set-limits", "acme", "--no-budget", "--json")
    assert json.loads(out)["daily_budget_usd"] is None and json.loads(out)["active_keys"] == 1
    assert current()["daily_budget_usd"] is None and current()["requests_per_minute"] == 9
    tenants("set-limits", "acme", "--default-rate")
    assert current()["requests_per_minute"] == get_settings().requests_per_minute


#: A wrong command line and what its error must say (the fix). One ledger serves them all:
#: each case starts a CLI that migrates the ledger, so a test per case would cost seconds each.
ERRORS: list[tuple[list[str], str]] = [
    (["create", "acme"], "judge tenants add-key acme"),
    (["create", "new", "--daily-budget", "-1"], "--daily-budget"),
    (["create", "new", "--daily-budget", "ten"], "e.g. 25"),
    (["create", "new", "--daily-budget", "inf"], "--daily-budget"),
    (["create", "new", "--daily-budget", "1e12"], "--daily-budget"),
    (["create", "new", "--rate-limit", "0"], "--rate-limit"),
    (["add-key", "nobody"], "judge tenants create nobody"),
    (["revoke-key", "0123456789ab"], "judge tenants list --keys"),
    (["set-limits", "nobody", "--rate-limit", "3"], "judge tenants create nobody"),
    (["set-limits", "acme"], "nothing to change"),
    (["set-limits", "acme", "--daily-budget", "1", "--no-budget"], "not both"),
    (["set-limits", "acme", "--rate-limit", "5", "--default-rate"], "not both"),
    (["set-limits", "acme", "--daily-budget", "-2"], "--daily-budget"),
]


def test_errors_exit_nonzero_with_the_fix(tenants: Cli, db_url: str) -> None:
    tenants.create("acme")
    before = _dump(db_url)
    for args, message in ERRORS:
        code, out, err = tenants(*args, ok=False)
        assert code != 0, args
        assert message in err, (args, err)
        assert "oj_" not in out, args  # no key printed for a failed command
    assert _dump(db_url) == before  # and nothing written


def test_commands_other_than_create_need_an_existing_ledger(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path}/nope.db"
    code, _, err = Cli(missing)("list", ok=False)
    assert code == 2 and "no ledger" in err and "judge tenants create" in err
    assert not (tmp_path / "nope.db").exists()


def test_bad_db_url_exits_with_the_ledgers_message(tmp_path: Path) -> None:
    code, _, err = Cli("mysql://x/y")("create", "acme", ok=False)
    assert code == 2 and "SQLite or PostgreSQL" in err


# -- GET /v1/tenant: today's spend against the budget ------------------------------------------


def _record_spend(db_url: str, tenant: str, costs: list[float], *, at: datetime) -> None:
    from judge.verdict import JudgeCall
    from ledger.db import make_engine
    from ledger.store import Ledger

    engine = make_engine(db_url)
    try:
        Ledger(engine, tenant=tenant).record_calls(
            [
                JudgeCall(
                    outcome_id=f"o{i}",
                    judge="j",
                    model="openai/fake",
                    cache_key=f"{tenant}-{at.isoformat()}-{i}",
                    prompt_digest="d",
                    cost_usd=cost,
                    at=at,
                )
                for i, cost in enumerate(costs)
            ]
        )
    finally:
        engine.dispose()


def test_tenant_route_reports_spend_today_and_when_the_budget_is_reached(
    tenants: Cli, api: TestClient, db_url: str
) -> None:
    key = tenants.create("acme", "--daily-budget", "1")
    other = tenants.create("globex")
    now = datetime.now(UTC)
    _record_spend(db_url, "acme", [0.25, 0.5], at=now)
    _record_spend(db_url, "acme", [7.0], at=now - timedelta(days=1))  # yesterday: not counted
    _record_spend(db_url, "globex", [9.0], at=now)  # another tenant: not counted

    body = api.get("/v1/tenant", headers=auth(key)).json()
    assert Decimal(body["spent_today_usd"]) == Decimal("0.75")
    assert Decimal(body["budget_remaining_usd"]) == Decimal("0.25")
    assert body["budget_reached"] is False
    resets = datetime.fromisoformat(body["budget_resets_at"])
    assert resets.tzinfo is not None and resets - now <= timedelta(days=1) and resets > now
    assert (resets.hour, resets.minute, resets.second) == (0, 0, 0)

    _record_spend(db_url, "acme", [0.25], at=now)
    body = api.get("/v1/tenant", headers=auth(key)).json()
    assert body["budget_reached"] is True and Decimal(body["budget_remaining_usd"]) == 0
    assert "reached" in body["message"] and "judge tenants set-limits" in body["message"]

    unlimited = api.get("/v1/tenant", headers=auth(other)).json()
    assert unlimited["daily_budget_usd"] is None and unlimited["budget_reached"] is False
    assert Decimal(unlimited["spent_today_usd"]) == 9


def test_concurrent_creates_of_one_tenant_give_one_key_and_one_clear_error(db_url: str) -> None:
    import threading

    from ledger.db import make_engine
    from ledger.schema import migrate
    from ledger.tenants import TenantExistsError, create_tenant, list_tenants

    engine = make_engine(db_url)
    migrate(engine)
    barrier = threading.Barrier(4)
    results: list[object] = []

    def create() -> None:
        barrier.wait()
        try:
            results.append(create_tenant(engine, "acme").key)
        except TenantExistsError as exc:
            results.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        keys = [r for r in results if isinstance(r, str)]
        errors = [r for r in results if isinstance(r, TenantExistsError)]
        assert len(keys) == 1 and len(errors) == 3, results
        assert all("judge tenants add-key acme" in str(e) for e in errors)
        assert [(t.name, t.active_keys) for t in list_tenants(engine)] == [("acme", 1)]
    finally:
        engine.dispose()
