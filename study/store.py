"""Allocation of HITs with leases, and durable, idempotent recording of answers.

Every operation is one short database transaction. HITs are claimed with an optimistic version
check (``UPDATE ... WHERE id = ? AND version = ?``), which is safe under SQLite's single writer
and under PostgreSQL's READ COMMITTED (the row is re-checked after a concurrent update). A HIT
whose lease ran out returns to the pool; the participant who held it gets a new one on return.
Answers carry a client-generated id under a unique constraint, so a retried or double-clicked
answer is stored once, and they are accepted only for the next unanswered trial of the
participant's own, still-leased HIT.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine

from . import models as m
from .db import raw_transaction, transaction
from .experiment import CHECK_REFERENCE

__all__ = [
    "ID_RE",
    "TOKEN_RE",
    "AlreadyDone",
    "StudyError",
    "Worker",
    "allocate",
    "load_assignment",
    "record_answer",
]

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
#: Worker / study / session ids from platforms and typed participant ids.
ID_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9-]{8,64}$")
MAX_RT_MS = 3_600_000.0


class StudyError(Exception):
    """A request the study refuses; ``status`` is the HTTP status code to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


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


def _lock(stmt, conn: Connection):
    return stmt.with_for_update() if conn.dialect.name == "postgresql" else stmt


