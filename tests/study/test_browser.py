"""End to end in a real headless browser: Debian's chromium driven by Playwright.

Completes a HIT with keyboard and mouse (including the attention check, answered right), then
finds the rows in the database. Skips on a developer machine without chromium; fails in CI.
"""

from __future__ import annotations

import os
import shutil
import threading

import pytest
from sqlalchemy import text
from werkzeug.serving import make_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _wait(page, expression: str, timeout: float = 15.0) -> None:
    """Poll ``expression`` with page.evaluate (which the page's strict CSP permits, unlike
    wait_for_function's eval) until it is truthy."""
    import time

    deadline = time.time() + timeout
    while not page.evaluate(expression):
        if time.time() > deadline:
            raise TimeoutError(f"timed out waiting for {expression}")
        time.sleep(0.05)


def _chromium() -> str:
    exe = (
        os.environ.get("PLAYWRIGHT_CHROMIUM_EXECUTABLE")
        or os.environ.get("PLAYWRIGHT_CHROMIUM")
        or shutil.which("chromium")
        or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    )
    if not exe:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no chromium: .ci/services-browser.sh must install it")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return exe


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_participant_completes_a_hit_in_chromium(make_app, h):
    exe = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    app = make_app()
    port = h.free_port()
    srv = make_server("127.0.0.1", port, app, threaded=True)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    engine = h.engine_of(app)

    def reference_side(trial_id: int) -> str:
        with engine.connect() as c:
            left = c.execute(
                text('SELECT "left" FROM trials WHERE id = :i'), {"i": trial_id}
            ).scalar()
        return "left" if left == "__reference__" else "right"

    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=exe, headless=True, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.set_default_timeout(15_000)
            page.goto(f"http://127.0.0.1:{port}/")
            page.fill("#participant_id", "browser-1")
            page.check("#consent")
            page.click("#start")
            page.wait_for_url("**/hit/**")
            # no scrolling needed on a laptop screen
            assert page.evaluate("document.documentElement.scrollHeight <= window.innerHeight + 1")
            seen_check = False
            for k in range(10):
                _wait(
                    page,
                    "document.body.dataset.trial !== undefined && "
                    "!document.getElementById('choose-left').disabled",
                )
                tid = int(page.evaluate("document.body.dataset.trial"))
                kind = page.evaluate(
                    f"JSON.parse(document.getElementById('hit-data').textContent)"
                    f".trials.find(t => t.id === {tid}).kind"
                )
                side = reference_side(tid) if kind == "check" else ("left" if k % 3 else "right")
                seen_check |= kind == "check"
                if k % 2:
                    page.keyboard.press("ArrowLeft" if side == "left" else "ArrowRight")
                else:
                    page.click(f"#choose-{side}")
                if k < 9:
                    _wait(page, f"document.body.dataset.trial !== '{tid}'")
            page.wait_for_url("**/done/**")
            assert "All your answers are saved" in page.content()
            browser.close()
    finally:
        srv.shutdown()
        th.join(5)
    assert seen_check
    stored = "SELECT t.kind, a.correct, a.rt_ms FROM answers a JOIN trials t ON t.id = a.trial_id"
    with engine.connect() as c:
        rows = c.execute(text(stored)).all()
        status = c.execute(text("SELECT status FROM assignments")).scalar()
    assert len(rows) == 10 and status == "completed"
    assert [r[1] for r in rows if r[0] == "check"] == [1]
    assert all(r[2] > 0 for r in rows)
