"""Fault injection: kill -9, a read-only database, a full disk, a PostgreSQL restart.

At start the server refuses storage it cannot write, with a message naming the database and the
fix; during a study a participant gets an honest 503 (the server's problem, answers so far
saved, come back in a few minutes), and an answer sent again after the fault is stored once.

Faults are real where the machine allows it cheaply: a real read-only file (as the unprivileged
``nobody`` when the tests run as root, whom file modes do not stop), a real PostgreSQL cluster
of our own stopped and started again, a real ``kill -9`` of gunicorn. SQLite's read-only and
disk-full errors during a study come from its own switches (``PRAGMA query_only``,
``PRAGMA max_page_count``), which raise the same errors as a read-only file and a full disk.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import event

import study.cli  # noqa: F401 (loaded before a child drops its privileges: see _as_unprivileged)
from experiments.cli import main
from study import create_app
from study.faults import StorageError
from study.simulate import run_bot

HONEST = ("problem on our side", "not with your connection", "answers so far are saved")
API = {"X-Requested-With": "mdf-study"}


@contextlib.contextmanager
def injected(app, *statements):
    """Run ``statements`` on every new connection of ``app``'s engine (the pooled ones are
    dropped first), until the block ends."""
    engine = app.extensions["study_engine"]
    pg = engine.dialect.name == "postgresql"

    def on_connect(dbapi_conn, _record):
        if pg:
            dbapi_conn.autocommit = True
        cur = dbapi_conn.cursor()
        for s in statements:
            cur.execute(s)
        cur.close()
        if pg:
            dbapi_conn.autocommit = False

    event.listen(engine, "connect", on_connect)
    engine.dispose()
    try:
        yield
    finally:
        event.remove(engine, "connect", on_connect)
        engine.dispose()


def _answer(p, tid, answer_id):
    body = {"answer_id": answer_id, "trial_id": tid, "side": "left", "rt_ms": 900}
    return p.client.post(f"/api/answer/{p.token}", json=body, headers=API)


def _assert_honest_page(r):
    body = r.get_data(as_text=True)
    assert r.status_code == 503 and r.headers["Retry-After"] == "60", body[:300]
    assert all(s in body for s in HONEST) and "Internal Server Error" not in body


def _assert_honest_json(r):
    assert r.status_code == 503 and r.json["server_fault"] is True
    assert "not with your connection" in r.json["error"] and r.headers["Retry-After"] == "60"


# ---------------------------------------------------------------- read-only database


def test_a_read_only_database_mid_study_gets_an_honest_503_and_the_retry_is_stored_once(
    make_app, h, database
):
    app = make_app()
    p = h.Participant(app.test_client(), "during-fault")
    p.start()
    ids = p.trial_ids()
    assert p.answer(ids[0]).status_code == 200
    pending = str(uuid.uuid4())
    readonly = "PRAGMA query_only = ON" if database.startswith("sqlite") else (
        "SET default_transaction_read_only = on")  # fmt: skip
    with injected(app, readonly):
        _assert_honest_json(_answer(p, ids[1], pending))
        _assert_honest_page(h.Participant(app.test_client(), "newcomer").start())
        _assert_honest_page(p.load())  # the trial page renews its lease: a write
        health = app.test_client().get("/healthz")
        assert health.status_code == 503 and "read-only" in health.json["storage"]
    first, again = _answer(p, ids[1], pending), _answer(p, ids[1], pending)
    assert first.status_code == again.status_code == 200
    assert (first.json["duplicate"], again.json["duplicate"]) == (False, True)
    for tid in ids[2:]:
        assert p.answer(tid).status_code == 200
    assert h.count_rows(app) == len(ids) and first.json["answered"] == 2


def _as_unprivileged(fn):
    """Run ``fn()`` in a forked child as the user ``nobody`` when we are root (whom file modes
    do not stop), else as ourselves; return ``{"ok": result}`` or ``{"error": text}``. (The
    child cannot import modules from places only root may read, e.g. a Python under /root:
    this module imports what it needs first.)"""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(r)
        out = {}
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            out = {"ok": fn()}
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            out = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            os.write(w, json.dumps(out).encode())
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data or "{}")


def _world_readable_study(h):
    """A study folder that the unprivileged user may read but not write: manifest, images,
    and a database created (by us) with the study's tables."""
    folder = tempfile.mkdtemp(prefix="mdf-ro-")
    manifest = h.make_experiment(Path(folder) / "exp")
    db = os.path.join(folder, "study.sqlite3")
    os.environ["MDF_STUDY_INSTANCE"] = folder  # (the autouse _clean_env fixture removes it)
    app = create_app(h.base_config(Path(folder), manifest, DATABASE="sqlite:///" + db))
    app.extensions["study_engine"].dispose()
    for dirpath, dirs, files in os.walk(folder):
        os.chmod(dirpath, 0o555)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o444)
    return folder, manifest, db


