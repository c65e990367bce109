"""Privacy by default: the consent text says what is stored and logged, the access log keeps no
participant ids, files are the owner's only, exports can be pseudonymised, and one
participant's data can be deleted on request."""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import random
import stat

import pytest
from click.testing import CliRunner
from sqlalchemy import text

import scaling
from experiments.cli import main
from study.access_log import redact_path
from study.simulate import run_bot


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _rows(app, sql):
    with app.extensions["study_engine"].connect() as c:
        return c.execute(text(sql)).all()


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "mode,said",
    [
        ("private", "without your network address, participant id or browser details"),
        ("full", "records your network address, your browser's name and the pages you request"),
        ("off", "The server keeps no log of requests."),
    ],
)
def test_the_consent_text_says_what_is_stored_and_logged(make_app, mode, said):
    page = make_app(ACCESS_LOG=mode).test_client().get("/").get_data(as_text=True)
    text_ = " ".join(page.split())
    assert said in text_
    assert "keyed hash (not the address itself) of your network address" in text_
    assert "deleted about 60 minutes after you start" in text_
    assert "and nothing else" not in text_  # the old, untrue claim


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_database_wal_shm_and_instance_are_the_owners_only(make_app, h, tmp_path, caplog):
    app = make_app()
    p = h.Participant(app.test_client(), "files")
    p.start()
    p.answer(p.trial_ids()[0])  # the -wal/-shm files exist while connections are open
    db = tmp_path / "study.sqlite3"
    for path in (db, f"{db}-wal", f"{db}-shm", f"{db}.lock"):
        assert _mode(path) & 0o077 == 0, (path, oct(_mode(path)))
    assert _mode(tmp_path / "instance") == 0o700
    loose = tmp_path / "loose.sqlite3"
    loose.touch(mode=0o644)
    os.chmod(loose, 0o644)
    with caplog.at_level(logging.WARNING, logger="study.db"):
        make_app(DATABASE=f"sqlite:///{loose}")
    assert f"the study database {loose} is readable by others (mode 644)" in caplog.text


def test_tokens_and_query_strings_do_not_reach_the_private_log():
    token = "Zm9vYmFyYmF6cXV4cXV1eDEyMzQ1Njc4OTA"
    short = hashlib.sha256(token.encode()).hexdigest()[:8]
    assert redact_path(f"/img/{token}/17/left?x=1") == f"/img/~{short}/17/left"
    assert token not in redact_path(f"/api/answer/{token}")
    assert redact_path("/?PROLIFIC_PID=5f1a2b&STUDY_ID=x") == "/"
    assert redact_path("/static/study.js") == "/static/study.js"


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_gunicorn_access_log_keeps_no_participant_ids_addresses_or_tokens(server, tmp_path):
    g = server(PER_PAIR=30).start()
    bot = run_bot(g.url, "5f1a2b3c4d5e", {}, False, None, random.Random(3), platform="prolific")
    assert bot.completed, bot.errors
    g.kill9()
    log = (tmp_path / "gunicorn.log").read_text()
    assert '"GET / HTTP/1.1" 200' in log and '"POST /api/answer/~' in log
    assert "5f1a2b3c4d5e" not in log and "PROLIFIC_PID" not in log and "s-5f1a2b" not in log
    assert "127.0.0.1 -" not in log
    tokens = {line.split("/hit/")[1].split()[0] for line in log.splitlines() if "/hit/" in line}
    assert tokens and all(t.startswith("~") and len(t) == 9 for t in tokens)


def _export(db, out, *extra):
    return CliRunner().invoke(main, ["study", "export", "--db", db, "--out", str(out), *extra])


def _observers(path):
    with open(path) as f:
        return [r["observer"] for r in csv.DictReader(f)]


def test_export_anonymise_replaces_worker_ids_by_salted_hashes(app, h, tmp_path):
    for pid in ("alice", "bob"):
        h.complete(app, pid, check_ok=True)
    db = app.extensions["study_settings"].database
    plain = _observers_of(_export(db, tmp_path / "plain.csv"), tmp_path / "plain.csv")
    assert set(plain) == {"alice", "bob"}
    a = _observers_of(_export(db, tmp_path / "a.csv", "--anonymise"), tmp_path / "a.csv")
    b = _observers_of(_export(db, tmp_path / "b.csv", "--anonymise"), tmp_path / "b.csv")
    assert len(set(a)) == 2 and all(o.startswith("p-") and len(o) == 18 for o in a)
    assert [plain.index(o) for o in plain] == [a.index(o) for o in a]  # one pseudonym each
    assert set(a) != set(b)  # a fresh salt per export: two exports cannot be linked
    salt = tmp_path / "salt"
    c = _observers_of(_export(db, tmp_path / "c.csv", "--anonymise", "--salt-file", str(salt)),
                      tmp_path / "c.csv")  # fmt: skip
    d = _observers_of(_export(db, tmp_path / "d.csv", "--anonymise", "--salt-file", str(salt)),
                      tmp_path / "d.csv")  # fmt: skip
    assert c == d and _mode(salt) == 0o600 and _mode(tmp_path / "c.csv") == 0o600
    assert scaling.read_table(str(tmp_path / "c.csv"), group="image") is not None
    assert (
        "--salt-file needs --anonymise"
        in _export(db, tmp_path / "e.csv", "--salt-file", "x").output
    )
    audit = [r[0] for r in _rows(app, "SELECT detail FROM audit_log WHERE actor = 'cli'")]
    assert len(audit) == 5 and sum("anonymised" in d for d in audit) == 4


def _observers_of(result, path):
    assert result.exit_code == 0, result.output
    return _observers(path)


def test_purge_deletes_one_participants_data_and_returns_their_hit(app, h):
    gone = h.complete(app, "forget-me", check_ok=True)
    h.complete(app, "keep-me", check_ok=True)
    db = app.extensions["study_settings"].database
    runner = CliRunner()
    r = runner.invoke(main, ["study", "purge", "--db", db, "--worker", "forget-me"], input="n\n")
    assert r.exit_code != 0 and h.count_rows(app) == 20  # not confirmed: nothing deleted
    r = runner.invoke(main, ["study", "purge", "--db", db, "--worker", "forget-me", "--yes"])
    assert r.exit_code == 0, r.output
    assert "deleted 1 assignments and 10 answers" in r.output
    assert [w for (w,) in _rows(app, "SELECT worker_id FROM assignments")] == ["keep-me"]
    assert h.count_rows(app) == 10 and h.count_rows(app, "lease_clients") <= 1
    for table in ("answer_views", "image_serves", "hit_views"):  # viewing data go too
        left = _rows(app, f"SELECT DISTINCT assignment_id FROM {table}")
        assert len(left) <= 1, (table, left)
    hits = dict(_rows(app, "SELECT status, COUNT(*) FROM hits GROUP BY status"))
    assert hits == {"open": 1, "done": 1}  # the purged HIT is answered again by someone else
    assert gone.client.get(f"/hit/{gone.token}").status_code == 404
    (detail,) = _rows(app, "SELECT detail FROM audit_log WHERE action = 'purge'")[0]
    assert "forget-me" not in detail and "10 answers deleted" in detail
    r = runner.invoke(main, ["study", "purge", "--db", db, "--worker", "nobody-here", "--yes"])
    assert r.exit_code != 0 and "no participant 'nobody-here'" in r.output
