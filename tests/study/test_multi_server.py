"""More than one server: two ``mdf study serve`` processes (as behind a load balancer) on one
PostgreSQL, 50 simulated participants each at the same time. No HIT is leased to two
participants at once, nothing is lost or duplicated, each server has its own control socket,
and an admin session made on one server is valid, and ended, on both."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from sqlalchemy import text

from study.db import make_engine
from study.serving import _has_control_socket
from study.simulate import simulate

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _serve(tmp_path, name, manifest, database, port, h):
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(sys.path),
        MDF_STUDY_SECRET_KEY=h.SECRET,
        MDF_STUDY_ADMIN_TOKEN=h.ADMIN,
    )  # fmt: skip  (one secret for all servers)
    cmd = [sys.executable, "-c", "from experiments.cli import main; main()", "study", "serve",
           "--manifest", str(manifest), "--db", database, "--instance", str(tmp_path / name),
           "--port", str(port), "--workers", "1", "--per-pair", "150"]  # fmt: skip
    log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 (closed by the caller)
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    return proc, log


def _wait(url, proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not start")


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_two_servers_on_one_postgres_lease_each_hit_once_and_lose_nothing(
    tmp_path, manifest, database, h
):
    import requests

    ports = [h.free_port(), h.free_port()]
    servers = [_serve(tmp_path, n, manifest, database, p, h) for n, p in zip("ab", ports)]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        for url, (proc, _) in zip(urls, servers):
            _wait(url, proc)  # both started at once on an empty database: one pool
        t0 = time.perf_counter()
        results: dict[str, list] = {}

        def run(url, prefix):
            results[prefix] = simulate(url, 50, {}, careless_rate=0.0, concurrency=25,
                                       seed=len(prefix), prefix=prefix, duplicate_rate=0.2)  # fmt: skip

        threads = [threading.Thread(target=run, args=(u, p)) for u, p in zip(urls, ("a-", "b--"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        took = time.perf_counter() - t0
        bots = results["a-"] + results["b--"]
        assert len(bots) == 100 and not [e for b in bots for e in b.errors]
        assert all(b.completed for b in bots)

        session = requests.Session()  # an admin behind the load balancer: either server
        page = session.get(urls[0] + "/admin/login", timeout=10).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        session.post(urls[0] + "/admin/login", data={"csrf": csrf, "token": h.ADMIN}, timeout=10)
        assert session.get(urls[1] + "/admin/stats.json", timeout=10).json()["answers"] == 1000
        dash = session.get(urls[1] + "/admin/", timeout=10).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', dash).group(1)
        session.post(urls[1] + "/admin/logout", data={"csrf": csrf}, timeout=10)
        after = session.get(urls[0] + "/admin/stats.json", timeout=10, allow_redirects=False)
        assert after.status_code == 302  # logged out on b: the session ended on a too
    finally:
        for proc, log in servers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            log.close()

    engine = make_engine(database)
    try:
        with engine.connect() as c:
            q = c.execute
            assert q(text("SELECT COUNT(*) FROM hits")).scalar() == 100  # one pool, made once
            per_hit = q(text("SELECT t.hit_id, COUNT(DISTINCT s.assignment_id) FROM answers s "
                             "JOIN trials t ON t.id = s.trial_id GROUP BY t.hit_id")).all()  # fmt: skip
            assert len(per_hit) == 100 and {n for _, n in per_hit} == {1}  # one holder per HIT
            stored = q(text("SELECT client_id, assignment_id, trial_id FROM answers")).all()
            foreign = q(text("SELECT COUNT(*) FROM answers s JOIN trials t ON t.id = s.trial_id "
                             "JOIN assignments a ON a.id = s.assignment_id "
                             "WHERE t.hit_id <> a.hit_id")).scalar()  # fmt: skip
            statuses = q(text("SELECT status, COUNT(*) FROM assignments GROUP BY status")).all()
    finally:
        engine.dispose()
    acked = {a for b in bots for a in b.acked}
    assert len(acked) == 1000 and {r[0] for r in stored} == acked  # nothing lost
    assert len({(r[1], r[2]) for r in stored}) == len(stored) == 1000  # nothing duplicated
    assert foreign == 0 and statuses == [("completed", 100)]
    if _has_control_socket():  # each server its own, in its instance folder
        assert all((tmp_path / name / "gunicorn.ctl").is_socket() for name in "ab")
    print(f"two servers, 100 participants, 1000 answers in {took:.1f} s")
