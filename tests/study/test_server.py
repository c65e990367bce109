"""gunicorn on loopback: 100 concurrent participants (kill -9 mid-HIT: ``test_faults.py``).

Bounded: one short-lived gunicorn (2 workers, gevent unless a test names another worker class;
the ``server`` fixture of conftest.py) per test, 127.0.0.1 only, every request with a timeout,
and the server's process group is always killed at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from study.simulate import simulate

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("worker_class", ["gevent", "gthread", "sync"])
def test_100_concurrent_participants_lose_and_duplicate_nothing(server, database, worker_class, h):
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
    rows, per = h.stored_answers(database)
    acked = {a for r in results for a in r.acked}
    assert len(acked) == 1000 and {r[0] for r in rows} == acked  # nothing lost
    assert len(rows) == len({(r[1], r[2]) for r in rows}) == 1000  # nothing duplicated
    assert sum(r.duplicates for r in results) > 100
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
