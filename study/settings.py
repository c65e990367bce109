"""The study's settings: every key with its type, default and check, loaded once per app.

:class:`Settings` is a frozen dataclass; each field is one setting, named as the key in lower
case (``TRIALS_PER_HIT`` -> ``settings.trials_per_hit``). :func:`load_settings` layers, later
layers winning:

1. the defaults declared here;
2. ``<instance>/config.py`` (Python: values must already have the declared type);
3. environment variables ``MDF_STUDY_<KEY>`` (text, read by the key's declared type, below);
4. the ``overrides`` mapping (``create_app(test_config)``; Python values).

Environment values are never guessed at (no JSON): a string setting keeps the text as it is
(``MDF_STUDY_ADMIN_TOKEN=123456789012345`` is a token, ``null`` is the string ``"null"``); an
integer is decimal digits with an optional sign; a boolean is true/false, 1/0, yes/no or on/off;
a list of strings is a JSON array of strings or comma-separated items; for a setting that may be
unset, an empty value means unset. A wrong type or value raises ``ValueError`` naming the key,
the value, the expected type and where it was set; a missing ``SECRET_KEY`` or ``MANIFEST``
raises ``RuntimeError`` (there is no default). An unknown ``MDF_STUDY_<KEY>`` is refused (a
typo would otherwise be ignored); ``MDF_STUDY_INSTANCE`` names the instance folder and is not a
setting. Keys of config.py and ``overrides`` that are not study settings (``TESTING``, other
Flask keys) are passed to Flask's ``app.config`` unchanged (:attr:`Settings.flask_extra`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from flask import Config, current_app

__all__ = [
    "ENV_PREFIX",
    "EXTENSION",
    "FIELDS",
    "INSTANCE_ENV",
    "SettingError",
    "Settings",
    "current_settings",
    "default_database",
    "defaults",
    "load_settings",
]

ENV_PREFIX = "MDF_STUDY_"
#: the environment variable naming the instance folder (config.py, SQLite file, secret)
INSTANCE_ENV = ENV_PREFIX + "INSTANCE"
#: where the app keeps its Settings (``app.extensions[EXTENSION]``)
EXTENSION = "study_settings"


class SettingError(ValueError):
    """A setting has the wrong type or value; ``key`` is the setting's name (upper case)."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def _at_least(low: int) -> Callable:
    def check(key, v):
        if v is not None and v < low:
            return f"{key} must be an integer >= {low}, got {v!r}"
        return None

    return check


def _one_of(*choices, fold: bool = False) -> Callable:
    def check(key, v):
        if v is not None and (v.upper() if fold else v) not in choices:
            return f"{key} must be one of {', '.join(map(repr, choices))}, got {v!r}"
        return None

    return check


def _flicker(key, v):
    if v is not None and v != 0 and not 100 <= v <= 5000:
        return f"{key} must be 0 (off) or 100..5000 milliseconds, got {v!r}"
    return None


def _token_length(key, v):
    if v is not None and len(v) < 12:
        return f"{key} must be a string of at least 12 characters (got {len(v)})"
    return None


def _origins(key, hosts):
    for h in hosts:
        parts = urlsplit(h)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            return f"{key}: {h!r} is not an origin such as https://www.mturk.com"
    return None


def _networks(key, nets):
    for n in nets:
        try:
            ipaddress.ip_network(n, strict=False)
        except ValueError:
            return f"{key}: {n!r} is not an IP network such as 10.0.0.0/8 or ::1"
    return None


