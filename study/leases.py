"""Leases that abuse cannot hoard: short first leases, caps per client, a start rate limit.

- A new HIT is leased for ``Settings.first_lease_seconds`` (START_LEASE_SECONDS, at most
  LEASE_SECONDS). While the trial page is open its heartbeat (``POST /api/heartbeat/<token>``)
  renews the lease by as much again; from the first answer on, each answer and heartbeat renews
  it by LEASE_SECONDS (:func:`lease_for`). An invented participant id that never answers holds
  its HIT for minutes, not for half an hour.
- One client address (the one ``PROXY_FIX`` trusts; an IPv6 address counts as its /64) holds at
  most MAX_LEASES_PER_ADDRESS unfinished HITs at once and starts at most
  MAX_STARTS_PER_ADDRESS new ones per START_WINDOW_SECONDS; beyond that a start is refused with
  429 and ``Retry-After`` (:class:`TooManyHits`). Networks in LEASE_LIMIT_EXEMPT (default: this
  machine) are not counted.
- One browser session (the ``mdf_client`` cookie the consent page sets) holds at most
  MAX_LEASES_PER_SESSION unfinished HITs: a start beyond that releases the session's oldest
  one to the pool (on a shared lab computer the next participant frees what the last one left).
- Addresses and cookies are stored only as keyed hashes (HMAC-SHA-256 with SECRET_KEY, in
  ``lease_clients``), while the HIT is unfinished and at most START_WINDOW_SECONDS after its
  start; each allocation deletes older rows (:func:`forget_old`).

The checks run inside the allocation's write transaction (``study.allocation``; PostgreSQL:
under an advisory lock per client), so every gunicorn worker and every server on one database
sees the same counts.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import math
import re
import secrets
import time
from dataclasses import dataclass

from flask import request
from sqlalchemy import and_, bindparam, delete, func, insert, select, text, update
from sqlalchemy.engine import Connection, Engine

from . import models as m
from .raw import raw_transaction
from .store import TOKEN_RE, StudyError

__all__ = [
    "SESSION_COOKIE",
    "Client",
    "TooManyHits",
    "admit",
    "client_of_request",
    "forget_old",
    "heartbeat",
    "keyed_hash",
    "lease_for",
    "minutes",
    "pool_retry_after",
    "remember",
    "set_session_cookie",
]

SESSION_COOKIE = "mdf_client"
_COOKIE_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_COOKIE_DAYS = 7


def lease_for(settings, answered: bool) -> float:
    """Seconds a renewal leases a HIT for: LEASE_SECONDS once the assignment has an answer,
    else the short first lease (``settings.first_lease_seconds``)."""
    return float(settings.lease_seconds if answered else settings.first_lease_seconds)


def minutes(seconds: float) -> int:
    """``seconds`` as whole minutes for a message, rounded up, at least 1."""
    return max(1, math.ceil(seconds / 60))


def keyed_hash(secret: str | bytes, kind: str, value: str) -> str:
    """HMAC-SHA-256 of ``kind:value`` keyed with ``secret`` (32 hex digits): a client address
    or cookie as stored, not reversible without SECRET_KEY."""
    key = secret if isinstance(secret, bytes) else secret.encode()
    return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class Client:
    """Who asks for a HIT, as keyed hashes: ``address`` (None when exempt or unknown) and
    ``session`` (the browser's cookie; None without one)."""

    address: str | None = None
    session: str | None = None


@functools.lru_cache(maxsize=16)
def _networks(nets: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(n, strict=False) for n in nets)


def _address_of(addr: str, exempt: tuple[str, ...]) -> str | None:
    """The address the limits count (IPv6 as its /64), or None when it is in ``exempt``."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return addr  # not an IP (a proxy's odd X-Forwarded-For): counted as it is
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in _networks(exempt)):
        return None
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def client_of_request(settings) -> Client:
    """The :class:`Client` of the current request (address after PROXY_FIX, session cookie)."""
    addr = request.remote_addr
    address = _address_of(addr, settings.lease_limit_exempt) if addr else None
    cookie = request.cookies.get(SESSION_COOKIE)
    session = cookie if cookie and _COOKIE_RE.fullmatch(cookie) else None
    return Client(
        address and keyed_hash(settings.secret_key, "address", address),
        session and keyed_hash(settings.secret_key, "session", session),
    )


def set_session_cookie(response, settings) -> None:
    """Give the browser its session cookie (a random id, 7 days, HttpOnly, SameSite=Lax so it
    comes along when Prolific or MTurk link to the study) unless it has a valid one."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and _COOKIE_RE.fullmatch(cookie):
        return
    response.set_cookie(
        SESSION_COOKIE,
        secrets.token_urlsafe(18),
        max_age=_COOKIE_DAYS * 86400,
        httponly=True,
        samesite="Lax",
        secure=bool(settings.session_cookie_secure),
    )


class TooManyHits(StudyError):
    """A client over its lease cap or start rate (429); ``retry_after`` in seconds."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(429, message, retry_after=max(1.0, retry_after))


def _leases_of(column):
    """The unfinished, still-leased HITs of the clients whose ``column`` is ``b_key``."""
    a, h, c = m.assignments.c, m.hits.c, m.lease_clients.c
    joined = m.lease_clients.join(m.assignments, a.id == c.assignment_id).join(
        m.hits, and_(h.id == a.hit_id, h.assigned_to == a.id)
    )
    return (
        select(a.id.label("aid"), h.id.label("hid"), h.lease_expires, c.started_at)
        .select_from(joined)
        .where(
            column == bindparam("b_key"),
            a.status == "active",
            h.status == "leased",
            h.lease_expires >= bindparam("b_now"),
        )
        .order_by(c.started_at, a.id)
    )


_S_BY_ADDRESS = _leases_of(m.lease_clients.c.address)
_S_BY_SESSION = _leases_of(m.lease_clients.c.session)
_S_STARTS = select(func.count(), func.min(m.lease_clients.c.started_at)).where(
    m.lease_clients.c.address == bindparam("b_key"),
    m.lease_clients.c.started_at > bindparam("b_since"),
)
_U_RELEASE_HIT = (
    update(m.hits)
    .where(m.hits.c.id == bindparam("b_hid"), m.hits.c.assigned_to == bindparam("b_aid"))
    .values(status="open", assigned_to=None, lease_expires=None, version=m.hits.c.version + 1)
)
_U_ABANDON = (
    update(m.assignments)
    .where(m.assignments.c.id == bindparam("b_aid"), m.assignments.c.status == "active")
    .values(status="abandoned")
)
_S_POOL = (
    select(m.hits.c.status, func.min(m.hits.c.lease_expires))
    .where(m.hits.c.status != "done")
    .group_by(m.hits.c.status)
)


def _lock(conn: Connection, key: str) -> None:
    if conn.dialect.name == "postgresql":  # SQLite: the single writer serialises already
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": int(key[:15], 16)})


def admit(conn: Connection, client: Client, settings, now: float) -> None:
    """Check ``client`` may start a new HIT (inside the allocation's write transaction).

    Releases the session's oldest unfinished HITs beyond MAX_LEASES_PER_SESSION; raises
    :class:`TooManyHits` when the address holds MAX_LEASES_PER_ADDRESS unfinished HITs or
    started MAX_STARTS_PER_ADDRESS in the last START_WINDOW_SECONDS (nothing is changed then:
    the transaction rolls back)."""
    for key in (client.address, client.session):
        if key:
            _lock(conn, key)
    cap = settings.max_leases_per_session
    if client.session and cap:
        held = conn.execute(_S_BY_SESSION, {"b_key": client.session, "b_now": now}).all()
        for row in held[: max(0, len(held) - cap + 1)]:
            conn.execute(_U_RELEASE_HIT, {"b_hid": row.hid, "b_aid": row.aid})
            conn.execute(_U_ABANDON, {"b_aid": row.aid})
    if not client.address:
        return
    cap = settings.max_leases_per_address
    if cap:
        held = conn.execute(_S_BY_ADDRESS, {"b_key": client.address, "b_now": now}).all()
        if len(held) >= cap:
            wait = min(r.lease_expires for r in held) - now
            raise TooManyHits(
                f"Your network address already holds {len(held)} unfinished HITs of this study "
                f"(at most {cap} at a time). Finish one of them, or try again in about "
                f"{minutes(wait)} minutes.",
                wait,
            )
    cap = settings.max_starts_per_address
    if cap:
        since = now - settings.start_window_seconds
        n, first = conn.execute(_S_STARTS, {"b_key": client.address, "b_since": since}).one()
        if n >= cap:
            wait = first + settings.start_window_seconds - now
            raise TooManyHits(
                f"{n} HITs of this study were started from your network address recently "
                f"(at most {cap} per {minutes(settings.start_window_seconds)} minutes). "
                f"Please try again in about {minutes(wait)} minutes.",
                wait,
            )


def remember(conn: Connection, assignment_id: int, client: Client, now: float) -> None:
    """Record the client (keyed hashes) of a new assignment for the limits of :func:`admit`."""
    if client.address or client.session:
        conn.execute(
            insert(m.lease_clients),
            {"assignment_id": assignment_id, "address": client.address,
             "session": client.session, "started_at": now},
        )  # fmt: skip


def forget_old(conn: Connection, now: float, window: float) -> None:
    """Delete the client rows of assignments that have ended and started more than ``window``
    seconds (START_WINDOW_SECONDS) ago: they no longer count for any limit."""
    ended = select(m.assignments.c.id).where(m.assignments.c.status != "active")
    conn.execute(
        delete(m.lease_clients).where(
            m.lease_clients.c.started_at < now - window,
            m.lease_clients.c.assignment_id.in_(ended),
        )
    )


def pool_retry_after(conn: Connection, now: float) -> float | None:
    """Seconds until the first leased HIT's lease runs out (at least 60), or None when every
    HIT is done."""
    rows = dict(conn.execute(_S_POOL).all())
    if not rows:
        return None
    first = rows.get("leased")
    return 60.0 if first is None else max(60.0, first - now)


_A, _H = m.assignments.c, m.hits.c
_S_BEAT = (
    select(
        _A.id, _A.status, _H.id.label("hid"), _H.assigned_to, _H.status.label("hit_status"),
        select(func.count()).where(m.answers.c.assignment_id == _A.id)
        .scalar_subquery().label("answered"),
    )
    .select_from(m.assignments.join(m.hits, _H.id == _A.hit_id))
    .where(_A.token == bindparam("b_token"))
)  # fmt: skip
_U_BEAT = (
    update(m.hits)
    .where(_H.id == bindparam("b_hid"), _H.assigned_to == bindparam("b_aid"))
    .values(lease_expires=bindparam("b_exp"), version=_H.version + 1)
)


def heartbeat(engine: Engine, token: str, settings, now: float | None = None) -> dict:
    """Renew the lease of the HIT of ``token`` (the open trial page calls this every
    ``settings.heartbeat_seconds``); return ``{"leased": True, "expires_in": seconds}``.

    Raises ``StudyError`` 404 for an unknown token and 410 when the HIT is no longer this
    assignment's (finished, expired and given to another participant, or released)."""
    if not isinstance(token, str) or not TOKEN_RE.fullmatch(token):
        raise StudyError(404, "unknown HIT link")
    now = time.time() if now is None else now
    with raw_transaction(engine, write=True) as conn:
        row = conn.execute(_S_BEAT, {"b_token": token}).first()
        if row is None:
            raise StudyError(404, "unknown HIT link")
        if row.status != "active" or row.hit_status != "leased" or row.assigned_to != row.id:
            raise StudyError(410, "this HIT is no longer yours")
        lease = lease_for(settings, row.answered > 0)
        conn.defer(_U_BEAT, {"b_hid": row.hid, "b_aid": row.id, "b_exp": now + lease})
    return {"leased": True, "expires_in": lease}
