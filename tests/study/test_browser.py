"""End to end in a real headless browser: Debian's chromium driven by Playwright (never a browser
download), one browser for the module.

At 1366x768 ratio 1, 1920x1080 ratio 2 and a 390x844 phone (ratio 3, touch): every stimulus is
drawn at CSS width x ratio == its natural width on whole device pixels, a screenshot of it equals
the source PNG pixel for pixel, or the documented pause page is shown; the viewing conditions
the server stores are what the browser reports; the crop and toggle layouts, ties and the
keyboard-only and touch paths work end to end (into ``mdf scale``); axe-core finds no serious
or critical violation on the participant pages. Skips on a developer machine without chromium
(or axe-core: ``npm ci``); fails in CI.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import text
from werkzeug.serving import make_server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.parametrize("database", ["sqlite"], indirect=True),
]

ROOT = Path(__file__).resolve().parents[2]


def _need(what: str, hint: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {what} is missing: {hint}")
    pytest.skip(f"{what} is not installed ({hint})")


def _chromium() -> str:
    exe = (
        os.environ.get("PLAYWRIGHT_CHROMIUM_EXECUTABLE")
        or os.environ.get("PLAYWRIGHT_CHROMIUM")
        or shutil.which("chromium")
        or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    )
    if not exe:
        _need("Debian's chromium", ".ci/services-browser.sh installs it")
    return exe


@pytest.fixture(scope="module")
def browser():
    exe = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=exe, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield b
        b.close()


@pytest.fixture(scope="module")
def axe_source() -> str:
    path = Path(os.environ.get("AXE_CORE_JS") or ROOT / "node_modules/axe-core/axe.min.js")
    if not path.is_file():
        _need("axe-core", "npm ci at the repository root; .ci/services-axe.sh runs it")
    return path.read_text(encoding="utf-8")


def assert_accessible(page, axe_source: str) -> None:
    """axe-core, injected into the page (Runtime.evaluate passes its strict CSP), finds no
    serious or critical violation."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source)
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))}))"
    )
    bad = [v for v in found if v["impact"] in ("serious", "critical")]
    assert not bad, f"{page.url}: {json.dumps(bad, indent=1)}"


@contextlib.contextmanager
def serving(app, h):
    port = h.free_port()
    srv = make_server("127.0.0.1", port, app, threaded=True)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.shutdown()
        th.join(5)


def wait(page, expression: str, timeout: float = 15.0) -> None:
    """Poll ``expression`` with page.evaluate (which the page's strict CSP permits, unlike
    wait_for_function's eval) until it is truthy."""
    deadline = time.time() + timeout
    while not page.evaluate(expression):
        if time.time() > deadline:
            state = page.evaluate(
                "[document.body.className, document.body.dataset.trial, "
                "document.getElementById('status').textContent, innerWidth, devicePixelRatio]"
            )
            raise TimeoutError(f"timed out waiting for {expression} (page: {state})")
        time.sleep(0.03)


READY = "document.body.dataset.ready === '1'"
#: in the page: each slot's image rect (CSS px), its natural size and visibility, the window's
DRAWN = """() => Object.fromEntries(['left', 'reference', 'right'].map(s => {
  const im = document.getElementById('img-' + s);
  const r = im.getBoundingClientRect();
  const w = im.parentElement.getBoundingClientRect();
  const vis = getComputedStyle(document.getElementById('fig-' + s)).visibility;
  return [s, {rect: [r.left, r.top, r.width, r.height], natural: [im.naturalWidth,
    im.naturalHeight], window: [w.left, w.top, w.width, w.height], visible: vis === 'visible'}];
}))"""
BROWSER = """() => ({dpr: devicePixelRatio, viewport: [innerWidth, innerHeight],
  screen: [screen.width, screen.height], ua: navigator.userAgent})"""


def start(page, url: str, pid: str, keyboard: bool = True) -> None:
    """Consent: keyboard only (Tab, typing, Space, Enter), or with the mouse."""
    page.goto(url + "/")
    if keyboard:
        page.keyboard.press("Tab")
        page.keyboard.type(pid)
        page.keyboard.press("Tab")
        page.keyboard.press("Space")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
    else:
        page.fill("#participant_id", pid)
        page.check("#consent")
        page.click("#start")


