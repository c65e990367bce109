"""``study``: a Flask app for crowd pairwise-comparison experiments (the MDF paper's study).

Each trial shows a reference image and two restorations of it (same network, two losses); the
participant picks the one closer to the reference (Mustafa et al., "Training a Task-Specific Image
Reconstruction Loss", WACV 2022, section 4.3). The app serves HITs of trials plus attention
checks to local, Prolific or MTurk participants, stores every answer durably (SQLite WAL or
PostgreSQL) and exports pwcmp's long table for ``scaling``.

Configuration: :class:`study.settings.Settings`, loaded once by :func:`create_app` from the
defaults, ``instance/config.py``, environment variables ``MDF_STUDY_<KEY>`` (read by each key's
declared type) and the ``test_config`` mapping, in that order. ``SECRET_KEY`` and ``MANIFEST``
are required: there is no fallback. This package never imports torch.
"""

from __future__ import annotations

import logging
import os
import types
from collections.abc import Mapping
from pathlib import Path

from flask import Flask

from .settings import EXTENSION, INSTANCE_ENV, defaults, load_settings

__all__ = ["DEFAULTS", "create_app"]

log = logging.getLogger(__name__)

#: The default of every setting that has one (read-only; see :class:`study.settings.Settings`).
DEFAULTS = types.MappingProxyType(defaults())


def create_app(test_config: Mapping | None = None) -> Flask:
    """Build the study app: load the settings and the experiment, open (or create) the database.

    The instance folder is ``MDF_STUDY_INSTANCE`` (default: Flask's ``instance`` folder;
    created readable by its owner only). Raises ``RuntimeError`` when ``SECRET_KEY`` or
    ``MANIFEST`` is missing, ``study.faults.StorageError`` (a ``RuntimeError``) when the
    database cannot be written (read-only, full disk, PostgreSQL unreachable: the message names
    it and the fix) and ``ValueError`` for a bad manifest, bad settings or a database built for
    another experiment.
    """
    instance = os.environ.get(INSTANCE_ENV)
    app = Flask(
        __name__,
        instance_path=str(Path(instance).resolve()) if instance else None,
        instance_relative_config=True,
    )
    settings = load_settings(app.instance_path, test_config)
    app.config.from_mapping(settings.flask_config())
    os.makedirs(app.instance_path, mode=0o700, exist_ok=True)

    from . import admin, commands, db, faults, hit_pool, participant, security
    from .experiment import load_experiment

    exp = load_experiment(settings.manifest, verify_checksums=settings.verify_checksums)
    engine = db.make_engine(settings.database, settings.sqlite_synchronous)
    app.extensions["study_experiment"] = exp
    app.extensions[EXTENSION] = settings
    app.extensions["study_engine"] = engine
    try:
        faults.check_disk(engine, settings)
        with faults.at_start(engine):
            if settings.create_db:
                created = hit_pool.ensure_db(engine, exp, settings)
                if created is not None:
                    app.extensions[commands.CREATED] = created
            elif hit_pool.check_db(engine, exp, settings) is None:
                log.warning("the study database is empty and CREATE_DB is false: run init-db")
                app.before_request(_until_initialised(engine, exp, settings))
            else:
                hit_pool.upgrade(engine)
        faults.probe_write(engine)
    except BaseException:
        engine.dispose()
        raise
    app.jinja_env.globals["settings"] = settings
    commands.init_app(app)
    security.init_app(app, settings)
    faults.init_app(app, engine)
    app.register_blueprint(participant.bp)
    app.register_blueprint(admin.bp)

    @app.get("/healthz")
    def healthz():
        return faults.health(app)

    return app


def _until_initialised(engine, exp, settings):
    """A ``before_request`` hook answering 503 until ``init-db`` has created the database
    (checked again on each request until then; a database for another experiment stays 503)."""
    from . import hit_pool

    ready = []

    def guard():
        if ready:
            return None
        try:
            if hit_pool.check_db(engine, exp, settings) is not None:
                ready.append(True)
                return None
        except ValueError:
            log.exception("the study database does not match this study")
        return "The study is not open yet: its database has not been initialised.", 503

    return guard
