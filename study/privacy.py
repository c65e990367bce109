"""Participants' data on request: pseudonymised exports and deleting one participant.

- :func:`anonymise` replaces each row's ``observer`` (the platform's worker id or the typed
  participant id) by ``p-`` and 16 hex digits of HMAC-SHA-256 keyed with a salt: rows of one
  participant keep one pseudonym (the scaling needs it), the id cannot be recovered without
  the salt, and without a stored salt two exports cannot be linked. :func:`salt_from_file`
  keeps one salt in a file (created with mode 0600) for pseudonyms that stay the same across
  exports. (``mdf study export --anonymise [--salt-file F]``.)
- :func:`purge_worker` deletes everything stored about one participant: their answers, their
  assignments (platform ids, completion times) and the keyed hashes of their client; the HITs
  they held or completed go back to the pool so that the design still gets its comparisons.
  The audit log records how much was deleted, not whose data it was. (``mdf study purge
  --worker ID``.)
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.engine import Engine

from . import models as m
from .audit import record_in
from .db import transaction

__all__ = ["anonymise", "pseudonym", "purge_worker", "salt_from_file"]


def pseudonym(observer: str, salt: bytes) -> str:
    """``p-`` and the first 16 hex digits of HMAC-SHA-256(salt, observer)."""
    return "p-" + hmac.new(salt, observer.encode(), hashlib.sha256).hexdigest()[:16]


def anonymise(rows: list[dict], salt: bytes | None = None) -> list[dict]:
    """Copies of export ``rows`` (``study.export.COLUMNS``) whose ``observer`` is a salted
    pseudonym (:func:`pseudonym`); ``salt`` None: a fresh random one, not kept."""
    salt = secrets.token_bytes(32) if salt is None else salt
    if not isinstance(salt, bytes) or len(salt) < 16:
        raise ValueError("the salt must be at least 16 bytes")
    return [dict(r, observer=pseudonym(str(r["observer"]), salt)) for r in rows]


def salt_from_file(path: str | os.PathLike) -> bytes:
    """The salt kept in ``path`` (64 hex digits), created there (mode 0600) if missing;
    ``ValueError`` for a file that does not hold one."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        text = path.read_text().strip()
        try:
            salt = bytes.fromhex(text)
        except ValueError:
            salt = b""
        if len(salt) < 16:
            raise ValueError(f"{path} does not hold a salt (32+ hex digits)") from None
        return salt
    salt = secrets.token_bytes(32)
    with os.fdopen(fd, "w") as f:
        f.write(salt.hex() + "\n")
    return salt


_A = m.assignments.c


def purge_worker(engine: Engine, worker_id: str, platform: str | None = None) -> dict:
    """Delete every row about participant ``worker_id`` (on ``platform``, or on any): answers,
    their viewing conditions, image serve times, HIT page reports, client hashes and
    assignments, in one write transaction; return the counts ``{"assignments", "answers", "hits_released"}``.

    The HITs the participant held or completed return to the pool (open). Nothing is deleted,
    and the counts are 0, when no assignment has that id. The audit log gets one entry."""
    where = [_A.worker_id == worker_id] + ([_A.platform == platform] if platform else [])
    with transaction(engine, write=True) as conn:
        aids = [r.id for r in conn.execute(select(_A.id).where(*where))]
        if not aids:
            return {"assignments": 0, "answers": 0, "hits_released": 0}
        ids = bindparam("b_ids", aids, expanding=True)
        # viewing conditions, serve times and HIT page reports (user agents) go first
        for table in (m.answer_views, m.image_serves, m.hit_views, m.lease_clients):
            conn.execute(delete(table).where(table.c.assignment_id.in_(ids)))
        answers = conn.execute(delete(m.answers).where(m.answers.c.assignment_id.in_(ids)))
        released = conn.execute(
            update(m.hits)
            .where(m.hits.c.assigned_to.in_(ids))
            .values(status="open", assigned_to=None, lease_expires=None,
                    version=m.hits.c.version + 1)
        )  # fmt: skip
        conn.execute(delete(m.assignments).where(_A.id.in_(ids)))
        counts = {"assignments": len(aids), "answers": answers.rowcount,
                  "hits_released": released.rowcount}  # fmt: skip
        detail = (
            f"1 participant{' on ' + platform if platform else ''}: {counts['assignments']} "
            f"assignments, {counts['answers']} answers deleted, {counts['hits_released']} "
            "HITs back in the pool"
        )
        record_in(conn, "cli", "purge", detail)
    return counts
