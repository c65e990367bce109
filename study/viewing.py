"""Viewing conditions in the database: HIT page loads (``hit_views``) and the admin's summary
of how answers were shown (``answer_views``).

A HIT page reports its screen once per load and again whenever what it can show changes (the
window was resized so the layout no longer fits, the pixel ratio changed, pinch zoom): up to
:data:`MAX_PAGE_VIEWS` rows per assignment, so a misbehaving page cannot fill the database.
"""

from __future__ import annotations

import time
from collections import Counter

from sqlalchemy import bindparam, func, insert, inspect, select
from sqlalchemy.engine import Engine

from . import models as m
from .db import transaction
from .raw import raw_transaction

__all__ = ["MAX_PAGE_VIEWS", "display_summary", "recent_page_views", "record_page_view"]

#: page-view reports kept per assignment (later ones are acknowledged and dropped)
MAX_PAGE_VIEWS = 50

_S_AID = select(m.assignments.c.id).where(m.assignments.c.token == bindparam("b_token"))
_S_N_VIEWS = (
    select(func.count())
    .select_from(m.hit_views)
    .where(m.hit_views.c.assignment_id == bindparam("b_aid"))
)
_I_PAGE_VIEW = insert(m.hit_views)


def record_page_view(engine: Engine, token: str, row: dict, now: float | None = None) -> bool:
    """Store one HIT page report (``row``: :func:`study.display.parse_page_view`) for the
    assignment of ``token``; False when the token is unknown or the assignment already has
    :data:`MAX_PAGE_VIEWS` reports (nothing written)."""
    now = time.time() if now is None else now
    with raw_transaction(engine, write=True) as conn:
        found = conn.execute(_S_AID, {"b_token": token}).first()
        if found is None:
            return False
        if conn.execute(_S_N_VIEWS, {"b_aid": found.id}).scalar_one() >= MAX_PAGE_VIEWS:
            return False
        conn.defer(_I_PAGE_VIEW, {**row, "assignment_id": found.id, "created_at": now})
    return True


def _has(conn, table) -> bool:
    return inspect(conn).has_table(table.name)


def display_summary(engine: Engine) -> dict:
    """How the stored answers were shown, for the admin dashboard.

    Keys: ``answers`` (with a viewing-condition row), ``native`` / ``not_native`` /
    ``unknown`` (shown 1:1, not, no conditions reported; answers of an older database count as
    unknown), ``too_fast``, ``tab_switches`` (answers during which the page was hidden),
    ``cropped``, ``layouts`` and ``dpr`` (answers per layout and per pixel ratio), ``inputs``,
    ``page_outcomes`` (HIT page reports per outcome: shown, enlarge, inexact...).
    """
    out = {"answers": 0, "native": 0, "not_native": 0, "unknown": 0, "too_fast": 0,
           "tab_switches": 0, "cropped": 0, "layouts": {}, "dpr": {}, "inputs": {},
           "page_outcomes": {}}  # fmt: skip
    v = m.answer_views.c
    with transaction(engine) as conn:
        n_answers = conn.execute(select(func.count()).select_from(m.answers)).scalar_one()
        if not _has(conn, m.answer_views):
            out["unknown"] = n_answers
            return out
        rows = conn.execute(
            select(v.native, v.too_fast, v.visibility_changes, v.crop_w, v.layout, v.dpr, v.input)
        ).all()
        outcomes = conn.execute(
            select(m.hit_views.c.outcome, func.count()).group_by(m.hit_views.c.outcome)
        ).all()
    layouts, dprs, inputs = Counter(), Counter(), Counter()
    for native, fast, vis, crop_w, layout, dpr, kind in rows:
        out["native"] += native == 1
        out["not_native"] += native == 0
        out["too_fast"] += fast == 1
        out["tab_switches"] += bool(vis)
        out["cropped"] += crop_w is not None
        if layout is not None:
            layouts[layout] += 1
            dprs[f"{dpr:g}"] += 1
            inputs[kind] += 1
    out["answers"] = len(rows)
    out["unknown"] = n_answers - out["native"] - out["not_native"]
    out["layouts"], out["dpr"], out["inputs"] = dict(layouts), dict(dprs), dict(inputs)
    out["page_outcomes"] = {k: n for k, n in outcomes}
    return out


def recent_page_views(engine: Engine, limit: int = 30) -> list[dict]:
    """The latest HIT page reports (newest first) with the assignment's worker id."""
    h = m.hit_views.c
    q = (
        select(
            h.created_at, h.outcome, h.layout, h.dpr, h.zoom, h.viewport_w, h.viewport_h,
            h.screen_w, h.screen_h, h.pointer, h.touch_points, h.user_agent,
            m.assignments.c.worker_id,
        )
        .select_from(m.hit_views.join(m.assignments, m.assignments.c.id == h.assignment_id))
        .order_by(h.id.desc())
        .limit(limit)
    )  # fmt: skip
    with transaction(engine) as conn:
        if not _has(conn, m.hit_views):
            return []
        return [dict(r) for r in conn.execute(q).mappings()]
