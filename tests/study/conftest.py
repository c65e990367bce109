"""Fixtures for the study tests: a small real experiment (PNG files + manifest) and apps."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image, ImageFilter

SECRET = "test-secret-key-0123456789abcdef"
ADMIN = "admin-token-0123456789"


def _skimage_sources():
    from skimage import data

    return {
        "astronaut": data.astronaut(),
        "coffee": data.coffee(),
        "chelsea": data.chelsea(),
        "rocket": data.rocket(),
    }


def make_experiment(
    folder: Path, conditions=("l2", "ms_ssim_l1", "mdf"), n_images=2, size=48
) -> Path:
    """Write a real triplet experiment: reference + one PNG per condition, and manifest.json.

    ``size``: the images' side in pixels, or (width, height)."""
    width, height = (size, size) if isinstance(size, int) else size
    folder.mkdir(parents=True, exist_ok=True)
    sources = list(_skimage_sources().items())[:n_images]
    entries = []

    def spec(path: Path) -> dict:
        return {
            "path": path.relative_to(folder).as_posix(),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }

    for name, arr in sources:
        sub = folder / name
        sub.mkdir(exist_ok=True)
        ref = Image.fromarray(arr).convert("RGB").resize((width, height), Image.BICUBIC)
        ref.save(sub / "reference.png")
        outs = {}
        for k, c in enumerate(conditions):
            im = ref.filter(ImageFilter.GaussianBlur(radius=0.4 + 0.5 * k))
            im.save(sub / f"{c}.png")
            outs[c] = spec(sub / f"{c}.png")
        entries.append(
            {
                "id": name,
                "width": width,
                "height": height,
                "reference": spec(sub / "reference.png"),
                "outputs": outs,
            }
        )
    manifest = {
        "format": "mdf-triplets",
        "version": 1,
        "task": "denoise",
        "created": "2026-11-22T10:00:00Z",
        "conditions": list(conditions),
        "images": entries,
        "meta": {},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return folder / "manifest.json"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    """No MDF_STUDY_* setting leaks into a test, nor out of one (the CLI exports its options)."""
    for k in list(os.environ):
        if k.startswith("MDF_STUDY_"):
            monkeypatch.delenv(k)
    yield
    for k in list(os.environ):
        if k.startswith("MDF_STUDY_"):
            del os.environ[k]  # then monkeypatch restores what was there before


@pytest.fixture(scope="session")
def manifest(tmp_path_factory) -> Path:
    return make_experiment(tmp_path_factory.mktemp("exp"))


def base_config(tmp_path: Path, manifest: Path, **over) -> dict:
    cfg = {
        "SECRET_KEY": SECRET,
        "MANIFEST": str(manifest),
        "ADMIN_TOKEN": ADMIN,
        "DATABASE": "sqlite:///" + str(tmp_path / "study.sqlite3"),
        "PER_PAIR": 3,
        "TESTING": True,
    }
    cfg.update(over)
    return cfg


def postgres_url() -> str:
    """The test PostgreSQL URL; skip without one, but fail in CI (CI=true) where it must exist."""
    url = os.environ.get("MDF_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "CI=true but MDF_TEST_POSTGRES_URL is unset: .ci/services-postgres.sh "
                "must start PostgreSQL"
            )
        pytest.skip(
            "no PostgreSQL server: set MDF_TEST_POSTGRES_URL (see .ci/services-postgres.sh)"
        )
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request, tmp_path) -> str:
    """The storage backend under test: a SQLite file, or a freshly emptied PostgreSQL database."""
    if request.param == "sqlite":
        return "sqlite:///" + str(tmp_path / "study.sqlite3")
    url = postgres_url()
    from study.db import make_engine
    from study.models import metadata

    engine = make_engine(url)
    metadata.drop_all(engine)
    engine.dispose()
    return url


@pytest.fixture
def make_app(tmp_path, manifest, monkeypatch, database):
    monkeypatch.setenv("MDF_STUDY_INSTANCE", str(tmp_path / "instance"))
    apps = []

    def _make(**over):
        from study import create_app

        over.setdefault("DATABASE", database)
        app = create_app(base_config(tmp_path, manifest, **over))
        apps.append(app)
        return app

    yield _make
    for app in apps:
        app.extensions["study_engine"].dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


