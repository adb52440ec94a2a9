"""A panel a tenant stores runs on the server: it must stay inside a hosted provider.

Loopback listeners stand where litellm's local providers connect by default (Ollama on 11434,
llamafile on 8080, lemonade on 8000, Docker Model Runner on 22088). A stored panel naming those
providers is refused with a 422 that names the provider, a panel that slipped in before the policy
is refused again when a worker uses it, and in every case the listeners see zero connections. A
key variable goes only to the provider it belongs to, and what a provider answered reaches the
tenant as a status, never as its body.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.api.conftest import auth
from tests.api.jobs_helpers import ledger_engine, store_outcomes, ticket
from tests.conftest import machine_lock
from tests.fakes.openai_server import FakeOpenAIServer, Reply

#: Where litellm's local providers connect when no api_base is given (litellm's defaults).
LOCAL_PORTS = (11434, 8080, 8000, 22088, 1234)
LOCAL_MODELS = (
    "ollama/llama3",
    "ollama_chat/llama3",
    "llamafile/llama3",
    "lemonade/llama3",
    "docker_model_runner/llama3",
    "lm_studio/llama3",
    "hosted_vllm/llama3",
)


class Listeners:
    """TCP listeners on loopback that count every connection they accept."""

    def __init__(self, ports: tuple[int, ...]) -> None:
        self.connections: list[tuple[int, bytes]] = []
        self._sockets: list[tuple[int, socket.socket]] = []
        self._stop = threading.Event()
        for port in ports:
            for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
                try:
                    sock = socket.socket(family, socket.SOCK_STREAM)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind((host, port))
                except OSError as exc:
                    sock.close()
                    if family == socket.AF_INET6:
                        continue  # no IPv6 loopback on this machine: nothing can connect there
                    self.close()
                    pytest.skip(f"port {port} on 127.0.0.1 is in use ({exc}); free it to run")
                sock.listen(16)
                sock.settimeout(0.05)
                self._sockets.append((port, sock))
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            for port, sock in self._sockets:
                try:
                    conn, _ = sock.accept()
                except (TimeoutError, OSError):
                    continue
                conn.settimeout(0.5)
                try:
                    head = conn.recv(4096)
                except OSError:
                    head = b""
                self.connections.append((port, head))
                conn.close()

    def close(self) -> None:
        self._stop.set()
        if hasattr(self, "_thread"):
            self._thread.join(timeout=5)
        for _, sock in self._sockets:
            sock.close()


@pytest.fixture
def listeners() -> Iterator[Listeners]:
    # Fixed, well-known ports: tests in the other pytest worker take turns, or one finds the
    # ports taken and skips.
    with machine_lock("well-known-ports"):
        found = Listeners(LOCAL_PORTS)
        try:
            yield found
        finally:
            found.close()


def post_panel(client: TestClient, key: str, judge: str) -> tuple[int, dict[str, object]]:
    response = client.post(
        "/v1/panels", json={"yaml": f"name: p\njudges:\n  - {judge}\n"}, headers=auth(key)
    )
    return response.status_code, response.json()


@pytest.mark.parametrize("model", LOCAL_MODELS)
def test_a_stored_panel_cannot_name_a_local_provider(
    client: TestClient,
    keys: dict[str, str],
    listeners: Listeners,
    model: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-server-secret")
    provider = model.split("/", 1)[0]
    for extra in ("", ", api_key_env: OPENAI_API_KEY"):
        status, body = post_panel(client, keys["acme"], f"{{name: m, model: {model}{extra}}}")
        assert status == 422, body
        error = body["error"]
        assert isinstance(error, dict)
        assert f"provider '{provider}'" in error["message"]
        fields = {d["field"] for d in error["details"]}
        assert "judges[0].model" in fields
        if extra:  # the OpenAI key is refused for that provider too
            assert "judges[0].api_key_env" in fields
    assert client.get("/v1/panels/p", headers=auth(keys["acme"])).status_code == 404
    assert listeners.connections == []


def test_a_panel_stored_before_the_policy_never_reaches_the_machine(
    client: TestClient,
    db_url: str,
    keys: dict[str, str],
    listeners: Listeners,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.worker import Worker
    from ledger.documents import _save, parse_panel_text
    from ledger.jobs import create_job

    monkeypatch.setenv("OPENAI_API_KEY", "sk-server-secret")
    text = (
        "name: sneaky\njudges:\n"
        "  - {name: a, model: ollama_chat/llama3, api_key_env: OPENAI_API_KEY}\n"
        "  - {name: b, model: openai/gpt-4o-mini, fallbacks: [llamafile/x]}\n"
        "  - {name: c, model: docker_model_runner/x}\n"
    )
    panel = parse_panel_text(text, check_policy=False)
    with ledger_engine(db_url) as engine:
        # As an older server (without the provider check) would have stored it.
        _save(engine, "acme", "panel", panel.name, panel.version, text)
        ids = store_outcomes(engine, "acme", [ticket(i) for i in range(3)])
        job = create_job(
            engine, "acme", rubrics={"support_ticket": "support-resolution"}, panel="sneaky"
        , outcome_ids=ids)  # fmt: skip
        # A new job naming it is refused at once, naming each refused provider.
        response = client.post(
            "/v1/verifications",
            json={"outcome_ids": ids, "panel": "sneaky"},
            headers=auth(keys["acme"]),
        )
        assert response.status_code == 422, response.text
        message = response.json()["error"]["message"]
        assert "provider 'ollama_chat'" in message and "(and " in message

        # The job queued earlier is failed by the worker, without a single connection.
        worker = Worker(engine, worker_id="policy-test", poll_seconds=0.05)
        asyncio.run(worker.run(asyncio.Event(), once=True))
        with engine.connect() as conn:
            errors = conn.execute(
                sa.text(
                    "SELECT i.status, i.error FROM job_items i JOIN jobs j ON j.pk = i.job_pk "
                    "WHERE j.job_id = :j"
                ),
                {"j": job.job_id},
            ).all()
            calls = conn.execute(sa.text("SELECT count(*) FROM judge_calls")).scalar_one()
    assert listeners.connections == []
    assert calls == 0
    assert [status for status, _ in errors] == ["failed"] * 3
    assert all("provider 'ollama_chat'" in (error or "") for _, error in errors)
    shown = client.get(f"/v1/verifications/{job.job_id}", headers=auth(keys["acme"])).json()
    assert shown["status"] == "failed" and shown["progress"]["failed"] == 3


KEY_MISUSE = [
    # (judge, field refused, words of the message)
    ("{name: m, model: openai/gpt-4o-mini, api_key_env: ANTHROPIC_API_KEY}", "api_key_env",
     "ANTHROPIC_API_KEY may only be sent to anthropic, not to 'openai'"),
    ("{name: m, model: anthropic/claude-3-5-sonnet-latest, api_key_env: OPENAI_API_KEY}",
     "api_key_env", "OPENAI_API_KEY may only be sent to openai, not to 'anthropic'"),
    ("{name: m, model: openai/gpt-4o-mini, api_key_env: OPENAI_API_KEY, "
     "fallbacks: [groq/llama-3.1-8b-instant]}", "api_key_env", "not to 'groq'"),
    ("{name: m, model: openai/gpt-4o-mini, fallbacks: [ollama/llama3]}", "fallbacks[0]",
     "provider 'ollama'"),
    ("{name: m, model: bedrock/anthropic.claude-v2}", "model", "provider 'bedrock'"),
    ("{name: m, model: llama3}", "model", "names no provider litellm knows"),
    ("{name: m, model: openai/gpt-4o-mini, timeout: 3600}", "timeout", "cap of 120 s"),
    ("{name: m, model: openai/gpt-4o-mini, max_retries: 20}", "max_retries", "cap of 6"),
    ("{name: m, model: openai/gpt-4o-mini, backoff: {retry_after_cap: 3600}}",
     "backoff.retry_after_cap", "cap of 60 s"),
]  # fmt: skip


@pytest.mark.parametrize(("judge", "field", "words"), KEY_MISUSE)
def test_keys_go_only_to_their_provider_and_waits_are_capped(
    client: TestClient, keys: dict[str, str], judge: str, field: str, words: str
) -> None:
    status, body = post_panel(client, keys["acme"], judge)
    assert status == 422, body
    error = body["error"]
    assert isinstance(error, dict)
    details = {d["field"]: d["message"] for d in error["details"]}
    assert words in details[f"judges[0].{field}"], details


def test_hosted_providers_with_their_own_keys_are_accepted(
    client: TestClient, keys: dict[str, str]
) -> None:
    for judge in (
        "{name: m, model: openai/gpt-4o-mini, api_key_env: OPENAI_API_KEY, timeout: 120}",
        "{name: m, model: gpt-4o-mini}",
        "{name: m, model: anthropic/claude-3-5-sonnet-latest, api_key_env: ANTHROPIC_API_KEY, "
        "fallbacks: [anthropic/claude-3-5-haiku-latest], max_retries: 6}",
    ):
        status, body = post_panel(client, keys["acme"], judge)
        assert status == 201, body


def test_the_operator_can_allow_a_local_provider_only_at_an_allowed_address(
    client: TestClient, keys: dict[str, str], listeners: Listeners
) -> None:
    from config.settings import Settings, get_settings

    base = "http://10.1.2.3:11434"
    allowed = Settings(
        panel_providers=["openai", "ollama_chat"],
        allowed_api_bases=[base],
        provider_key_envs={"OLLAMA_API_KEY": ["ollama_chat"], "OPENAI_API_KEY": ["openai"]},
    )
    client.app.dependency_overrides[get_settings] = lambda: allowed  # type: ignore[attr-defined]
    try:
        status, body = post_panel(client, keys["acme"], "{name: m, model: ollama_chat/llama3}")
        assert status == 422 and "has no hosted endpoint" in str(body)
        status, body = post_panel(
            client,
            keys["acme"],
            f"{{name: m, model: ollama_chat/llama3, api_base: '{base}', "
            "api_key_env: OLLAMA_API_KEY}",
        )
        assert status == 201, body
    finally:
        client.app.dependency_overrides.clear()  # type: ignore[attr-defined]
    assert listeners.connections == []


def test_a_provider_error_body_never_reaches_the_tenant(
    client: TestClient,
    db_url: str,
    keys: dict[str, str],
    fake_llm: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.worker import Worker
    from config.settings import get_settings
    from ledger.jobs import create_job
    from tests.api.jobs_helpers import save_llm_panel

    monkeypatch.setenv("OUTCOME_JUDGE_ALLOWED_API_BASES", f'["{fake_llm.base_url}"]')
    get_settings.cache_clear()
    try:
        for _ in range(3):  # 1 + max_retries (2) attempts, each a 500 with a body
            fake_llm.enqueue("gpt-4o-mini", Reply.error(500))
        with ledger_engine(db_url) as engine:
            ids = store_outcomes(engine, "acme", [ticket(1)])
            panel = save_llm_panel(engine, "acme", fake_llm.base_url)
            create_job(
                engine, "acme", rubrics={"support_ticket": "support-resolution"}, panel=panel,
                outcome_ids=ids,
            )  # fmt: skip
            asyncio.run(Worker(engine, worker_id="w", poll_seconds=0.05).run(
                asyncio.Event(), once=True))  # fmt: skip
            with engine.connect() as conn:
                recorded = conn.execute(sa.text("SELECT error FROM judge_calls")).scalars().all()
    finally:
        get_settings.cache_clear()
    detail = client.get(f"/v1/outcomes/{ids[0]}", headers=auth(keys["acme"])).json()
    (judgment,) = [j for j in detail["verdicts"][0]["judges"] if j["judge"] == "mini"]
    assert judgment["status"] == "error"
    assert "HTTP 500" in judgment["reason"]
    assert "fake error" not in str(detail)  # the provider's body
    # The operator still has the whole story in the ledger.
    assert len(recorded) == 3 and all("fake error 500" in (e or "") for e in recorded)
