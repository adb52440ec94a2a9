"""The fake OpenAI-compatible server speaks the protocol the LLM tests rely on."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.fakes.openai_server import FakeOpenAIServer, Reply

ROOT = Path(__file__).resolve().parents[2]

SYSTEM = (
    "Criteria:\n"
    "- id: request_understood | scale: 0 to 1 (binary: 1 = yes, 0 = no) | weight: 1 | gate: yes\n"
    "- id: helpfulness | scale: 1 to 5 | weight: 1 | gate: no\n"
)


def _chat(server: FakeOpenAIServer, model: str = "m1", **extra: object) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "system", "content": SYSTEM}], **extra}
    return httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=5)


def test_completion_has_the_openai_shape_and_is_recorded(fake_llm: FakeOpenAIServer) -> None:
    fake_llm.enqueue("m1", Reply(content="hello", prompt_tokens=11, completion_tokens=3))
    fmt = {"type": "json_object"}
    resp = _chat(fake_llm, response_format=fmt)
    assert resp.status_code == 200
    body = resp.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "m1"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "hello"}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
    (req,) = fake_llm.chat_requests()
    assert req.model == "m1" and req.response_format == fmt
    assert req.messages[0]["content"] == SYSTEM


def test_models_endpoint_lists_scripted_models(fake_llm: FakeOpenAIServer) -> None:
    fake_llm.enqueue("alpha", Reply(content="x"))
    resp = httpx.get(f"{fake_llm.base_url}/models", timeout=5)
    assert resp.status_code == 200
    assert [m["id"] for m in resp.json()["data"]] == ["alpha"]


def test_queues_are_fifo_per_model_then_default(fake_llm: FakeOpenAIServer) -> None:
    fake_llm.enqueue("m1", Reply(content="first"), Reply(content="second"))
    fake_llm.enqueue("m2", Reply(content="other"))
    texts = [_chat(fake_llm, "m1").json()["choices"][0]["message"]["content"] for _ in range(2)]
    assert texts == ["first", "second"]
    assert _chat(fake_llm, "m2").json()["choices"][0]["message"]["content"] == "other"
    # Queue empty: the default responder passes every criterion named in the system prompt.
    default = json.loads(_chat(fake_llm, "m1").json()["choices"][0]["message"]["content"])
    assert {k: v["score"] for k, v in default["criteria"].items()} == {
        "request_understood": 1.0,
        "helpfulness": 5.0,
    }


def test_custom_default_responder(fake_llm: FakeOpenAIServer) -> None:
    fake_llm.default = lambda req: Reply(content=f"echo {req['model']}")
    assert _chat(fake_llm, "zz").json()["choices"][0]["message"]["content"] == "echo zz"


def test_error_replies(fake_llm: FakeOpenAIServer) -> None:
    fake_llm.enqueue("m1", Reply.error(429, retry_after=2), Reply.error(503), Reply.error(400))
    r429 = _chat(fake_llm)
    assert r429.status_code == 429 and r429.headers["retry-after"] == "2"
    assert "error" in r429.json()
    assert _chat(fake_llm).status_code == 503
    assert _chat(fake_llm).status_code == 400


def test_malformed_truncated_and_reset(fake_llm: FakeOpenAIServer) -> None:
    fake_llm.enqueue("m1", Reply(malformed=True))
    resp = _chat(fake_llm)
    assert resp.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        resp.json()
    fake_llm.enqueue("m1", Reply(content="x" * 200, truncated=True))
    with pytest.raises(httpx.HTTPError):
        _chat(fake_llm)
    fake_llm.enqueue("m1", Reply(reset=True))
    with pytest.raises(httpx.HTTPError):
        _chat(fake_llm)
    # The server keeps serving after all of that.
    assert _chat(fake_llm).status_code == 200


def test_hang_outlasts_the_client_timeout(fake_llm: FakeOpenAIServer) -> None:
    fake_llm.enqueue("m1", Reply(hang=30))
    with pytest.raises(httpx.TimeoutException):
        httpx.post(
            f"{fake_llm.base_url}/chat/completions",
            json={"model": "m1", "messages": []},
            timeout=0.3,
        )


def test_concurrent_requests_are_not_serialised() -> None:
    # Every handler waits at a 40-party barrier: it only opens if 40 requests are being handled
    # at the same time, so a serialising server would fail every request instead.
    barrier = threading.Barrier(40, timeout=20)

    def together(_: dict[str, object]) -> Reply:
        barrier.wait()
        return Reply(content="ok")

    with FakeOpenAIServer(default=together) as server:
        results: list[int] = []
        lock = threading.Lock()

        def one() -> None:
            status = httpx.post(
                f"{server.base_url}/chat/completions",
                json={"model": "m", "messages": []},
                timeout=30,
            ).status_code
            with lock:
                results.append(status)

        threads = [threading.Thread(target=one) for _ in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=40)
        assert results == [200] * 40


def test_start_stop_and_base_url() -> None:
    server = FakeOpenAIServer()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.base_url
    server.start()
    assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")
    server.stop()
    server.stop()  # idempotent
    with pytest.raises(ValueError, match="latency"):
        FakeOpenAIServer(latency=-1)


def test_standalone_process_serves_default_and_fixed_replies() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_server", "--port", "0", "--content", "fixed!"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        base_url = line.strip().rsplit(" ", 1)[-1]
        assert base_url.startswith("http://127.0.0.1:")
        resp = httpx.post(
            f"{base_url}/chat/completions", json={"model": "any", "messages": []}, timeout=5
        )
        assert resp.json()["choices"][0]["message"]["content"] == "fixed!"
    finally:
        proc.terminate()
        code = proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert code == 0
