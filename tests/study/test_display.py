"""Display fidelity on the server: the exact-drawing rule, viewing conditions per answer and per
HIT page, ``native`` decided by the server, ties, screening of the export, older databases."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from experiments.cli import main
from study.display import native_view, quantum
from study.export import COLUMNS, export_rows, export_table
from study.screening import Screening, ScreeningWarning

STATIC = Path(__file__).resolve().parents[2] / "study" / "static"


def _rows(app, sql):
    with app.extensions["study_engine"].connect() as c:
        return [dict(r._mapping) for r in c.execute(text(sql))]


def _views(app):
    return _rows(app, "SELECT v.*, a.chosen_side, a.chosen, a.correct FROM answer_views v "
                      "JOIN answers a ON a.trial_id = v.trial_id "
                      "AND a.assignment_id = v.assignment_id ORDER BY a.id")  # fmt: skip


RATIOS = {1: 1, 2: 2, 3: 3, 4: 4, 0.5: 1, 0.8: 4, 1.25: 5, 1.5: 3, 1.75: 7, 2.5: 5,
          2.625: 21, 1.100000023841858: 11, 0.8999999761581421: 9, 213 / 160: None}  # fmt: skip


def test_the_device_pixel_step_of_exact_drawing_at_each_ratio():
    for dpr, q in RATIOS.items():
        assert quantum(dpr) == q, dpr
    assert quantum(0) is None and quantum(float("nan")) is None
    # sides that are multiples of 60 are exact at the common ratios
    assert all(240 % quantum(r) == 0 for r in (1, 1.25, 1.5, 2, 2.5, 3, 4))


def _node(script: str):
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but node is missing: .ci/services-axe.sh installs npm and node")
        pytest.skip("node is not installed")
    code = (
        "global.window = {};\n" + (STATIC / "layout.js").read_text() + "\nconst L = window.MdfLayout;\n"
        + script
    )
    out = subprocess.run([node, "-e", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_the_page_layout_follows_the_same_rule_and_the_fit_policies():
    grids = _node(f"console.log(JSON.stringify({list(RATIOS)}.map(r => L.grid(r))))")
    assert [g and g["q"] for g in grids] == list(RATIOS.values())
    base = {"W": 640, "H": 480, "dpr": 1, "viewW": 1366, "viewH": 768, "top": 30,
            "bottom": 50, "caption": 24, "layout": "side_by_side"}  # fmt: skip
    cases = {
        "enlarge": dict(base, fit="enlarge"),
        "crop": dict(base, fit="crop"),
        "toggle": dict(base, fit="toggle"),
        "fits": dict(base, fit="enlarge", W=240, H=240),
        "dpr2": dict(base, fit="enlarge", dpr=2),
        "dpr3": dict(base, fit="crop", dpr=3),
        "tiny": dict(base, fit="crop", viewW=300),
    }
    got = _node(f"console.log(JSON.stringify(Object.fromEntries(Object.entries("
                f"{json.dumps(cases)}).map(([k, o]) => [k, L.plan(o)]))))")  # fmt: skip
    assert got["enlarge"]["outcome"] == "enlarge" and got["tiny"]["outcome"] == "enlarge"
    assert got["toggle"]["outcome"] == "toggle" and got["toggle"]["layout"] == "toggle"
    crop = got["crop"]
    assert crop["outcome"] == "crop" and crop["crop"][2] < 640 and crop["crop"][3] == 480
    assert crop["img"] == [640, 480] and crop["win"] == crop["crop"][2:]
    xs = [crop["pos"][s][0] for s in ("left", "reference", "right")]
    assert xs[1] - xs[0] == xs[2] - xs[1] >= crop["win"][0] + 24  # no overlap
    assert got["fits"]["outcome"] == "shown" and got["fits"]["crop"] is None
    assert got["dpr2"]["outcome"] == "shown" and got["dpr2"]["img"] == [320, 240]
    assert got["dpr3"]["outcome"] == "inexact"  # 640 is no multiple of 3
    for plan in (crop, got["fits"], got["dpr2"]):  # every position a whole CSS px
        assert all(float(v).is_integer() for p in plan["pos"].values() for v in p)


def test_each_answer_stores_its_viewing_conditions_and_the_server_decides_native(
    app, participant
):
    participant.start()
    ids = participant.trial_ids()
    size = participant.data["trials"][0]["size"]
    assert size == [48, 48]
    scaled = native_view(96, 96)  # drawn at twice the file's size
    shifted = native_view(48, 48)
    shifted["drawn"]["left"][0] += 0.5  # off the pixel grid
    zoomed = dict(native_view(48, 48), zoom=1.5)
    dpr2 = native_view(48, 48, dpr=2, input="click")
    for tid, view in zip(ids, ["native", scaled, shifted, zoomed, dpr2, None]):
        assert participant.answer(tid, view=view).status_code == 200
    rows = _views(app)
    assert [r["native"] for r in rows] == [1, 0, 0, 0, 1, None]
    assert rows[4]["dpr"] == 2 and rows[4]["left_w"] == 48 and rows[4]["input"] == "click"
    assert (rows[0]["viewport_w"], rows[0]["screen_h"], rows[0]["layout"]) == (1920, 1080,
                                                                                "side_by_side")
    assert rows[1]["left_w"] == 96 and rows[5]["layout"] is None
    assert all(r["too_fast"] == 1 for r in rows)  # the test client never fetched the images


@pytest.mark.parametrize(
    "change,match",
    [
        ({"dpr": "2"}, "view.dpr must be a number"),
        ({"dpr": 0}, r"view.dpr must be in"),
        ({"layout": "grid"}, "view.layout must be one of"),
        ({"viewport": [1]}, r"view.viewport must be \[width, height\]"),
        ({"drawn": {"middle": [0, 0, 1, 1]}}, "view.drawn must map"),
        ({"fit": "crop"}, "view.window is given exactly when fit is crop"),
        ({"window": [0, 0, 1.5, 2], "fit": "crop"}, "whole image pixels"),
        ({"events": [[1, "<script>"]]}, "view.events entries"),
        ({"events": [[1, "resize"]] * 65}, "at most 64"),
        ({"input": "voice"}, "view.input must be one of"),
    ],
    ids=lambda x: str(x)[:24],
)
def test_malformed_viewing_conditions_are_refused_and_nothing_written(
    app, participant, h, change, match
):
    participant.start()
    view = dict(native_view(48, 48), **change)
    r = participant.answer(participant.trial_ids()[0], view=view)
    assert r.status_code == 400 and re.search(match, r.json["error"]), r.json

    assert h.count_rows(app) == 0 and h.count_rows(app, "answer_views") == 0


def test_a_tie_is_stored_when_offered_and_exported_as_half_a_vote(make_app, h, tmp_path):
    app = make_app()
    p = h.Participant(app.test_client(), "no-ties")
    p.start()
    r = p.answer(p.trial_ids()[0], side="tie")
    assert r.status_code == 400 and "'left' or 'right'" in r.json["error"]
    app = make_app(ALLOW_TIE=True, DATABASE=f"sqlite:///{tmp_path / 'ties.sqlite3'}")
    p = h.Participant(app.test_client(), "ties")
    p.start()
    for tid in p.trial_ids():
        assert p.answer(tid, side="tie").status_code == 200
    rows = _views(app)
    assert {(r["chosen_side"], r["chosen"]) for r in rows} == {("tie", "")}
    checks = [r["correct"] for r, k in zip(rows, p.kinds(app)) if k == "check"]
    assert checks == [0]  # "no difference" fails an obvious check
    out, report = export_table(h.engine_of(app))
    assert len(out) == 9 and report.kept == 9
    assert {r["is_A_selected"] for r in out} == {0.5} and {r["tie"] for r in out} == {1}
    dropped, report = export_table(h.engine_of(app), screening=Screening(ties="drop"))
    assert dropped == [] and report.dropped == {"tie": 9}


def test_the_export_has_the_viewing_columns_and_drops_answers_not_shown_1_to_1(
    app, h, tmp_path
):
    assert {"dpr", "viewport_w", "viewport_h", "native", "too_fast", "drawn_left_w"} <= set(COLUMNS)
    p = h.Participant(app.test_client(), "mixed")
    p.start()
    views = ["native", native_view(96, 96), None] + ["native"] * 7
    for tid, view in zip(p.trial_ids(), views):
        p.answer(tid, view=view)
    n_pairs_native = sum(
        k == "pair" and v == "native" for k, v in zip(p.kinds(app), views)
    )  # fmt: skip
    db = app.extensions["study_settings"].database
    out = tmp_path / "c.csv"
    r = CliRunner().invoke(main, ["study", "export", "--db", db, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert f"wrote {n_pairs_native} comparisons" in r.output
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert all(row["native"] == "1" and row["dpr"] == "1.0" for row in rows)
    assert all(row["viewport_w"] == "1920.0" and row["drawn_left_w"] == "48.0" for row in rows)
    lost = 9 - n_pairs_native
    assert f"dropped {lost} of 9 answers" in r.output and "--any-display" in r.output
    r = CliRunner().invoke(main, ["study", "export", "--db", db, "--out", str(out),
                                  "--any-display"])  # fmt: skip
    assert "wrote 9 comparisons" in r.output and "dropped" not in r.output
    with pytest.warns(ScreeningWarning, match="not shown 1:1"):
        assert len(export_rows(h.engine_of(app))) == n_pairs_native
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(export_rows(h.engine_of(app), screening=Screening(False))) == 9


def test_screening_drops_fast_and_hidden_answers_on_request():
    base = {"native": 1, "too_fast": 0, "visibility_changes": 0, "tie": 0}
    rows = [base, dict(base, too_fast=1), dict(base, visibility_changes=2), dict(base, tie=1),
            dict(base, native=0), dict(base, native=None)]  # fmt: skip
    from study.screening import screen

    kept, report = screen(rows, Screening(drop_fast=True, drop_hidden=True, ties="drop"))
    assert kept == [base] and report.dropped == {
        "no_conditions": 1, "not_native": 1, "too_fast": 1, "hidden": 1, "tie": 1}  # fmt: skip
    assert report.message().startswith("dropped 5 of 6 answers: 1 without viewing conditions")
    assert len(screen(rows, Screening(require_native=False))[0]) == 6
    with pytest.raises(ValueError, match="ties must be one of half, drop"):
        Screening(ties="both")


def test_an_older_database_is_read_upgraded_or_refused_with_a_clear_message(
    make_app, h, tmp_path
):
    app = make_app()
    h.complete(app, "old-1")
    engine = h.engine_of(app)
    with engine.begin() as c:  # as a database made before viewing conditions
        for t in ("hit_views", "answer_views", "image_serves"):
            c.execute(text(f"DROP TABLE {t}"))
    rows, report = export_table(engine)
    assert rows == [] and report.dropped == {"no_conditions": 9}
    assert len(export_table(engine, screening=Screening(False))[0]) == 9
    from study.viewing import display_summary

    assert display_summary(engine)["unknown"] == 10
    url = app.extensions["study_settings"].database
    with pytest.raises(ValueError, match="made by an older version.*CREATE_DB=true"):
        make_app(DATABASE=url, CREATE_DB=False)
    app2 = make_app(DATABASE=url)  # CREATE_DB true: the tables are added, answers kept
    assert h.count_rows(app2) == 10 and h.count_rows(app2, "answer_views") == 0
    p = h.Participant(app2.test_client(), "new-1")
    p.start()
    assert p.answer(p.trial_ids()[0]).status_code == 200
    assert h.count_rows(app2, "answer_views") == 1


def test_the_admin_shows_how_answers_were_shown(app, h):
    p = h.Participant(app.test_client(), "adm")
    p.start()
    for tid, view in zip(p.trial_ids(), [native_view(96, 96)] + ["native"] * 9):
        p.answer(tid, view=view)
    c = app.test_client()
    auth = {"Authorization": f"Bearer {h.ADMIN}"}
    d = c.get("/admin/stats.json", headers=auth).json["display"]
    assert (d["native"], d["not_native"], d["unknown"], d["too_fast"]) == (9, 1, 0, 10)
    assert d["layouts"] == {"side_by_side": 10} and d["dpr"] == {"1": 10}
    page = c.get("/admin/", headers=auth).get_data(as_text=True)
    assert 'id="display"' in page and "answers shown 1:1" in page
    r = c.get("/admin/export.csv?any_display=1", headers=auth)
    assert r.headers["X-Screening"] == "kept all 9 answers"
    r = c.get("/admin/export.csv", headers=auth)
    assert len(list(csv.DictReader(r.get_data(as_text=True).splitlines()))) <= 9
    assert c.get("/admin/export.csv?ties=maybe", headers=auth).status_code == 400


def test_display_settings_are_typed_and_checked(tmp_path):
    from study.settings import load_settings

    base = {"SECRET_KEY": "s" * 32, "MANIFEST": "m"}
    s = load_settings(tmp_path, base, {"MDF_STUDY_ALLOW_TIE": "yes", "MDF_STUDY_LAYOUT": "toggle",
                                       "MDF_STUDY_FLICKER_MS": "250"})  # fmt: skip
    assert (s.allow_tie, s.layout, s.flicker_ms, s.fit, s.allow_mobile) == (
        True, "toggle", 250, "enlarge", False)  # fmt: skip
    assert s.min_view_ms == 500
    with pytest.raises(ValueError, match="LAYOUT must be one of"):
        load_settings(tmp_path, dict(base, LAYOUT="grid"), {})
    with pytest.raises(ValueError, match="FLICKER_MS needs the toggle layout"):
        load_settings(tmp_path, dict(base, FLICKER_MS=200), {})
    with pytest.raises(ValueError, match="FLICKER_MS must be 0 .off. or 100..5000"):
        load_settings(tmp_path, dict(base, FLICKER_MS=20, LAYOUT="toggle"), {})
