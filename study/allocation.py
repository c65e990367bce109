"""Allocation of HITs to participants, with leases.

Every allocation is one short write transaction. HITs are claimed with an optimistic version
check (``UPDATE ... WHERE id = ? AND version = ?``), which is safe under SQLite's single writer
and under PostgreSQL's READ COMMITTED (the row is re-checked after a concurrent update). A HIT
whose lease ran out returns to the pool; the participant who held it gets a new one on return,
and a participant whose HIT is still leased to them gets the same assignment back (a reload
resumes). A new HIT is leased for the short first lease; the limits per client (address and
browser session) and the start rate are checked in the same transaction (:mod:`study.leases`).
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.engine import Engine

from . import models as m
from .db import transaction
from .leases import Client, admit, forget_old, lease_for, minutes, pool_retry_after, remember
from .store import RENEW_LEASE, SELECT_HIT, StudyError

__all__ = ["ID_RE", "AlreadyDone", "PoolFull", "Worker", "allocate"]

#: Worker / study / session ids from platforms and typed participant ids (use fullmatch).
ID_RE = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")


@dataclass(frozen=True)
class Worker:
    """Who asks for a HIT: platform (local/prolific/mturk), worker id and platform extras."""

    platform: str
    worker_id: str
    study_id: str | None = None
    session_id: str | None = None
    mturk_assignment_id: str | None = None
    mturk_hit_id: str | None = None
    turk_submit_to: str | None = None


class AlreadyDone(StudyError):
    """The worker already completed their HITs; ``token`` is their last completed assignment."""

    def __init__(self, token: str):
        super().__init__(403, "You have already completed this study. Thank you!")
        self.token = token


class PoolFull(StudyError):
    """Every HIT is leased or done (503). ``retry_after``: seconds until the first lease runs
    out (the participant is told when to come back), None when every HIT is done."""

    def __init__(self, retry_after: float | None = None):
        if retry_after is None:
            message = "This study is complete: every HIT has been answered. Thank you!"
        else:
            message = (
                "All HITs of this study are taken at the moment. Please try again later: "
                f"one should free up in about {minutes(retry_after)} minutes."
            )
        super().__init__(503, message, retry_after=retry_after)


_S_MINE = (
    select(*m.assignments.c["id", "token", "status", "hit_id"])
    .where(
        and_(
            m.assignments.c.worker_id == bindparam("b_worker"),
            m.assignments.c.platform == bindparam("b_platform"),
        )
    )
    .order_by(m.assignments.c.id)
)
_S_MINE_PG = _S_MINE.with_for_update()
_S_HIT_PG = SELECT_HIT.with_for_update()
_S_CANDIDATES = (
    select(*m.hits.c["id", "version", "assigned_to"])
    .where(
        or_(
            m.hits.c.status == "open",
            and_(m.hits.c.status == "leased", m.hits.c.lease_expires < bindparam("b_now")),
        )
    )
    .order_by(m.hits.c.id)
    .limit(8)
)
_U_CLAIM = (
    update(m.hits)
    .where(and_(m.hits.c.id == bindparam("b_hid"), m.hits.c.version == bindparam("b_old")))
    .values(
        status="leased",
        assigned_to=bindparam("b_aid"),
        lease_expires=bindparam("b_exp"),
        version=bindparam("b_ver"),
    )
)
_U_ABANDON = (
    update(m.assignments)
    .where(and_(m.assignments.c.id == bindparam("b_aid"), m.assignments.c.status == "active"))
    .values(status="abandoned")
)
_U_ASSIGN_HIT = (
    update(m.assignments)
    .where(m.assignments.c.id == bindparam("b_aid"))
    .values(hit_id=bindparam("b_hid"))
)
_I_ASSIGNMENT = insert(m.assignments).returning(m.assignments.c.id)
_S_ANSWERED = select(func.count()).where(m.answers.c.assignment_id == bindparam("b_aid"))


def allocate(
    engine: Engine,
    worker: Worker,
    settings,
    now: float | None = None,
    hit_factory=None,
    client: Client | None = None,
) -> str:
    """Give ``worker`` a HIT and return the assignment token.

    ``settings``: the app's ``Settings`` (leases, ``max_hits_per_worker``, client limits). A
    worker whose HIT is still leased to them gets the same assignment back (a reload resumes).
    A new HIT is leased for ``settings.first_lease_seconds``. ``client`` (keyed hashes of the
    address and browser session; None: no client limits, e.g. in-process tools) is checked by
    ``leases.admit``. Raises ``AlreadyDone``/``StudyError(403)`` when the worker has done
    ``max_hits_per_worker`` HITs, ``leases.TooManyHits`` (429) over a client limit and
    ``PoolFull`` (503, with when to come back) when no HIT is left. ``hit_factory(conn)``
    (active sampling) is called to create a HIT when the pool is empty; it returns the new HIT
    id or None.
    """
    now = time.time() if now is None else now
    lease = float(settings.first_lease_seconds)
    with transaction(engine, write=True) as conn:
        pg = conn.dialect.name == "postgresql"
        mine = conn.execute(
            _S_MINE_PG if pg else _S_MINE,
            {"b_worker": worker.worker_id, "b_platform": worker.platform},
        ).all()
        for a in mine:
            if a.status != "active":
                continue
            hit = conn.execute(_S_HIT_PG if pg else SELECT_HIT, {"b_hid": a.hit_id}).one()
            if hit.assigned_to == a.id and hit.status == "leased":
                answered = conn.execute(_S_ANSWERED, {"b_aid": a.id}).scalar_one() > 0
                renew = {"b_hid": hit.id, "b_exp": now + lease_for(settings, answered),
                         "b_ver": hit.version + 1}  # fmt: skip
                conn.execute(RENEW_LEASE, renew)
                return a.token
            conn.execute(_U_ABANDON, {"b_aid": a.id})
        done = sum(1 for a in mine if a.status == "completed")
        if done >= settings.max_hits_per_worker:
            if done and all(a.status != "active" for a in mine):
                last = [a for a in mine if a.status == "completed"][-1]
                raise AlreadyDone(last.token)
            raise StudyError(403, "You have already taken part in this study.")
        forget_old(conn, now, settings.start_window_seconds)
        if client is not None:
            admit(conn, client, settings, now)
        token = secrets.token_urlsafe(24)
        aid = conn.execute(
            _I_ASSIGNMENT,
            {
                "token": token,
                "hit_id": None,
                "worker_id": worker.worker_id,
                "platform": worker.platform,
                "study_id": worker.study_id,
                "session_id": worker.session_id,
                "mturk_assignment_id": worker.mturk_assignment_id,
                "mturk_hit_id": worker.mturk_hit_id,
                "turk_submit_to": worker.turk_submit_to,
                "status": "active",
                "started_at": now,
                "completed_at": None,
            },
        ).scalar_one()
        if client is not None:
            remember(conn, aid, client, now)
        for _ in range(20):
            cands = conn.execute(_S_CANDIDATES, {"b_now": now}).all()
            if not cands and hit_factory is not None:
                new_id = hit_factory(conn)
                if new_id is not None:
                    continue
            if not cands:
                break
            for hid, version, prev in cands:
                claim = {"b_hid": hid, "b_old": version, "b_aid": aid, "b_exp": now + lease,
                         "b_ver": version + 1}  # fmt: skip
                if conn.execute(_U_CLAIM, claim).rowcount == 1:
                    if prev is not None:
                        conn.execute(_U_ABANDON, {"b_aid": prev})
                    conn.execute(_U_ASSIGN_HIT, {"b_aid": aid, "b_hid": hid})
                    return token
        raise PoolFull(pool_retry_after(conn, now))
