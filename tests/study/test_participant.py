"""The participant flow and its rules, through the Flask test client."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from sqlalchemy import text


def _rows(app, sql):
    with app.extensions["study_engine"].connect() as c:
        return c.execute(text(sql)).all()


# ---------------------------------------------------------------- consent and start


def test_consent_page_has_instructions_form_and_security_headers(client):
    r = client.get("/")
    body = r.get_data(as_text=True)
    assert r.status_code == 200
    assert "closer to the reference" in body and 'name="participant_id"' in body
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'self' https://www.mturk.com" in r.headers["Content-Security-Policy"]


def test_local_participant_completes_a_hit(app, participant, h):
    r = participant.start()
    assert r.status_code == 303
    ids = participant.trial_ids()
    assert len(ids) == 10
    assert participant.kinds(app).count("check") == 1
    for k, tid in enumerate(ids):
        r = participant.answer(tid, side="left" if k % 2 else "right")
        assert r.status_code == 200
        assert r.json["answered"] == k + 1
    assert r.json["done"] is True and r.json["next"].endswith(participant.token)
    done = participant.client.get(r.json["next"])
    assert done.status_code == 200 and "All your answers are saved" in done.get_data(as_text=True)
    rows = _rows(app, "SELECT chosen_side, chosen, rt_ms, correct FROM answers ORDER BY id")
    assert len(rows) == 10 and rows[0][0] == "right" and rows[0][2] == 1234.5
    assert _rows(app, "SELECT status FROM assignments") == [("completed",)]
    assert ("done",) in _rows(app, "SELECT status FROM hits")


def test_consent_is_required_and_ids_are_validated(client, participant):
    r = client.get("/")
    csrf = re.search(r'name="csrf" value="([^"]+)"', r.get_data(as_text=True)).group(1)
    assert client.post("/start", data={"csrf": csrf, "participant_id": "p1"}).status_code == 400
    assert (
        client.post(
            "/start", data={"csrf": csrf, "consent": "yes", "participant_id": "../etc"}
        ).status_code
        == 400
    )
    assert client.post("/start", data={"csrf": csrf, "consent": "yes"}).status_code == 400
    assert client.post("/start", data={"consent": "yes", "participant_id": "p1"}).status_code == 403
    assert (
        client.post(
            "/start", data={"csrf": "forged", "consent": "yes", "participant_id": "p1"}
        ).status_code
        == 403
    )


def test_cross_origin_posts_are_refused(client, participant):
    participant.start()
    tid = participant.trial_ids()[0]
    r = participant.answer(tid, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    r = participant.answer(tid, headers={"Referer": "https://evil.example/page"})
    assert r.status_code == 403
    r = participant.answer(tid, headers={"Origin": "http://localhost"})
    assert r.status_code == 200


def test_answer_api_requires_json_and_the_custom_header(client, participant, app, h):
    participant.start()
    url = f"/api/answer/{participant.token}"
    body = {
        "answer_id": str(uuid.uuid4()),
        "trial_id": participant.trial_ids()[0],
        "side": "left",
        "rt_ms": 10,
    }
    assert client.post(url, json=body).status_code == 403  # no X-Requested-With
    assert client.post(url, data=body, headers={"X-Requested-With": "mdf-study"}).status_code == 415
    assert h.count_rows(app) == 0


def test_request_size_is_limited(client, participant, app, h):
    participant.start()
    r = client.post(
        f"/api/answer/{participant.token}",
        data="x" * 100_000,
        headers={"X-Requested-With": "mdf-study", "Content-Type": "application/json"},
    )
    assert r.status_code == 413 and h.count_rows(app) == 0


# ---------------------------------------------------------------- answers: idempotent, validated


def test_retried_answer_is_stored_once(app, participant, h):
    participant.start()
    tid = participant.trial_ids()[0]
    aid = str(uuid.uuid4())
    first = participant.answer(tid, answer_id=aid)
    second = participant.answer(tid, answer_id=aid)
    assert first.status_code == second.status_code == 200
    assert second.json["duplicate"] is True and h.count_rows(app) == 1
    # same trial, a new id (a second click): refused, nothing written
    assert participant.answer(tid).status_code == 409
    # same id reused for another trial: refused
    assert participant.answer(participant.trial_ids()[1], answer_id=aid).status_code == 409
    assert h.count_rows(app) == 1
    # the id reused by another participant (a forged or colliding id): refused, nothing written
    other = h.Participant(app.test_client(), "p-other")
    other.start()
    r = other.answer(other.trial_ids()[0], answer_id=aid)
    assert r.status_code == 409 and "already used" in r.json["error"]
    assert h.count_rows(app) == 1
    assert other.answer(other.trial_ids()[0]).status_code == 200  # the HIT goes on
    assert h.count_rows(app) == 2


@pytest.mark.parametrize(
    "body,status",
    [
        ({"side": "middle"}, 400),
        ({"side": "l2"}, 400),
        ({"trial_id": "1"}, 400),
        ({"trial_id": True}, 400),
        ({"rt_ms": -5}, 400),
        ({"rt_ms": 1e9}, 400),
        ({"answer_id": "short"}, 400),
        ({"answer_id": "x" * 65}, 400),
        ({"answer_id": "<script>alert(1)</script>"}, 400),
    ],
    ids=[
        "middle",
        "condition-name",
        "str-trial",
        "bool-trial",
        "negative-rt",
        "huge-rt",
        "short-id",
        "long-id",
        "html-id",
    ],
)
def test_malformed_answers_are_rejected_and_nothing_written(app, participant, h, body, status):
    participant.start()
    payload = {
        "answer_id": str(uuid.uuid4()),
        "trial_id": participant.trial_ids()[0],
        "side": "left",
        "rt_ms": 100,
    }
    payload.update(body)
    r = participant.client.post(
        f"/api/answer/{participant.token}", json=payload, headers={"X-Requested-With": "mdf-study"}
    )
    assert r.status_code == status and "error" in r.json
    assert h.count_rows(app) == 0


def test_answer_for_a_trial_of_another_hit_or_unknown_token_is_refused(app, client, h):
    a = h.Participant(client, "alice")
    b = h.Participant(app.test_client(), "bob")  # (one browser session holds one HIT)
    a.start()
    b.start()
    assert a.token != b.token
    assert a.answer(b.trial_ids()[0]).status_code == 404
    assert a.answer(10_000).status_code == 404
    ghost = h.Participant(client, "ghost")
    ghost.token = "A" * 32
    assert ghost.answer(1).status_code == 404
    ghost.token = "bad token!"
    assert ghost.answer(1).status_code == 404
    assert h.count_rows(app) == 0


def test_trials_must_be_answered_in_order(app, participant, h):
    participant.start()
    ids = participant.trial_ids()
    assert participant.answer(ids[2]).status_code == 409
    assert participant.answer(ids[0]).status_code == 200
    assert h.count_rows(app) == 1


def test_answer_for_a_finished_hit_is_refused(app, participant, h):
    participant.start()
    for tid in participant.trial_ids():
        participant.answer(tid)
    assert participant.answer(participant.trial_ids()[0]).status_code == 409
    assert h.count_rows(app) == 10


def test_check_answers_are_scored(app, participant):
    participant.start()
    for t in participant.data["trials"]:
        participant.answer(t["id"], side="left")
    (correct,) = _rows(
        app,
        "SELECT a.correct FROM answers a JOIN trials t ON a.trial_id = t.id WHERE t.kind = 'check'",
    )[0]
    (left,) = _rows(
        app,
        'SELECT t."left" FROM trials t JOIN answers a ON a.trial_id = t.id '
        "WHERE t.kind = 'check'",
    )[0]
    assert correct == int(left == "__reference__")


# ---------------------------------------------------------------- allocation, leases, resume


def test_reload_resumes_at_the_first_unanswered_trial(participant):
    participant.start()
    ids = participant.trial_ids()
    for tid in ids[:3]:
        participant.answer(tid)
    participant.load()
    assert [t["answered"] for t in participant.data["trials"]][:4] == [True, True, True, False]
    again = participant.start()  # the same worker arrives again: the same HIT
    assert again.headers["Location"].endswith(participant.token)


def test_one_hit_per_worker_unless_configured(make_app, h):
    app = make_app()
    p = h.Participant(app.test_client(), "w1")
    p.start()
    for tid in p.trial_ids():
        p.answer(tid)
    r = h.Participant(app.test_client(), "w1").start()
    assert r.status_code == 303 and "/done/" in r.headers["Location"]
    assert h.count_rows(app, "assignments") == 1


def test_more_hits_per_worker_when_configured(make_app, h):
    app = make_app(MAX_HITS_PER_WORKER=2)
    p = h.Participant(app.test_client(), "w1")
    p.start()
    for tid in p.trial_ids():
        p.answer(tid)
    q = h.Participant(app.test_client(), "w1")
    assert "/hit/" in q.start().headers["Location"] and q.token != p.token


def test_pool_exhausted_gives_503(make_app, h):
    app = make_app()  # 2 HITs
    for k in range(2):
        assert h.Participant(app.test_client(), f"w{k}").start().status_code == 303
    r = h.Participant(app.test_client(), "late").start()
    assert r.status_code == 503 and "try again later" in r.get_data(as_text=True)


def test_abandoned_hit_returns_to_the_pool_after_the_lease(make_app, h, monkeypatch):
    app = make_app(LEASE_SECONDS=60)
    a = h.Participant(app.test_client(), "a")
    b = h.Participant(app.test_client(), "b")
    a.start()
    b.start()
    a.answer(a.trial_ids()[0])
    # c finds no HIT while the leases hold
    assert h.Participant(app.test_client(), "c").start().status_code == 503
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 120)
    c = h.Participant(app.test_client(), "c")
    assert c.start().status_code == 303
    assert c.trial_ids() == a.trial_ids()  # a's expired HIT went to c
    r = a.answer(a.trial_ids()[1])
    assert r.status_code == 410
    assert a.load().status_code == 410
    statuses = dict(_rows(app, "SELECT worker_id, status FROM assignments"))
    assert statuses["a"] == "abandoned" and statuses["c"] == "active"
    assert h.count_rows(app) == 1  # a's first answer is kept (raw data)


# ---------------------------------------------------------------- images


def test_images_are_served_by_trial_and_slot_only(app, participant, manifest):
    participant.start()
    t = participant.data["trials"][0]
    for url in t["urls"].values():
        with participant.client.get(url) as r:
            assert r.status_code == 200 and r.mimetype == "image/png"
    tok = participant.token
    for bad in [
        f"/img/{tok}/{t['id']}/mdf",
        f"/img/{tok}/{t['id']}/..%2f..%2fmanifest.json",
        f"/img/{tok}/99999/left",
        f"/img/{'B' * 32}/{t['id']}/left",
        f"/img/{tok}/{t['id']}/../../etc/passwd",
    ]:
        assert participant.client.get(bad).status_code == 404, bad


def test_check_shows_the_reference_and_a_distorted_copy(app, participant, manifest):
    participant.start()
    t = participant.data["trials"][participant.kinds(app).index("check")]

    def fetch(url):
        with participant.client.get(url) as r:
            return r.data

    import io

    import numpy as np
    from PIL import Image

    def pixels(png):
        return np.asarray(Image.open(io.BytesIO(png)), dtype=float)

    ref = fetch(t["urls"]["reference"])
    sides = [fetch(t["urls"][s]) for s in ("left", "right")]
    assert ref not in sides  # blind: no side is the reference's bytes
    diffs = [np.abs(pixels(s) - pixels(ref)) for s in sides]
    twin, other = sorted(diffs, key=lambda d: d.mean())
    assert twin.max() == 1 and 0.05 < (twin > 0).mean() < 0.2  # the reference, invisibly moved
    assert other.shape == twin.shape and other.mean() > 20  # heavily distorted


def test_practice_trial_is_first_when_configured(make_app, h):
    app = make_app(PRACTICE=True)
    p = h.Participant(app.test_client())
    p.start()
    assert p.kinds(app)[0] == "practice" and len(p.trial_ids()) == 11
    assert p.data["trials"][0]["practice"] is True
    assert not any("practice" in t for t in p.data["trials"][1:])


# ---------------------------------------------------------------- platforms


PROLIFIC = {"PROLIFIC_PID": "5f1a2b3c", "STUDY_ID": "st1", "SESSION_ID": "se1"}
MTURK = {
    "assignmentId": "3ABC",
    "hitId": "3HIT",
    "workerId": "A1W",
    "turkSubmitTo": "https://workersandbox.mturk.com",
}


def test_prolific_redirects_with_the_completion_code_only_when_done(make_app, h):
    app = make_app(PROLIFIC_COMPLETION_CODE="C1234ABC")
    p = h.Participant(app.test_client(), query=PROLIFIC)
    page = app.test_client().get("/", query_string=PROLIFIC).get_data(as_text=True)
    assert 'name="PROLIFIC_PID" value="5f1a2b3c"' in page and 'name="participant_id"' not in page
    p.start()
    ids = p.trial_ids()
    for tid in ids[:-1]:
        p.answer(tid)
    r = p.client.get(f"/done/{p.token}")
    assert r.status_code == 302 and "/hit/" in r.headers["Location"]  # not yet
    p.answer(ids[-1])
    r = p.client.get(f"/done/{p.token}")
    assert r.headers["Location"] == "https://app.prolific.com/submissions/complete?cc=C1234ABC"
    row = _rows(app, "SELECT platform, worker_id, study_id, session_id FROM assignments")[0]
    assert tuple(row) == ("prolific", "5f1a2b3c", "st1", "se1")


def test_mturk_preview_and_submit(make_app, h):
    app = make_app()
    c = app.test_client()
    r = c.get("/", query_string=dict(MTURK, assignmentId="ASSIGNMENT_ID_NOT_AVAILABLE"))
    body = r.get_data(as_text=True)
    assert r.status_code == 200 and 'id="preview"' in body and 'id="start-form"' not in body
    bad = c.get("/", query_string=dict(MTURK, turkSubmitTo="https://evil.example"))
    assert bad.status_code == 400
    p = h.Participant(c, query=MTURK)
    p.start()
    for tid in p.trial_ids():
        p.answer(tid)
    done = c.get(f"/done/{p.token}").get_data(as_text=True)
    assert 'action="https://workersandbox.mturk.com/mturk/externalSubmit"' in done
    assert 'name="assignmentId" value="3ABC"' in done


def test_reverse_proxy_origin_is_trusted_only_when_configured(make_app, h):
    fwd = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "study.example.org",
        "Origin": "https://study.example.org",
    }
    for proxies, expected in [(0, 403), (1, 200)]:
        app = make_app(PROXY_FIX=proxies, DATABASE=f"sqlite:///{app_db(h, proxies)}")
        p = h.Participant(app.test_client(), f"p{proxies}")
        p.start()
        assert p.answer(p.trial_ids()[0], headers=fwd).status_code == expected


def test_session_cookie_is_https_only_behind_a_proxy_unless_configured(make_app, h):
    assert make_app(DATABASE=f"sqlite:///{app_db(h, 'c0')}").config["SESSION_COOKIE_SECURE"] is False
    behind = make_app(PROXY_FIX=1, DATABASE=f"sqlite:///{app_db(h, 'c1')}")
    assert behind.config["SESSION_COOKIE_SECURE"] is True
    forced = make_app(
        PROXY_FIX=1, SESSION_COOKIE_SECURE=False, DATABASE=f"sqlite:///{app_db(h, 'c2')}"
    )
    assert forced.config["SESSION_COOKIE_SECURE"] is False


def app_db(h, k):
    import tempfile

    return tempfile.mkdtemp() + f"/proxy{k}.sqlite3"
