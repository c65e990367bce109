"""Durable, idempotent recording of answers, and an assignment's state (the hot path).

Every operation is one short raw transaction (:mod:`study.raw`). Answers carry a
client-generated id under a unique constraint, so a retried or double-clicked answer is stored
once, and they are accepted only for the next unanswered trial of the participant's own,
still-leased HIT; each answer renews the HIT's lease. HITs are handed out by
:mod:`study.allocation`. Each answer also stores its viewing conditions and server-side timing
(``answer_views``: :mod:`study.display`, :mod:`study.timing`) in the same transaction.
"""

from __future__ import annotations

import re
import time

from sqlalchemy import and_, bindparam, insert, select, update
from sqlalchemy.engine import Engine

from . import models as m
from .display import ViewError, is_native, parse_view
from .experiment import CHECK_REFERENCE
from .raw import raw_transaction
from .timing import view_timing

__all__ = [
    "MAX_ID",
    "RENEW_LEASE",
    "SELECT_HIT",
    "TOKEN_RE",
    "StudyError",
    "load_assignment",
    "record_answer",
    "trial_of",
]

TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{20,64}")  # (use fullmatch)
CLIENT_ID_RE = re.compile(r"[A-Za-z0-9-]{8,64}")
MAX_RT_MS = 3_600_000.0
#: the largest row id (PostgreSQL's INTEGER); a larger id in a request names nothing
MAX_ID = 2**31 - 1


