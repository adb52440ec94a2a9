"""Session tokens: signed, expiring, bound to a secret; the secret must be long enough."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from api.web import session as sessions
from config.settings import get_settings


def _reread_secret() -> None:
    """Forget the cached settings and secret, as a new process would."""
    get_settings.cache_clear()
    sessions.session_secret.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(sessions.SESSION_SECRET_ENV, raising=False)
    _reread_secret()
    yield
    _reread_secret()


def test_a_token_verifies_until_it_expires_and_not_after_tampering() -> None:
    now = time.time()
    token = sessions.issue("0123456789ab", now=now, hours=1)
    found = sessions.verify(token, now=now + 60)
    assert found is not None and found.key_id == "0123456789ab"
    assert sessions.verify(token, now=now + 3601) is None
    key_id, expires, nonce, signature = token.split(".")
    assert sessions.verify(f"{key_id}.{int(expires) + 10**6}.{nonce}.{signature}", now=now) is None
    assert sessions.verify(f"ffffffffffff.{expires}.{nonce}.{signature}", now=now) is None
    assert sessions.csrf_ok(found, found.csrf) and not sessions.csrf_ok(found, "x")


def test_the_configured_secret_signs_tokens_across_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(sessions.SESSION_SECRET_ENV, "s" * 40)
    _reread_secret()
    token = sessions.issue("0123456789ab")
    _reread_secret()  # another process with the same secret
    assert sessions.verify(token) is not None
    monkeypatch.setenv(sessions.SESSION_SECRET_ENV, "t" * 40)
    _reread_secret()
    assert sessions.verify(token) is None


def test_a_short_secret_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sessions.SESSION_SECRET_ENV, "short")
    _reread_secret()
    with pytest.raises(sessions.SessionSecretError, match="at least 32 characters"):
        sessions.issue("0123456789ab")
