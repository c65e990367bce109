"""Load benchmark of the study app: answers/s and answer latency under gunicorn on loopback.

For each backend (SQLite WAL file; PostgreSQL when ``--postgres URL`` or MDF_TEST_POSTGRES_URL
is given) and each concurrency level (10/50/100 simultaneous simulated participants), a fresh
database and a fresh gunicorn (``study.cli.gunicorn_argv``: 3 gevent workers by default)
serve a small real experiment; every participant opens the consent page, starts, and answers a
HIT of ``--trials`` trials + 1 check through the JSON API (``study.simulate``, no image
downloads). The client threads run on the same machine as the server, so the figures are a
lower bound. Two runs per level, each on a fresh database:

- closed loop: every participant sends its next answer as soon as the last reply came (the
  most the server can take; latency here is mostly queueing: N waiting clients / throughput);
- paced (open loop): ``--rate`` answers/s offered in total by N participant slots, each on a
  fixed schedule, latency measured from each answer's scheduled time (a server that falls
  behind shows it). Each slot runs participants one after another (consent, HIT
  allocation, the HIT, the completion page) and the slots start spread over one HIT's
  duration, so HITs begin and end spread in time as in a real study; answers/s and latency
  are taken over the window in which all N slots are busy (ramp-up and ramp-down left out).
  (Without the spread, all N participants would finish within one interval and the burst of
  completion pages dominates the tail.)

The participants run in up to ``--client-procs`` client processes (one per 10), so that the
load generator is not one Python process whose GIL 100 threads queue for.

Prints a Markdown table: answers/s, p50/p99 latency of the answer POSTs, and server / database
/ client CPU time per answer (server: all gunicorn processes over the closed-loop run, consent
page and HIT allocation included; database: the local PostgreSQL server's processes).
Goal (issue 6): >= 500 answers/s and p99 < 50 ms.

    python benchmarks/study_load.py [--levels 10,50,100] [--workers 3] [--rate 500]
        [--worker-class gevent|gthread|sync] [--threads 4 (gthread)]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from study.cli import WORKER_CLASSES, gunicorn_argv
from study.db import make_engine
from study.models import metadata
from study.simulate import simulate


def _experiment(folder: Path) -> Path:
    from skimage import data

    entries = []
    conds = ["l2", "ms_ssim_l1", "mdf"]
    for name, arr in [("astronaut", data.astronaut()), ("coffee", data.coffee())]:
        sub = folder / name
        sub.mkdir(parents=True)
        ref = Image.fromarray(arr).convert("RGB").resize((128, 128))
        ref.save(sub / "reference.png")
        outs = {}
        for k, c in enumerate(conds):
            ref.filter(ImageFilter.GaussianBlur(0.5 + k)).save(sub / f"{c}.png")
            outs[c] = {
                "path": f"{name}/{c}.png",
                "sha256": hashlib.sha256((sub / f"{c}.png").read_bytes()).hexdigest(),
            }
        entries.append(
            {
                "id": name,
                "width": 128,
                "height": 128,
                "outputs": outs,
                "reference": {
                    "path": f"{name}/reference.png",
                    "sha256": hashlib.sha256((sub / "reference.png").read_bytes()).hexdigest(),
                },
            }
        )
    man = folder / "manifest.json"
    man.write_text(
        json.dumps(
            {
                "format": "mdf-triplets",
                "version": 1,
                "task": "bench",
                "conditions": conds,
                "images": entries,
            }
        )
    )
    return man


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(select) -> float:
    """User + system CPU seconds of the live processes for which ``select(name, fields)`` holds
    (Linux /proc; ``name`` the command name, ``fields`` the stat fields after it)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, rest = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        fields = rest.split()
        if select(head.split("(", 1)[1], fields):
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def _group_cpu_seconds(pgid: int) -> float:
    """CPU seconds of the processes in process group ``pgid`` (fields[2] is the pgrp)."""
    return _cpu_seconds(lambda name, fields: int(fields[2]) == pgid)


def _postgres_cpu_seconds() -> float:
    """CPU seconds of the live PostgreSQL server processes on this machine (0 when the server
    runs elsewhere): on one box, the database shares the cores with the app."""
    return _cpu_seconds(lambda name, fields: name.startswith("postgres"))


