"""The commands on a study's collected data: ``mdf study export`` and ``mdf study purge``.

``export`` writes pwcmp's long table, screened (:mod:`study.screening`: answers shown 1:1 by
default, ``--drop-fast``, ``--drop-hidden``, ``--ties``; what was dropped is printed;
``--anonymise``: participant ids replaced by salted hashes, :mod:`study.privacy`); ``purge --worker ID`` deletes one participant's data on request.
Both take ``--db`` (a SQLite file that must exist, or a PostgreSQL URL) and are recorded in the
study's audit log (:mod:`study.audit`). ``study.cli`` adds them to the ``mdf study`` group.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

__all__ = ["db_url", "export", "purge"]


def db_url(value: str | None) -> str | None:
    """A SQLAlchemy URL from ``--db``: a URL as is, or a file path as ``sqlite:///<abs path>``."""
    if not value:
        return None
    if "://" in value:
        return value
    return "sqlite:///" + str(Path(value).resolve())


@click.command()
@click.option("--db", "db", required=True, help="SQLite file path or postgresql:// URL.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="CSV file to write.")
@click.option("--passed-only", is_flag=True, help="Only HITs completed with every check passed.")
@click.option("--require-native/--any-display", default=True, show_default=True,
              help="Only answers shown 1:1 (one image pixel per device pixel), or all.")
@click.option("--drop-fast", is_flag=True, help="Leave out answers flagged too_fast.")
@click.option("--drop-hidden", is_flag=True, help="Leave out answers with a tab switch.")
@click.option("--ties", type=click.Choice(["half", "drop"]), default="half", show_default=True,
              help="'No visible difference' answers: half a vote each side, or left out.")
@click.option(
    "--anonymise",
    is_flag=True,
    help="Replace participant ids by salted hashes (a fresh salt unless --salt-file).",
)
@click.option(
    "--salt-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="With --anonymise: keep the salt in this file (created 0600), for pseudonyms that "
    "stay the same across exports.",
)
def export(db, out, passed_only, require_native, drop_fast, drop_hidden, ties, anonymise,
           salt_file):  # fmt: skip
    """Write pwcmp's long table (observer, image, condition_A, condition_B, is_A_selected, ...)
    with each answer's viewing conditions; only answers shown 1:1 unless ``--any-display``."""
    from .export import export_table, write_csv
    from .privacy import anonymise as pseudonymise
    from .privacy import salt_from_file
    from .screening import Screening

    if salt_file and not anonymise:
        raise click.ClickException("--salt-file needs --anonymise")
    with _engine(db) as engine:
        try:
            screening = Screening(require_native, drop_fast, drop_hidden, ties)
            rows, report = export_table(engine, passed_only=passed_only, screening=screening)
            if anonymise:
                rows = pseudonymise(rows, salt_from_file(salt_file) if salt_file else None)
        except (ValueError, OSError) as exc:
            raise click.ClickException(str(exc)) from exc
        write_csv(rows, out)
        _forget_old_clients(engine)
        detail = (f"{'passed only' if passed_only else 'all rows'}, {len(rows)} rows"
                  f"{', anonymised' if anonymise else ''} to {Path(out).resolve()}")  # fmt: skip
        _audit(engine, "export", detail)
    ids = "salted hashes" if anonymise else "participant ids"
    click.echo(f"wrote {len(rows)} comparisons to {out} (observers: {ids})")
    if report.dropped:
        hint = " (--any-display keeps answers not shown 1:1)" * require_native
        click.echo(f"screening: {report.message()}{hint}", err=True)


@click.command()
@click.option("--db", "db", required=True, help="SQLite file path or postgresql:// URL.")
@click.option("--worker", required=True, help="The participant id (platform worker id).")
@click.option(
    "--platform",
    type=click.Choice(["local", "prolific", "mturk"]),
    default=None,
    help="Only this platform's participant of that id (default: any).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def purge(db, worker, platform, yes):
    """Delete one participant's data (answers, assignments, client hashes) on request; their
    HITs go back to the pool."""
    from .privacy import purge_worker

    with _engine(db) as engine:
        if not yes:
            click.confirm(f"Delete every answer of participant {worker!r}?", abort=True)
        counts = purge_worker(engine, worker, platform)
    if not counts["assignments"]:
        raise click.ClickException(f"no participant {worker!r} in {db}: nothing deleted")
    click.echo(
        f"deleted {counts['assignments']} assignments and {counts['answers']} answers of "
        f"{worker!r}; {counts['hits_released']} HITs back in the pool"
    )


@contextlib.contextmanager
def _engine(db: str):
    """An engine on an existing study database ``--db`` (SQLite: the file must exist)."""
    from .db import make_engine

    url = db_url(db)
    if url.startswith("sqlite") and not Path(url[len("sqlite:///") :]).is_file():
        raise click.ClickException(f"no database file at {url[len('sqlite:///') :]}")
    try:
        engine = make_engine(url)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        yield engine
    finally:
        engine.dispose()


def _forget_old_clients(engine) -> None:
    """Delete the client hashes no lease limit needs any more (``leases.forget_old``): the
    participants were told they are kept for about START_WINDOW_SECONDS (its default here)."""
    import time

    from sqlalchemy.exc import SQLAlchemyError

    from .db import transaction
    from .leases import forget_old
    from .settings import FIELDS

    window = FIELDS["START_WINDOW_SECONDS"].default
    try:
        with transaction(engine, write=True) as conn:
            forget_old(conn, time.time(), window)
    except SQLAlchemyError as exc:
        click.echo(f"warning: old client hashes could not be deleted ({exc})", err=True)


def _audit(engine, action: str, detail: str) -> None:
    """Log a CLI action in the study's audit log; warn (not fail) if it cannot be written."""
    from sqlalchemy.exc import SQLAlchemyError

    from .audit import record

    try:
        record(engine, "cli", action, detail)
    except SQLAlchemyError as exc:
        click.echo(f"warning: the audit log could not be written ({exc})", err=True)