class Participant:
    """Drives the participant flow through the Flask test client."""

    def __init__(self, client, pid="p001", query=None):
        self.client = client
        self.pid = pid
        self.query = query if query is not None else {"participant_id": pid}
        self.token = None
        self.data = None

    def start(self, **extra):
        r = self.client.get("/", query_string=self.query)
        assert r.status_code == 200, r.data
        csrf = re.search(r'name="csrf" value="([^"]+)"', r.get_data(as_text=True)).group(1)
        form = dict(self.query, csrf=csrf, consent="yes")
        form.update(extra)
        r = self.client.post("/start", data=form)
        if r.status_code == 303 and "/hit/" in r.headers["Location"]:
            self.token = r.headers["Location"].rsplit("/", 1)[1]
            self.load()
        return r

    def load(self):
        r = self.client.get(f"/hit/{self.token}")
        if r.status_code == 200:
            m = re.search(r'id="hit-data">(.*?)</script>', r.get_data(as_text=True), re.DOTALL)
            self.data = json.loads(m.group(1))
        return r

    def answer(
        self, trial_id, side="left", answer_id=None, rt_ms=1234.5, headers=None, view="native"
    ):
        """POST one answer; ``view``: "native" (a 1:1 side-by-side display of the trial's
        images, as a browser reports it), None (no viewing conditions) or a view dict."""
        import uuid

        from study.display import native_view

        body = {
            "answer_id": answer_id or str(uuid.uuid4()),
            "trial_id": trial_id,
            "side": side,
            "rt_ms": rt_ms,
        }
        if view == "native":
            trial = next((t for t in (self.data or {}).get("trials", []) if t["id"] == trial_id),
                         None)  # fmt: skip
            view = native_view(*trial["size"]) if trial is not None else None
        if view is not None:
            body["view"] = view
        h = {"X-Requested-With": "mdf-study"}
        h.update(headers or {})
        return self.client.post(f"/api/answer/{self.token}", json=body, headers=h)

    def trial_ids(self):
        return [t["id"] for t in self.data["trials"]]

    def kinds(self, app):
        """The kind (pair/check/practice) of each trial, from the database (the page does not
        say which trials are checks)."""
        from sqlalchemy import text

        with engine_of(app).connect() as c:
            kind = dict(c.execute(text("SELECT id, kind FROM trials")).all())
        return [kind[tid] for tid in self.trial_ids()]


@pytest.fixture
def participant(client):
    return Participant(client)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def engine_of(app):
    return app.extensions["study_engine"]


def count_rows(app, table="answers") -> int:
    from sqlalchemy import text

    with engine_of(app).connect() as c:
        return c.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


def complete_hit(app, pid, side="left", check_ok=None):
    """Complete a HIT clicking ``side``; checks answered right/wrong when ``check_ok`` is set."""
    from sqlalchemy import text

    p = Participant(app.test_client(), pid)
    p.start()
    for t, kind in zip(p.data["trials"], p.kinds(app)):
        s = side
        if kind == "check" and check_ok is not None:
            with engine_of(app).connect() as c:
                left = c.execute(
                    text('SELECT "left" FROM trials WHERE id = :i'), {"i": t["id"]}
                ).scalar()
            ref_side = "left" if left == "__reference__" else "right"
            s = ref_side if check_ok else ("right" if ref_side == "left" else "left")
        p.answer(t["id"], side=s)
    return p


def stored_answers(database: str):
    """(client_id, assignment_id, trial_id) of every stored answer, and (status, answers) per
    assignment, read from ``database`` with a fresh engine."""
    from sqlalchemy import text

    from study.db import make_engine

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


@pytest.fixture
def h():
    """Helpers for test modules (pytest runs with --import-mode=importlib: no conftest imports)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        make_experiment=make_experiment,
        postgres_url=postgres_url,
        Participant=Participant,
        free_port=free_port,
        count_rows=count_rows,
        engine_of=engine_of,
        base_config=base_config,
        complete=complete_hit,
        stored_answers=stored_answers,
        SECRET=SECRET,
        ADMIN=ADMIN,
    )


# ---------------------------------------------------------------- gunicorn on loopback


class Gunicorn:
    def __init__(self, env: dict, port: int, log, worker_class: str = "gevent"):
        self.env, self.port, self.log, self.proc = env, port, log, None
        self.worker_class = worker_class

    def start(self):
        from study.cli import gunicorn_argv

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
def server(tmp_path, manifest, database):
    servers = []

    def _make(worker_class="gevent", **over):
        env = dict(os.environ)
        env.update(
            {
                "MDF_STUDY_SECRET_KEY": SECRET,
                "MDF_STUDY_MANIFEST": str(manifest),
                "MDF_STUDY_DATABASE": database,
                "MDF_STUDY_INSTANCE": str(tmp_path / "inst"),
                "PYTHONPATH": os.pathsep.join(sys.path),
            }
        )
        env.update({f"MDF_STUDY_{k}": str(v) for k, v in over.items()})
        log = open(tmp_path / "gunicorn.log", "ab")  # noqa: SIM115 (closed at teardown)
        g = Gunicorn(env, free_port(), log, worker_class)
        servers.append(g)
        return g

    yield _make
    for g in servers:
        g.kill9()
        g.log.close()
