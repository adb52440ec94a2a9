"""`judge calibrate/drift/gate --db`: the same reports from the ledger as from the files.

`judge verify` records every verdict and the human label embedded in each outcome of
datasets/tickets.jsonl into a temporary SQLite ledger; reading them back must give exactly the
report that the verdict file and the labelled outcomes give.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import app

ROOT = Path(__file__).resolve().parents[2]
TICKETS = ROOT / "datasets" / "tickets.jsonl"


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    tmp = tmp_path_factory.mktemp("ledger")
    local = tmp / "local.yaml"
    local.write_text(json.dumps({"name": "local", "judges": [{"kind": "signals"}],
                                 "aggregation": "mean", "abstain_band": [0.35, 0.65]}))  # fmt: skip
    url = f"sqlite:///{tmp / 'ledger.db'}"
    out = tmp / "verdicts.jsonl"
    result = CliRunner().invoke(
        app, ["verify", str(TICKETS), "-p", str(local), "--db", url, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    return url, out


def invoke_json(*args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_calibrate_from_the_ledger_equals_calibrate_from_the_files(
    ledger: tuple[str, Path],
) -> None:
    url, verdicts = ledger
    files = invoke_json("calibrate", "-v", str(verdicts), "-l", str(TICKETS), "--seed", "3")
    db = invoke_json("calibrate", "--db", url, "--seed", "3")
    assert db == files
    assert db["counts"]["joined"] == 65 and db["counts"]["labels_without_verdict"] == 0
    # The filters select the same verdicts when they match them all ...
    narrowed = invoke_json("calibrate", "--db", url, "--seed", "3", "--tenant", "acme",
                           "--rubric", "support-resolution", "--panel", "local",
                           "--from", "2000-01-01", "--to", "2100-01-01")  # fmt: skip
    assert narrowed == files


def test_drift_and_gate_from_the_ledger_equal_the_files(ledger: tuple[str, Path]) -> None:
    url, verdicts = ledger
    files = invoke_json("drift", "-v", str(verdicts), "-l", str(TICKETS), "--window", "10")
    assert invoke_json("drift", "--db", url, "--window", "10") == files
    # Every ticket is labelled; abstentions stay out of agreement; windows hold 10 pairs each.
    decided = [
        json.loads(line)["decision"] != "abstain" for line in verdicts.read_text().splitlines()
    ]
    assert len(files["windows"]) == sum(decided) // 10 >= 2
    now = ["--now", "2026-03-01T00:00:00Z"]
    gate_files = invoke_json("gate", "-v", str(verdicts), "-l", str(TICKETS), *now)
    assert invoke_json("gate", "--db", url, "--panel-ref", "local", *now) == gate_files


def test_filters_that_match_nothing_and_bad_combinations_exit_2(ledger: tuple[str, Path]) -> None:
    url, verdicts = ledger
    runner = CliRunner()

    def error(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 2, result.output
        return result.stderr

    assert "matching panel other" in error("calibrate", "--db", url, "--panel", "other")
    assert "matching panel local@0000" in error("calibrate", "--db", url, "--panel", "local@0000")
    assert "matching from 2100" in error("calibrate", "--db", url, "--from", "2100-01-01")
    assert "must be before --to" in error(
        "calibrate", "--db", url, "--from", "2026-02-01", "--to", "2026-01-01"
    )
    assert "not an ISO 8601 time" in error("calibrate", "--db", url, "--to", "yesterday")
    assert "not both" in error("calibrate", "--db", url, "-v", str(verdicts))
    assert "--db URL" in error("calibrate", "-v", str(verdicts))
    assert "use with --db" in error(
        "drift", "-v", str(verdicts), "-l", str(TICKETS), "--tenant", "acme"
    )
    assert "tenant 'globex'" in error("gate", "--db", url, "--tenant", "globex")
    assert "file not found" in error("calibrate", "--db", f"{url}.missing")


def test_a_ledger_with_several_tenants_needs_tenant(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'two.db'}"
    lines = TICKETS.read_text().splitlines()[:2]
    for tenant in ("acme", "globex"):
        part = tmp_path / f"{tenant}.jsonl"
        part.write_text("".join(line.replace('"acme"', f'"{tenant}"') + "\n" for line in lines))
        args = ["verify", str(part), "--db", url, "--out", str(tmp_path / f"{tenant}.out")]
        assert CliRunner().invoke(app, args).exit_code == 0
    result = CliRunner().invoke(app, ["calibrate", "--db", url])
    assert result.exit_code == 2 and "holds tenants acme, globex; pass --tenant" in result.stderr
    one = invoke_json("calibrate", "--db", url, "--tenant", "globex")
    assert one["counts"]["joined"] == 2


def test_correct_from_the_ledger_equals_the_files(ledger: tuple[str, Path]) -> None:
    url, verdicts = ledger
    args = ["--n-boot", "200", "--seed", "5"]
    files = invoke_json("correct", "-v", str(verdicts), "-l", str(TICKETS), *args)
    assert invoke_json("correct", "--db", url, *args) == files
    raw = [json.loads(line)["decision"] for line in verdicts.read_text().splitlines()]
    assert files["n_abstain"] == raw.count("abstain")