_S_MINE = (
    select(
        m.assignments.c.id, m.assignments.c.token, m.assignments.c.status, m.assignments.c.hit_id
    )
    .where(
        and_(
            m.assignments.c.worker_id == bindparam("b_worker"),
            m.assignments.c.platform == bindparam("b_platform"),
        )
    )
    .order_by(m.assignments.c.id)
)
_S_MINE_PG = _S_MINE.with_for_update()
_S_HIT = select(m.hits.c.id, m.hits.c.assigned_to, m.hits.c.status, m.hits.c.version).where(
    m.hits.c.id == bindparam("b_hid")
)
_S_HIT_PG = _S_HIT.with_for_update()
_S_CANDIDATES = (
    select(m.hits.c.id, m.hits.c.version, m.hits.c.assigned_to)
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


def allocate(
    engine: Engine, worker: Worker, settings: dict, now: float | None = None, hit_factory=None
) -> str:
    """Give ``worker`` a HIT and return the assignment token.

    A worker whose HIT is still leased to them gets the same assignment back (a reload
    resumes). Raises ``StudyError(403)`` when the worker has done ``max_hits_per_worker`` HITs
    and ``StudyError(503)`` when no HIT is left. ``hit_factory(conn)`` (active sampling) is
    called to create a HIT when the pool is empty; it returns the new HIT id or None.
    """
    now = time.time() if now is None else now
    lease = float(settings["lease_seconds"])
    with transaction(engine, write=True) as conn:
        pg = conn.dialect.name == "postgresql"
        mine = conn.execute(
            _S_MINE_PG if pg else _S_MINE,
            {"b_worker": worker.worker_id, "b_platform": worker.platform},
        ).all()
        for a in mine:
            if a.status != "active":
                continue
            hit = conn.execute(_S_HIT_PG if pg else _S_HIT, {"b_hid": a.hit_id}).one()
            if hit.assigned_to == a.id and hit.status == "leased":
                conn.execute(
                    _U_HIT_LEASE,
                    {"b_hid": hit.id, "b_exp": now + lease, "b_ver": hit.version + 1},
                )
                return a.token
            conn.execute(_U_ABANDON, {"b_aid": a.id})
        done = sum(1 for a in mine if a.status == "completed")
        if done >= int(settings["max_hits_per_worker"]):
            if done and all(a.status != "active" for a in mine):
                last = [a for a in mine if a.status == "completed"][-1]
                raise AlreadyDone(last.token)
            raise StudyError(403, "You have already taken part in this study.")
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
        for _ in range(20):
            cands = conn.execute(_S_CANDIDATES, {"b_now": now}).all()
            if not cands and hit_factory is not None:
                new_id = hit_factory(conn)
                if new_id is not None:
                    continue
            if not cands:
                break
            for hid, version, prev in cands:
                res = conn.execute(
                    _U_CLAIM,
                    {
                        "b_hid": hid,
                        "b_old": version,
                        "b_aid": aid,
                        "b_exp": now + lease,
                        "b_ver": version + 1,
                    },
                )
                if res.rowcount == 1:
                    if prev is not None:
                        conn.execute(_U_ABANDON, {"b_aid": prev})
                    conn.execute(_U_ASSIGN_HIT, {"b_aid": aid, "b_hid": hid})
                    return token
        raise _Full()


class AlreadyDone(StudyError):
    """The worker already completed their HITs; ``token`` is their last completed assignment."""

    def __init__(self, token: str):
        super().__init__(403, "You have already completed this study. Thank you!")
        self.token = token


class _Full(StudyError):
    def __init__(self):
        super().__init__(
            503, "All HITs of this study are taken at the moment. Please try again later."
        )


_S_ASSIGNMENT = select(m.assignments).where(m.assignments.c.token == bindparam("b_token"))
_S_TRIALS_FULL = (
    select(*m.trials.c, m.answers.c.id.label("answer"))
    .select_from(
        m.trials.outerjoin(
            m.answers,
            and_(
                m.answers.c.trial_id == m.trials.c.id,
                m.answers.c.assignment_id == bindparam("b_aid"),
            ),
        )
    )
    .where(m.trials.c.hit_id == bindparam("b_hid"))
    .order_by(m.trials.c.position)
)
_S_IMAGE_TRIAL = (
    select(m.trials.c.image_id, m.trials.c.left, m.trials.c.right)
    .select_from(m.trials.join(m.assignments, m.assignments.c.hit_id == m.trials.c.hit_id))
    .where(and_(m.assignments.c.token == bindparam("b_token"), m.trials.c.id == bindparam("b_tid")))
)


def trial_of(engine: Engine, token: str, trial_id: int):
    """The (image_id, left, right) of trial ``trial_id`` if it belongs to the HIT of ``token``;
    raise ``StudyError(404)`` otherwise (one query: the image route's hot path)."""
    if not isinstance(token, str) or not TOKEN_RE.match(token):
        raise StudyError(404, "unknown HIT link")
    with raw_transaction(engine) as conn:
        row = conn.execute(_S_IMAGE_TRIAL, {"b_token": token, "b_tid": trial_id}).first()
    if row is None:
        raise StudyError(404, "no such trial in this HIT")
    return row


def load_assignment(
    engine: Engine, token: str, now: float | None = None, lease_seconds: float | None = None
) -> dict:
    """Return the assignment of ``token`` with its trials and answered trial ids.

    Keys: ``assignment`` (row mapping), ``trials`` (list of row mappings in order),
    ``answered`` (set of trial ids), ``leased`` (the HIT is still this assignment's). When
    ``lease_seconds`` is given and the HIT is still held, the lease is renewed. Raises
    ``StudyError(404)`` for an unknown or malformed token.
    """
    if not isinstance(token, str) or not TOKEN_RE.match(token):
        raise StudyError(404, "unknown HIT link")
    now = time.time() if now is None else now
    with raw_transaction(engine, write=lease_seconds is not None) as conn:
        row = conn.execute(_S_ASSIGNMENT, {"b_token": token}).first()
        a = row._asdict() if row is not None else None
        if a is None or a["hit_id"] is None:
            raise StudyError(404, "unknown HIT link")
        hit = conn.execute(_S_HIT, {"b_hid": a["hit_id"]}).one()
        rows = conn.execute(_S_TRIALS_FULL, {"b_aid": a["id"], "b_hid": a["hit_id"]}).all()
        trials = [r._asdict() for r in rows]
        answered = {t["id"] for t in trials if t.pop("answer") is not None}
        leased = hit.assigned_to == a["id"] and hit.status == "leased" and a["status"] == "active"
        if leased and lease_seconds is not None:
            conn.defer(
                _U_HIT_LEASE,
                {"b_hid": hit.id, "b_exp": now + lease_seconds, "b_ver": hit.version + 1},
            )
    return {
        "assignment": dict(a),
        "trials": trials,
        "answered": answered,
        "leased": leased,
    }


def _validate_answer(payload) -> tuple[str, int, str, float]:
    if not isinstance(payload, dict):
        raise StudyError(400, "expected a JSON object")
    cid = payload.get("answer_id")
    if not isinstance(cid, str) or not CLIENT_ID_RE.match(cid):
        raise StudyError(400, "answer_id must be 8-64 characters [A-Za-z0-9-]")
    tid = payload.get("trial_id")
    if not isinstance(tid, int) or isinstance(tid, bool) or tid < 1:
        raise StudyError(400, "trial_id must be a positive integer")
    side = payload.get("side")
    if side not in ("left", "right"):
        raise StudyError(400, "side must be 'left' or 'right'")
    rt = payload.get("rt_ms")
    if not isinstance(rt, (int, float)) or isinstance(rt, bool) or not (0 <= rt <= MAX_RT_MS):
        raise StudyError(400, f"rt_ms must be a number of milliseconds in [0, {MAX_RT_MS:.0f}]")
    return cid, tid, side, float(rt)


# Statements of the answer path, built once (the hot path of a study under load). One query
# reads the assignment, its HIT and every trial with this assignment's answer (if any): one
# round trip instead of three, which matters most with PostgreSQL.
_S_ANSWER_STATE = (
    select(
        m.assignments.c.id.label("aid"),
        m.assignments.c.hit_id,
        m.assignments.c.status,
        m.hits.c.assigned_to,
        m.hits.c.status.label("hit_status"),
        m.hits.c.version,
        m.trials.c.id,
        m.trials.c.kind,
        m.trials.c.left,
        m.trials.c.right,
        m.answers.c.id.label("answer"),
        m.answers.c.client_id.label("answer_cid"),
        m.answers.c.chosen_side.label("answer_side"),
    )
    .select_from(
        m.assignments.join(m.hits, m.hits.c.id == m.assignments.c.hit_id)
        .join(m.trials, m.trials.c.hit_id == m.assignments.c.hit_id)
        .outerjoin(
            m.answers,
            and_(
                m.answers.c.trial_id == m.trials.c.id,
                m.answers.c.assignment_id == m.assignments.c.id,
            ),
        )
    )
    .where(m.assignments.c.token == bindparam("token"))
    .order_by(m.trials.c.position)
)
# PostgreSQL: lock the assignment and HIT rows (not the nullable side of the outer join)
_S_ANSWER_STATE_PG = _S_ANSWER_STATE.with_for_update(of=[m.assignments, m.hits])
_I_ANSWER = insert(m.answers)
_U_ASSIGNMENT_DONE = (
    update(m.assignments)
    .where(m.assignments.c.id == bindparam("b_aid"))
    .values(status="completed", completed_at=bindparam("b_now"))
)
_U_HIT_DONE = (
    update(m.hits)
    .where(m.hits.c.id == bindparam("b_hid"))
    .values(status="done", lease_expires=None, version=bindparam("b_ver"))
)
_U_HIT_LEASE = (
    update(m.hits)
    .where(m.hits.c.id == bindparam("b_hid"))
    .values(lease_expires=bindparam("b_exp"), version=bindparam("b_ver"))
)


def record_answer(
    engine: Engine, token: str, payload: dict, settings: dict, now: float | None = None
) -> dict:
    """Store one answer for the assignment ``token``; return ``{done, answered, total, duplicate}``.

    ``payload``: ``answer_id`` (client-generated, unique), ``trial_id``, ``side`` (left/right,
    the side clicked), ``rt_ms`` (response time, milliseconds). A repeated ``answer_id`` for the
    same trial returns the stored result without writing. Refused with ``StudyError`` (nothing
    written): malformed payload 400, unknown token 404, trial not in this HIT 404, finished HIT
    409, HIT lease lost to someone else 410, trial already answered or out of order 409.
    """
    cid, tid, side, rt = _validate_answer(payload)
    if not isinstance(token, str) or not TOKEN_RE.match(token):
        raise StudyError(404, "unknown HIT link")
    now = time.time() if now is None else now
    try:
        with raw_transaction(engine, write=True) as conn:
            return _answer_in(conn, token, cid, tid, side, rt, settings, now)
    except engine.dialect.loaded_dbapi.IntegrityError as exc:
        # the id belongs to another participant's answer (the unique constraint refused it)
        raise StudyError(409, "answer_id was already used for another answer") from exc


def _answer_in(conn, token, cid, tid, side, rt, settings, now) -> dict:
    """The checks and writes of :func:`record_answer` inside its transaction (the writes are
    deferred: on PostgreSQL they travel with the COMMIT)."""
    pg = conn.dialect.name == "postgresql"
    rows = conn.execute(_S_ANSWER_STATE_PG if pg else _S_ANSWER_STATE, {"token": token}).all()
    if not rows:
        raise StudyError(404, "unknown HIT link")
    a = rows[0]
    total = len(rows)
    n_answered = sum(r.answer is not None for r in rows)
    prev = next((r for r in rows if r.answer_cid == cid), None)
    if prev is not None:  # a retry (same trial and side) or a reused id
        if prev.id == tid and prev.answer_side == side:
            return {
                "done": a.status == "completed",
                "answered": n_answered,
                "total": total,
                "duplicate": True,
            }
        raise StudyError(409, "answer_id was already used for another answer")
    if a.status == "completed":
        raise StudyError(409, "this HIT is already finished")
    if a.status != "active":
        raise StudyError(410, "this HIT expired; please start again")
    if a.assigned_to != a.aid or a.hit_status != "leased":
        raise StudyError(410, "this HIT expired and went to another participant")
    trial = next((r for r in rows if r.id == tid), None)
    if trial is None:
        raise StudyError(404, "this trial is not part of your HIT")
    if trial.answer is not None:
        raise StudyError(409, "this trial was already answered")
    first_open = next(r for r in rows if r.answer is None)
    if trial.id != first_open.id:
        raise StudyError(409, "answer the trials in order")
    chosen = trial.left if side == "left" else trial.right
    correct = None if trial.kind == "pair" else int(chosen == CHECK_REFERENCE)
    conn.defer(
        _I_ANSWER,
        {
            "client_id": cid,
            "assignment_id": a.aid,
            "trial_id": tid,
            "chosen_side": side,
            "chosen": chosen,
            "correct": correct,
            "rt_ms": rt,
            "created_at": now,
        },
    )
    n = n_answered + 1
    done = n >= total
    if done:
        conn.defer(_U_ASSIGNMENT_DONE, {"b_aid": a.aid, "b_now": now})
        conn.defer(_U_HIT_DONE, {"b_hid": a.hit_id, "b_ver": a.version + 1})
    else:
        lease = now + float(settings["lease_seconds"])
        conn.defer(_U_HIT_LEASE, {"b_hid": a.hit_id, "b_exp": lease, "b_ver": a.version + 1})
    return {"done": done, "answered": n, "total": total, "duplicate": False}