def trial_rows(engine) -> dict[int, dict]:
    with engine.connect() as c:
        rows = c.execute(text('SELECT id, kind, image_id, "left", "right" FROM trials')).all()
    return {r[0]: dict(r._mapping) for r in rows}


def source_png(folder: Path, trial: dict, slot: str) -> np.ndarray | None:
    """The file the server sends for ``slot`` (None for a check's generated images)."""
    cond = "__reference__" if slot == "reference" else trial[slot]
    if trial["kind"] != "pair" and slot != "reference":
        return None
    name = "reference" if cond == "__reference__" else cond
    return np.asarray(Image.open(folder / trial["image_id"] / f"{name}.png").convert("RGB"))


def screenshot_of(page, drawn: dict, slot: str, dpr: float) -> np.ndarray:
    """The device pixels of ``slot``'s window (its visible part) in a screenshot."""
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB"))
    x, y, w, h = (round(v * dpr) for v in drawn[slot]["window"])
    return shot[y : y + h, x : x + w]


def answer_view_rows(engine) -> list[dict]:
    with engine.connect() as c:
        rows = c.execute(
            text("SELECT v.*, a.chosen_side FROM answer_views v JOIN answers a "
                 "ON a.trial_id = v.trial_id AND a.assignment_id = v.assignment_id "
                 "ORDER BY a.id")
        ).mappings()
        return [dict(r) for r in rows]


def reference_side(trial: dict) -> str:
    return "left" if trial["left"] == "__reference__" else "right"


@pytest.mark.parametrize(
    "width,height,dpr", [(1366, 768, 1), (1920, 1080, 2)], ids=["1366-dpr1", "1920-dpr2"]
)
def test_side_by_side_is_drawn_1_to_1_and_recorded(
    browser, axe_source, make_app, h, tmp_path, width, height, dpr
):
    manifest = h.make_experiment(tmp_path / "exp", size=(240, 180))
    app = make_app(MANIFEST=str(manifest))
    engine = h.engine_of(app)
    trials = trial_rows(engine)
    ctx = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=dpr)
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    inputs = []
    with serving(app, h) as url:
        start(page, url, f"b{dpr}", keyboard=dpr == 1)
        page.wait_for_url("**/hit/**")
        if dpr == 1:
            assert_accessible(page, axe_source)
        for k in range(10):
            wait(page, READY)
            tid = int(page.evaluate("document.body.dataset.trial"))
            trial = trials[tid]
            drawn = page.evaluate(DRAWN)
            for slot, d in drawn.items():  # one image pixel per device pixel, on the grid
                assert d["visible"] and d["natural"] == [240, 180]
                assert d["rect"][2] * dpr == 240 and d["rect"][3] * dpr == 180, (slot, d)
                assert all(v == int(v) and v * dpr == int(v * dpr) for v in d["rect"][:2])
            if k < 3:  # the screen shows the files' pixels exactly
                for slot in ("left", "reference", "right"):
                    src = source_png(tmp_path / "exp", trial, slot)
                    if src is not None:
                        got = screenshot_of(page, drawn, slot, dpr)
                        assert got.shape == src.shape and np.array_equal(got, src), slot
            side = reference_side(trial) if trial["kind"] == "check" else ("left", "right")[k % 2]
            if k == 4:
                time.sleep(0.7)  # this one is looked at long enough
            if k % 3 == 0:
                page.click(f"#choose-{side}")
                inputs.append("click")
            else:
                page.keyboard.press("ArrowLeft" if side == "left" else "ArrowRight")
                inputs.append("key")
            if k < 9:
                wait(page, f"document.body.dataset.trial !== '{tid}'")
        page.wait_for_url("**/done/**")
        assert "All your answers are saved" in page.content()
        if dpr == 1:
            assert_accessible(page, axe_source)
        seen = page.evaluate(BROWSER)
    ctx.close()
    rows = answer_view_rows(engine)
    assert len(rows) == 10
    for k, r in enumerate(rows):
        assert r["native"] == 1 and r["layout"] == "side_by_side" and r["fit"] == "full"
        assert r["dpr"] == seen["dpr"] == dpr
        assert [r["viewport_w"], r["viewport_h"]] == seen["viewport"] == [width, height]
        assert [r["screen_w"], r["screen_h"]] == seen["screen"]
        assert r["user_agent"] == seen["ua"]
        assert (r["left_w"], r["reference_w"], r["right_w"], r["left_h"]) == (240, 240, 240, 180)
        assert r["input"] == inputs[k] and r["crop_w"] is None
        assert r["served_at"] is not None and r["server_view_ms"] >= 0
        assert r["too_fast"] == int(r["server_view_ms"] < 500)
    assert rows[4]["server_view_ms"] >= 700 and rows[4]["too_fast"] == 0
    with engine.connect() as c:
        views = c.execute(text("SELECT outcome, dpr, viewport_w FROM hit_views")).all()
        checks = c.execute(
            text("SELECT a.correct FROM answers a JOIN trials t ON t.id = a.trial_id "
                 "WHERE t.kind = 'check'")
        ).all()
    assert views and all(tuple(v) == ("shown", dpr, width) for v in views)
    assert [c[0] for c in checks] == [1]


