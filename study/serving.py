"""Serving the study with gunicorn: its command line, a free port, a per-study control socket.

:func:`gunicorn_argv` is the documented production command line (``mdf study serve`` execs it;
the tests and benchmarks start it too). :func:`check_port` makes a port in use an error before
``serve`` prints any link (gunicorn itself would retry for a while and then exit).
:func:`control_socket_path` gives each study (instance folder) its own gunicorn control
socket instead of gunicorn's one per user.
"""

from __future__ import annotations

import errno
import functools
import os
import socket
import sys

from .access_log import PRIVATE_FORMAT

__all__ = [
    "ACCESS_LOGS",
    "WORKER_CLASSES",
    "check_port",
    "control_socket_path",
    "gunicorn_argv",
]

#: values of ACCESS_LOG (``study.access_log``)
ACCESS_LOGS = ("private", "full", "off")
#: the longest path a Unix socket may have (108 bytes on Linux, with its NUL)
_SUN_PATH_MAX = 107


@functools.lru_cache(maxsize=1)
def _has_control_socket() -> bool:
    """Whether the installed gunicorn has a control socket (``--control-socket``)."""
    try:
        from gunicorn.config import KNOWN_SETTINGS
    except ImportError:  # pragma: no cover - gunicorn is a dependency
        return False
    return any(s.name == "control_socket" for s in KNOWN_SETTINGS)


def control_socket_path(instance: str | os.PathLike) -> str | None:
    """``<instance>/gunicorn.ctl``, the study's own control socket, or None when that path is
    too long for a Unix socket (then the server has none)."""
    path = os.path.join(os.fspath(instance), "gunicorn.ctl")
    return path if len(os.fsencode(path)) <= _SUN_PATH_MAX else None


def check_port(host: str, port: int) -> None:
    """Raise ``OSError`` naming ``host:port`` and the fix when that address cannot be bound
    (in use by another server, or not an address of this machine); binds and closes at once,
    as gunicorn will (SO_REUSEADDR)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise OSError(
                    exc.errno,
                    f"{host}:{port} is already in use (another server?): stop it or choose "
                    "another --port",
                ) from exc
            raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from exc


WORKER_CLASSES = ("gevent", "gthread", "sync")


def gunicorn_argv(
    host: str,
    port: int,
    workers: int = 3,
    *,
    worker_class: str = "gevent",
    threads: int = 4,
    proxies: int = 0,
    access_log: str = "private",
    control_socket: str | None = None,
) -> list[str]:
    """The gunicorn command line that serves ``study:create_app()`` (documented production setup).

    ``worker_class``: ``gevent`` (default: one thread per process and an event loop that keeps
    idle and slow participants' connections open without holding a worker; a database call
    blocks its worker while it runs), ``gthread`` (``threads`` threads per process) or ``sync``
    (one request at a time, no keep-alive; for behind a buffering proxy such as nginx).
    Threads of one process queue for the GIL around every database call, so a gthread worker
    spends more CPU per answer than a gevent one (``benchmarks/study_workers.py`` measures it).
    ``--forwarded-allow-ips`` is opened only when the app trusts ``proxies`` reverse proxies
    (ProxyFix), otherwise forwarded headers are ignored. ``access_log``: ``private`` (the
    default; ``study.access_log``: no client address, query string or user agent, HIT tokens
    hashed), ``full`` (gunicorn's default format) or ``off``. ``control_socket``: the path of
    gunicorn's control socket (``gunicornc``) for this study, or None for none (gunicorn's
    default path is one per user, shared by every server of that user); older gunicorn
    versions without a control socket get neither option.
    """
    if worker_class not in WORKER_CLASSES:
        raise ValueError(f"worker_class must be one of {WORKER_CLASSES}, got {worker_class!r}")
    if workers < 1 or threads < 1:
        raise ValueError(f"workers and threads must be >= 1, got {workers} and {threads}")
    if access_log not in ACCESS_LOGS:
        raise ValueError(f"access_log must be one of {ACCESS_LOGS}, got {access_log!r}")
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        worker_class,
        "--timeout",
        "60",
        "--graceful-timeout",
        "10",
        "--limit-request-line",
        "4094",
        "--limit-request-fields",
        "50",
        "--limit-request-field_size",
        "8190",
    ]
    if worker_class == "gthread":
        argv += ["--threads", str(threads)]
    elif worker_class == "gevent":
        argv += ["--worker-connections", "1000"]
    if proxies:
        argv += ["--forwarded-allow-ips", "*"]
    if access_log == "private":
        argv += ["--access-logfile", "-", "--logger-class", "study.access_log.PrivateAccessLogger",
                 "--access-logformat", PRIVATE_FORMAT]  # fmt: skip
    elif access_log == "full":
        argv += ["--access-logfile", "-"]
    if _has_control_socket():
        argv += ["--control-socket", control_socket] if control_socket else ["--no-control-socket"]
    return argv + ["study:create_app()"]
