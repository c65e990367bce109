"""The admin dashboard: token rules, figures, JND plot and downloads."""

from __future__ import annotations

import csv
import io
import re


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
