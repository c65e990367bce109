"""``mdf study export`` / ``init-db`` / ``simulate`` wiring, and the hand-off to ``scaling``."""

from __future__ import annotations

import csv

import pytest
from click.testing import CliRunner

import scaling
from experiments.cli import main


def _complete(app, h, pid, side):
    h.complete(app, pid, side, check_ok=pid == "p1")


def test_export_writes_the_long_table_that_scaling_reads(app, h, tmp_path):
    _complete(app, h, "p1", "left")
    _complete(app, h, "p2", "right")
    db = app.extensions["study_settings"].database
    db = db.removeprefix("sqlite:///")  # a plain file path is accepted too
    out = tmp_path / "out" / "comparisons.csv"
    r = CliRunner().invoke(main, ["study", "export", "--db", db, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "wrote 18 comparisons" in r.output
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:5] == ["observer", "image", "condition_A", "condition_B", "is_A_selected"]
    assert {r["observer"] for r in rows} == {"p1", "p2"}
    assert all(r["condition_A"] != r["condition_B"] for r in rows)
    assert all(r["is_A_selected"] == str(int(r["chosen_side"] == "left")) for r in rows)
    table = scaling.read_table(str(out), group="image")
    assert table is not None
    r = CliRunner().invoke(
        main, ["study", "export", "--db", db, "--out", str(out), "--passed-only"]
    )
    assert "wrote 9 comparisons" in r.output


def test_export_refuses_a_missing_database(tmp_path):
    r = CliRunner().invoke(
        main,
        [
            "study",
            "export",
            "--db",
            str(tmp_path / "none.sqlite3"),
            "--out",
            str(tmp_path / "x.csv"),
        ],
    )
    assert r.exit_code != 0 and "no database file" in r.output
    assert not (tmp_path / "x.csv").exists()


def test_init_db_cli_creates_refuses_to_overwrite_and_recreates_with_force(manifest, tmp_path, h):
    db = tmp_path / "s.sqlite3"
    args = ["study", "init-db", "--manifest", str(manifest), "--db", str(db),
            "--instance", str(tmp_path / "inst"), "--per-pair", "2"]  # fmt: skip
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert f"initialised sqlite:///{db} with 2 HITs" in r.output  # 2 x 3 pairs x 2 = 12 -> 2 of 9
    assert (tmp_path / "inst" / "secret_key").stat().st_mode & 0o077 == 0
    # the app serves the pool init-db made, and keeps the participants' answers
    from study import create_app

    app = create_app(h.base_config(tmp_path, manifest, DATABASE=f"sqlite:///{db}", PER_PAIR=2))
    h.complete(app, "p1")
    assert h.count_rows(app, "hits") == 2 and h.count_rows(app) == 10
    r = CliRunner().invoke(main, args)
    assert r.exit_code != 0 and "--force" in r.output
    assert h.count_rows(app) == 10  # refused: nothing dropped
    r = CliRunner().invoke(main, [*args, "--force"])
    assert r.exit_code == 0 and "with 2 HITs" in r.output, r.output
    assert h.count_rows(app) == 0 and h.count_rows(app, "assignments") == 0
    app.extensions["study_engine"].dispose()


def test_init_db_cli_reads_settings_like_create_app(manifest, tmp_path, monkeypatch):
    """Options, MDF_STUDY_* variables and instance/config.py reach init-db through the same
    loader as the app's (typed: a bad value is named)."""
    inst = tmp_path / "inst"
    inst.mkdir()
    (inst / "config.py").write_text("TRIALS_PER_HIT = 4\nSECRET_KEY = 'k' * 32\n")
    args = ["study", "init-db", "--manifest", str(manifest), "--db", str(tmp_path / "s.sqlite3"),
            "--instance", str(inst), "--per-pair", "2"]  # fmt: skip
    monkeypatch.setenv("MDF_STUDY_CHECKS_PER_HIT", "2")
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "with 3 HITs" in r.output, r.output  # 12 comparisons / 4
    monkeypatch.setenv("MDF_STUDY_CHECKS_PER_HIT", "two")
    r = CliRunner().invoke(main, [*args, "--force"])
    assert r.exit_code != 0 and "MDF_STUDY_CHECKS_PER_HIT='two'" in r.output
    assert "expects an integer" in r.output


def _simulate(*args):
    return CliRunner().invoke(main, ["study", "simulate", "--url", "http://127.0.0.1:9", *args])


def test_simulate_cli_validates_jod(manifest):
    r = _simulate("--jod", "l2=abc", "--participants", "1")
    assert r.exit_code != 0 and "not a number" in r.output
    r = _simulate("--jod", "nope=1", "--manifest", str(manifest))
    assert r.exit_code != 0 and "unknown condition" in r.output


def test_gunicorn_command_line_serves_the_factory():
    from study.cli import gunicorn_argv

    argv = gunicorn_argv("127.0.0.1", 8123, 2)
    assert argv[-1] == "study:create_app()" and "--forwarded-allow-ips" not in argv
    assert argv[argv.index("--worker-class") + 1] == "gevent" and "--threads" not in argv
    assert "--forwarded-allow-ips" in gunicorn_argv("127.0.0.1", 8123, 2, proxies=1)
    threaded = gunicorn_argv("127.0.0.1", 8123, 2, worker_class="gthread", threads=3)
    assert threaded[threaded.index("--threads") + 1] == "3"
    with pytest.raises(ValueError, match="worker_class must be one of"):
        gunicorn_argv("127.0.0.1", 8123, 2, worker_class="eventlet")
    with pytest.raises(ValueError, match="workers and threads must be >= 1"):
        gunicorn_argv("127.0.0.1", 8123, 0)


def test_serve_without_gevent_names_the_missing_package(tmp_path, manifest, h, monkeypatch):
    import importlib.util

    import study.cli

    real = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "gevent" else real(name, *args)

    monkeypatch.setattr(study.cli.importlib.util, "find_spec", find_spec)
    monkeypatch.setenv("MDF_STUDY_SECRET_KEY", h.SECRET)
    monkeypatch.setattr(study.cli.os, "execv", lambda *a: pytest.fail("gunicorn was started"))
    r = CliRunner().invoke(main, ["study", "serve", "--manifest", str(manifest),
                                  "--instance", str(tmp_path / "inst")])  # fmt: skip
    assert r.exit_code != 0 and "gevent is not installed" in r.output