def test_large_images_are_cropped_1_to_1_and_relaid_out_on_resize_and_zoom(
    browser, make_app, h, tmp_path
):
    manifest = h.make_experiment(tmp_path / "exp", size=(640, 480))
    app = make_app(MANIFEST=str(manifest), FIT="crop", MIN_VIEW_MS=0)
    engine = h.engine_of(app)
    trials = trial_rows(engine)
    ctx = browser.new_context(viewport={"width": 1366, "height": 768})
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    with serving(app, h) as url:
        start(page, url, "crop", keyboard=False)
        page.wait_for_url("**/hit/**")
        wait(page, READY)
        tid = int(page.evaluate("document.body.dataset.trial"))
        drawn = page.evaluate(DRAWN)
        # 3 x 640 px do not fit in 1366: the same window of each image, at 1:1
        windows = {tuple(d["window"][2:]) for d in drawn.values()}
        assert len(windows) == 1
        cw, ch = windows.pop()
        win, rect = drawn["left"]["window"], drawn["left"]["rect"]
        ox, oy = int(win[0] - rect[0]), int(win[1] - rect[1])
        assert cw < 640 and all(d["rect"][2:] == [640, 480] for d in drawn.values())
        assert (ox, oy) == ((640 - cw) // 2, (480 - ch) // 2)  # the middle of each image
        src = source_png(tmp_path / "exp", trials[tid], "reference")
        got = screenshot_of(page, drawn, "reference", 1)
        assert np.array_equal(got, src[oy : oy + ch, ox : ox + cw])
        page.keyboard.press("ArrowLeft")
        wait(page, f"document.body.dataset.trial !== '{tid}' && {READY}")
        # a larger window: the whole images fit now
        page.set_viewport_size({"width": 2200, "height": 1000})
        wait(page, "document.getElementById('img-left').parentElement"
                   ".getBoundingClientRect().width === 640")  # fmt: skip
        assert page.evaluate(DRAWN)["right"]["window"][2:] == [640, 480]
        page.keyboard.press("ArrowRight")
        wait(page, f"document.body.dataset.ready !== '1' || {READY}")
        wait(page, READY)
        # too small even for a crop: the stimuli are hidden and the page asks for a larger one
        page.set_viewport_size({"width": 300, "height": 400})
        wait(page, "!document.getElementById('pause').hidden")
        assert "make the window larger" in page.inner_text("#pause")
        hidden = "getComputedStyle(document.getElementById('img-left')).visibility"
        assert page.evaluate(hidden) == "hidden"
        page.keyboard.press("ArrowLeft")  # ignored while paused
        # zoom to 110%: 640 px cannot be drawn exactly at ratio 1.1 -> paused with the zoom advice
        page.set_viewport_size({"width": 1366, "height": 768})
        wait(page, READY)
        cdp = ctx.new_cdp_session(page)
        cdp.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1366, "height": 768, "deviceScaleFactor": 1.1, "mobile": False},
        )
        wait(page, "!document.getElementById('pause').hidden")
        assert "zoom to 100%" in page.inner_text("#pause")
        cdp.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1366, "height": 768, "deviceScaleFactor": 1, "mobile": False},
        )
        wait(page, READY)
        page.keyboard.press("ArrowLeft")
        wait(page, "document.body.dataset.trial !== undefined")
        time.sleep(0.3)
    ctx.close()
    rows = answer_view_rows(engine)
    assert len(rows) == 3 and all(r["native"] == 1 for r in rows)
    first, second, third = rows
    assert first["fit"] == "crop" and (first["crop_w"], first["crop_h"]) == (cw, ch)
    assert (first["crop_x"], first["crop_y"]) == (ox, oy)
    assert second["fit"] == "full" and second["viewport_w"] == 2200
    assert second["layout_changes"] >= 1 and '"resize"' in second["events"]
    events = json.loads(third["events"])
    kinds = [e[1] for e in events]
    assert "pause" in kinds and "resume" in kinds and "dpr" in kinds
    assert ["enlarge", "inexact"] == [e[2] for e in events if e[1] == "pause"][:2]
    with engine.connect() as c:
        outcomes = {r[0] for r in c.execute(text("SELECT outcome FROM hit_views"))}
    assert {"crop", "shown", "enlarge", "inexact"} <= outcomes