def _setting(default=dataclasses.MISSING, check=None, *, flask=False, path=False, secret=False):
    """A field that is a setting; ``flask``: also a Flask config key; ``path``: accepts
    ``os.PathLike`` from Python configuration; ``secret``: never shown in an error."""
    meta = {"setting": True, "check": check, "flask": flask, "path": path, "secret": secret}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    """Every setting of the study app (see the module docstring for how they are read)."""

    #: Flask's signing key (sessions, CSRF tokens): a long random string; required
    secret_key: str | bytes = _setting(flask=True, secret=True)
    #: path of manifest.json, a folder holding it, or a plain folder layout; required
    manifest: str = _setting(path=True)
    #: SQLAlchemy URL; unset: ``sqlite:///<instance>/study.sqlite3``
    database: str | None = _setting(None)
    #: admin dashboard password/token (>= 12 characters); unset: the admin is disabled
    admin_token: str | None = _setting(None, _token_length, secret=True)
    #: full (every pair on every image) | asap (active sampling)
    design: str = _setting("full", _one_of("full", "asap"))
    #: full design: comparisons per pair and image
    per_pair: int = _setting(10, _at_least(1))
    #: comparisons per HIT (the paper: 9)
    trials_per_hit: int = _setting(9, _at_least(1))
    #: attention checks per HIT (the paper: 1 or 2)
    checks_per_hit: int = _setting(1, _at_least(0))
    #: show one practice trial (reference vs distorted) first
    practice: bool = _setting(False)
    #: seed of trial order, check positions and sides (recorded in the database)
    seed: int = _setting(0, _at_least(0))
    #: an unfinished HIT returns to the pool after this many seconds idle
    lease_seconds: int = _setting(1800, _at_least(1))
    max_hits_per_worker: int = _setting(1, _at_least(1))
    #: lease of a new HIT until its first answer (the open trial page's heartbeat renews it;
    #: at most LEASE_SECONDS): an id that never answers holds a HIT for minutes only
    start_lease_seconds: int = _setting(300, _at_least(10))
    #: unfinished HITs one client address (the one PROXY_FIX trusts) may hold at once; 0: no cap
    max_leases_per_address: int = _setting(3, _at_least(0))
    #: unfinished HITs one browser session (cookie) may hold; a start beyond it releases the
    #: session's oldest one (a shared lab computer); 0: no cap
    max_leases_per_session: int = _setting(1, _at_least(0))
    #: new HITs one client address may start per START_WINDOW_SECONDS; 0: no limit
    max_starts_per_address: int = _setting(20, _at_least(0))
    start_window_seconds: int = _setting(3600, _at_least(1))
    #: client networks the address limits leave alone (default: this machine, where `mdf study
    #: simulate` and `mdf demo` run; a reverse proxy without PROXY_FIX looks like this too)
    lease_limit_exempt: tuple[str, ...] = _setting(("127.0.0.0/8", "::1/128"), _networks)
    #: an admin login lasts this long (kept on the server: logout or a new ADMIN_TOKEN ends it)
    admin_session_seconds: int = _setting(8 * 3600, _at_least(60))
    #: `mdf study serve`'s access log: private (no client address, query string, user agent or
    #: referrer; HIT tokens hashed), full (gunicorn's default format) or off
    access_log: str = _setting("private", _one_of("private", "full", "off"))
    #: a SQLite database is refused at start with less free disk space (MB) than this
    min_free_disk_mb: int = _setting(50, _at_least(0))
    #: asap design: total comparisons to hand out
    asap_budget: int = _setting(2000, _at_least(1))
    prolific_completion_code: str | None = _setting(None)
    mturk_submit_hosts: tuple[str, ...] = _setting(
        ("https://www.mturk.com", "https://workersandbox.mturk.com"), _origins
    )
    #: number of trusted reverse proxies setting X-Forwarded-For/Proto/Host
    proxy_fix: int = _setting(0, _at_least(0))
    #: SQLite's synchronous pragma: FULL fsyncs every commit; NORMAL (WAL) may lose the last
    #: answers in a power cut
    sqlite_synchronous: str = _setting("FULL", _one_of("OFF", "NORMAL", "FULL", "EXTRA", fold=True))
    verify_checksums: bool = _setting(True)
    #: create the tables and HIT pool when the app starts on an empty database; false: leave
    #: that to ``init-db`` (the app answers 503 until the database is initialised)
    create_db: bool = _setting(True)
    #: bootstrap samples of the admin's live JND plot
    admin_bootstrap: int = _setting(100, _at_least(1))
    title: str = _setting("Image comparison study")
    # -- display fidelity, answers, timing (see study.display) --
    #: side_by_side (left, reference, right; the paper's) | toggle (the two candidates in one
    #: place, switched by key or hover; the reference in the same place on a key)
    layout: str = _setting("side_by_side", _one_of("side_by_side", "toggle"))
    #: when the layout does not fit the window at one image pixel per device pixel: enlarge
    #: (ask for a larger window or a computer) | crop (the same 1:1 window of all three images,
    #: recorded per answer) | toggle (switch to the toggle layout); images are never scaled
    fit: str = _setting("enlarge", _one_of("enlarge", "crop", "toggle"))
    #: toggle layout: alternate the candidates automatically every FLICKER_MS ms (0: off;
    #: 100..5000; the participant can pause it, and it starts paused under reduced motion)
    flicker_ms: int = _setting(0, _flicker)
    #: offer a "no visible difference" answer (exported as a tie: half a vote to each side)
    allow_tie: bool = _setting(False)
    #: admit phones and tablets (refused with a clear page by default)
    allow_mobile: bool = _setting(False)
    #: answers that arrive sooner than this after their trial could be seen (server clock)
    #: are stored and flagged too_fast
    min_view_ms: int = _setting(500, _at_least(0))
    max_content_length: int | None = _setting(64 * 1024, _at_least(1), flask=True)
    max_form_memory_size: int | None = _setting(64 * 1024, _at_least(1), flask=True)
    session_cookie_httponly: bool = _setting(True, flask=True)
    session_cookie_samesite: str | None = _setting(
        "Strict", _one_of("Strict", "Lax", "None"), flask=True
    )
    #: unset: true behind PROXY_FIX proxies (TLS), else false
    session_cookie_secure: bool | None = _setting(None, flask=True)
    #: the Flask keys of config.py / overrides that are not study settings (passed through)
    flask_extra: Mapping[str, object] = field(
        default_factory=lambda: types.MappingProxyType({}), compare=False
    )

    def __post_init__(self):
        for key in ("SECRET_KEY", "MANIFEST"):
            if not getattr(self, key.lower()):
                raise RuntimeError(_REQUIRED[key])
        for f in _FIELDS:
            key = f.name.upper()
            value = _typed(key, getattr(self, f.name), f)
            object.__setattr__(self, f.name, value)
            problem = f.metadata["check"] and f.metadata["check"](key, value)
            if problem:
                raise SettingError(key, problem)
        if self.flicker_ms and "toggle" not in (self.layout, self.fit):
            raise SettingError(
                "FLICKER_MS", "FLICKER_MS needs the toggle layout (LAYOUT=toggle or FIT=toggle)"
            )
        if self.session_cookie_secure is None:
            object.__setattr__(self, "session_cookie_secure", self.proxy_fix > 0)
        object.__setattr__(self, "flask_extra", types.MappingProxyType(dict(self.flask_extra)))

    @property
    def first_lease_seconds(self) -> int:
        """The lease of a HIT until its first answer: START_LEASE_SECONDS, at most LEASE_SECONDS."""
        return min(self.start_lease_seconds, self.lease_seconds)

    @property
    def heartbeat_seconds(self) -> int:
        """How often the open trial page renews its lease (a quarter of the first lease, 5-60 s)."""
        return max(5, min(60, self.first_lease_seconds // 4))

    @property
    def per_pair_target(self) -> int:
        """Comparisons per pair and image the design aims at: PER_PAIR (full), 0 (asap)."""
        return self.per_pair if self.design == "full" else 0

    def flask_config(self) -> dict:
        """The keys for Flask's ``app.config``: Flask's own settings and :attr:`flask_extra`."""
        out = dict(self.flask_extra)
        out.update({f.name.upper(): getattr(self, f.name) for f in _FIELDS if f.metadata["flask"]})
        return out


_REQUIRED = {
    "SECRET_KEY": "SECRET_KEY is not set: put SECRET_KEY in instance/config.py or set "
    "MDF_STUDY_SECRET_KEY (a long random string); there is no default",
    "MANIFEST": "MANIFEST is not set: give the study's manifest.json (MDF_STUDY_MANIFEST)",
}
_FIELDS = tuple(f for f in dataclasses.fields(Settings) if f.metadata.get("setting"))
_HINTS = typing.get_type_hints(Settings)
#: key (upper case) -> field
FIELDS = types.MappingProxyType({f.name.upper(): f for f in _FIELDS})


def _kinds(f) -> tuple[tuple, bool]:
    """The declared type of ``f`` as (base types, optional)."""
    tp = _HINTS[f.name]
    args = typing.get_args(tp) if isinstance(tp, types.UnionType) else (tp,)
    return tuple(a for a in args if a is not type(None)), type(None) in args


_NAMES = {str: "a string", bytes: "bytes", int: "an integer", bool: "true or false"}


def _expected(f) -> str:
    bases, optional = _kinds(f)
    names = [_NAMES.get(b, "a list of strings") for b in bases]
    return " or ".join(names + (["unset (None)"] if optional else []))


def _typed(key: str, value, f):
    """``value`` checked against the declared type of ``f`` (a list becomes a tuple)."""
    bases, optional = _kinds(f)
    if value is None and optional:
        return None
    if f.metadata["path"] and isinstance(value, os.PathLike):
        value = os.fspath(value)
    for base in bases:
        if typing.get_origin(base) is tuple:
            if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                return tuple(value)
        elif isinstance(value, base) and not (base is int and isinstance(value, bool)):
            return value
    shown = f"<a {type(value).__name__}, not shown>" if f.metadata["secret"] else repr(value)
    raise SettingError(key, f"{key}={shown} is not {_expected(f)}")


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _from_text(key: str, text: str, f):
    """The value of an environment variable, read by the declared type of ``f``."""
    bases, optional = _kinds(f)
    if optional and not text.strip():
        return None
    base = bases[0]
    if base in (str, bytes) or str in bases:
        return text
    word = text.strip().lower()
    if base is bool and word in _TRUE + _FALSE:
        return word in _TRUE
    if base is int and re.fullmatch(r"[+-]?[0-9]+", word):
        return int(word)
    if typing.get_origin(base) is tuple:
        if not word.startswith("["):
            return tuple(s.strip() for s in text.split(",") if s.strip())
        try:
            items = json.loads(text)
        except json.JSONDecodeError:
            items = None
        if isinstance(items, list) and all(isinstance(s, str) for s in items):
            return tuple(items)
    raise SettingError(key, f"{ENV_PREFIX}{key}={text!r}: {key} expects {_expected(f)}")


def defaults() -> dict:
    """Every setting with a default, by key (upper case)."""
    return {k: f.default for k, f in FIELDS.items() if f.default is not dataclasses.MISSING}


def default_database(instance_path: str | os.PathLike) -> str:
    """The default DATABASE: ``sqlite:///<instance>/study.sqlite3``."""
    return "sqlite:///" + os.path.join(os.fspath(instance_path), "study.sqlite3")


def _config_py(instance_path) -> dict:
    cfg = Config(os.fspath(instance_path))
    cfg.from_pyfile("config.py", silent=True)
    return dict(cfg)


def _environment(environ: Mapping[str, str]) -> dict:
    """The ``MDF_STUDY_<KEY>`` variables of ``environ``, each read by its key's type."""
    out = {}
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX) or name == INSTANCE_ENV:
            continue
        key = name[len(ENV_PREFIX) :]
        if key not in FIELDS:
            known = ", ".join(sorted(FIELDS))
            raise SettingError(key, f"unknown setting {name} (known keys: {known})")
        out[key] = _from_text(key, text, FIELDS[key])
    return out


def load_settings(
    instance_path: str | os.PathLike,
    overrides: Mapping | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read the settings: defaults, ``<instance_path>/config.py``, ``MDF_STUDY_*`` variables
    of ``environ`` (default ``os.environ``), then ``overrides``; see the module docstring.

    Raises ``ValueError`` (:class:`SettingError`) for a wrong type or value, naming the key,
    the value and where it was set, and ``RuntimeError`` for a missing SECRET_KEY or MANIFEST.
    """
    layers = [
        (str(Path(instance_path) / "config.py"), _config_py(instance_path)),
        (ENV_PREFIX, _environment(os.environ if environ is None else environ)),
        ("test_config", dict(overrides or {})),
    ]
    values, where, extra = {}, {}, {}
    for source, mapping in layers:
        for key, value in mapping.items():
            if key in FIELDS:
                values[key] = value
                where[key] = source + key if source == ENV_PREFIX else source
            elif key.isupper():  # (Flask, too, ignores keys that are not upper case)
                extra[key] = value
    for key, message in _REQUIRED.items():
        if values.get(key) in (None, ""):
            raise RuntimeError(message)
    if values.get("DATABASE") in (None, ""):
        values["DATABASE"] = default_database(instance_path)
    try:
        return Settings(**{k.lower(): v for k, v in values.items()}, flask_extra=extra)
    except SettingError as exc:
        raise SettingError(exc.key, f"{exc} (set in {where.get(exc.key, 'defaults')})") from None


def current_settings() -> Settings:
    """The settings of the current Flask app (loaded once by ``create_app``)."""
    return current_app.extensions[EXTENSION]
