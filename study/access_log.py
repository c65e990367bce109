"""A private access log: what ``mdf study serve`` logs about each request (ACCESS_LOG).

``private`` (the default) logs the time, method, path, status, size and duration, and nothing
that identifies a participant: no client address, no query string (where PROLIFIC_PID,
STUDY_ID, SESSION_ID, workerId and typed participant ids travel), no user agent or referrer,
no request headers, and every HIT token in a path (``/hit/<token>``, ``/img/<token>/...``,
``/api/answer/<token>``, ...) replaced by ``~`` and the first 8 hex digits of its SHA-256
(requests of one participant still group together; the link cannot be rebuilt from the log).
``full`` keeps gunicorn's default ("combined") format; ``off`` logs no requests.

:class:`PrivateAccessLogger` is the gunicorn logger class for ``private`` (``gunicorn
--logger-class study.access_log.PrivateAccessLogger``); :func:`redact_dev_log` does the same to
the Flask development server's request log (``mdf study serve --dev``).
"""

from __future__ import annotations

import hashlib
import logging
import re

from gunicorn.glogging import Logger

__all__ = ["PRIVATE_FORMAT", "PrivateAccessLogger", "redact_dev_log", "redact_path"]

#: the access log format of ``private``: time, request line (redacted), status, bytes, ms
PRIVATE_FORMAT = '%(t)s "%(r)s" %(s)s %(b)s %(M)sms'

_TOKEN = re.compile(r"(?<=/)[A-Za-z0-9_-]{20,64}(?=/|$)")


def _hashed(match: re.Match) -> str:
    return "~" + hashlib.sha256(match.group(0).encode()).hexdigest()[:8]


def redact_path(target: str) -> str:
    """A request target without its query string and with each HIT token hashed."""
    path = target.split("?", 1)[0].split("#", 1)[0]
    return _TOKEN.sub(_hashed, path)


class PrivateAccessLogger(Logger):
    """gunicorn's logger with the identifying atoms of the access log blanked (see the module
    docstring), whatever ``--access-logformat`` asks for."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        path = redact_path(environ.get("RAW_URI") or environ.get("PATH_INFO") or "")
        protocol = environ.get("SERVER_PROTOCOL", "")
        private = {
            "h": "-",
            "u": "-",
            "r": f"{environ.get('REQUEST_METHOD', '-')} {path} {protocol}",
            "U": redact_path(environ.get("PATH_INFO") or ""),
            "q": "",
            "f": "-",
            "a": "-",
        }
        kept = {k: v for k, v in atoms.items() if not k.startswith("{")}  # no headers, environ
        kept.update(private)
        return kept


_REQUEST_LINE = re.compile(r"^(\S+) (\S+)( .*)?$")


class _DevFilter(logging.Filter):
    """Redacts werkzeug's request lines (``"GET /path?query HTTP/1.1" 200 -``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args and isinstance(record.args[0], str):
            m = _REQUEST_LINE.match(record.args[0])
            if m:
                line = f"{m.group(1)} {redact_path(m.group(2))}{m.group(3) or ''}"
                record.args = (line, *record.args[1:])
            if isinstance(record.msg, str) and " - - [" in record.msg:
                record.msg = "- - - [" + record.msg.split(" - - [", 1)[1]
        return True


def redact_dev_log(mode: str) -> None:
    """Apply ACCESS_LOG ``mode`` to the Flask development server's request log."""
    logger = logging.getLogger("werkzeug")
    if mode == "off":
        logger.setLevel(logging.WARNING)
    elif mode == "private":
        logger.addFilter(_DevFilter())
