"""Signed session tokens for the web interface, and the per-session CSRF token.

The session cookie never holds the API key. It holds ``key_id.expiry.nonce.signature``, where
the signature is an HMAC-SHA256 over ``key_id.expiry.nonce`` with a server secret. Every page
then re-checks that the key ``key_id`` is still active and that the session was not logged out
(:func:`session_tenant`), so revoking a key logs its browser sessions out on their next request,
and logging out ends the session for good: the nonce is the session's id, and logout books it in
``web_session_revocations`` (:func:`revoke`), which every API process sharing the database reads.

The secret comes from ``OUTCOME_JUDGE_SESSION_SECRET``; without it each process draws a random
one, which is fine for one process but logs everyone out on restart and does not work across
several API processes (set the variable there).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from ledger.tenants import TenantInfo

SESSION_COOKIE = "oj_session"
LOGIN_CSRF_COOKIE = "oj_login_csrf"
SESSION_SECRET_ENV = "OUTCOME_JUDGE_SESSION_SECRET"
#: How long a session lasts before the reviewer logs in again (hours).
SESSION_HOURS = 12.0
_MIN_SECRET_CHARS = 32


class SessionSecretError(ValueError):
    """The configured session secret is unusable."""


@lru_cache(maxsize=1)
def session_secret() -> bytes:
    """The HMAC key: ``OUTCOME_JUDGE_SESSION_SECRET``, else a random per-process one.

    Read once per process (cached), at the first request that needs it, not at import.
    """
    from config.settings import get_settings

    secret = get_settings().session_secret
    configured = None if secret is None else secret.get_secret_value()
    if not configured:
        return secrets.token_bytes(32)
    if len(configured) < _MIN_SECRET_CHARS:
        raise SessionSecretError(
            f"{SESSION_SECRET_ENV} must be at least {_MIN_SECRET_CHARS} characters; generate "
            'one with `python -c "import secrets; print(secrets.token_urlsafe(48))"`'
        )
    return configured.encode("utf-8")


def _sign(secret: bytes, message: str) -> str:
    digest = hmac.new(secret, message.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Session:
    """A verified session: the API key's public id, when it expires, and its CSRF token."""

    key_id: str
    expires: int
    token: str

    @property
    def session_id(self) -> str:
        """The session's id: the cookie's random nonce (a logout books it as revoked)."""
        return self.token.split(".")[2]

    @property
    def csrf(self) -> str:
        """The per-session CSRF token every form posts back (derived, nothing stored)."""
        return _sign(session_secret(), f"csrf:{self.token}")


def issue(key_id: str, *, now: float | None = None, hours: float = SESSION_HOURS) -> str:
    """A new signed session token for the key ``key_id``."""
    if not key_id or "." in key_id:
        raise ValueError(f"key_id must be a non-empty id without dots, got {key_id!r}")
    expires = int((time.time() if now is None else now) + hours * 3600)
    body = f"{key_id}.{expires}.{secrets.token_urlsafe(12)}"
    return f"{body}.{_sign(session_secret(), body)}"


def verify(token: str | None, *, now: float | None = None) -> Session | None:
    """The session a token stands for, or None when it is missing, forged, malformed or expired."""
    if not token or len(token) > 400:
        return None
    parts = token.split(".")
    if len(parts) != 4:
        return None
    key_id, expires_text, nonce, signature = parts
    body = token.rsplit(".", 1)[0]
    if not hmac.compare_digest(signature, _sign(session_secret(), body)):
        return None
    try:
        expires = int(expires_text)
    except ValueError:
        return None
    if expires <= (time.time() if now is None else now) or not nonce or len(nonce) > 64:
        return None
    return Session(key_id=key_id, expires=expires, token=token)


def csrf_ok(session: Session, submitted: str | None) -> bool:
    """Whether a form's CSRF token is this session's (constant-time comparison)."""
    return bool(submitted) and hmac.compare_digest(session.csrf, str(submitted))


def key_id_of(key: str) -> str | None:
    """The public id inside an API key (``oj_<key_id>_<secret>``), or None when malformed."""
    from ledger.tenants import KEY_PREFIX

    if not key.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = key[len(KEY_PREFIX) :].partition("_")
    return key_id if sep and len(key_id) == 12 and secret else None


#: Why :func:`session_tenant` refuses a session (shown on the login page).
KEY_REVOKED = "That API key was revoked; log in with an active key."
LOGGED_OUT = "That session was logged out; log in again."


def session_tenant(engine: Engine, found: Session) -> TenantInfo | str:
    """The tenant of a verified session, or why it no longer counts (:data:`KEY_REVOKED`,
    :data:`LOGGED_OUT`). One read: the key's row and the session's revocation, if any."""
    from ledger.tenants import active_tenant, session_logged_out

    if session_logged_out(engine, found.session_id):
        return LOGGED_OUT
    tenant = active_tenant(engine, found.key_id)
    return KEY_REVOKED if tenant is None else tenant


def revoke(engine: Engine, tenant: str, found: Session) -> None:
    """End the session ``found`` in every API process (logout); idempotent.

    The row lives until the cookie's own expiry; expired rows are deleted then, so the table
    holds at most the sessions logged out in the last :data:`SESSION_HOURS`.
    """
    import datetime as dt

    from ledger.tenants import record_logout

    record_logout(
        engine,
        tenant,
        session_id=found.session_id,
        key_id=found.key_id,
        expires_at=dt.datetime.fromtimestamp(found.expires, dt.UTC),
    )