def test_phones_are_refused_by_default_and_take_part_by_touch_when_allowed(
    browser, axe_source, make_app, h, tmp_path
):
    phone = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3,
             "is_mobile": True, "has_touch": True}  # fmt: skip
    manifest = h.make_experiment(tmp_path / "exp", size=(240, 240))
    refusing = make_app(MANIFEST=str(manifest))
    ctx = browser.new_context(**phone)
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    with serving(refusing, h) as url:
        start(page, url, "phone-1", keyboard=False)
        assert "Please use a computer" in page.inner_text("main")
        assert_accessible(page, axe_source)
    assert h.count_rows(refusing, "assignments") == 0  # refused before a HIT was handed out
    db = f"sqlite:///{tmp_path / 'phones.sqlite3'}"
    app = make_app(MANIFEST=str(manifest), ALLOW_MOBILE=True, DATABASE=db)
    engine = h.engine_of(app)
    trials = trial_rows(engine)
    with serving(app, h) as url:
        page.goto(url + "/")
        page.fill("#participant_id", "phone-2")
        page.tap("#consent")
        page.tap("#start")
        page.wait_for_url("**/hit/**")
        for k in range(10):
            wait(page, READY)
            tid = int(page.evaluate("document.body.dataset.trial"))
            for d in page.evaluate(DRAWN).values():
                assert d["rect"][2] * 3 == 240 and d["rect"][3] * 3 == 240
            trial = trials[tid]
            side = reference_side(trial) if trial["kind"] == "check" else "left"
            page.tap(f"#choose-{side}")
            if k < 9:
                wait(page, f"document.body.dataset.trial !== '{tid}'")
        page.wait_for_url("**/done/**")
    ctx.close()
    rows = answer_view_rows(engine)
    assert len(rows) == 10 and all(r["native"] == 1 and r["input"] == "touch" for r in rows)
    assert all(r["dpr"] == 3 and r["viewport_w"] == 390 for r in rows)
    # images that ratio 3 cannot draw exactly (640 px): the documented pause page
    big = h.make_experiment(tmp_path / "big", size=(640, 480))
    app = make_app(MANIFEST=str(big), ALLOW_MOBILE=True, FIT="crop",
                   DATABASE=f"sqlite:///{tmp_path / 'big.sqlite3'}")  # fmt: skip
    ctx = browser.new_context(**phone)
    page = ctx.new_page()
    with serving(app, h) as url:
        start(page, url, "phone-3", keyboard=False)
        page.wait_for_url("**/hit/**")
        wait(page, "!document.getElementById('pause').hidden")
        assert "pixel for pixel" in page.inner_text("#pause")
        assert page.evaluate("document.body.classList.contains('paused')")
        assert_accessible(page, axe_source)
    ctx.close()