def _unlock(folder):
    for dirpath, _dirs, _files in os.walk(folder):
        os.chmod(dirpath, 0o755)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_serve_refuses_a_read_only_database_and_lock_file_naming_them_and_the_fix(h, database):
    folder, manifest, db = _world_readable_study(h)
    try:
        assert os.path.exists(db + ".lock")  # read-only too: it crashed serve before

        def serve():
            env = {"MDF_STUDY_SECRET_KEY": h.SECRET}
            r = CliRunner().invoke(main, ["study", "serve", "--manifest", str(manifest), "--db",
                                          db, "--instance", folder, "--port", str(h.free_port())],
                                   env=env)  # fmt: skip
            return {"code": r.exit_code, "output": r.output, "exc": repr(r.exception)}

        got = _as_unprivileged(serve)["ok"]
        out = got["output"]
        assert got["code"] == 1 and "Traceback" not in out and "study link" not in out, got
        assert f"the database {db} is read-only for this server (user " in out
        assert "give that user write access to the file and its folder" in out
        os.chmod(db + ".lock", 0o000)  # now not even readable

        def start_app():
            os.environ["MDF_STUDY_INSTANCE"] = folder  # (in the child only)
            create_app(h.base_config(Path(folder), manifest,
                                     DATABASE="sqlite:///" + db))  # fmt: skip

        err = _as_unprivileged(start_app)["error"]
        assert err.startswith("StorageError: storage problem: cannot open the SQLite writer lock")
        assert f"{db}.lock" in err and "give this server's user write access to" in err
    finally:
        _unlock(folder)


# ---------------------------------------------------------------- full disk


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_full_disk_mid_study_gets_an_honest_503_and_the_retry_is_stored_once(make_app, h):
    app = make_app(PER_PAIR=60)  # 40 HITs
    engine = h.engine_of(app)
    with engine.connect() as c:
        pages = c.exec_driver_sql("PRAGMA page_count").scalar()
    people = [h.Participant(app.test_client(), f"full{k}") for k in range(12)]
    for p in people:
        p.start()
    fault, stored = None, 0
    with injected(app, f"PRAGMA max_page_count = {pages + 2}"):  # the file may not grow
        for trial in range(10):
            for p in people:
                aid = str(uuid.uuid4())
                r = _answer(p, p.trial_ids()[trial], aid)
                if r.status_code != 200:
                    fault = (p, trial, aid, r)
                    break
                stored += 1
            if fault:
                break
    assert fault is not None, "the database never filled up"
    p, trial, aid, r = fault
    _assert_honest_json(r)
    assert h.count_rows(app) == stored
    assert _answer(p, p.trial_ids()[trial], aid).json["duplicate"] is False  # space again
    assert _answer(p, p.trial_ids()[trial], aid).json["duplicate"] is True
    assert h.count_rows(app) == stored + 1


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_too_little_free_disk_space_is_refused_at_start(make_app, tmp_path):
    with pytest.raises(StorageError) as err:
        make_app(MIN_FREE_DISK_MB=10**12)
    msg = str(err.value)
    assert f"on the disk holding {tmp_path / 'study.sqlite3'}" in msg and "free space" in msg
    with pytest.raises(StorageError, match="the folder .*missing.* does not exist: create it"):
        make_app(DATABASE="sqlite:///" + str(tmp_path / "missing" / "x.sqlite3"))


# ---------------------------------------------------------------- PostgreSQL restart


