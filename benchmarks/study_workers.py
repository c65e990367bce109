"""Server cost of one stored answer under each gunicorn worker class, with a C load generator.

``benchmarks/study_load.py`` drives whole participants from Python threads on the same cores,
so its per-answer figures mix server, client and kernel. Here the client is ``wrk`` (Debian's
package; written in C) posting prepared answers of the JSON API as fast as the server replies,
over ``--connections`` keep-alive connections (one wrk thread each, each going through its own
HITs in trial order), so nearly all the CPU goes to
the server. For each configuration and backend: a fresh database, ``--hits`` HITs allocated
in-process beforehand (allocation is not timed), gunicorn from ``study.cli.gunicorn_argv``,
then ``--seconds`` of load. Reports answers/s, server (gunicorn) CPU ms per answer and, for a
local PostgreSQL, the database's CPU ms per answer; the rows stored are counted afterwards and
every request must have been a 200. Configurations run interleaved, ``--repeats`` times, and
the table gives the median and the range (this project's VM drifts in speed).

    python benchmarks/study_workers.py [--configs gevent:2,gthread:2x4,sync:2] [--postgres URL]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study_load import _experiment, _group_cpu_seconds, _postgres_cpu_seconds, gunicorn_server

from study import create_app
from study.allocation import Worker, allocate
from study.cli import WORKER_CLASSES
from study.db import make_engine
from study.models import metadata
from study.store import load_assignment

LUA = r"""
-- one connection per wrk thread; thread k answers the HITs k, k + n, k + 2n, ... (n threads),
-- each HIT's trials in order (the app refuses a trial answered before the one before it)
local counter, threads = 0, {}
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  threads[#threads + 1] = thread
end
-- the first entry is a GET /healthz: wrk may call request() once before it sends anything
-- (seen: one answer skipped in one thread, and that HIT's later answers refused)
local reqs, i = {"/healthz"}, 0
function init(args)
  local n = tonumber(os.getenv("STUDY_THREADS"))
  for line in io.lines(os.getenv("STUDY_REQUESTS")) do
    local hit, rest = line:match("^(%d+) (.+)$")
    if tonumber(hit) % n == tid then reqs[#reqs + 1] = rest end
  end
end
local hdr = {["Content-Type"] = "application/json", ["X-Requested-With"] = "mdf-study",
             ["Origin"] = os.getenv("STUDY_ORIGIN")}
function request()
  i = i + 1
  if reqs[i] == nil then i = 2 end
  if i == 1 then return wrk.format("GET", reqs[1]) end
  local path, body = reqs[i]:match("^(%S+) (.+)$")
  return wrk.format("POST", path, hdr, body)
end
-- replies: new answers stored, duplicates (wrk re-sends a request after a reconnect; the app
-- stores it once and says so), health checks, anything else
stored, dup, health, other = 0, 0, 0, 0
function response(status, headers, body)
  if status ~= 200 then other = other + 1
  elseif body:find('"duplicate":false', 1, true) then stored = stored + 1
  elseif body:find('"duplicate":true', 1, true) then dup = dup + 1
  elseif body:find('"ok":', 1, true) then health = health + 1
  else other = other + 1 end
end
function done(summary, latency, requests)
  local t = {stored = 0, dup = 0, health = 0, other = 0}
  for _, th in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + th:get(k) end
  end
  io.write(string.format("replies: stored %d duplicate %d health %d other %d\n",
                         t.stored, t.dup, t.health, t.other))
end
"""


def _config(text: str) -> tuple[str, int, int]:
    """``gevent:2`` / ``gthread:2x4`` / ``sync:4`` -> (worker class, workers, threads)."""
    m = re.fullmatch(r"(\w+):(\d+)(?:x(\d+))?", text)
    if not m or m[1] not in WORKER_CLASSES:
        raise SystemExit(f"bad configuration {text!r}: use gevent:2, gthread:2x4 or sync:4")
    return m[1], int(m[2]), int(m[3] or 1)


def _prepare(db_url: str, manifest: Path, tmp: Path, hits: int, trials: int) -> tuple[dict, Path]:
    """A fresh database with ``hits`` HITs allocated; one answer request per line
    (HIT number, path, body), each HIT's answers in trial order."""
    if db_url.startswith("postgresql"):
        eng = make_engine(db_url)
        metadata.drop_all(eng)
        eng.dispose()
    settings = {"SECRET_KEY": "bench-" + "x" * 32, "MANIFEST": str(manifest), "DATABASE": db_url,
                "TRIALS_PER_HIT": trials, "PER_PAIR": hits * trials // 6 + trials,
                "SQLITE_SYNCHRONOUS": "FULL"}  # fmt: skip
    app = create_app(settings)
    eng, st = app.extensions["study_engine"], app.extensions["study_settings"]
    tokens = [allocate(eng, Worker("local", f"wrk-{i}"), st) for i in range(hits)]
    states = [load_assignment(eng, t) for t in tokens]
    eng.dispose()
    path = tmp / "requests.txt"
    with open(path, "w") as f:
        for k, (tok, state) in enumerate(zip(tokens, states)):
            for trial in state["trials"]:
                body = {"answer_id": uuid.uuid4().hex, "trial_id": trial["id"], "side": "left",
                        "rt_ms": 500}  # fmt: skip
                f.write(f"{k} /api/answer/{tok} {json.dumps(body, separators=(',', ':'))}\n")
    return settings, path


def _stored(db_url: str) -> int:
    from sqlalchemy import text

    eng = make_engine(db_url)
    try:
        with eng.connect() as c:
            return c.execute(text("SELECT COUNT(*) FROM answers")).scalar_one()
    finally:
        eng.dispose()


def run_one(cfg, db_url, manifest, tmp, args) -> dict:
    """One measurement: fresh database and gunicorn, ``args.seconds`` of wrk load."""
    kind, workers, threads = cfg
    settings, requests = _prepare(db_url, manifest, tmp, args.hits, args.trials)
    env = dict(os.environ, **{f"MDF_STUDY_{k}": str(v) for k, v in settings.items()},
               MDF_STUDY_INSTANCE=str(tmp / "inst"))  # fmt: skip
    with gunicorn_server(env, tmp, workers, kind, threads) as (url, proc):
        cpu0, db0 = _group_cpu_seconds(proc.pid), _postgres_cpu_seconds()
        out = subprocess.run(
            ["wrk", "-t", str(args.connections), "-c", str(args.connections),
             "-d", f"{args.seconds}s", "-s", str(tmp / "answers.lua"), url],
            env=dict(os.environ, STUDY_REQUESTS=str(requests), STUDY_ORIGIN=url,
                     STUDY_THREADS=str(args.connections)),
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        cpu = _group_cpu_seconds(proc.pid) - cpu0
        db_cpu = _postgres_cpu_seconds() - db0 if db_url.startswith("postgresql") else 0.0
    n = int(re.search(r"(\d+) requests in", out)[1])
    replies = dict(zip(("acked", "duplicates", "health", "other"),
                       map(int, re.search(r"replies: stored (\d+) duplicate (\d+) health (\d+) "
                                          r"other (\d+)", out).groups())))  # fmt: skip
    errors = re.search(r"Socket errors: (.*)", out)
    if replies["acked"] + replies["duplicates"] + args.connections >= args.hits * (args.trials + 1):
        raise SystemExit("wrk ran out of prepared answers: raise --hits or lower --seconds")
    return {"answers_per_s": float(re.search(r"Requests/sec:\s*([\d.]+)", out)[1]),
            "server_ms": 1000 * cpu / n, "db_ms": 1000 * db_cpu / n, "requests": n,
            "stored": _stored(db_url), **replies,
            "socket_errors": errors[1] if errors else ""}  # fmt: skip


def main(argv=None) -> None:
    """Run the comparison and print a Markdown table (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="gevent:2,gthread:2x4,sync:2")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--connections", type=int, default=20, help="one per wrk thread")
    ap.add_argument("--hits", type=int, default=400, help="HITs allocated (answers prepared)")
    ap.add_argument("--trials", type=int, default=29)
    ap.add_argument("--postgres", default=os.environ.get("MDF_TEST_POSTGRES_URL"))
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk (Debian's package)")
    configs = [_config(c) for c in args.configs.split(",")]
    backends = ["sqlite"] + (["postgresql"] if args.postgres else [])
    res: dict[tuple, list[dict]] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        manifest = _experiment(tmp / "exp")
        (tmp / "answers.lua").write_text(LUA)
        k = 0
        for rep in range(args.repeats):
            for be in backends:
                for cfg in configs:
                    k += 1
                    db = args.postgres if be == "postgresql" else f"sqlite:///{tmp}/w{k}.sqlite3"
                    r = run_one(cfg, db, manifest, tmp, args)
                    # every answer the server acknowledged as new must be in the database
                    if r["other"] or r["socket_errors"] or r["stored"] < r["acked"]:
                        raise SystemExit(f"{be} {cfg}: answers lost or refused: {r}")
                    res.setdefault((be, cfg), []).append(r)
                    print(f"[{rep + 1}/{args.repeats}] {be} {cfg}: {r}", file=sys.stderr)
    print(f"\nwrk: {args.connections} keep-alive connections (a thread each), {args.seconds} s per run; "
          f"prepared answers of HITs of {args.trials} trials + 1 check; SQLite synchronous=FULL; "
          f"median [min-max] of {args.repeats} interleaved runs; {os.cpu_count()} CPU cores\n")  # fmt: skip
    print(
        "| backend | gunicorn workers | answers/s | server CPU ms / answer | database CPU ms / answer |"
    )
    print("|---|---|---:|---:|---:|")

    def cell(rows, key, fmt):
        v = np.array([r[key] for r in rows])
        return f"{np.median(v):{fmt}} [{v.min():{fmt}}-{v.max():{fmt}}]"

    for (be, (kind, w, t)), rows in res.items():
        name = f"{w} x {kind}" + (f" x {t} threads" if kind == "gthread" else "")
        db = cell(rows, "db_ms", ".2f") if be == "postgresql" else "-"
        print(f"| {be} | {name} | {cell(rows, 'answers_per_s', '.0f')} | "
              f"{cell(rows, 'server_ms', '.2f')} | {db} |")  # fmt: skip


if __name__ == "__main__":
    main()
