"""``study``: a Flask app for crowd pairwise-comparison experiments (the MDF paper's study).

Each trial shows a reference image and two restorations of it (same network, two losses); the
participant picks the one closer to the reference (Mustafa et al., "Training a Task-Specific Image
Reconstruction Loss", WACV 2022, section 4.3). The app serves HITs of trials plus attention
checks to local, Prolific or MTurk participants, stores every answer durably (SQLite WAL or
PostgreSQL) and exports pwcmp's long table for ``scaling``.

Configuration (layered as in the Flask tutorial): defaults, then ``instance/config.py``, then
environment variables ``MDF_STUDY_<KEY>`` (values parsed as JSON when possible), or the
``test_config`` mapping. ``SECRET_KEY`` and ``MANIFEST`` are required: there is no fallback.
This package never imports torch.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from flask import Flask

__all__ = ["DEFAULTS", "create_app"]

log = logging.getLogger(__name__)

#: Configuration defaults; every key can be set as the environment variable MDF_STUDY_<KEY>.
DEFAULTS = {
    "MANIFEST": None,  # path of manifest.json, a folder holding it, or a plain folder layout
    "DATABASE": None,  # SQLAlchemy URL; default sqlite:///<instance>/study.sqlite3
    "ADMIN_TOKEN": None,  # admin dashboard password/token; admin disabled when unset
    "DESIGN": "full",  # full (every pair on every image) | asap (active sampling)
    "PER_PAIR": 10,  # full design: comparisons per pair and image
    "TRIALS_PER_HIT": 9,  # comparisons per HIT (the paper: 9)
    "CHECKS_PER_HIT": 1,  # attention checks per HIT (the paper: 1 or 2)
    "PRACTICE": False,  # show one practice trial (reference vs distorted) first
    "SEED": 0,  # seed of trial order, check positions and sides (recorded in the database)
    "LEASE_SECONDS": 1800,  # an unfinished HIT returns to the pool after this long idle
    "MAX_HITS_PER_WORKER": 1,
    "ASAP_BUDGET": 2000,  # asap design: total comparisons to collect
    "PROLIFIC_COMPLETION_CODE": None,
    "MTURK_SUBMIT_HOSTS": ["https://www.mturk.com", "https://workersandbox.mturk.com"],
    "PROXY_FIX": 0,  # number of trusted reverse proxies setting X-Forwarded-For/Proto/Host
    "SQLITE_SYNCHRONOUS": "FULL",
    "VERIFY_CHECKSUMS": True,
    "ADMIN_BOOTSTRAP": 100,  # bootstrap samples of the admin's live JND plot
    "TITLE": "Image comparison study",
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "MAX_FORM_MEMORY_SIZE": 64 * 1024,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Strict",
    "SESSION_COOKIE_SECURE": None,  # None: True behind PROXY_FIX proxies (TLS), else False
}


def _settings(cfg) -> dict:
    design = cfg["DESIGN"]
    if design not in ("full", "asap"):
        raise ValueError(f"DESIGN must be 'full' or 'asap', got {design!r}")
    ints = {
        "PER_PAIR": 1,
        "TRIALS_PER_HIT": 1,
        "CHECKS_PER_HIT": 0,
        "MAX_HITS_PER_WORKER": 1,
        "LEASE_SECONDS": 1,
        "ASAP_BUDGET": 1,
        "SEED": 0,
    }
    for key, low in ints.items():
        v = cfg[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise ValueError(f"{key} must be an integer >= {low}, got {v!r}")
    return {
        "design": design,
        "per_pair": cfg["PER_PAIR"] if design == "full" else 0,
        "trials_per_hit": cfg["TRIALS_PER_HIT"],
        "checks_per_hit": cfg["CHECKS_PER_HIT"],
        "practice": bool(cfg["PRACTICE"]),
        "seed": cfg["SEED"],
        "lease_seconds": cfg["LEASE_SECONDS"],
        "max_hits_per_worker": cfg["MAX_HITS_PER_WORKER"],
        "asap_budget": cfg["ASAP_BUDGET"],
    }


def create_app(test_config: dict | None = None) -> Flask:
    """Build the study app: load and validate the experiment, open (or create) the database.

    Raises ``RuntimeError`` when ``SECRET_KEY`` or ``MANIFEST`` is missing and ``ValueError``
    for a bad manifest, bad settings or a database built for another experiment.
    """
    instance = os.environ.get("MDF_STUDY_INSTANCE")
    app = Flask(
        __name__,
        instance_path=str(Path(instance).resolve()) if instance else None,
        instance_relative_config=True,
    )
    app.config.from_mapping(DEFAULTS)
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
        app.config.from_prefixed_env("MDF_STUDY")
    else:
        app.config.from_mapping(test_config)
    if not app.config.get("SECRET_KEY"):
        raise RuntimeError(
            "SECRET_KEY is not set: put SECRET_KEY in instance/config.py or set "
            "MDF_STUDY_SECRET_KEY (a long random string); there is no default"
        )
    if not app.config.get("MANIFEST"):
        raise RuntimeError(
            "MANIFEST is not set: give the study's manifest.json (MDF_STUDY_MANIFEST)"
        )
    token = app.config.get("ADMIN_TOKEN")
    if token is not None and (not isinstance(token, str) or len(token) < 12):
        raise ValueError("ADMIN_TOKEN must be a string of at least 12 characters")
    if app.config["SESSION_COOKIE_SECURE"] is None:
        # behind a trusted (TLS-terminating) proxy the admin cookie is sent over HTTPS only
        app.config["SESSION_COOKIE_SECURE"] = bool(app.config.get("PROXY_FIX"))
    os.makedirs(app.instance_path, exist_ok=True)
    if not app.config["DATABASE"]:
        app.config["DATABASE"] = "sqlite:///" + os.path.join(app.instance_path, "study.sqlite3")

    from . import admin, db, participant, security
    from .experiment import load_experiment

    exp = load_experiment(app.config["MANIFEST"], verify_checksums=app.config["VERIFY_CHECKSUMS"])
    settings = _settings(app.config)
    engine = db.make_engine(app.config["DATABASE"], app.config["SQLITE_SYNCHRONOUS"])
    app.extensions["study_experiment"] = exp
    app.extensions["study_settings"] = settings
    app.extensions["study_engine"] = engine
    db.ensure_db(engine, exp, settings)
    db.init_app(app)
    security.init_app(app)
    app.register_blueprint(participant.bp)
    app.register_blueprint(admin.bp)

    @app.get("/healthz")
    def healthz():
        return {"ok": True}

    return app