def test_toggle_layout_with_flicker_and_ties_end_to_end_into_mdf_scale(
    browser, axe_source, make_app, h, tmp_path
):
    from click.testing import CliRunner

    from experiments.cli import main

    manifest = h.make_experiment(tmp_path / "exp", size=(240, 240))
    app = make_app(MANIFEST=str(manifest), LAYOUT="toggle", ALLOW_TIE=True, FLICKER_MS=150)
    engine = h.engine_of(app)
    trials = trial_rows(engine)
    ctx = browser.new_context(viewport={"width": 1366, "height": 768})
    page = ctx.new_page()
    page.set_default_timeout(15_000)

    def on_view() -> str:
        return next(s for s, d in page.evaluate(DRAWN).items() if d["visible"])

    answers = []
    with serving(app, h) as url:
        page.goto(url + "/")
        assert "Flicker warning" in page.inner_text("#flicker-warning")
        start(page, url, "toggler")
        page.wait_for_url("**/hit/**")
        wait(page, READY)
        first = {on_view()}
        deadline = time.time() + 3
        while len(first) < 2 and time.time() < deadline:  # A and B alternate by themselves
            first.add(on_view())
            time.sleep(0.03)
        assert first == {"left", "right"}
        assert_accessible(page, axe_source)
        page.keyboard.press("f")  # pause the flicker
        for k in range(10):
            wait(page, READY)
            tid = int(page.evaluate("document.body.dataset.trial"))
            d = page.evaluate(DRAWN)
            shown = [s for s, v in d.items() if v["visible"]]
            assert len(shown) == 1 and d[shown[0]]["rect"][2] == 240
            assert len({tuple(v["rect"]) for v in d.values()}) == 1  # all in one place
            if k >= 1:  # the flicker is paused: each trial starts on A
                assert shown == ["left"]
            if k == 1:
                page.keyboard.press("ArrowLeft")  # B not seen yet: refused
                time.sleep(0.2)
                assert "Look at both A and B" in page.inner_text("#status")
                assert page.evaluate("document.body.dataset.trial") == str(tid)
            if k == 2:  # Space switches even with an answer button focused (no answer)
                page.focus("#answer-left")
            page.keyboard.press("Space")
            if k >= 1:
                assert on_view() == "right"
                assert page.evaluate("document.body.dataset.trial") == str(tid)
            page.keyboard.down("r")
            assert on_view() == "reference"
            page.keyboard.up("r")
            assert on_view() in ("left", "right")
            page.keyboard.press("Space")
            trial = trials[tid]
            choice = reference_side(trial) if trial["kind"] == "check" else ("tie", "left",
                                                                              "right")[k % 3]
            key = {"left": "ArrowLeft", "right": "ArrowRight", "tie": "ArrowDown"}[choice]
            page.keyboard.press(key)
            answers.append(choice)
            if k < 9:
                wait(page, f"document.body.dataset.trial !== '{tid}'")
        page.wait_for_url("**/done/**")
    ctx.close()
    rows = answer_view_rows(engine)
    assert [r["chosen_side"] for r in rows] == answers
    assert all(r["native"] == 1 and r["layout"] == "toggle" and r["input"] == "key" for r in rows)
    assert all(r["toggles"] >= 2 and r["reference_views"] >= 1 for r in rows)
    n_ties = answers.count("tie")
    assert n_ties >= 2
    out = tmp_path / "cmp.csv"
    db = app.extensions["study_settings"].database
    r = CliRunner().invoke(main, ["study", "export", "--db", db, "--out", str(out)])
    assert r.exit_code == 0 and "wrote 9 comparisons" in r.output, r.output
    with out.open() as f:
        table = list(csv.DictReader(f))
    assert sum(row["is_A_selected"] == "0.5" for row in table) == n_ties
    assert all(row["tie"] == str(int(row["is_A_selected"] == "0.5")) for row in table)
    import scaling

    t = scaling.read_table(str(out))
    expected = np.zeros((3, 3))
    for row in table:  # a tie: half a vote to each side
        a, b = (t.conditions.index(row[c]) for c in ("condition_A", "condition_B"))
        expected[a, b] += float(row["is_A_selected"])
        expected[b, a] += 1 - float(row["is_A_selected"])
    assert t.n_comparisons == 9 and np.array_equal(t.counts(), expected)
    r = CliRunner().invoke(main, ["scale", str(out), "--bootstrap", "0"])
    assert r.exit_code == 0 and "(9 comparisons)" in r.output, r.output
    r = CliRunner().invoke(
        main, ["study", "export", "--db", db, "--out", str(out), "--ties", "drop"]
    )
    assert f"wrote {9 - n_ties} comparisons" in r.output
    assert f"{n_ties} ties (no visible difference), dropped" in r.output
