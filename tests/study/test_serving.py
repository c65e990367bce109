"""``mdf study serve``'s gunicorn: a port in use is an error before any link is printed, each
study has its own control socket, and the access log is private unless configured."""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner

from experiments.cli import main
from study.serving import _has_control_socket, control_socket_path, gunicorn_argv


def _serve(tmp_path, manifest, port, monkeypatch, h, inst="inst"):
    """``mdf study serve`` up to the exec of gunicorn; return (result, argv or None)."""
    import study.cli

    started = []
    monkeypatch.setenv("MDF_STUDY_SECRET_KEY", h.SECRET)
    monkeypatch.setattr(study.cli.os, "execv", lambda path, argv: started.append(argv))
    args = ["study", "serve", "--manifest", str(manifest), "--instance", str(tmp_path / inst),
            "--port", str(port)]  # fmt: skip
    r = CliRunner().invoke(main, args)
    return r, (started[0] if started else None)


def test_a_port_in_use_is_an_error_before_any_link_is_printed(tmp_path, manifest, monkeypatch, h):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r, argv = _serve(tmp_path, manifest, port, monkeypatch, h)
    assert r.exit_code == 1 and argv is None
    assert f"127.0.0.1:{port} is already in use" in r.output and "choose another --port" in r.output
    assert "study link" not in r.output
    assert not (tmp_path / "inst" / "study.sqlite3").exists()  # refused before any work


@pytest.mark.skipif(not _has_control_socket(), reason="this gunicorn has no control socket")
def test_each_study_gets_its_own_gunicorn_control_socket(tmp_path, manifest, monkeypatch, h):
    sockets = []
    for inst in ("one", "two"):
        r, argv = _serve(tmp_path, manifest, h.free_port(), monkeypatch, h, inst)
        assert r.exit_code == 0, r.output
        sockets.append(argv[argv.index("--control-socket") + 1])
    assert sockets == [
        str(tmp_path / "one" / "gunicorn.ctl"),
        str(tmp_path / "two" / "gunicorn.ctl"),
    ]
    assert "--no-control-socket" in gunicorn_argv("127.0.0.1", 8000)  # none unless one is named
    assert control_socket_path("/x" * 60) is None  # too long for a Unix socket: none


def test_the_access_log_is_private_unless_configured():
    private = gunicorn_argv("127.0.0.1", 8000)
    assert private[private.index("--logger-class") + 1] == "study.access_log.PrivateAccessLogger"
    assert "%(h)s" not in private[private.index("--access-logformat") + 1]
    full = gunicorn_argv("127.0.0.1", 8000, access_log="full")
    assert "--access-logfile" in full and "--logger-class" not in full
    assert "--access-logfile" not in gunicorn_argv("127.0.0.1", 8000, access_log="off")
    with pytest.raises(ValueError, match="access_log must be one of"):
        gunicorn_argv("127.0.0.1", 8000, access_log="verbose")


def test_serve_passes_the_access_log_setting_on(tmp_path, manifest, monkeypatch, h):
    monkeypatch.setenv("MDF_STUDY_ACCESS_LOG", "off")
    r, argv = _serve(tmp_path, manifest, h.free_port(), monkeypatch, h)
    assert r.exit_code == 0 and "--access-logfile" not in argv