def _client_share(url, k, procs, bots, participants, rate, stagger, start_at):
    """Client process ``k`` of ``procs``: its share of the slots (every ``procs``-th one, so
    the slots of all processes together are spread as one ``simulate`` would spread them)."""
    n = participants // procs
    warmup = 0.0
    if rate is not None:
        interval = participants / rate
        warmup = max(0.0, start_at + (interval + stagger) * k / participants - time.perf_counter())
    c0 = time.process_time()
    results = simulate(
        url,
        bots // procs,
        {},
        careless_rate=0.0,
        concurrency=n,
        seed=1000 * participants + k,
        prefix=f"sim{k}-",
        rate=None if rate is None else rate / procs,
        warmup=warmup,
        stagger=stagger,
    )
    for r in results:
        r.client = None
    return results, time.process_time() - c0


def _clients(url, bots, participants, rate, stagger, procs):
    """Run the simulated participants in ``procs`` client processes (so the load generator is
    not one Python process whose GIL every one of 100 threads waits for); returns the results,
    the clients' CPU seconds and the wall time."""
    procs = max(1, min(procs, participants))
    while participants % procs or bots % procs:
        procs -= 1
    t0 = time.perf_counter()
    start_at = t0 + 1.0  # the clients' processes start meanwhile
    with ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context("fork")) as pool:
        futs = [
            pool.submit(_client_share, url, k, procs, bots, participants, rate, stagger, start_at)
            for k in range(procs)
        ]
        outs = [f.result() for f in futs]
    wall = time.perf_counter() - t0 - (0.0 if rate is None else 1.0)
    return [r for res, _ in outs for r in res], sum(c for _, c in outs), wall


