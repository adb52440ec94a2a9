"""`GET /v1/calibration`: the same report as `judge calibrate --db ... --json` on the same
ledger, narrowed per tenant, fed at once by labels posted through the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import app
from tests.api.conftest import auth
from tests.api.test_outcomes import post

ROOT = Path(__file__).resolve().parents[2]
TICKETS = ROOT / "datasets" / "tickets.jsonl"
LOCAL_PANEL = {
    "name": "local",
    "judges": [{"kind": "signals"}],
    "aggregation": "mean",
    "abstain_band": [0.35, 0.65],
}


def cli_json(*args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def verify_into(db_url: str, tmp_path: Path, tenant: str, tickets: Path) -> None:
    """Record verdicts with the CLI (local signals panel: no model calls)."""
    panel = tmp_path / "local.yaml"
    panel.write_text(json.dumps(LOCAL_PANEL))
    result = CliRunner().invoke(
        app,
        ["verify", str(tickets), "-p", str(panel), "--db", db_url, "--tenant", tenant,
         "--out", str(tmp_path / f"{tenant}.jsonl")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def test_calibration_equals_the_cli_and_labels_count_at_once(
    client: TestClient, keys: dict[str, str], db_url: str, tmp_path: Path
) -> None:
    acme = keys["acme"]
    tickets = [json.loads(line) for line in TICKETS.read_text().splitlines()]
    assert post(client, acme, tickets).status_code == 200
    # Nothing verified yet: refused like the CLI, with the reason.
    empty = client.get("/v1/calibration", headers=auth(acme))
    assert empty.status_code == 422 and "no verdicts" in empty.json()["error"]["message"]

    verify_into(db_url, tmp_path, "acme", TICKETS)
    params: dict[str, Any] = {"seed": 3, "n_boot": 200}
    api = client.get("/v1/calibration", params=params, headers=auth(acme))
    assert api.status_code == 200, api.text
    cli = cli_json("calibrate", "--db", db_url, "--tenant", "acme", "--seed", "3",
                   "--n-boot", "200")  # fmt: skip
    assert api.json() == cli
    assert cli["counts"]["joined"] == len(tickets)

    narrowed: dict[str, Any] = {**params, "rubric": "support-resolution", "panel": "local",
                "from": "2000-01-01", "to": "2100-01-01T00:00:00Z", "by": "judge"}  # fmt: skip
    cli_narrowed = cli_json("calibrate", "--db", db_url, "--tenant", "acme", "--seed", "3",
                            "--n-boot", "200", "--rubric", "support-resolution", "--panel",
                            "local", "--from", "2000-01-01", "--to", "2100-01-01T00:00:00Z",
                            "--by", "judge")  # fmt: skip
    assert client.get("/v1/calibration", params=narrowed, headers=auth(acme)).json() == cli_narrowed

    # A label posted through the API changes the report immediately, and as it changes the CLI's.
    flipped = next(t for t in tickets if t["label"]["resolved"])
    response = client.post(
        "/v1/labels",
        json={"labels": [{"outcome_id": flipped["id"], "resolved": False, "by": "qa"}]},
        headers=auth(acme),
    )
    assert response.status_code == 200
    after = client.get("/v1/calibration", params=params, headers=auth(acme)).json()
    assert after["counts"]["labels"] == cli["counts"]["labels"] + 1
    assert after == cli_json("calibrate", "--db", db_url, "--tenant", "acme", "--seed", "3",
                             "--n-boot", "200")  # fmt: skip


def test_calibration_is_per_tenant_and_checks_its_parameters(
    client: TestClient, keys: dict[str, str], db_url: str, tmp_path: Path
) -> None:
    lines = TICKETS.read_text().splitlines()[:20]
    subset = tmp_path / "subset.jsonl"
    subset.write_text("\n".join(lines) + "\n")
    verify_into(db_url, tmp_path, "acme", subset)
    acme = client.get(
        "/v1/calibration", params={"seed": 1, "n_boot": 50}, headers=auth(keys["acme"])
    )
    assert acme.status_code == 200 and acme.json()["counts"]["outcomes_with_verdict"] == 20
    globex = client.get("/v1/calibration", headers=auth(keys["globex"]))
    assert globex.status_code == 422 and "no verdicts" in globex.json()["error"]["message"]

    def error(**params: Any) -> str:
        response = client.get("/v1/calibration", params=params, headers=auth(keys["acme"]))
        assert response.status_code == 422, response.text
        message: str = response.json()["error"]["message"]
        return message

    assert "must be before" in error(**{"from": "2026-02-01", "to": "2026-01-01"})
    assert "unknown grouping" in error(by="judge,mood")
    assert "rubric nope" in error(rubric="nope")
    assert error(n_boot=0)
    # The same filters on the CLI fail the same way (exit 2), so the two stay consistent.
    result = CliRunner().invoke(app, ["calibrate", "--db", db_url, "--tenant", "acme",
                                      "--rubric", "nope"])  # fmt: skip
    assert result.exit_code == 2 and "no verdicts" in result.stderr