class StudyError(Exception):
    """A request the study refuses; ``status`` is the HTTP status code to answer with and
    ``retry_after`` (seconds, optional) when to try again (sent as ``Retry-After``)."""

    def __init__(self, status: int, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


#: a HIT's lease state, by id (``b_hid``)
SELECT_HIT = select(*m.hits.c["id", "assigned_to", "status", "version"]).where(
    m.hits.c.id == bindparam("b_hid")
)
#: renew the lease of HIT ``b_hid`` until ``b_exp`` (epoch seconds), as version ``b_ver``
RENEW_LEASE = (
    update(m.hits)
    .where(m.hits.c.id == bindparam("b_hid"))
    .values(lease_expires=bindparam("b_exp"), version=bindparam("b_ver"))
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
    select(*m.trials.c["image_id", "left", "right"])
    .select_from(m.trials.join(m.assignments, m.assignments.c.hit_id == m.trials.c.hit_id))
    .where(and_(m.assignments.c.token == bindparam("b_token"), m.trials.c.id == bindparam("b_tid")))
)


def trial_of(engine: Engine, token: str, trial_id: int):
    """The (image_id, left, right) of trial ``trial_id`` if it belongs to the HIT of ``token``;
    raise ``StudyError(404)`` otherwise (one query: the image route's hot path)."""
    if not isinstance(token, str) or not TOKEN_RE.fullmatch(token):
        raise StudyError(404, "unknown HIT link")
    if not isinstance(trial_id, int) or not 0 < trial_id <= MAX_ID:
        raise StudyError(404, "no such trial in this HIT")
    with raw_transaction(engine) as conn:
        row = conn.execute(_S_IMAGE_TRIAL, {"b_token": token, "b_tid": trial_id}).first()
    if row is None:
        raise StudyError(404, "no such trial in this HIT")
    return row


def load_assignment(
    engine: Engine,
    token: str,
    now: float | None = None,
    lease_seconds: float | None = None,
    start_lease_seconds: float | None = None,
) -> dict:
    """Return the assignment of ``token`` with its trials and answered trial ids.

    Keys: ``assignment`` (row mapping), ``trials`` (list of row mappings in order),
    ``answered`` (set of trial ids), ``leased`` (the HIT is still this assignment's). When
    ``lease_seconds`` is given and the HIT is still held, the lease is renewed: by
    ``lease_seconds`` once an answer is stored, before that by ``start_lease_seconds`` (when
    given; ``study.leases``). Raises ``StudyError(404)`` for an unknown or malformed token.
    """
    if not isinstance(token, str) or not TOKEN_RE.fullmatch(token):
        raise StudyError(404, "unknown HIT link")
    now = time.time() if now is None else now
    with raw_transaction(engine, write=lease_seconds is not None) as conn:
        row = conn.execute(_S_ASSIGNMENT, {"b_token": token}).first()
        a = row._asdict() if row is not None else None
        if a is None or a["hit_id"] is None:
            raise StudyError(404, "unknown HIT link")
        hit = conn.execute(SELECT_HIT, {"b_hid": a["hit_id"]}).one()
        rows = conn.execute(_S_TRIALS_FULL, {"b_aid": a["id"], "b_hid": a["hit_id"]}).all()
        trials = [r._asdict() for r in rows]
        answered = {t["id"] for t in trials if t.pop("answer") is not None}
        leased = hit.assigned_to == a["id"] and hit.status == "leased" and a["status"] == "active"
        if leased and lease_seconds is not None:
            lease = (
                lease_seconds if answered or start_lease_seconds is None else start_lease_seconds
            )
            conn.defer(
                RENEW_LEASE, {"b_hid": hit.id, "b_exp": now + lease, "b_ver": hit.version + 1}
            )
    return {
        "assignment": dict(a),
        "trials": trials,
        "answered": answered,
        "leased": leased,
    }


def _validate_answer(payload, allow_tie: bool = False) -> tuple[str, int, str, float, dict | None]:
    if not isinstance(payload, dict):
        raise StudyError(400, "expected a JSON object")
    cid = payload.get("answer_id")
    if not isinstance(cid, str) or not CLIENT_ID_RE.fullmatch(cid):
        raise StudyError(400, "answer_id must be 8-64 characters [A-Za-z0-9-]")
    tid = payload.get("trial_id")
    if not isinstance(tid, int) or isinstance(tid, bool) or not 0 < tid <= MAX_ID:
        raise StudyError(400, "trial_id must be a positive integer")
    side = payload.get("side")
    if side not in (("left", "right", "tie") if allow_tie else ("left", "right")):
        sides = "'left', 'right' or 'tie'" if allow_tie else "'left' or 'right'"
        raise StudyError(400, f"side must be {sides}")
    rt = payload.get("rt_ms")
    if not isinstance(rt, (int, float)) or isinstance(rt, bool) or not (0 <= rt <= MAX_RT_MS):
        raise StudyError(400, f"rt_ms must be a number of milliseconds in [0, {MAX_RT_MS:.0f}]")
    try:
        view = parse_view(payload.get("view"))
    except ViewError as exc:
        raise StudyError(400, str(exc)) from None
    return cid, tid, side, float(rt), view


# Statements of the answer path, built once (the hot path of a study under load). One query
# reads the assignment, its HIT and every trial with this assignment's answer (if any): one
# round trip instead of three, which matters most with PostgreSQL.
_S_ANSWER_STATE = (
    select(
        m.assignments.c.id.label("aid"),
        *m.assignments.c["hit_id", "status"],
        m.hits.c.assigned_to,
        m.hits.c.status.label("hit_status"),
        m.hits.c.version,
        *m.trials.c["id", "kind", "image_id", "left", "right"],
        m.answers.c.id.label("answer"),
        m.answers.c.client_id.label("answer_cid"),
        m.answers.c.chosen_side.label("answer_side"),
        m.answers.c.created_at.label("answer_at"),
        *m.image_serves.c["reference_at", "left_at", "right_at"],
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
        .outerjoin(
            m.image_serves,
            and_(
                m.image_serves.c.trial_id == m.trials.c.id,
                m.image_serves.c.assignment_id == m.assignments.c.id,
            ),
        )
    )
    .where(m.assignments.c.token == bindparam("token"))
    .order_by(m.trials.c.position)
)
# PostgreSQL: lock the assignment and HIT rows (not the nullable side of the outer join)
_S_ANSWER_STATE_PG = _S_ANSWER_STATE.with_for_update(of=[m.assignments, m.hits])
_I_ANSWER = insert(m.answers)
_I_VIEW = insert(m.answer_views)
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


def record_answer(
    engine: Engine,
    token: str,
    payload: dict,
    settings,
    now: float | None = None,
    *,
    image_size=None,
    user_agent: str | None = None,
) -> dict:
    """Store one answer for the assignment ``token``; return ``{done, answered, total, duplicate}``.

    ``payload``: ``answer_id`` (client-generated, unique), ``trial_id``, ``side`` (left/right,
    the side clicked, or tie when ``settings.allow_tie``), ``rt_ms`` (response time,
    milliseconds), ``view`` (optional: the viewing conditions, :func:`study.display.parse_view`).
    A repeated ``answer_id`` for the same trial returns the stored result without writing.
    Refused with ``StudyError`` (nothing written): malformed payload 400, unknown token 404,
    trial not in this HIT 404, finished HIT 409, HIT lease lost to someone else 410, trial
    already answered or out of order 409. ``settings``: the app's ``Settings``
    (``lease_seconds``: each answer renews the lease; ``min_view_ms``). ``image_size(image_id)``
    -> (width, height) lets the server decide ``native`` (without it a view counts as not
    native); ``user_agent`` is stored with the viewing conditions.
    """
    cid, tid, side, rt, view = _validate_answer(payload, settings.allow_tie)
    if not isinstance(token, str) or not TOKEN_RE.fullmatch(token):
        raise StudyError(404, "unknown HIT link")
    now = time.time() if now is None else now
    try:
        with raw_transaction(engine, write=True) as conn:
            result = _answer_in(conn, token, cid, tid, side, rt, settings, now)
            if not result["duplicate"]:
                _defer_view(conn, result.pop("_trial"), view, settings, now, image_size, user_agent)
            return result
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
    chosen = {"left": trial.left, "right": trial.right}.get(side, "")  # "": a tie
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
        lease = now + float(settings.lease_seconds)
        conn.defer(RENEW_LEASE, {"b_hid": a.hit_id, "b_exp": lease, "b_ver": a.version + 1})
    previous = max((r.answer_at for r in rows if r.answer_at is not None), default=None)
    return {"done": done, "answered": n, "total": total, "duplicate": False,
            "_trial": (a.aid, trial, previous)}  # fmt: skip


def _defer_view(conn, trial_info, view, settings, now, image_size, user_agent) -> None:
    """Queue the ``answer_views`` row of an answer: its viewing conditions (``view``, parsed),
    ``native`` decided here, and the server-side timing (:func:`study.timing.view_timing`)."""
    aid, trial, previous = trial_info
    served = {"reference": trial.reference_at, "left": trial.left_at, "right": trial.right_at}
    served_at, view_ms, too_fast = view_timing(served, previous, now, settings.min_view_ms)
    row = {c.name: None for c in m.answer_views.c}
    if view is not None:
        rects = view.pop("_rects")
        size = image_size(trial.image_id) if image_size is not None else None
        row.update(view)
        row["native"] = int(size is not None and is_native({**view, "_rects": rects}, *size))
    row.update(
        assignment_id=aid,
        trial_id=trial.id,
        user_agent=(user_agent or "")[:512] or None,
        served_at=served_at,
        server_view_ms=view_ms,
        too_fast=too_fast,
    )
    conn.defer(_I_VIEW, row)
