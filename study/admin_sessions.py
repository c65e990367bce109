"""Admin sessions kept on the server, and login throttling with backoff.

A login creates a row in ``admin_sessions``: the browser's (signed) session cookie holds a
random secret, the database its SHA-256 and a keyed hash of the ADMIN_TOKEN it was made with.
A session is valid while it is not revoked, has not expired (ADMIN_SESSION_SECONDS after the
login) and the ADMIN_TOKEN is still the one it was made with, so logout (the row is revoked)
and a new ADMIN_TOKEN (on any server of the study) end every copy of the cookie.

Wrong tokens, by login form or ``Authorization: Bearer``, are counted per client address in
``login_throttle``: after :data:`FREE_FAILURES` failures each further attempt waits
2, 4, 8, ... seconds, at most :data:`MAX_BACKOFF`; attempts during the wait are refused
without looking at the token (429, ``Retry-After``); a success clears the count, and an
hour without failures forgets it. The rows live in the study database, so every gunicorn
worker and every server share them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from . import models as m
from .db import transaction

__all__ = [
    "FREE_FAILURES",
    "MAX_BACKOFF",
    "blocked_for",
    "create",
    "is_valid",
    "record_failure",
    "record_success",
    "revoke",
    "session_label",
    "token_fingerprint",
]

#: wrong tokens per address before the backoff starts
FREE_FAILURES = 3
#: the longest wait between attempts (seconds)
MAX_BACKOFF = 900.0
#: failures older than this are forgotten (seconds)
FORGET_AFTER = 3600.0


def token_fingerprint(settings) -> str:
    """A keyed hash (HMAC-SHA-256 with SECRET_KEY) of ADMIN_TOKEN: stored with each session,
    so a new token invalidates the sessions of the old one (the token itself is never stored)."""
    key = settings.secret_key
    key = key if isinstance(key, bytes) else key.encode()
    return hmac.new(key, b"admin-token:" + settings.admin_token.encode(), "sha256").hexdigest()


def _sid_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def session_label(secret: str) -> str:
    """The first 8 hex digits of the stored id of session ``secret`` (for the audit log)."""
    return _sid_hash(secret)[:8]


def create(engine: Engine, settings, address: str | None, now: float | None = None) -> str:
    """Start an admin session; return its secret (for the session cookie). Deletes sessions
    that ended more than a day ago."""
    now = time.time() if now is None else now
    secret = secrets.token_urlsafe(32)
    s = m.admin_sessions.c
    with transaction(engine, write=True) as conn:
        conn.execute(delete(m.admin_sessions).where(s.expires_at < now - 86400))
        conn.execute(
            insert(m.admin_sessions),
            {"id": _sid_hash(secret), "token_fp": token_fingerprint(settings),
             "address": address, "created_at": now,
             "expires_at": now + settings.admin_session_seconds, "revoked_at": None},
        )  # fmt: skip
    return secret


def is_valid(engine: Engine, secret: object, settings, now: float | None = None) -> bool:
    """Whether ``secret`` (from the session cookie) names a live session: not revoked, not
    expired, and made with the current ADMIN_TOKEN."""
    if not isinstance(secret, str) or not secret:
        return False
    now = time.time() if now is None else now
    s = m.admin_sessions.c
    with transaction(engine) as conn:
        row = conn.execute(
            select(s.token_fp, s.expires_at, s.revoked_at).where(s.id == _sid_hash(secret))
        ).first()
    return (
        row is not None
        and row.revoked_at is None
        and row.expires_at > now
        and hmac.compare_digest(row.token_fp, token_fingerprint(settings))
    )


def revoke(engine: Engine, secret: object, now: float | None = None) -> bool:
    """End the session ``secret`` (logout); True if a live row was revoked."""
    if not isinstance(secret, str) or not secret:
        return False
    now = time.time() if now is None else now
    s = m.admin_sessions.c
    with transaction(engine, write=True) as conn:
        res = conn.execute(
            update(m.admin_sessions)
            .where(s.id == _sid_hash(secret), s.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    return res.rowcount == 1


def blocked_for(engine: Engine, client: str, now: float | None = None) -> float:
    """Seconds ``client`` (an address) must still wait before its next login attempt (0: go)."""
    now = time.time() if now is None else now
    t = m.login_throttle.c
    with transaction(engine) as conn:
        until = conn.execute(select(t.blocked_until).where(t.client == client)).scalar()
    return max(0.0, (until or 0.0) - now)


def record_failure(engine: Engine, client: str, now: float | None = None) -> tuple[int, float]:
    """Count a wrong token from ``client``; return (failures so far, seconds until the next
    attempt is allowed)."""
    now = time.time() if now is None else now
    for attempt in (0, 1):
        try:
            return _count_failure(engine, client, now)
        except IntegrityError:  # PostgreSQL: a concurrent first failure inserted the row
            if attempt:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _count_failure(engine: Engine, client: str, now: float) -> tuple[int, float]:
    t = m.login_throttle.c
    with transaction(engine, write=True) as conn:
        if conn.dialect.name == "postgresql":
            q = select(t.failures, t.updated_at).where(t.client == client).with_for_update()
        else:
            q = select(t.failures, t.updated_at).where(t.client == client)
        row = conn.execute(q).first()
        failures = 1 if row is None or now - row.updated_at > FORGET_AFTER else row.failures + 1
        wait = 0.0
        if failures > FREE_FAILURES:
            wait = min(MAX_BACKOFF, 2.0 ** (failures - FREE_FAILURES))
        values = {"failures": failures, "blocked_until": now + wait, "updated_at": now}
        if row is None:
            conn.execute(insert(m.login_throttle), {"client": client, **values})
        else:
            conn.execute(update(m.login_throttle).where(t.client == client).values(**values))
    return failures, wait


def record_success(engine: Engine, client: str) -> None:
    """Clear the failures of ``client`` after a right token."""
    with transaction(engine, write=True) as conn:
        conn.execute(delete(m.login_throttle).where(m.login_throttle.c.client == client))
