"""The admin dashboard: token rules, figures, JND plot and downloads."""

from __future__ import annotations

import csv
import io
import re

import pytest


def _complete(app, h, pid, side="left", check_ok=None):
    return h.complete(app, pid, side, check_ok)


def _login(client, token):
    page = client.get("/admin/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    return client.post("/admin/login", data={"csrf": csrf, "token": token})


def test_admin_is_disabled_without_a_token(make_app):
    app = make_app(ADMIN_TOKEN=None)
    c = app.test_client()
    assert c.get("/admin/").status_code == 404
    assert c.get("/admin/login").status_code == 404


def test_admin_requires_login_and_rejects_a_wrong_token(client, h):
    r = client.get("/admin/")
    assert r.status_code == 302 and "/admin/login" in r.headers["Location"]
    assert (
        client.get("/admin/export.csv", headers={"Authorization": "Bearer wrong"}).status_code
        == 401
    )
    assert _login(client, "wrong-token-xxxx").status_code == 403
    assert client.get("/admin/stats.json").status_code == 302
    assert client.post("/admin/login", data={"token": h.ADMIN}).status_code == 403  # no CSRF


def test_dashboard_shows_progress_checks_and_times(app, h):
    _complete(app, h, "good", side="left")
    c = app.test_client()
    assert _login(c, h.ADMIN).status_code == 302
    page = c.get("/admin/").get_data(as_text=True)
    assert "Check-failure rate" in page and "Median time per trial: 1234 ms" in page
    s = c.get("/admin/stats.json").json
    assert s["answers"] == 10 and s["assignments"]["completed"] == 1
    assert s["hits"] == {"open": 1, "leased": 0, "done": 1}
    assert s["median_rt_ms"] == 1234.5
    assert sum(p["answered"] for p in s["pairs"]) == 9 and len(s["pairs"]) == 6
    assert s["check_failure_rate"] in (0.0, 1.0)
    assert s["assignments"]["excluded"] == int(s["check_failure_rate"] == 1.0)


def test_export_download_all_and_passed(app, h):
    _complete(app, h, "p1", side="left", check_ok=True)
    _complete(app, h, "p2", side="right", check_ok=False)
    c = app.test_client()
    auth = {"Authorization": f"Bearer {h.ADMIN}"}
    r = c.get("/admin/export.csv", headers=auth)
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert r.status_code == 200 and len(rows) == 18
    assert {"observer", "image", "condition_A", "condition_B", "is_A_selected"} <= set(rows[0])
    passed = list(
        csv.DictReader(
            io.StringIO(c.get("/admin/export.csv?passed=1", headers=auth).get_data(as_text=True))
        )
    )
    assert len(passed) == 9 and {r["observer"] for r in passed} == {"p1"}
    assert all(r["passed_checks"] == "1" and r["checks_failed"] == "0" for r in passed)
    s = c.get("/admin/stats.json", headers=auth).json
    assert s["assignments"]["excluded"] == 1 and s["check_failure_rate"] == 0.5


def test_jnd_plot_is_a_png_even_without_enough_data(app, h):
    c = app.test_client()
    r = c.get("/admin/jnd.png", headers={"Authorization": f"Bearer {h.ADMIN}"})
    assert r.status_code == 200 and r.data[:8] == b"\x89PNG\r\n\x1a\n"


def test_jnd_figure_uses_scaling_with_confidence_intervals():
    import numpy as np

    from study.admin import jnd_figure

    rng = np.random.default_rng(0)
    rows = []
    for o in range(6):
        for _ in range(20):
            a, b = rng.choice(["l2", "mdf", "ms_ssim_l1"], 2, replace=False)
            better = {"l2": 0, "ms_ssim_l1": 1, "mdf": 2}
            rows.append(
                {
                    "observer": f"o{o}",
                    "condition_A": a,
                    "condition_B": b,
                    "is_A_selected": int(better[a] > better[b] or rng.random() < 0.2),
                }
            )
    fig, message = jnd_figure(rows, ["l2", "ms_ssim_l1", "mdf"], n_samples=30)
    assert message is None
    ax = fig.axes[0]
    assert "6 observers" in ax.get_title()


def test_logout_ends_the_admin_session_and_needs_csrf(client, h):
    assert _login(client, h.ADMIN).status_code == 302
    page = client.get("/admin/").get_data(as_text=True)
    assert "/admin/export.csv" in page and "/admin/jnd.png" in page
    assert client.post("/admin/logout", data={}).status_code == 403
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert client.post("/admin/logout", data={"csrf": csrf}).status_code == 302
    assert client.get("/admin/").status_code == 302


_GEVENT_PROBE = """
from gevent import monkey
monkey.patch_all()
import json, sys, time
import gevent
from study.admin import off_the_event_loop
get_ident = monkey.get_original("_thread", "get_ident")
ticks = []
def ticker():
    while True:
        ticks.append(time.perf_counter())
        gevent.sleep(0.01)
gevent.spawn(ticker)
gevent.sleep(0.05)
def busy():  # half a second of pure-Python work, as the JND bootstrap fit
    t, x = time.perf_counter(), 0
    while time.perf_counter() - t < 0.5:
        x += 1
    return get_ident()
out = {}
for how, run in (("offloaded", lambda: off_the_event_loop(busy)), ("direct", busy)):
    t0 = time.perf_counter()
    tid = run()
    t1 = time.perf_counter()
    out[how] = {"ticks": sum(t0 < t < t1 for t in ticks), "other_thread": tid != get_ident()}
# the real work: a bootstrap JND plot of 5 observers (no process pool may be forked there)
from study.admin import jnd_png_bytes
rows = [{"observer": f"o{o}", "condition_A": a, "condition_B": b, "is_A_selected": (o + t) % 3 > 0}
        for o in range(5) for t in range(6) for a, b in (("l2", "mdf"), ("mdf", "ms_ssim_l1"))]
png = off_the_event_loop(jnd_png_bytes, rows, ["l2", "ms_ssim_l1", "mdf"], 100)
out["png"] = png[:8].hex()
print(json.dumps(out))
"""


def test_jnd_work_leaves_a_gevent_worker_serving_its_other_connections():
    """Under gevent (gunicorn's default workers here) the JND fit runs in a real thread, so the
    event loop keeps running meanwhile; called directly, it would stall every greenlet."""
    import json
    import os
    import subprocess
    import sys

    pytest.importorskip("gevent")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    r = subprocess.run([sys.executable, "-c", _GEVENT_PROBE], env=env, capture_output=True,
                       text=True, timeout=60, check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["offloaded"]["other_thread"] and out["offloaded"]["ticks"] >= 10, out
    assert not out["direct"]["other_thread"] and out["direct"]["ticks"] == 0, out
    assert bytes.fromhex(out["png"]) == b"\x89PNG\r\n\x1a\n"


def test_off_the_event_loop_calls_directly_without_gevent():
    import threading

    from study.admin import off_the_event_loop

    assert off_the_event_loop(lambda a, b: (a + b, threading.get_ident()), 2, 3) == (
        5,
        threading.get_ident(),
    )
