"""Admin sessions on the server (logout, a new token and expiry end them), login throttling with
backoff, and the audit log of admin actions."""

from __future__ import annotations

import re
import time

from sqlalchemy import text


def _login(client, token):
    page = client.get("/admin/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    return client.post("/admin/login", data={"csrf": csrf, "token": token})


def _logout(client):
    page = client.get("/admin/").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    return client.post("/admin/logout", data={"csrf": csrf})


def _copy_cookie(src, app):
    """A second browser holding a copy of ``src``'s session cookie (a stolen cookie)."""
    thief = app.test_client()
    cookie = src.get_cookie("session")
    thief.set_cookie("session", cookie.value)
    return thief


def test_a_copied_admin_cookie_stops_working_after_logout(app, h):
    admin = app.test_client()
    assert _login(admin, h.ADMIN).status_code == 302
    thief = _copy_cookie(admin, app)
    assert thief.get("/admin/export.csv").status_code == 200
    assert _logout(admin).status_code == 302
    r = thief.get("/admin/export.csv")
    assert r.status_code == 302 and "/admin/login" in r.headers["Location"]
    assert admin.get("/admin/stats.json").status_code == 302


def test_a_new_admin_token_ends_the_sessions_of_the_old_one(make_app, h):
    app = make_app()
    admin = app.test_client()
    assert _login(admin, h.ADMIN).status_code == 302
    cookie = admin.get_cookie("session").value
    restarted = make_app(ADMIN_TOKEN="another-admin-token-42")  # same database and secret
    thief = restarted.test_client()
    thief.set_cookie("session", cookie)
    assert thief.get("/admin/export.csv").status_code == 302
    same = make_app()  # the old token again: the session is valid on any server of the study
    again = same.test_client()
    again.set_cookie("session", cookie)
    assert again.get("/admin/stats.json").status_code == 200


def test_admin_sessions_expire(make_app, h, monkeypatch):
    app = make_app(ADMIN_SESSION_SECONDS=600)
    admin = app.test_client()
    _login(admin, h.ADMIN)
    assert admin.get("/admin/stats.json").status_code == 200
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 601)
    assert admin.get("/admin/stats.json").status_code == 302


def test_wrong_tokens_are_throttled_with_backoff(app, h, monkeypatch):
    c = app.test_client()
    t0 = time.perf_counter()
    codes = [_login(c, f"wrong-token-{k:04d}").status_code for k in range(30)]
    took = time.perf_counter() - t0
    assert codes[:4] == [403] * 4 and set(codes[4:]) == {429}  # 3 free, then a 2 s wait
    assert _login(c, h.ADMIN).status_code == 429  # the right token waits too
    bearer = c.get("/admin/export.csv", headers={"Authorization": f"Bearer {h.ADMIN}"})
    assert bearer.status_code == 429 and bearer.headers["Retry-After"] == "2"
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 2.5)
    r = _login(c, "wrong-again-xxxx")  # the 5th failure: 4 s
    assert r.status_code == 403 and "Wait 4 s" in r.get_data(as_text=True)
    monkeypatch.setattr(time, "time", lambda: real() + 7)
    assert _login(c, h.ADMIN).status_code == 302  # a success clears the count
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.4"  # another address is not blocked
    assert _login(other, "wrong-token-zzzz").status_code == 403
    print(
        f"30 wrong tokens in {took:.2f} s: {codes.count(403)} checked, {codes.count(429)} refused"
    )


def test_wrong_bearer_tokens_count_as_failures(client):
    for _ in range(3):
        assert (
            client.get("/admin/stats.json", headers={"Authorization": "Bearer x"}).status_code
            == 401
        )
    assert client.get("/admin/stats.json", headers={"Authorization": "Bearer y"}).status_code == 401
    assert client.get("/admin/stats.json", headers={"Authorization": "Bearer z"}).status_code == 429


def test_admin_actions_are_audited(app, h):
    h.complete(app, "p1", check_ok=True)
    admin = app.test_client()
    _login(admin, "wrong-token-1234")
    _login(admin, h.ADMIN)
    admin.get("/admin/export.csv?passed=1")
    app.test_client().get("/admin/export.csv", headers={"Authorization": f"Bearer {h.ADMIN}"})
    page = admin.get("/admin/").get_data(as_text=True)
    assert 'id="audit"' in page and "passed only, 9 rows (download)" in page
    entries = admin.get("/admin/audit.json").json["entries"]
    _logout(admin)
    actions = [(e["action"], e["actor"].split(" ")[0], e["detail"]) for e in reversed(entries)]
    assert actions == [
        ("login_failed", "login", "failure 1"),
        ("login", "admin", ""),
        ("export", "admin", "passed only, 9 rows (download)"),
        ("export", "bearer", "all rows, 9 rows (download)"),
    ]
    assert all(e["address"] == "127.0.0.1" for e in entries)
    with h.engine_of(app).connect() as c:
        last = c.execute(text("SELECT action FROM audit_log ORDER BY id DESC")).first()[0]
        stored = c.execute(text("SELECT * FROM admin_sessions")).all()
    assert last == "logout"
    assert h.ADMIN not in str(stored)  # the token is kept only as a keyed hash
