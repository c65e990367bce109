"""The admin blueprint: a dashboard behind a token, live JND plot and data download.

The token comes from ``ADMIN_TOKEN`` (instance config or ``MDF_STUDY_ADMIN_TOKEN``); without one
every admin route answers 404. Log in through the form (session cookie, SameSite=Strict, CSRF
token) or send ``Authorization: Bearer <token>`` for scripted downloads. Sessions are kept on
the server (:mod:`study.admin_sessions`: logout, expiry and a new token end them), wrong
tokens are throttled with backoff, and logins, logouts and exports go to the audit log
(:mod:`study.audit`).

- ``GET /admin/``: progress per image and pair, HITs completed/abandoned/excluded, check-failure
  rate, median time per trial, how the answers were shown (1:1 or not, pixel ratios, layouts,
  too-fast answers, tab switches, the latest HIT page reports) and the JND plot.
- ``GET /admin/stats.json``: the same figures as JSON (``display``: the viewing conditions).
- ``GET /admin/jnd.png``: JND per condition with bootstrap 95% CIs from ``scaling``
  (``pw_scale_bootstrap`` over observers, HITs that passed their checks, answers shown 1:1).
- ``GET /admin/export.csv?passed=1``: the long table (all rows, or passed checks only), screened
  as ``mdf study export``: answers shown 1:1 unless ``any_display=1``; ``drop_fast=1``,
  ``drop_hidden=1``, ``ties=drop``.
- ``GET /admin/audit.json``: the last 200 entries of the audit log.
"""

from __future__ import annotations

import functools
import hmac
import io
import sys

from flask import (
    Blueprint,
    Response,
    abort,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from . import admin_sessions, audit
from .db import get_engine
from .experiment import current_experiment
from .export import export_table, observer_matrices, summary, write_rows
from .screening import TIES, Screening
from .security import admin_binding, check_csrf, csrf_token
from .settings import current_settings
from .viewing import display_summary, recent_page_views

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.app_template_filter("utc")
def _utc(epoch: float) -> str:
    """Epoch seconds as ``YYYY-MM-DD HH:MM:SS`` (UTC), for the audit table."""
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _token() -> str:
    token = current_settings().admin_token
    if not token:
        abort(404, "the admin dashboard is disabled (set ADMIN_TOKEN)")
    return token


def _address() -> str:
    return request.remote_addr or "-"


def _too_many(wait: float):
    """429 for a client that must wait ``wait`` seconds before its next token."""
    seconds = int(wait + 0.999)
    return Response(
        f"Too many wrong admin tokens: try again in {seconds} s.\n",
        429,
        {"Retry-After": str(seconds)},
        mimetype="text/plain",
    )


def _wrong_token(actor: str) -> float:
    """Count a wrong token from this address (audited); return the wait before the next one."""
    failures, wait = admin_sessions.record_failure(get_engine(), _address())
    audit.record(get_engine(), actor, "login_failed", f"failure {failures}", _address())
    return wait


def admin_required(view):
    """Allow the view only for a live server-side admin session or a valid bearer token;
    ``g.admin_actor`` names which (for the audit log)."""

    @functools.wraps(view)
    def wrapped(**kwargs):
        token = _token()
        engine, settings = get_engine(), current_settings()
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            wait = admin_sessions.blocked_for(engine, _address())
            if wait > 0:
                return _too_many(wait)
            if hmac.compare_digest(auth[7:].encode(), token.encode()):
                g.admin_actor = "bearer token"
                return view(**kwargs)
            _wrong_token("bearer token")
            abort(401)
        secret = session.get("admin_sid")
        if admin_sessions.is_valid(engine, secret, settings):
            g.admin_actor = f"admin session {admin_sessions.session_label(secret)}"
            return view(**kwargs)
        if auth:
            abort(401)
        return redirect(url_for("admin.login"))

    return wrapped


@bp.route("/login", methods=("GET", "POST"))
def login():
    """Log in with the admin token (throttled per address after repeated wrong tokens)."""
    token = _token()
    error = None
    if request.method == "POST":
        check_csrf(request.form.get("csrf"), admin_binding())
        engine = get_engine()
        wait = admin_sessions.blocked_for(engine, _address())
        if wait > 0:
            return _too_many(wait)
        given = request.form.get("token", "")
        if hmac.compare_digest(given.encode(), token.encode()):
            admin_sessions.record_success(engine, _address())
            secret = admin_sessions.create(engine, current_settings(), _address())
            label = f"admin session {admin_sessions.session_label(secret)}"
            audit.record(engine, label, "login", "", _address())
            session.clear()
            session["admin_sid"] = secret
            return redirect(url_for("admin.dashboard"))
        wait = _wrong_token("login form")
        error = "Wrong token." + (
            f" Wait {int(wait + 0.999)} s before the next try." if wait else ""
        )
    return render_template("admin/login.html", csrf=csrf_token(admin_binding()), error=error), (
        403 if error else 200
    )


@bp.post("/logout")
def logout():
    """End the admin session on the server (every copy of its cookie stops working)."""
    check_csrf(request.form.get("csrf"), admin_binding())
    secret = session.get("admin_sid")
    if admin_sessions.revoke(get_engine(), secret):
        label = f"admin session {admin_sessions.session_label(secret)}"
        audit.record(get_engine(), label, "logout", "", _address())
    session.clear()
    return redirect(url_for("admin.login"))


def _summary() -> dict:
    out = summary(get_engine(), current_experiment(), current_settings())
    out["display"] = display_summary(get_engine())
    return out


@bp.get("/")
@admin_required
def dashboard():
    """Progress, quality figures, the live JND plot and the latest audit entries."""
    return render_template(
        "admin/dashboard.html",
        s=_summary(),
        page_views=recent_page_views(get_engine()),
        exp=current_experiment(),
        csrf=csrf_token(admin_binding()),
        audit=audit.recent(get_engine(), 20),
    )


@bp.get("/stats.json")
@admin_required
def stats():
    """The dashboard figures as JSON."""
    return _summary()


@bp.get("/export.csv")
@admin_required
def export_csv():
    """Download the long table; ``?passed=1`` keeps only HITs that passed their checks; the
    screening of ``mdf study export`` (header ``X-Screening`` says what it dropped)."""
    args = request.args
    passed = args.get("passed") == "1"
    ties = args.get("ties", "half")
    if ties not in TIES:
        abort(400, f"ties must be one of {', '.join(TIES)}")
    screening = Screening(
        require_native=args.get("any_display") != "1",
        drop_fast=args.get("drop_fast") == "1",
        drop_hidden=args.get("drop_hidden") == "1",
        ties=ties,
    )
    rows, report = export_table(get_engine(), passed_only=passed, screening=screening)
    buf = io.StringIO()
    write_rows(buf, rows)
    detail = f"{'passed only' if passed else 'all rows'}, {len(rows)} rows (download)"
    audit.record(get_engine(), g.admin_actor, "export", detail, _address())
    name = "comparisons-passed.csv" if passed else "comparisons-all.csv"
    return Response(
        buf.getvalue(),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f"attachment; filename={name}",
            "X-Screening": report.message(),
        },
    )


