"""Server-side timing, blind attention checks, the phone/tablet policy and HIT page reports."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)


def _rows(app, sql):
    with app.extensions["study_engine"].connect() as c:
        return [dict(r._mapping) for r in c.execute(text(sql))]


class Clock:
    """time.time() under the test's control (the server stamps serves and answers with it)."""

    def __init__(self, monkeypatch):
        self.now = time.time()
        monkeypatch.setattr(time, "time", lambda: self.now)


def _fetch(p, trial, slots=("reference", "left", "right")):
    for slot in slots:
        with p.client.get(trial["urls"][slot]) as r:
            assert r.status_code == 200


def test_serve_times_and_the_server_side_viewing_time_flag_fast_answers(
    make_app, h, monkeypatch
):
    app = make_app(MIN_VIEW_MS=500)
    clock = Clock(monkeypatch)
    p = h.Participant(app.test_client(), "timed")
    p.start()
    t = p.data["trials"]
    t0 = clock.now
    _fetch(p, t[0])
    clock.now += 0.1
    _fetch(p, t[1])  # preloaded during trial 0
    _fetch(p, t[0], ["left"])  # a second request keeps the first serve time
    clock.now = t0 + 0.2
    assert p.answer(t[0]["id"], rt_ms=0).status_code == 200  # 200 ms after the images
    clock.now = t0 + 2.0
    assert p.answer(t[1]["id"]).status_code == 200  # 1800 ms after the previous answer
    clock.now = t0 + 5.0
    _fetch(p, t[2], ["reference", "left"])  # never saw the right candidate
    assert p.answer(t[2]["id"]).status_code == 200
    serves = _rows(app, "SELECT trial_id, reference_at, left_at, right_at FROM image_serves "
                        "ORDER BY trial_id")  # fmt: skip
    assert serves[0]["left_at"] == pytest.approx(t0) and serves[1]["left_at"] == pytest.approx(
        t0 + 0.1
    )
    views = _rows(app, "SELECT trial_id, served_at, server_view_ms, too_fast FROM answer_views "
                       "ORDER BY served_at IS NULL, served_at")  # fmt: skip
    by_trial = {v["trial_id"]: v for v in views}
    first, second, third = (by_trial[x["id"]] for x in t[:3])
    assert first["server_view_ms"] == pytest.approx(200, abs=1) and first["too_fast"] == 1
    assert second["server_view_ms"] == pytest.approx(1800, abs=1) and second["too_fast"] == 0
    assert third["served_at"] is None and third["server_view_ms"] is None
    assert third["too_fast"] == 1
    rt = _rows(app, "SELECT rt_ms FROM answers ORDER BY id")[0]["rt_ms"]
    assert rt == 0  # the client's own time is kept as sent, beside the server's


def test_checks_look_like_every_other_trial_in_the_page_and_the_image_responses(app, h):
    p = h.Participant(app.test_client(), "blind")
    p.start()
    page = p.client.get(f"/hit/{p.token}").get_data(as_text=True)
    assert '"kind"' not in page and "check" not in page and "__reference__" not in page
    kinds = p.kinds(app)
    trials = p.data["trials"]
    assert {tuple(sorted(t)) for t in trials} == {("answered", "id", "size", "urls")}
    check = trials[kinds.index("check")]
    pair = trials[kinds.index("pair")]
    for slot in ("reference", "left", "right"):
        assert check["urls"][slot].rsplit("/", 2)[1:] == [str(check["id"]), slot]
        with p.client.get(check["urls"][slot]) as a, p.client.get(pair["urls"][slot]) as b:
            assert sorted(a.headers.keys()) == sorted(b.headers.keys())
            assert "Last-Modified" not in a.headers and "ETag" not in a.headers
            assert a.headers["Cache-Control"] == b.headers["Cache-Control"]


def test_phones_and_tablets_are_refused_with_a_clear_page_unless_allowed(make_app, h, tmp_path):
    app = make_app()
    c = app.test_client()
    r = c.get("/", headers={"User-Agent": IPHONE})
    assert r.status_code == 403 and "Please use a computer" in r.get_data(as_text=True)
    # a touch-first device with a desktop user agent (iPadOS) is told apart by the page's script
    p = h.Participant(c, "ipad")
    r = p.start(device="touch")
    assert r.status_code == 403 and "phones and tablets cannot take part" in r.get_data(
        as_text=True
    )
    assert h.count_rows(app, "assignments") == 0
    assert h.Participant(c, "laptop").start(device="computer").status_code == 303
    allowing = make_app(ALLOW_MOBILE=True, DATABASE=f"sqlite:///{tmp_path / 'm.sqlite3'}")
    c = allowing.test_client()
    assert c.get("/", headers={"User-Agent": IPHONE}).status_code == 200
    assert h.Participant(c, "phone").start(device="touch").status_code == 303


def test_hit_pages_report_the_screen_with_the_user_agent(app, h):
    from study.viewing import MAX_PAGE_VIEWS

    p = h.Participant(app.test_client(), "reporter")
    p.start()
    url = p.data["view_url"]
    hdr = {"X-Requested-With": "mdf-study", "User-Agent": "TestBrowser/1.0"}
    body = {"outcome": "enlarge", "layout": "side_by_side", "dpr": 1.25, "zoom": 1,
            "viewport": [1093, 614], "screen": [1536, 864], "pointer": "fine",
            "touch_points": 0}  # fmt: skip
    r = p.client.post(url, json=body, headers=hdr)
    assert r.status_code == 200 and r.json == {"stored": True}
    (row,) = _rows(app, "SELECT * FROM hit_views")
    assert (row["outcome"], row["dpr"], row["viewport_w"], row["user_agent"]) == (
        "enlarge", 1.25, 1093, "TestBrowser/1.0")  # fmt: skip
    bad = p.client.post(url, json=dict(body, outcome="fine"), headers=hdr)
    assert bad.status_code == 400 and "view.outcome must be one of" in bad.json["error"]
    assert p.client.post(url, json=body).status_code == 403  # not the page's own request
    unknown = p.client.post(f"/api/view/{'C' * 32}", json=body, headers=hdr)
    assert unknown.json == {"stored": False}
    for _ in range(MAX_PAGE_VIEWS + 3):
        p.client.post(url, json=body, headers=hdr)
    assert h.count_rows(app, "hit_views") == MAX_PAGE_VIEWS

