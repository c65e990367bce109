"""No input gets a 500: every route's parameters, fuzzed (hypothesis) with huge and negative
integers, malformed ids, unicode and odd JSON, are answered with a 2xx/3xx/4xx."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,  # no .hypothesis folder in the checkout
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

INTS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=2**31 - 2, max_value=2**31 + 2),
    st.just(10**30),
    st.just(-1),
    st.just(0),
)
TEXT = st.text(max_size=80)
SEGMENT = st.one_of(TEXT.filter(bool), INTS.map(str), st.just("A" * 32), st.just("x" * 300))
JSON = st.recursive(
    st.none() | st.booleans() | INTS | st.floats(allow_nan=True) | TEXT,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(TEXT, kids, max_size=4),
    max_leaves=12,
)
HEADER = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=60)
API = {"X-Requested-With": "mdf-study"}


@pytest.fixture
def live(make_app, h):
    """An app with one participant in the middle of a HIT (their token and trial ids are
    among the fuzzed values, so the deep paths run too)."""
    app = make_app(PER_PAIR=30)
    p = h.Participant(app.test_client(), "fuzz-owner")
    p.start()
    p.answer(p.trial_ids()[0])
    return app, p


def _ok(r):
    assert r.status_code < 500, (r.status_code, r.get_data(as_text=True)[:300])


def test_a_huge_trial_id_in_an_image_url_is_a_404(live):
    app, p = live
    c = app.test_client()
    assert c.get(f"/img/{p.token}/1000000000000000000000000000000/left").status_code == 404
    assert c.get(f"/img/{p.token}/2147483648/left").status_code == 404
    assert p.answer(10**30).status_code == 400


@FUZZ
@given(token=SEGMENT, trial=st.one_of(INTS.map(str), SEGMENT), slot=SEGMENT, owner=st.booleans())
def test_participant_get_routes(live, token, trial, slot, owner):
    app, p = live
    c = app.test_client()
    tok = p.token if owner else quote(token, safe="")
    tid = str(p.trial_ids()[1]) if owner and trial == "0" else quote(trial, safe="")
    for url in (f"/hit/{tok}", f"/done/{tok}", f"/img/{tok}/{tid}/{quote(slot, safe='')}",
                f"/img/{tok}/{tid}/left"):  # fmt: skip
        _ok(c.get(url))


@FUZZ
@given(body=st.one_of(JSON, st.fixed_dictionaries(
    {"answer_id": st.one_of(JSON, st.uuids().map(str)), "trial_id": st.one_of(INTS, JSON),
     "side": st.one_of(st.sampled_from(["left", "right"]), JSON),
     "rt_ms": st.one_of(INTS, st.floats(), JSON)})), owner=st.booleans(), token=SEGMENT)  # fmt: skip
def test_answer_and_heartbeat_api(live, body, owner, token):
    app, p = live
    c = app.test_client()
    tok = p.token if owner else quote(token, safe="")
    _ok(c.post(f"/api/answer/{tok}", json=body, headers=API))
    _ok(c.post(f"/api/heartbeat/{tok}", json=body, headers=API))
    _ok(c.post(f"/api/answer/{tok}", data=str(body)[:200], headers=API,
               content_type="application/json"))  # fmt: skip


KEYS = ["participant_id", "PROLIFIC_PID", "STUDY_ID", "SESSION_ID", "assignmentId", "hitId",
        "workerId", "turkSubmitTo", "consent", "csrf"]  # fmt: skip


@FUZZ
@given(query=st.dictionaries(st.sampled_from(KEYS) | TEXT, TEXT | INTS.map(str), max_size=6),
       real_csrf=st.booleans())  # fmt: skip
def test_consent_and_start(live, query, real_csrf):
    app, _ = live
    c = app.test_client()
    r = c.get("/", query_string=query)
    _ok(r)
    form = dict(query)
    m = re.search(r'name="csrf" value="([^"]+)"', r.get_data(as_text=True))
    if real_csrf and m:
        form["csrf"] = m.group(1)
    _ok(c.post("/start", data=form))


@FUZZ
@given(token=TEXT, csrf=TEXT, auth=HEADER, passed=TEXT)
def test_admin_routes(live, token, csrf, auth, passed):
    app, _ = live
    c = app.test_client()
    _ok(c.post("/admin/login", data={"csrf": csrf, "token": token}))
    page = c.get("/admin/login").get_data(as_text=True)
    real = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    _ok(c.post("/admin/login", data={"csrf": real, "token": token}))
    _ok(c.post("/admin/logout", data={"csrf": csrf}))
    for url in ("/admin/", "/admin/stats.json", f"/admin/export.csv?passed={quote(passed)}",
                "/admin/audit.json"):  # fmt: skip
        _ok(c.get(url, headers={"Authorization": auth}))
        _ok(c.get(url, headers={"Authorization": "Bearer " + auth}))