def jnd_figure(rows, conditions, n_samples: int, seed: int = 0):
    """A matplotlib Figure of JND per condition with bootstrap 95% CIs (``scaling``).

    Uses ``scaling.pw_scale_bootstrap`` on per-observer matrices summed over images (JND units,
    mean 0). Returns (figure, message); the figure says why when there is too little data.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    message = None
    MM, observers = observer_matrices(rows, list(conditions))
    if len(observers) < 2:
        message = "Not enough data yet (needs 2+ observers who passed their checks)."
    else:
        try:
            import scaling

            # n_jobs=1: no process pool forked from a web worker (under gevent a fork from the
            # thread pool fails, and a pool per dashboard view costs more than it saves)
            res = scaling.pw_scale_bootstrap(
                MM, n_samples=n_samples, alpha=0.05, seed=seed, n_jobs=1
            )
            jod, low, high = (getattr(res, k) for k in ("jod", "low", "high"))
            x = range(len(conditions))
            ax.errorbar(x, jod, yerr=[jod - low, high - jod], fmt="o", capsize=4)
            ax.set_xticks(list(x), list(conditions), rotation=30, ha="right")
            ax.set_ylabel("quality (JND)")
            ax.axhline(0, color="0.8", lw=0.8)
            ax.set_title(f"{len(observers)} observers, {int(MM.sum())} comparisons, 95% CI")
        except (ImportError, ValueError, RuntimeError, ArithmeticError) as exc:
            # the plot must not take the dashboard down
            message = f"JND scaling unavailable: {type(exc).__name__}: {exc}"
    if message:
        ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, transform=ax.transAxes)
        ax.set_axis_off()
    fig.tight_layout()
    return fig, message


def off_the_event_loop(fn, *args):
    """``fn(*args)``, run in gevent's thread pool when gevent has patched this process
    (gunicorn's gevent workers), else called directly.

    A gevent worker serves all its connections from one thread: a second of CPU work in a
    request (the bootstrap JND fit of a big study: ~1.2 s for 10 conditions and 300 observers
    on the project's VM) would stall every other participant of that worker. In a real thread
    the work only takes turns with the event loop for the GIL. ``fn`` must not touch the
    database or Flask's request context (both belong to the worker's own thread)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        import gevent

        return gevent.get_hub().threadpool.apply(fn, args)
    return fn(*args)


def jnd_png_bytes(rows, conditions, n_samples: int) -> bytes:
    """The JND plot of :func:`jnd_figure` rendered as PNG bytes."""
    fig, _ = jnd_figure(rows, conditions, n_samples)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


@bp.get("/jnd.png")
@admin_required
def jnd_png():
    """The live JND plot as PNG (fitted and drawn off the worker's event loop)."""
    rows, _ = export_table(get_engine(), passed_only=True)  # the default screening: 1:1 only
    conditions, n = list(current_experiment().conditions), current_settings().admin_bootstrap
    png = off_the_event_loop(jnd_png_bytes, rows, conditions, n)
    return Response(png, mimetype="image/png", headers={"Cache-Control": "no-store"})


@bp.get("/audit.json")
@admin_required
def audit_json():
    """The last 200 entries of the audit log, newest first."""
    return {"entries": audit.recent(get_engine(), 200)}
