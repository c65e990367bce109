"""The application factory, configuration rules and the database lifecycle."""

from __future__ import annotations

import dataclasses
import re

import pytest

from study import create_app


def test_secret_key_is_required_and_has_no_default(h, tmp_path, manifest, monkeypatch):
    monkeypatch.setenv("MDF_STUDY_INSTANCE", str(tmp_path / "i"))
    cfg = h.base_config(tmp_path, manifest)
    cfg["SECRET_KEY"] = None
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app(cfg)


def test_manifest_is_required(h, tmp_path, manifest, monkeypatch):
    monkeypatch.setenv("MDF_STUDY_INSTANCE", str(tmp_path / "i"))
    with pytest.raises(RuntimeError, match="MANIFEST"):
        create_app(h.base_config(tmp_path, manifest, MANIFEST=None))


def test_config_from_environment(tmp_path, manifest, monkeypatch):
    monkeypatch.setenv("MDF_STUDY_INSTANCE", str(tmp_path / "i"))
    monkeypatch.setenv("MDF_STUDY_SECRET_KEY", "x" * 32)
    monkeypatch.setenv("MDF_STUDY_MANIFEST", str(manifest))
    monkeypatch.setenv("MDF_STUDY_TRIALS_PER_HIT", "4")
    app = create_app()
    settings = app.extensions["study_settings"]
    assert settings.trials_per_hit == 4 and settings.database.endswith("study.sqlite3")
    assert app.config["SECRET_KEY"] == "x" * 32  # Flask's own keys are in app.config too
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.trials_per_hit = 5  # loaded once; never changed behind the app's back


@pytest.mark.parametrize(
    "key,value",
    [
        ("DESIGN", "random"),
        ("TRIALS_PER_HIT", 0),
        ("CHECKS_PER_HIT", -1),
        ("PER_PAIR", "3"),
        ("ADMIN_TOKEN", "short"),
    ],
)
def test_bad_settings_are_refused(make_app, key, value):
    with pytest.raises(ValueError, match=key):
        make_app(**{key: value})


def test_database_is_created_once_and_checked_against_the_experiment(make_app, h, tmp_path):
    app = make_app()
    n_hits = h.count_rows(app, "hits")
    assert n_hits == 2  # 2 images x 3 pairs x 3 per pair = 18 comparisons -> 2 HITs
    again = make_app()  # restart: same pool, nothing duplicated
    assert h.count_rows(again, "hits") == n_hits
    with pytest.raises(ValueError, match="other design settings"):
        make_app(TRIALS_PER_HIT=5)
    other = h.make_experiment(tmp_path / "other", conditions=("a", "b"))
    with pytest.raises(ValueError, match="another experiment"):
        make_app(MANIFEST=str(other))


def test_init_db_command_creates_a_missing_database_refuses_an_existing_one(make_app, h):
    """``flask init-db`` with CREATE_DB=false: the app starts on an empty database without
    creating it (503 until then), init-db creates it, refuses it again, --force recreates it."""
    app = make_app(CREATE_DB=False)
    client, runner = app.test_client(), app.test_cli_runner()
    assert client.get("/healthz").status_code == 503
    assert "has not been initialised" in client.get("/").get_data(as_text=True)
    r = runner.invoke(args=["init-db"])
    assert r.exit_code == 0 and re.search(r"initialised \S+ with 2 HITs", r.output), r.output
    assert h.count_rows(app, "hits") == 2 and client.get("/healthz").status_code == 200
    h.complete(app, "p1")
    r = runner.invoke(args=["init-db"])
    assert r.exit_code != 0 and "--force" in r.output and h.count_rows(app) == 10
    r = runner.invoke(args=["init-db", "--force"])
    assert r.exit_code == 0 and "with 2 HITs" in r.output, r.output
    assert h.count_rows(app) == 0 and h.count_rows(app, "assignments") == 0
    assert h.count_rows(app, "hits") == 2


def test_init_db_command_after_the_app_created_the_database_itself(make_app, h):
    """With CREATE_DB (the default) the app creates a missing database as it starts: init-db
    then reports those HITs; once the database exists (a second run, a restart) it refuses."""
    app = make_app()
    r = app.test_cli_runner().invoke(args=["init-db"])
    assert r.exit_code == 0 and "with 2 HITs" in r.output, r.output
    r = app.test_cli_runner().invoke(args=["init-db"])
    assert r.exit_code != 0 and "already exist" in r.output
    restarted = make_app()
    r = restarted.test_cli_runner().invoke(args=["init-db"])
    assert r.exit_code != 0 and "--force" in r.output and h.count_rows(restarted, "hits") == 2


def test_healthz(client):
    assert client.get("/healthz").json == {"ok": True}


def test_the_web_app_never_imports_torch_or_scipy(tmp_path, manifest, h):
    import subprocess
    import sys

    code = (
        "import sys, os\n"
        "from study import create_app\n"
        "import study.cli, study.participant, study.admin, study.export, study.simulate\n"
        f"app = create_app({h.base_config(tmp_path, manifest)!r})\n"
        "c = app.test_client()\n"
        "assert c.get('/').status_code == 200\n"
        "print(sorted(m for m in ('torch', 'scipy', 'matplotlib') if m in sys.modules))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "MDF_STUDY_INSTANCE": str(tmp_path / "i"),
        "PYTHONPATH": ":".join(sys.path),
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