class Cluster:
    """A throwaway PostgreSQL cluster (Debian's binaries) in a temporary folder, on a free
    loopback port, run as the user postgres when we are root (initdb refuses root)."""

    def __init__(self, port: int):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        found = bins[-1] if bins else shutil.which("pg_ctl")
        if not found:
            if os.environ.get("CI") == "true":
                pytest.fail("CI=true but no PostgreSQL binaries (.ci/services-postgres.sh)")
            pytest.skip("PostgreSQL's binaries (pg_ctl, initdb) are not installed")
        self.bin = os.path.dirname(found)
        self.port = port
        self.dir = tempfile.mkdtemp(prefix="mdf-pg-restart-")
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        self._run("initdb", "-D", f"{self.dir}/data", "-A", "trust", "-U", "postgres")
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def _run(self, tool, *args):
        subprocess.run([*self.as_user, f"{self.bin}/{tool}", *args], check=True, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # fmt: skip

    def start(self):
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", f"{self.dir}/data", "-l", f"{self.dir}/log", "-w", "-o", opts,
                  "start")  # fmt: skip

    def stop(self):
        self._run("pg_ctl", "-D", f"{self.dir}/data", "-m", "fast", "-w", "stop")

    def remove(self):
        with contextlib.suppress(subprocess.SubprocessError):
            self._run("pg_ctl", "-D", f"{self.dir}/data", "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster(h):
    c = Cluster(h.free_port())
    try:
        c.start()
        yield c
    finally:
        c.remove()


@pytest.mark.postgres
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # (the cluster is our own)
def test_postgres_restart_mid_study_503_then_the_retry_is_stored_once(cluster, make_app, h):
    t0 = time.perf_counter()
    app = make_app(DATABASE=cluster.url)
    p = h.Participant(app.test_client(), "restart")
    p.start()
    ids = p.trial_ids()
    assert p.answer(ids[0]).status_code == 200
    cluster.stop()
    pending = str(uuid.uuid4())
    _assert_honest_json(_answer(p, ids[1], pending))
    _assert_honest_page(h.Participant(app.test_client(), "while-down").start())
    health = app.test_client().get("/healthz").json["storage"]
    assert f"cannot reach PostgreSQL at {cluster.url}" in health
    with pytest.raises(StorageError, match=f"cannot reach PostgreSQL at {cluster.url}.*Start it"):
        make_app(DATABASE=cluster.url)  # a server started now refuses, naming the URL
    cluster.start()
    r = _answer(p, ids[1], pending)
    assert r.status_code == 200 and r.json["duplicate"] is False
    assert _answer(p, ids[1], pending).json["duplicate"] is True
    for tid in ids[2:]:
        assert p.answer(tid).status_code == 200
    assert h.count_rows(app) == len(ids)
    assert h.Participant(app.test_client(), "after").start().status_code == 303
    print(f"PostgreSQL stop/start test: {time.perf_counter() - t0:.1f} s")


# ---------------------------------------------------------------- kill -9


@pytest.mark.slow
def test_kill9_mid_hit_then_restart_and_resume(server, database, h):
    g = server(PER_PAIR=30).start()  # 20 HITs
    first = run_bot(g.url, "crash-1", {}, False, None, random.Random(1), max_answers=4)
    assert first.answers == 4 and not first.errors
    box = []  # more participants in flight while the server dies
    threads = [
        threading.Thread(
            target=lambda k=k: box.append(
                run_bot(g.url, f"busy-{k}", {}, False, None, random.Random(1000 + k), timeout=5)
            )
        )
        for k in range(8)
    ]
    for t in threads:
        t.start()
    time.sleep(0.15)
    g.kill9()
    for t in threads:
        t.join(60)
    acked_before = {a for r in box + [first] for a in r.acked}
    g.start()  # restart on the same database
    again = run_bot(g.url, "crash-1", {}, False, None, random.Random(2))
    assert again.completed and again.answers == 6 and not again.errors  # resumed at trial 5
    resumed = [
        run_bot(g.url, f"busy-{k}", {}, False, None, random.Random(2000 + k)) for k in range(8)
    ]
    assert all(r.completed for r in resumed), [r.errors for r in resumed]
    rows, per = h.stored_answers(database)
    assert acked_before <= {r[0] for r in rows}  # nothing confirmed before the crash was lost
    assert len(rows) == len({(r[1], r[2]) for r in rows})
    assert sorted(set(per)) == [("completed", 10)]


# ---------------------------------------------------------------- the trial page in a browser


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_the_trial_page_says_the_server_has_a_problem_and_sends_the_answer_again(make_app, h):
    sync_api = pytest.importorskip("playwright.sync_api")
    exe = shutil.which("chromium") or os.environ.get("PLAYWRIGHT_CHROMIUM_EXECUTABLE")
    if not exe or not os.path.exists(exe):
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no chromium: .ci/services-browser.sh must install it")
        pytest.skip("Debian's chromium is not installed")
    from werkzeug.serving import make_server

    app = make_app()
    port = h.free_port()
    srv = make_server("127.0.0.1", port, app, threaded=True)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    ready = "document.body.dataset.trial !== undefined && !document.getElementById('choose-left').disabled"

    def wait(page, expression, timeout=20.0):
        deadline = time.time() + timeout
        while not page.evaluate(expression):
            assert time.time() < deadline, f"timed out waiting for {expression}"
            time.sleep(0.05)

    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=exe, headless=True,
                                         args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.fill("#participant_id", "browser-fault")
            page.check("#consent")
            page.click("#start")
            page.wait_for_url("**/hit/**")
            wait(page, ready)
            first = page.evaluate("document.body.dataset.trial")
            page.click("#choose-left")
            wait(page, f"document.body.dataset.trial !== '{first}'")
            wait(page, ready)
            second = page.evaluate("document.body.dataset.trial")
            with injected(app, "PRAGMA query_only = ON"):
                page.click("#choose-right")
                wait(page, "document.getElementById('status').textContent.includes('our side')")
                shown = page.evaluate("document.getElementById('status').textContent")
            wait(page, f"document.body.dataset.trial !== '{second}'")  # sent again: stored
            assert page.evaluate("document.getElementById('status').textContent") == ""
            browser.close()
    finally:
        srv.shutdown()
        th.join(5)
    assert "not with your connection" in shown and "answers so far are saved" in shown
    assert "check your connection" not in shown.lower()
    assert h.count_rows(app) == 2
