"""Export of the collected answers as pwcmp's long table, and the dashboard's summary figures.

The table has one row per answered comparison (attention checks and practice trials are not
rows) with pwcmp's columns ``observer, image, condition_A, condition_B, is_A_selected``
(condition_A is the one shown on the left) followed by HIT/check columns, so that
``mdf scale comparisons.csv --group image`` and ``scaling.read_table(..., group="image")`` read
it directly. Screening happens at analysis time: the raw data are kept, and ``passed_only``
keeps only completed HITs with no failed attention check (the paper discards such HITs).

Each row also carries how its trial was seen (:data:`VIEW_COLUMNS`: layout, ``dpr``,
``viewport_w``/``viewport_h``, screen, the drawn size of each image in device pixels, the crop
window, ``native``, input, tab switches, server-side timing and ``too_fast``, user agent), and
the default screening (:class:`study.screening.Screening`) keeps only answers shown 1:1. A
"no visible difference" answer is a row with ``tie`` = 1 and ``is_A_selected`` = 0.5 (half a
vote to each side, as pwcmp counts a tie), or is dropped with ``Screening(ties="drop")``.
"""

from __future__ import annotations

import csv
import datetime as dt
import statistics
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import TextIO

from sqlalchemy import and_, inspect, select
from sqlalchemy.engine import Engine

from scaling.contracts.atomic import atomic_open

from . import models as m
from .db import transaction
from .screening import Screening, ScreeningReport, ScreeningWarning, screen

__all__ = [
    "COLUMNS",
    "VIEW_COLUMNS",
    "export_rows",
    "export_table",
    "observer_matrices",
    "summary",
    "write_csv",
    "write_rows",
]

COLUMNS = [
    "observer",
    "image",
    "condition_A",
    "condition_B",
    "is_A_selected",
    "platform",
    "hit_id",
    "assignment_id",
    "trial_position",
    "chosen_side",
    "rt_ms",
    "answered_at",
    "assignment_status",
    "checks_answered",
    "checks_failed",
    "passed_checks",
    "tie",
]
#: how each answer's trial was seen (``answer_views``; empty when not reported)
VIEW_COLUMNS = [
    "native",
    "layout",
    "fit",
    "dpr",
    "zoom",
    "viewport_w",
    "viewport_h",
    "screen_w",
    "screen_h",
    "drawn_reference_w",
    "drawn_reference_h",
    "drawn_left_w",
    "drawn_left_h",
    "drawn_right_w",
    "drawn_right_h",
    "crop_x",
    "crop_y",
    "crop_w",
    "crop_h",
    "input",
    "hidden_ms",
    "visibility_changes",
    "layout_changes",
    "toggles",
    "reference_views",
    "served_at",
    "server_view_ms",
    "too_fast",
    "user_agent",
]
COLUMNS += VIEW_COLUMNS
_DRAWN = {f"drawn_{s}_{d}": f"{s}_{d}" for s in ("reference", "left", "right") for d in "wh"}


def _check_stats(rows) -> dict[int, tuple[int, int]]:
    out: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        if r["kind"] == "check":
            out[r["assignment_id"]][0] += 1
            out[r["assignment_id"]][1] += int(r["correct"] == 0)
    return {k: (v[0], v[1]) for k, v in out.items()}


def _all_answers(engine: Engine) -> list[dict]:
    """Every answer with its trial, assignment and (when recorded) viewing conditions; an older
    database without ``answer_views`` gives answers without them."""
    joined = m.answers.join(m.trials, m.answers.c.trial_id == m.trials.c.id).join(
        m.assignments, m.answers.c.assignment_id == m.assignments.c.id
    )
    cols = [
        *m.answers.c["assignment_id", "chosen_side", "correct", "rt_ms", "created_at"],
        *m.trials.c["kind", "image_id", "left", "right", "position", "hit_id"],
        *m.assignments.c["worker_id", "platform"],
        m.assignments.c.status.label("assignment_status"),
    ]
    v = m.answer_views
    with transaction(engine) as conn:
        if inspect(conn).has_table(v.name):
            view_cols = [c for c in v.c if c.name not in ("assignment_id", "trial_id", "events")]
            cols += [c.label("view_" + c.name) for c in view_cols]
            joined = joined.outerjoin(
                v,
                and_(
                    v.c.assignment_id == m.answers.c.assignment_id,
                    v.c.trial_id == m.answers.c.trial_id,
                ),
            )
        q = select(*cols).select_from(joined).order_by(m.answers.c.id)
        return [dict(r) for r in conn.execute(q).mappings()]


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="milliseconds")


def _view_fields(r: dict) -> dict:
    out = {}
    for col in VIEW_COLUMNS:
        out[col] = r.get("view_" + _DRAWN.get(col, col))
    out["served_at"] = _iso(out["served_at"])
    return out


def export_rows(
    engine: Engine, passed_only: bool = False, screening: Screening | None = None
) -> list[dict]:
    """The long table as a list of dicts (keys ``COLUMNS``), in the order answers were stored.

    ``screening`` (default: :class:`Screening`, answers shown 1:1, ties as half votes) picks the
    answers; when it drops any, a :class:`~study.screening.ScreeningWarning` says how many and
    why (:func:`export_table` returns the report instead)."""
    rows, report = export_table(engine, passed_only, screening)
    if report.dropped:
        warnings.warn(report.message(), ScreeningWarning, stacklevel=2)
    return rows


