"""``init-db``: create the study database and its HIT pool, or recreate it (``--force``).

Two doors, one behaviour (:func:`run_init_db`): ``flask --app study init-db`` for an app
configured as ``create_app`` reads it, and ``mdf study init-db --manifest ...`` (``study.cli``)
from command-line options. A missing (empty) database is created; an existing one is refused
without ``--force``, and dropped and created anew with it (every answer is deleted).

``create_app`` creates a missing database itself when it starts (setting ``CREATE_DB``, true by
default), so under ``flask init-db`` the app may have created it a moment before the command
runs: the command then reports those HITs rather than refusing a database it just made. With
``MDF_STUDY_CREATE_DB=false`` the app leaves an empty database to ``init-db``.
"""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.engine import Engine

from .db import get_engine
from .experiment import current_experiment
from .hit_pool import init_db
from .settings import current_settings

__all__ = ["init_app", "init_db_command", "run_init_db"]

#: app.extensions key: the number of HITs create_app created on an empty database (else absent)
CREATED = "study_db_created"


def run_init_db(engine: Engine, exp, settings, force: bool) -> str:
    """Create the study database (``hit_pool.init_db``) and say what was made; raise
    ``click.ClickException`` with the reason when it is refused."""
    try:
        n = init_db(engine, exp, settings, force)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    return created_message(engine, n, settings)


def created_message(engine: Engine, n_hits: int, settings) -> str:
    """One line naming the database (password hidden) and the HITs created in it."""
    where = engine.url.render_as_string(hide_password=True)
    note = (
        " (asap design: HITs are made as participants arrive)" if settings.design == "asap" else ""
    )
    return f"initialised {where} with {n_hits} HITs{note}"


@click.command("init-db")
@click.option("--force", is_flag=True, help="Drop existing study tables (deletes all answers).")
@with_appcontext
def init_db_command(force: bool) -> None:
    """Create the study tables and HIT pool (refuses existing tables without --force)."""
    app = current_app
    engine, settings = get_engine(), current_settings()
    created = app.extensions.pop(CREATED, None)
    if created is not None:  # this very start of the app found the database empty
        click.echo(created_message(engine, created, settings))
        return
    click.echo(run_init_db(engine, current_experiment(), settings, force))


def init_app(app) -> None:
    """Register the ``init-db`` command on ``app.cli``."""
    app.cli.add_command(init_db_command)
