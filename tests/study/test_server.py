"""gunicorn on loopback: 100 concurrent participants, and kill -9 mid-HIT then resume.

Bounded: one short-lived gunicorn (2 workers, gevent unless a test names another worker class)
per test, 127.0.0.1 only, every request with a timeout, and the server's process group is always
killed at the end.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from sqlalchemy import text

from study.cli import gunicorn_argv
from study.db import make_engine
from study.simulate import run_bot, simulate

pytestmark = pytest.mark.slow


class Gunicorn:
    def __init__(self, env: dict, port: int, log, worker_class: str = "gevent"):
        self.env, self.port, self.log, self.proc = env, port, log, None
        self.worker_class = worker_class

    def start(self):
        argv = gunicorn_argv("127.0.0.1", self.port, 2, worker_class=self.worker_class, threads=4)
        self.proc = subprocess.Popen(
            argv, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not start within 30 s")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def server(tmp_path, manifest, database, h):
    servers = []

    def _make(worker_class="gevent", **over):
        env = dict(os.environ)
        env.update(
            {
                "MDF_STUDY_SECRET_KEY": h.SECRET,
                "MDF_STUDY_MANIFEST": str(manifest),
                "MDF_STUDY_DATABASE": database,
                "MDF_STUDY_INSTANCE": str(tmp_path / "inst"),
                "PYTHONPATH": os.pathsep.join(sys.path),
            }
        )
        env.update({f"MDF_STUDY_{k}": str(v) for k, v in over.items()})
        log = open(tmp_path / "gunicorn.log", "ab")  # noqa: SIM115 (closed at teardown)
        g = Gunicorn(env, h.free_port(), log, worker_class)
        servers.append(g)
        return g

    yield _make
    for g in servers:
        g.kill9()
        g.log.close()


def _answers(database):
    engine = make_engine(database)
    try:
        with engine.connect() as c:
            rows = c.execute(text("SELECT client_id, assignment_id, trial_id FROM answers")).all()
            per = c.execute(
                text(
                    "SELECT a.status, COUNT(s.id) FROM assignments a LEFT JOIN "
                    "answers s ON s.assignment_id = a.id GROUP BY a.id, a.status"
                )
            ).all()
        return rows, per
    finally:
        engine.dispose()


@pytest.mark.parametrize("worker_class", ["gevent", "gthread", "sync"])
def test_100_concurrent_participants_lose_and_duplicate_nothing(server, database, worker_class):
    g = server(
        worker_class, PER_PAIR=150
    ).start()  # 2 images x 3 pairs x 150 = 900 comparisons = 100 HITs
    t0 = time.time()
    results = simulate(
        g.url, 100, {}, careless_rate=0.0, concurrency=100, seed=5, duplicate_rate=0.3
    )
    assert time.time() - t0 < 120
    errors = [e for r in results for e in r.errors]
    assert not errors, errors[:5]
    assert all(r.completed for r in results)
    rows, per = _answers(database)
    acked = {a for r in results for a in r.acked}
    assert len(acked) == 1000 and {r[0] for r in rows} == acked  # nothing lost
    assert len(rows) == len({(r[1], r[2]) for r in rows}) == 1000  # nothing duplicated
    assert sum(r.duplicates for r in results) > 100
    assert sorted(set(per)) == [("completed", 10)]


def test_kill9_mid_hit_then_restart_and_resume(server, database, manifest):
    g = server(PER_PAIR=30).start()  # 20 HITs
    first = run_bot(g.url, "crash-1", {}, False, None, random.Random(1), max_answers=4)
    assert first.answers == 4 and not first.errors
    # more participants in flight while the server dies
    import threading

    box = []
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
    rows, per = _answers(database)
    assert acked_before <= {r[0] for r in rows}  # nothing confirmed before the crash was lost
    assert len(rows) == len({(r[1], r[2]) for r in rows})
    assert sorted(set(per)) == [("completed", 10)]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_mdf_study_serve_runs_gunicorn_and_shares_a_link(tmp_path, manifest, h, database):
    port = h.free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), MDF_STUDY_ADMIN_TOKEN=h.ADMIN)
    cmd = [
        sys.executable,
        "-c",
        "from experiments.cli import main; main()",
        "study",
        "serve",
        "--manifest",
        str(manifest),
        "--instance",
        str(tmp_path / "inst"),
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.time() + 30
            body = None
            while time.time() < deadline and body is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                        body = r.read().decode()
                except OSError:
                    if proc.poll() is not None:
                        break
                    time.sleep(0.3)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    text_out = log.read_text()
    assert body is not None and "closer to the reference" in body, text_out
    assert f"study link: http://127.0.0.1:{port}/" in text_out
    assert "admin dashboard: " in text_out and "Booting worker" in text_out
    assert "Using worker: gevent" in text_out  # the default worker class
    assert (tmp_path / "inst" / "study.sqlite3").is_file()
    assert (tmp_path / "inst" / "secret_key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_live_jnd_plot_under_gevent_workers(server, h):
    """The dashboard's bootstrap JND fit runs off the event loop (a thread of gevent's pool)
    and forks no process pool there; the PNG comes back."""
    g = server(PER_PAIR=30, ADMIN_TOKEN=h.ADMIN).start()
    results = simulate(g.url, 4, {"l2": 0.0, "mdf": 1.0}, careless_rate=0.0, concurrency=2, seed=3)
    assert all(r.completed for r in results)
    req = urllib.request.Request(
        f"{g.url}/admin/jnd.png", headers={"Authorization": f"Bearer {h.ADMIN}"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "image/png"
        assert r.read(8) == b"\x89PNG\r\n\x1a\n"
