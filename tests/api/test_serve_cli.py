"""`judge serve` as a real process: refusals with the fix, serving on SQLite and PostgreSQL, several
API processes on PostgreSQL, a clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import auth, make_key
from tests.api.live import REPO, LiveServer, free_port
from tests.ledger.conftest import _pg_schema
from tests.process_tools import alive


def judge(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `judge ARGS...` to completion (for commands that must exit by themselves)."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "120"},
    )


def test_help_says_how_to_start(tmp_path: Path) -> None:
    result = judge("serve", "--help")
    assert result.returncode == 0
    for needle in ("--workers", "--db", "PostgreSQL", "judge tenants create", "/docs", "/metrics"):
        assert needle in result.stdout, needle


def test_several_workers_on_sqlite_are_refused_with_the_fix(tmp_path: Path) -> None:
    port = free_port()
    result = judge(
        "serve", "--db", f"sqlite:///{tmp_path}/x.db", "--workers", "2", "--port", str(port)
    )
    assert result.returncode == 2
    assert "needs PostgreSQL" in result.stderr and "--db postgresql" in result.stderr
    assert not (tmp_path / "x.db").exists()  # refused before touching anything


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u@localhost/x", "SQLite or PostgreSQL"),
        ("postgresql+psycopg://nobody@127.0.0.1:{port}/none", "cannot connect to PostgreSQL"),
        ("not a url", "URL"),
    ],
    ids=["unsupported", "unreachable", "malformed"],
)
def test_a_bad_database_url_exits_with_the_ledgers_message(url: str, message: str) -> None:
    port = free_port()
    result = judge("serve", "--db", url.format(port=free_port()), "--port", str(port))
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    with pytest.raises(httpx.TransportError):  # and nothing is listening
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)


def test_serves_and_stops_cleanly_on_sigterm(
    db_url: str, keys: dict[str, str], tmp_path: Path
) -> None:
    server = LiveServer(db_url, log=tmp_path / "serve.log")
    try:
        with server.client() as http:
            assert http.get("/readyz").json() == {"status": "ready"}
            assert http.get("/v1/tenant").status_code == 401
            assert http.get("/v1/tenant", headers=auth(keys["acme"])).json()["name"] == "acme"
            paths = http.get("/openapi.json").json()["paths"]
            assert {"/v1/tenant", "/metrics", "/healthz", "/readyz"} <= set(paths)
            # Under real uvicorn too, the request above is counted for its tenant.
            text = http.get("/metrics", headers=auth(keys["acme"])).text
            series = (
                'outcome_judge_http_requests_total{method="GET",route="/v1/tenant",status="200"}'
            )
            assert f"{series} 1.0" in text.splitlines()
        os.killpg(server.proc.pid, signal.SIGTERM)
        # uvicorn shuts down (lifespan and embedded worker stopped), then re-raises the signal.
        assert server.proc.wait(timeout=30) in (0, -signal.SIGTERM), server.output()
        assert "Traceback" not in server.output()
    finally:
        server.stop()


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may hold spaces: the parent pid follows its closing ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


@pytest.mark.postgres
@pytest.mark.slow
def test_two_api_processes_on_postgresql_share_the_database(tmp_path: Path) -> None:
    with _pg_schema() as url:
        key = make_key(url, "acme")
        server = LiveServer(url, log=tmp_path / "serve.log", extra_args=["--workers", "2"])
        try:
            deadline = time.monotonic() + 30
            while len(_children(server.proc.pid)) < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            workers = _children(server.proc.pid)
            assert len(workers) >= 2, (workers, server.output())
            # New connections each time, so both processes get a share; every answer is right.
            for _ in range(20):
                response = httpx.get(f"{server.url}/v1/tenant", headers=auth(key), timeout=30)
                assert response.status_code == 200 and response.json()["name"] == "acme"
            # A key created while the processes run works at once (each reads the database).
            late = make_key(url, "globex")
            for _ in range(5):
                response = httpx.get(f"{server.url}/v1/tenant", headers=auth(late), timeout=30)
                assert response.json()["name"] == "globex"
        finally:
            server.stop()
        deadline = time.monotonic() + 20
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(alive(pid) for pid in workers)  # none left behind
        assert "Traceback" not in server.log_path.read_text()
