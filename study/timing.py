"""Server-side timing: when each image of a trial was first served, and how long the trial could
have been seen before its answer arrived.

The image route records the first time each slot (reference, left, right) of a trial is sent
to an assignment (``image_serves``; later requests, e.g. from the browser cache's revalidation
or a reload, keep the first time). The trial page shows a trial only after the previous answer
was stored, and the browser preloads the next trial's images, so the longest the participant can
have looked at a trial is measured on the server clock from the later of (its candidates'
images were all served, the previous answer arrived) to its answer's arrival
(:func:`view_timing`). An answer under ``MIN_VIEW_MS``, or whose candidates were never served,
is stored and flagged ``too_fast``. The client's own ``rt_ms`` is kept beside it.
"""

from __future__ import annotations

import time

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.engine import Engine

from . import models as m
from .raw import raw_transaction

__all__ = ["SLOT_COLUMNS", "serve_trial", "view_timing"]

#: image slot -> its column of ``image_serves``
SLOT_COLUMNS = {"reference": "reference_at", "left": "left_at", "right": "right_at"}

_S_SERVE_TRIAL = (
    select(
        *m.trials.c["image_id", "left", "right"],
        m.assignments.c.id.label("aid"),
        *m.image_serves.c["reference_at", "left_at", "right_at"],
    )
    .select_from(
        m.trials.join(m.assignments, m.assignments.c.hit_id == m.trials.c.hit_id).outerjoin(
            m.image_serves,
            and_(
                m.image_serves.c.assignment_id == m.assignments.c.id,
                m.image_serves.c.trial_id == m.trials.c.id,
            ),
        )
    )
    .where(and_(m.assignments.c.token == bindparam("b_token"), m.trials.c.id == bindparam("b_tid")))
)
_UPSERTS: dict[tuple[str, str], object] = {}


def _upsert(dialect: str, slot: str):
    """INSERT the serve time of ``slot``, or keep the first one (built once per dialect)."""
    key = (dialect, slot)
    if key not in _UPSERTS:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            raise ValueError(f"image serve times need SQLite or PostgreSQL, not {dialect}")
        col = SLOT_COLUMNS[slot]
        stmt = insert(m.image_serves)
        _UPSERTS[key] = stmt.on_conflict_do_update(
            index_elements=["assignment_id", "trial_id"],
            set_={col: func.coalesce(m.image_serves.c[col], stmt.excluded[col])},
        )
    return _UPSERTS[key]


def serve_trial(engine: Engine, token: str, trial_id: int, slot: str, now: float | None = None):
    """The (image_id, left, right) of trial ``trial_id`` of the HIT of ``token``, recording the
    first time ``slot`` was served to that assignment (one read; one write on the first serve);
    None for an unknown token or a trial of another HIT."""
    col = SLOT_COLUMNS[slot]
    with raw_transaction(engine) as conn:
        row = conn.execute(_S_SERVE_TRIAL, {"b_token": token, "b_tid": trial_id}).first()
    if row is None:
        return None
    if getattr(row, col) is None:
        now = time.time() if now is None else now
        with raw_transaction(engine, write=True) as conn:
            conn.execute(
                _upsert(conn.dialect.name, slot),
                {"assignment_id": row.aid, "trial_id": trial_id, col: now},
            )
    return row


def view_timing(
    served: dict[str, float | None], previous_at: float | None, now: float, min_view_ms: int
) -> tuple[float | None, float | None, int]:
    """(served_at, server_view_ms, too_fast) of an answer arriving at ``now`` (epoch s).

    ``served``: slot -> first serve time (None: never served); ``served_at`` is the last of the
    served slots, None when a candidate (left or right) was never served; ``previous_at``: the
    arrival of the assignment's previous answer. ``server_view_ms`` = now - max(served_at,
    previous_at), in milliseconds; ``too_fast`` is 1 below ``min_view_ms`` or when unknown."""
    if served.get("left") is None or served.get("right") is None:
        return None, None, 1
    served_at = max(t for t in served.values() if t is not None)
    start = served_at if previous_at is None else max(served_at, previous_at)
    view_ms = round(max(0.0, now - start) * 1000.0, 1)
    return served_at, view_ms, int(view_ms < min_view_ms)
