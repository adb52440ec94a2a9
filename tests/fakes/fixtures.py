"""Pytest fixtures for the fake models: the HTTP server and the in-process queue (loaded by
tests/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.fakes.fake_model import FakeModel
from tests.fakes.openai_server import FakeOpenAIServer

FAKE_API_KEY = "sk-fake-test-key"


@pytest.fixture
def fake_llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    """A started :class:`FakeOpenAIServer` for one test, stopped afterwards.

    Point a judge at it with ``model="openai/<name>"`` and ``api_base=fake_llm.base_url``.
    ``OPENAI_API_KEY`` is set to a dummy value for the test when it is not set already (the
    OpenAI client refuses to send a request without one).
    """
    if not os.environ.get("OPENAI_API_KEY"):
        monkeypatch.setenv("OPENAI_API_KEY", FAKE_API_KEY)
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(scope="session")
def fake_llm_session() -> Iterator[FakeOpenAIServer]:
    """One server for a whole session; call ``server.reset()`` before relying on its records."""
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def fake_model() -> Iterator[FakeModel]:
    """An in-process :class:`~tests.fakes.fake_model.FakeModel` answering every completion made
    through :mod:`judge.model_client` during the test (queue replies with ``enqueue``)."""
    from judge.model_client import using

    model = FakeModel()
    with using(model):
        yield model