def export_table(
    engine: Engine, passed_only: bool = False, screening: Screening | None = None
) -> tuple[list[dict], ScreeningReport]:
    """The long table (as :func:`export_rows`) and the report of what ``screening`` dropped
    (counted among the rows ``passed_only`` keeps)."""
    rows = _all_answers(engine)
    checks = _check_stats(rows)
    out = []
    for r in rows:
        if r["kind"] != "pair":
            continue
        n_checks, n_failed = checks.get(r["assignment_id"], (0, 0))
        passed = int(r["assignment_status"] == "completed" and n_failed == 0)
        if passed_only and not passed:
            continue
        tie = r["chosen_side"] == "tie"
        out.append(
            {
                "observer": r["worker_id"],
                "image": r["image_id"],
                "condition_A": r["left"],
                "condition_B": r["right"],
                "is_A_selected": 0.5 if tie else int(r["chosen_side"] == "left"),
                "platform": r["platform"],
                "hit_id": r["hit_id"],
                "assignment_id": r["assignment_id"],
                "trial_position": r["position"],
                "chosen_side": r["chosen_side"],
                "rt_ms": round(r["rt_ms"], 1),
                "answered_at": _iso(r["created_at"]),
                "assignment_status": r["assignment_status"],
                "checks_answered": n_checks,
                "checks_failed": n_failed,
                "passed_checks": passed,
                "tie": int(tie),
                **_view_fields(r),
            }
        )
    return screen(out, Screening() if screening is None else screening)


def write_rows(f: TextIO, rows: list[dict]) -> None:
    """Write the long table ``rows`` (keys :data:`COLUMNS`) with its header as CSV to ``f``."""
    writer = csv.DictWriter(f, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)


def write_csv(rows: list[dict], out: str | Path) -> Path:
    """Write ``rows`` as CSV to ``out`` atomically (``scaling.contracts.atomic``), readable by
    the owner only (the table holds participant ids); the folder is created if missing."""
    with atomic_open(out, binary=False, newline="", mode=0o600) as f:
        write_rows(f, rows)
    return Path(out)


def observer_matrices(rows: list[dict], conditions: list[str]):
    """Per-observer count matrices (K x N x N, summed over images) from export rows (a tie,
    ``is_A_selected`` = 0.5, adds half a count to each side)."""
    import numpy as np

    idx = {c: k for k, c in enumerate(conditions)}
    observers = sorted({r["observer"] for r in rows})
    oidx = {o: k for k, o in enumerate(observers)}
    MM = np.zeros((len(observers), len(conditions), len(conditions)))
    for r in rows:
        a, b = idx[r["condition_A"]], idx[r["condition_B"]]
        won = float(r["is_A_selected"])  # 0.5: a tie, half a vote each way
        MM[oidx[r["observer"]], a, b] += won
        MM[oidx[r["observer"]], b, a] += 1.0 - won
    return MM, observers


def summary(engine: Engine, exp, settings, now: float | None = None) -> dict:
    """Progress figures for the admin dashboard.

    Keys: ``pairs`` (per image and pair: answered comparisons, all and passed), ``hits``
    (open/leased/done), ``assignments`` (completed, abandoned, excluded = completed with a failed
    check, active), ``check_failure_rate`` (failed / answered checks), ``median_rt_ms`` (pair
    trials), ``answers`` (total rows). ``settings``: the app's ``Settings`` (target per pair).
    """
    now = time.time() if now is None else now
    rows = _all_answers(engine)
    checks = _check_stats(rows)
    hit_lease = {}
    with transaction(engine) as conn:
        assigns = conn.execute(
            select(m.assignments.c.id, m.assignments.c.status, m.assignments.c.hit_id)
        ).all()
        for hid, status, exp_at, to in conn.execute(
            select(m.hits.c.id, m.hits.c.status, m.hits.c.lease_expires, m.hits.c.assigned_to)
        ):
            hit_lease[hid] = (status, exp_at, to)
    a_counts = {"completed": 0, "abandoned": 0, "excluded": 0, "active": 0}
    for aid, status, hid in assigns:
        if status == "completed":
            a_counts["completed"] += 1
            if checks.get(aid, (0, 0))[1] > 0:
                a_counts["excluded"] += 1
        elif status == "abandoned":
            a_counts["abandoned"] += 1
        else:
            st, exp_at, to = hit_lease.get(hid, (None, None, None))
            if to == aid and st == "leased" and exp_at is not None and exp_at >= now:
                a_counts["active"] += 1
            else:
                a_counts["abandoned"] += 1
    h_counts = {"open": 0, "leased": 0, "done": 0}
    for status, _, _ in hit_lease.values():
        h_counts[status] = h_counts.get(status, 0) + 1
    pairs: dict[tuple[str, str, str], list[int]] = {}
    for img in exp.images:
        for i, a in enumerate(exp.conditions):
            for b in exp.conditions[i + 1 :]:
                pairs[(img.id, a, b)] = [0, 0]
    n_checks = n_failed = 0
    rts = []
    for r in rows:
        if r["kind"] == "check":
            n_checks += 1
            n_failed += int(r["correct"] == 0)
        if r["kind"] != "pair":
            continue
        rts.append(r["rt_ms"])
        a, b = sorted((r["left"], r["right"]), key=exp.conditions.index)
        cell = pairs.setdefault((r["image_id"], a, b), [0, 0])
        cell[0] += 1
        if r["assignment_status"] == "completed" and checks.get(r["assignment_id"], (0, 0))[1] == 0:
            cell[1] += 1
    return {
        "pairs": [
            {
                "image": k[0],
                "condition_a": k[1],
                "condition_b": k[2],
                "answered": v[0],
                "passed": v[1],
                "target": settings.per_pair_target,
            }
            for k, v in pairs.items()
        ],
        "hits": h_counts,
        "assignments": a_counts,
        "check_failure_rate": (n_failed / n_checks) if n_checks else None,
        "median_rt_ms": statistics.median(rts) if rts else None,
        "answers": len(rows),
    }