@contextlib.contextmanager
def gunicorn_server(env: dict, tmp: Path, workers: int, worker_class: str, threads: int):
    """A fresh gunicorn serving ``study:create_app()`` on a free loopback port (settings from
    ``env``, log appended to ``tmp/gunicorn.log``); yields ``(base URL, process)`` once
    ``/healthz`` answers, and kills the whole process group on exit."""
    port = _port()
    log = open(tmp / "gunicorn.log", "ab")  # noqa: SIM115 (closed in finally)
    argv = gunicorn_argv("127.0.0.1", port, workers, worker_class=worker_class, threads=threads)
    proc = subprocess.Popen(argv + ["--access-logfile", "/dev/null"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("gunicorn did not start; see " + str(tmp / "gunicorn.log"))
                time.sleep(0.2)
        yield url, proc
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()


def run_level(
    db_url: str,
    manifest: Path,
    participants: int,
    workers: int,
    threads: int,
    tmp: Path,
    sqlite_synchronous: str = "FULL",
    rate: float | None = None,
    trials: int = 9,
    procs: int = 1,
    worker_class: str = "gevent",
) -> dict:
    """One measurement: a fresh gunicorn on ``db_url``; returns answers/s and latencies (ms).

    ``rate``: pace the answers at this many per second in total (open loop; latency counted
    from each answer's scheduled time); None: closed loop, answers as fast as replies come.
    ``procs``: client processes."""
    # paced: participants take turns in each slot, >= 3 each and >= ~6000 answers in all
    rounds = max(3, -(-6000 // (participants * (trials + 1))))
    bots = participants if rate is None else rounds * participants
    if db_url.startswith("postgresql"):
        eng = make_engine(db_url)
        metadata.drop_all(eng)
        eng.dispose()
    env = dict(
        os.environ,
        MDF_STUDY_SECRET_KEY="bench-" + "x" * 32,
        MDF_STUDY_MANIFEST=str(manifest),
        MDF_STUDY_DATABASE=db_url,
        MDF_STUDY_INSTANCE=str(tmp / "inst"),
        MDF_STUDY_PER_PAIR=str(max(10, bots * trials // 6 + trials)),
        MDF_STUDY_TRIALS_PER_HIT=str(trials),
        MDF_STUDY_SQLITE_SYNCHRONOUS=sqlite_synchronous,
    )
    with gunicorn_server(env, tmp, workers, worker_class, threads) as (url, proc):
        cpu0 = _group_cpu_seconds(proc.pid)
        db0 = _postgres_cpu_seconds()
        stagger = 0.0 if rate is None else (trials + 1) * participants / rate  # one HIT
        results, client_cpu, wall = _clients(url, bots, participants, rate, stagger, procs)
        cpu = _group_cpu_seconds(proc.pid) - cpu0
        db_cpu = _postgres_cpu_seconds() - db0 if db_url.startswith("postgresql") else 0.0
    errors = [e for r in results for e in r.errors]
    lat = np.array([x for r in results for x in r.latencies]) * 1000
    n = sum(r.answers for r in results)
    rate_measured = n / wall
    if rate is not None:  # the window in which every slot is busy
        sent = np.array([x for r in results for x in r.sent])
        lo, hi = sent.min() + stagger, sent.max() - stagger
        inside = (sent >= lo) & (sent < hi)
        lat = lat[inside]
        rate_measured = inside.sum() / (hi - lo)
    return {
        "answers": n,
        "errors": len(errors),
        "measured": len(lat),
        "answers_per_s": rate_measured,
        "server_cpu_ms": 1000 * cpu / max(n, 1),
        "db_cpu_ms": 1000 * db_cpu / max(n, 1),
        "client_cpu_ms": 1000 * client_cpu / max(n, 1),
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
    }


def speed_probe() -> float:
    """CPU seconds of a fixed pure-Python loop (the best of three): this shared VM's speed
    drifts by up to ~2x over an afternoon, so the table states the speed it was measured at."""
    best = float("inf")
    for _ in range(3):
        c0 = time.process_time()
        s = 0
        for i in range(1_000_000):
            s += i * i % 7
        best = min(best, time.process_time() - c0)
    return best


def main(argv=None) -> None:
    """Run the benchmark and print a Markdown table (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="10,50,100")
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--worker-class", default="gevent", choices=WORKER_CLASSES)
    ap.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    ap.add_argument(
        "--rate",
        type=float,
        default=500.0,
        help="offered load of the paced runs, answers/s (0: closed-loop runs only)",
    )
    ap.add_argument("--trials", type=int, default=29, help="trials per HIT (+1 check): longer runs")
    ap.add_argument(
        "--client-procs",
        type=int,
        default=4,
        help="client processes at most (one per 10 participants): a single Python process "
        "driving 100 threads measures its own GIL queue",
    )
    ap.add_argument("--postgres", default=os.environ.get("MDF_TEST_POSTGRES_URL"))
    ap.add_argument(
        "--sqlite-synchronous",
        default="FULL,NORMAL",
        help="SQLite synchronous modes to measure (FULL: fsync per commit).",
    )
    args = ap.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        manifest = _experiment(tmp / "exp")
        backends = [
            (f"SQLite (WAL, synchronous={mode})", None, mode)
            for mode in args.sqlite_synchronous.split(",")
            if mode
        ]
        if args.postgres:
            backends.append(("PostgreSQL", args.postgres, "FULL"))
        rows = []
        k = 0
        probe0 = speed_probe()
        for b, (name, url, mode) in enumerate(backends):
            for n in levels:
                r = {}
                for kind, rate in (("closed", None), ("paced", args.rate or None)):
                    if kind == "paced" and rate is None:
                        continue
                    k += 1
                    db = url or f"sqlite:///{tmp}/bench-{b}-{k}.sqlite3"
                    procs = max(1, min(args.client_procs, n // 10))
                    r[kind] = run_level(
                        db,
                        manifest,
                        n,
                        args.workers,
                        args.threads,
                        tmp,
                        mode,
                        rate,
                        args.trials,
                        procs,
                        args.worker_class,
                    )
                    print(f"{name} @ {n} {kind}: {r[kind]}", file=sys.stderr)
                rows.append((name, n, r))
        probe1 = speed_probe()
    serving = f"{args.workers} {args.worker_class} workers" + (
        f" x {args.threads} threads" if args.worker_class == "gthread" else ""
    )
    print(
        f"\ngunicorn {serving}, loopback, "
        f"{os.cpu_count()} CPU cores shared by server and clients; HITs of {args.trials} trials "
        f"+ 1 check; closed loop: every participant answers as soon as the last reply came; "
        f"paced: {args.rate:g} answers/s offered in total by N participant slots (HITs in turn, "
        f">= 6000 answers, starts spread over one HIT), latency from the scheduled time, measured "
        f"while all slots are busy; speed probe (1e6 Python loop steps, CPU ms) "
        f"{1000 * probe0:.0f} before, {1000 * probe1:.0f} after\n"
    )
    print(
        "| backend | participants | closed-loop answers/s | closed p99 ms | paced answers/s "
        "| paced p50 ms | paced p99 ms | server CPU ms / answer | PostgreSQL CPU ms / answer "
        "| client CPU ms / answer | answers | errors |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, n, r in rows:
        c, p = r["closed"], r.get("paced")
        paced = f"{p['answers_per_s']:.0f} | {p['p50']:.1f} | {p['p99']:.1f}" if p else "- | - | -"
        runs = [x for x in (c, p) if x]
        print(
            f"| {name} | {n} | {c['answers_per_s']:.0f} | {c['p99']:.1f} | {paced} | "
            f"{c['server_cpu_ms']:.2f} | {c['db_cpu_ms']:.2f} | {c['client_cpu_ms']:.2f} | "
            f"{sum(x['answers'] for x in runs)} | {sum(x['errors'] for x in runs)} |"
        )


if __name__ == "__main__":
    main()
