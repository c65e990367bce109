"""Leases that abuse cannot hoard: short first leases, caps per address and per browser session,
a start rate limit, and a participant without a HIT told when to come back."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import text

ATTACKER = "203.0.113.7"


def _client(app, address: str):
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = address
    return c


def _rows(app, sql, **params):
    with app.extensions["study_engine"].connect() as c:
        return c.execute(text(sql), params).all()


def _fake_start(app, h, k: int, address: str = ATTACKER):
    """An invented Prolific id, a fresh client (no cookie kept), one start, no answer."""
    q = {"PROLIFIC_PID": f"fake{k:03d}", "STUDY_ID": "st", "SESSION_ID": f"se{k}"}
    return h.Participant(_client(app, address), query=q).start()


def test_fifty_fake_starts_from_one_client_leave_hits_for_a_real_participant(make_app, h):
    app = make_app(PER_PAIR=12)  # 2 images x 3 pairs x 12 / 9 trials = 8 HITs
    assert h.count_rows(app, "hits") == 8
    t0 = time.perf_counter()
    codes = [_fake_start(app, h, k).status_code for k in range(50)]
    took = time.perf_counter() - t0
    assert codes[:3] == [303] * 3 and set(codes[3:]) == {429}  # MAX_LEASES_PER_ADDRESS = 3
    refused = _fake_start(app, h, 99)
    assert refused.headers["Retry-After"] and "try again in about" in refused.get_data(as_text=True)
    real = h.Participant(_client(app, "198.51.100.23"), "real-person")
    assert real.start().status_code == 303
    for tid in real.trial_ids():
        assert real.answer(tid).status_code == 200
    assert real.client.get(f"/done/{real.token}").status_code == 200
    leased = _rows(app, "SELECT COUNT(*) FROM hits WHERE status = 'leased'")[0][0]
    assert leased == 3 and h.count_rows(app, "assignments") == 4
    print(f"50 fake starts in {took:.2f} s: {codes.count(303)} leased, {codes.count(429)} refused")


def test_the_first_lease_is_short_and_answers_and_heartbeats_extend_it(make_app, h):
    app = make_app(START_LEASE_SECONDS=120, LEASE_SECONDS=1800)
    p = h.Participant(app.test_client(), "p1")
    t0 = time.time()
    p.start()

    def expires_in():
        return _rows(app, "SELECT lease_expires FROM hits WHERE status = 'leased'")[0][0] - t0

    assert 115 < expires_in() < 130  # the page load renewed it by the short lease only
    beat = p.client.post(
        f"/api/heartbeat/{p.token}", json={}, headers={"X-Requested-With": "mdf-study"}
    )
    assert beat.status_code == 200 and beat.json == {"leased": True, "expires_in": 120.0}
    assert p.data["heartbeat_url"].endswith(p.token) and p.data["heartbeat_ms"] == 30_000
    assert p.answer(p.trial_ids()[0]).status_code == 200
    assert 1795 < expires_in() < 1810
    beat = p.client.post(
        f"/api/heartbeat/{p.token}", json={}, headers={"X-Requested-With": "mdf-study"}
    )
    assert beat.json["expires_in"] == 1800.0
    # the heartbeat is a same-origin JSON call like the answers
    assert p.client.post(f"/api/heartbeat/{p.token}", json={}).status_code == 403
    assert p.client.post(f"/api/heartbeat/{'A' * 32}", json={},
                         headers={"X-Requested-With": "mdf-study"}).status_code == 404  # fmt: skip


def test_an_unanswered_hit_returns_to_the_pool_after_the_short_lease(make_app, h, monkeypatch):
    app = make_app(START_LEASE_SECONDS=60)  # 2 HITs
    idle = h.Participant(app.test_client(), "idle")
    idle.start()
    h.Participant(app.test_client(), "other").start()
    assert h.Participant(app.test_client(), "late").start().status_code == 503
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 90)
    late = h.Participant(app.test_client(), "late")
    assert late.start().status_code == 303 and late.trial_ids() == idle.trial_ids()
    beat = idle.client.post(f"/api/heartbeat/{idle.token}", json={},
                            headers={"X-Requested-With": "mdf-study"})  # fmt: skip
    assert beat.status_code == 410  # the idle page finds its HIT gone


def test_a_browser_session_holds_one_hit_a_new_start_releases_the_old_one(make_app, h):
    app = make_app()  # 2 HITs
    lab = app.test_client()  # one browser on a shared lab computer
    first = h.Participant(lab, "first-person")
    first.start()
    assert first.answer(first.trial_ids()[0]).status_code == 200
    second = h.Participant(lab, "second-person")
    assert second.start().status_code == 303  # first's unfinished HIT went back to the pool
    assert second.trial_ids() == first.trial_ids()
    assert first.answer(first.trial_ids()[1]).status_code == 410
    statuses = dict(_rows(app, "SELECT worker_id, status FROM assignments"))
    assert statuses == {"first-person": "abandoned", "second-person": "active"}
    assert h.count_rows(app) == 1  # first's answer is kept (raw data)
    # the other HIT is still free for someone else
    assert h.Participant(app.test_client(), "third").start().status_code == 303


def test_starts_per_address_are_rate_limited(make_app, h):
    app = make_app(PER_PAIR=12, MAX_LEASES_PER_ADDRESS=0, MAX_STARTS_PER_ADDRESS=2)
    for k in range(2):
        p = h.Participant(_client(app, ATTACKER), f"quick{k}")
        p.start()
        for tid in p.trial_ids():
            p.answer(tid)  # finished HITs still count as starts
    r = h.Participant(_client(app, ATTACKER), "quick2").start()
    body = r.get_data(as_text=True)
    assert r.status_code == 429 and "started from your network address recently" in body
    assert 3500 < int(r.headers["Retry-After"]) <= 3600
    assert h.Participant(_client(app, "198.51.100.1"), "elsewhere").start().status_code == 303


def test_behind_a_proxy_the_forwarded_address_is_the_one_counted(make_app, h):
    app = make_app(PER_PAIR=12, PROXY_FIX=1, MAX_LEASES_PER_ADDRESS=1)
    codes = []
    for k, fwd in enumerate([ATTACKER, ATTACKER, "198.51.100.9"]):
        c = app.test_client()  # REMOTE_ADDR 127.0.0.1: the proxy, exempt by itself
        c.environ_base["HTTP_X_FORWARDED_FOR"] = fwd
        codes.append(h.Participant(c, f"via{k}").start().status_code)
    assert codes == [303, 429, 303]


def test_ipv6_clients_count_per_64_prefix(make_app, h):
    app = make_app(PER_PAIR=12, MAX_LEASES_PER_ADDRESS=1)
    a = h.Participant(_client(app, "2001:db8:1:2::a"), "v6a").start().status_code
    b = h.Participant(_client(app, "2001:db8:1:2::b"), "v6b").start().status_code
    c = h.Participant(_client(app, "2001:db8:1:3::a"), "v6c").start().status_code
    assert (a, b, c) == (303, 429, 303)


def test_a_full_pool_says_when_to_come_back_and_a_finished_study_says_so(make_app, h):
    app = make_app(START_LEASE_SECONDS=600)  # 2 HITs
    for k in range(2):
        h.Participant(app.test_client(), f"w{k}").start()
    r = h.Participant(app.test_client(), "late").start()
    assert r.status_code == 503 and 595 <= int(r.headers["Retry-After"]) <= 600
    assert "try again later: one should free up in about 10 minutes" in r.get_data(as_text=True)


def test_a_finished_study_tells_late_participants_it_is_complete(make_app, h):
    app = make_app()
    for k in range(2):
        h.complete(app, f"w{k}")
    r = h.Participant(app.test_client(), "late").start()
    assert r.status_code == 503 and "Retry-After" not in r.headers
    assert "This study is complete" in r.get_data(as_text=True)


def test_client_addresses_are_stored_as_keyed_hashes_and_forgotten(make_app, h, monkeypatch):
    app = make_app(START_WINDOW_SECONDS=600)
    p = h.Participant(_client(app, ATTACKER), "hashed")
    p.start()
    rows = _rows(app, "SELECT address, session FROM lease_clients")
    assert len(rows) == 1 and all(v and re.fullmatch(r"[0-9a-f]{32}", v) for v in rows[0])
    dump = "\n".join(str(r) for t in ("lease_clients", "assignments")
                     for r in _rows(app, f"SELECT * FROM {t}"))  # fmt: skip
    assert ATTACKER not in dump and p.client.get_cookie("mdf_client").value not in dump
    for tid in p.trial_ids():
        p.answer(tid)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 700)
    h.Participant(app.test_client(), "next").start()  # any allocation forgets old rows
    left = _rows(app, "SELECT a.worker_id FROM lease_clients c JOIN assignments a "
                      "ON a.id = c.assignment_id")  # fmt: skip
    assert left == [("next",)]  # the finished participant's hashes are gone


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_the_session_cookie_is_http_only_and_lax(client):
    r = client.get("/")
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("mdf_client=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Set-Cookie" not in client.get("/").headers  # set once
