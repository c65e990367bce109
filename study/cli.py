"""``mdf study``: serve the study, create its database, export answers, run simulated observers.

``mdf study serve --manifest m.json`` validates the manifest, creates (or checks) the database
and runs the app under gunicorn (``--dev`` for Flask's development server). The options are
passed on as ``MDF_STUDY_*`` environment variables, so the workers' ``create_app`` and
``init-db`` read them through the one settings loader (``study.settings.load_settings``), on
top of ``<instance>/config.py``.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import sys
from pathlib import Path

import click

from .data_commands import db_url, export, purge
from .serving import WORKER_CLASSES, check_port, control_socket_path, gunicorn_argv
from .settings import ENV_PREFIX, INSTANCE_ENV

__all__ = ["WORKER_CLASSES", "cli", "db_url", "gunicorn_argv"]  # (the last from study.serving)


def _design_options(f):
    opts = [
        click.option(
            "--manifest",
            required=True,
            type=click.Path(exists=True),
            help="manifest.json from `mdf restore`, or a folder <image>/<condition>.png",
        ),
        click.option(
            "--db",
            "db",
            default=None,
            help="Database: a SQLite file path or a postgresql:// URL "
            "(default: <instance>/study.sqlite3).",
        ),
        click.option(
            "--instance",
            type=click.Path(file_okay=False),
            default="instance",
            show_default=True,
            help="Instance folder (config.py, SQLite file, secret).",
        ),
        click.option("--design", type=click.Choice(["full", "asap"]), default=None),
        click.option(
            "--per-pair",
            type=int,
            default=None,
            help="Full design: comparisons per pair and image.",
        ),
        click.option("--trials", type=int, default=None, help="Comparisons per HIT (default 9)."),
        click.option(
            "--checks", type=int, default=None, help="Attention checks per HIT (default 1)."
        ),
        click.option("--practice/--no-practice", default=None, help="One practice trial first."),
        click.option("--seed", type=int, default=None),
        click.option("--max-hits-per-worker", type=int, default=None),
        click.option(
            "--asap-budget",
            type=int,
            default=None,
            help="ASAP design: total comparisons to collect.",
        ),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _export_env(
    manifest,
    db,
    instance,
    design,
    per_pair,
    trials,
    checks,
    practice,
    seed,
    max_hits_per_worker,
    asap_budget,
) -> None:
    env = {
        "MANIFEST": str(Path(manifest).resolve()),
        "DATABASE": db_url(db),
        "DESIGN": design,
        "PER_PAIR": per_pair,
        "TRIALS_PER_HIT": trials,
        "CHECKS_PER_HIT": checks,
        "PRACTICE": None if practice is None else str(practice).lower(),
        "SEED": seed,
        "MAX_HITS_PER_WORKER": max_hits_per_worker,
        "ASAP_BUDGET": asap_budget,
    }
    for k, v in env.items():
        if v is not None:
            os.environ[ENV_PREFIX + k] = str(v)
    inst = Path(instance).resolve()
    inst.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ[INSTANCE_ENV] = str(inst)
    if not os.environ.get(ENV_PREFIX + "SECRET_KEY") and not (inst / "config.py").is_file():
        # A random secret per deployment, kept in the instance folder (never a shared default).
        key_file = inst / "secret_key"
        if not key_file.is_file():
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
        os.environ[ENV_PREFIX + "SECRET_KEY"] = key_file.read_text().strip()


@click.group()
def cli() -> None:
    """The pairwise-comparison crowd study (Flask app; MDF paper section 4.3)."""


@cli.command()
@_design_options
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option(
    "--workers",
    default=3,
    show_default=True,
    type=int,
    help="gunicorn worker processes (about one per CPU core, plus one).",
)
@click.option(
    "--worker-class",
    type=click.Choice(WORKER_CLASSES),
    default="gevent",
    show_default=True,
    help="gunicorn workers: gevent (event loop, keep-alive), gthread (threads) or sync "
    "(behind nginx).",
)
@click.option(
    "--threads", default=4, show_default=True, type=int, help="Threads per gthread worker."
)
@click.option(
    "--proxies",
    default=0,
    show_default=True,
    type=int,
    help="Number of trusted reverse proxies (X-Forwarded-*).",
)
@click.option("--dev", is_flag=True, help="Flask's development server instead of gunicorn.")
def serve(host, port, workers, worker_class, threads, proxies, dev, **kw):
    """Serve the study (gunicorn) and print the link to share."""
    try:
        check_port(host, port)  # before anything is printed: gunicorn would retry, then exit
    except OSError as exc:
        raise click.ClickException(exc.strerror or str(exc)) from exc
    _export_env(**kw)
    if proxies:
        os.environ[ENV_PREFIX + "PROXY_FIX"] = str(proxies)
    from . import create_app
    from .settings import EXTENSION

    try:
        app = create_app()
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    app.extensions["study_engine"].dispose()
    settings = app.extensions[EXTENSION]
    click.echo(
        f"study link: http://{host}:{port}/   (Prolific: add ?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}"
        "&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}})"
    )
    if settings.admin_token is None:
        click.echo("admin dashboard disabled: set MDF_STUDY_ADMIN_TOKEN to enable /admin/")
    else:
        click.echo(f"admin dashboard: http://{host}:{port}/admin/")
    if dev:
        from .access_log import redact_dev_log

        redact_dev_log(settings.access_log)
        app.run(host=host, port=port, debug=False)
        return
    if worker_class == "gevent" and importlib.util.find_spec("gevent") is None:
        raise click.ClickException(
            "gevent is not installed: pip install gevent, or choose --worker-class gthread"
        )
    argv = gunicorn_argv(
        host, port, workers, worker_class=worker_class, threads=threads, proxies=proxies,
        access_log=settings.access_log,
        control_socket=control_socket_path(os.environ[INSTANCE_ENV]),
    )  # fmt: skip
    os.execv(argv[0], argv)


@cli.command("init-db")
@_design_options
@click.option("--force", is_flag=True, help="Drop existing study tables (deletes all answers).")
def init_db_cmd(force, **kw):
    """Create the study database and its HIT pool: a missing one is created, an existing one is
    refused, or dropped and created anew with --force (every answer is deleted)."""
    _export_env(**kw)
    from .commands import run_init_db
    from .db import make_engine
    from .experiment import load_experiment
    from .settings import load_settings

    try:
        settings = load_settings(os.environ[INSTANCE_ENV])
        exp = load_experiment(settings.manifest, verify_checksums=settings.verify_checksums)
        engine = make_engine(settings.database, settings.sqlite_synchronous)
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        click.echo(run_init_db(engine, exp, settings, force))
    finally:
        engine.dispose()


@cli.command()
@click.option(
    "--url", required=True, help="Base URL of the running study, e.g. http://127.0.0.1:5000"
)
@click.option("--participants", default=50, show_default=True, type=int)
@click.option("--jod", default="", help="True JND per condition: cond=value,... (others 0).")
@click.option(
    "--manifest",
    type=click.Path(exists=True),
    default=None,
    help="The study's manifest, so bots can recognise what they see (else random answers).",
)
@click.option(
    "--careless",
    default=0.1,
    show_default=True,
    type=float,
    help="Fraction of careless (random-clicking) participants.",
)
@click.option("--concurrency", default=8, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--prefix", default="sim", show_default=True, help="Participant id prefix.")
@click.option("--platform", type=click.Choice(["local", "prolific"]), default="local")
@click.option(
    "--rate",
    type=float,
    default=None,
    help="Pace the answers at this many per second in total (--concurrency participants at a "
    "time, each on a fixed schedule; latency counted from the schedule). Default: as fast as "
    "the server answers.",
)
@click.option(
    "--stagger",
    type=float,
    default=0.0,
    show_default=True,
    help="With --rate: spread the participants' starts over this many seconds.",
)
def simulate(
    url, participants, jod, manifest, careless, concurrency, seed, prefix, platform, rate, stagger
):
    """Simulated participants answering by a Thurstone model over HTTP (also a load test:
    with --rate it prints the answers' latency percentiles)."""
    from .experiment import load_experiment
    from .simulate import parse_jod
    from .simulate import simulate as run

    try:
        scores = parse_jod(jod)
        exp = load_experiment(manifest) if manifest else None
        if exp is not None:
            unknown = sorted(set(scores) - set(exp.conditions))
            if unknown:
                raise ValueError(f"--jod names unknown condition(s) {unknown}")
        results = run(
            url,
            participants,
            scores,
            careless,
            exp,
            concurrency,
            seed,
            prefix,
            progress=True,
            platform=platform,
            rate=rate,
            stagger=stagger,
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    n = sum(r.answers for r in results)
    done = sum(r.completed for r in results)
    errors = [e for r in results for e in r.errors]
    click.echo(
        f"{done}/{participants} participants completed, {n} answers stored, {len(errors)} errors"
    )
    lat = sorted(x for r in results for x in r.latencies)
    if lat:

        def pct(q):
            return 1000 * lat[min(len(lat) - 1, int(q * len(lat)))]

        click.echo(
            f"answer latency: p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms, "
            f"max {1000 * lat[-1]:.1f} ms ({len(lat)} requests)"
        )
    for e in errors[:10]:
        click.echo(f"  error: {e}")
    if errors:
        sys.exit(1)


cli.add_command(export)
cli.add_command(purge)
