"""Running the real ``judge`` CLI for the reliability scenarios, and reading the ledger back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from judge.verdict import Verdict

ROOT = Path(__file__).resolve().parents[2]
FAKE_KEY_ENV = "FAKE_PROVIDER_KEY"
TABLES = ("tenants", "outcomes", "verdicts", "judge_calls", "labels", "touches", "cost_entries")


def cli_env(**extra: str) -> dict[str, str]:
    """The test's environment without OUTCOME_JUDGE_* settings, plus a fake provider key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTCOME_JUDGE_")}
    env.update({FAKE_KEY_ENV: "sk-fake-reliability", "PYTHONPATH": str(ROOT), **extra})
    return env


#: Retry waits for reliability runs (the panel's ``backoff``): the defaults (1 s doubling, up to
#: 30 s) suit a provider but would make a run with hundreds of injected faults take minutes.
FAST_BACKOFF = {"initial": 0.02, "maximum": 0.2, "jitter": 0.02, "retry_after_cap": 0.5}


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "app.cli", *args]


def run_cli(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    """Run ``judge <args>`` in a fresh process and wait for it."""
    return subprocess.run(
        cli_command(*args),
        cwd=cwd,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def llm_spec(name: str, model: str, api_base: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "model": model,
        "api_base": api_base,
        "api_key_env": FAKE_KEY_ENV,
        "backoff": FAST_BACKOFF,
        **extra,
    }


def write_panel(path: Path, judges: Sequence[dict[str, Any]], **panel: Any) -> Path:
    path.write_text(json.dumps({"name": "reliability", "judges": list(judges), **panel}))
    return path


def read_verdicts(path: Path) -> list[Verdict]:
    return [Verdict.model_validate_json(line) for line in path.read_text().splitlines() if line]


def table_counts(db_url: str) -> dict[str, int]:
    """Rows per ledger table (tables that do not exist yet count 0)."""
    engine = sa.create_engine(db_url)
    try:
        names = set(sa.inspect(engine).get_table_names())
        with engine.connect() as conn:
            return {
                t: int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one())
                if t in names
                else 0
                for t in TABLES
            }
    finally:
        engine.dispose()


def query(db_url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


def run_gullible_verify(
    tmp_path: Path, records: Sequence[dict[str, Any]], *, detector: Path | None = None
) -> list[Verdict]:
    """``judge verify`` (a real process, litellm's HTTP path) on ``records`` with a model that
    obeys its input (the fault server's gullible mode) as the only LLM judge; its verdicts.
    ``detector``: the injection detector file to screen with (default: the shipped one)."""
    from tests.fakes.faults import FaultInjector, failing_reply
    from tests.fakes.openai_server import FakeOpenAIServer
    from tests.reliability.synth import write_jsonl

    inp = write_jsonl(tmp_path / "outcomes.jsonl", list(records))
    env = cli_env(**({"OUTCOME_JUDGE_INJECTION_DETECTOR_PATH": str(detector)} if detector else {}))
    out = tmp_path / "verdicts.jsonl"
    injector = FaultInjector(gullible=True, base=failing_reply)
    with FakeOpenAIServer(default=injector) as server:
        spec = llm_spec("gullible", "openai/gullible", server.base_url, max_retries=0)
        panel = write_panel(tmp_path / "panel.json", [spec], quorum=1)
        result = run_cli(
            "verify", str(inp), "--panel", str(panel), "--db", f"sqlite:///{tmp_path}/l.db",
            "--out", str(out), "--json",
            cwd=tmp_path, env=env,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    verdicts = read_verdicts(out)
    assert len(verdicts) == len(records)
    return verdicts
