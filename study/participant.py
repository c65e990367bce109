"""The participant blueprint: consent, trials, answers, images and the completion page.

Routes (all ids validated; images are served by trial id and slot, never by path):

- ``GET /``: consent and instructions. Prolific (``PROLIFIC_PID``, ``STUDY_ID``,
  ``SESSION_ID``), MTurk ExternalQuestion (``assignmentId``, ``hitId``, ``workerId``,
  ``turkSubmitTo``; a preview when ``assignmentId`` is ``ASSIGNMENT_ID_NOT_AVAILABLE``) or
  local/lab mode with a typed participant id.
- ``POST /start``: consent given; allocate a HIT (or resume the worker's one) and redirect.
- ``GET /hit/<token>``: the trial page (resumes at the first unanswered trial). Its trial data
  hold ids, image URLs and image sizes only: attention checks look like every other trial.
- ``POST /api/answer/<token>``: store one answer (JSON, idempotent by ``answer_id``) with its
  viewing conditions (:mod:`study.display`).
- ``POST /api/view/<token>``: the HIT page's screen report (:mod:`study.viewing`).
- ``POST /api/heartbeat/<token>``: the open trial page renews its HIT's lease
  (:mod:`study.leases`).
- ``GET /img/<token>/<trial_id>/<slot>``: ``slot`` is reference, left or right; every image
  goes out with the same headers, and the first serve of each is timed (:mod:`study.timing`).
- ``GET /done/<token>``: completion: Prolific redirect with the completion code, MTurk submit
  form, or a thank-you page; only once every answer of the HIT is stored.

Phones and tablets (user agent, or the consent page's touch-first test) are refused with a
clear page unless ``ALLOW_MOBILE``.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode, urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)

from . import leases
from .allocation import ID_RE, AlreadyDone, Worker, allocate
from .db import get_engine
from .display import ViewError, is_mobile_user_agent, parse_page_view
from .experiment import CHECK_DISTORTED, CHECK_REFERENCE, current_experiment
from .security import check_csrf, csrf_token, require_json_api
from .settings import current_settings
from .store import MAX_ID, TOKEN_RE, StudyError, load_assignment, record_answer
from .timing import serve_trial
from .viewing import record_page_view

bp = Blueprint("participant", __name__)

MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
PROLIFIC_COMPLETE = "https://app.prolific.com/submissions/complete"


def _valid_id(value: str | None, name: str) -> str:
    if not value or not ID_RE.fullmatch(value):
        abort(400, f"missing or invalid {name}")
    return value


def _submit_host_ok(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    origin = f"{parts.scheme}://{parts.netloc}"
    return origin in current_settings().mturk_submit_hosts and parts.path in ("", "/")


def _worker_from(args) -> Worker | None:
    """The platform identity in ``args`` (query or form); None for local mode without an id."""
    if "assignmentId" in args:
        submit = args.get("turkSubmitTo", "")
        if not _submit_host_ok(submit):
            abort(400, "turkSubmitTo is not an allowed MTurk host")
        return Worker(
            "mturk",
            _valid_id(args.get("workerId"), "workerId"),
            mturk_assignment_id=_valid_id(args.get("assignmentId"), "assignmentId"),
            mturk_hit_id=_valid_id(args.get("hitId"), "hitId"),
            turk_submit_to=submit.rstrip("/"),
        )
    if "PROLIFIC_PID" in args:
        return Worker(
            "prolific",
            _valid_id(args.get("PROLIFIC_PID"), "PROLIFIC_PID"),
            study_id=_valid_id(args.get("STUDY_ID"), "STUDY_ID"),
            session_id=_valid_id(args.get("SESSION_ID"), "SESSION_ID"),
        )
    if args.get("participant_id"):
        return Worker("local", _valid_id(args.get("participant_id").strip(), "participant id"))
    return None


def _message(title: str, text: str, status: int = 200, **extra):
    return render_template("study/message.html", title=title, text=text, **extra), status


@bp.errorhandler(StudyError)
def _study_error(exc: StudyError):
    if request.path.startswith("/api/"):
        resp = make_response({"error": exc.message}, exc.status)
    else:
        resp = make_response(_message("Sorry", exc.message, exc.status))
    if exc.retry_after is not None:
        resp.headers["Retry-After"] = str(int(exc.retry_after + 0.999))
    return resp


def _device_refused():
    """The clear page for a phone or tablet when the study admits computers only."""
    return _message(
        "Please use a computer",
        "This study shows images at their exact pixel size and needs a computer (desktop "
        "or laptop) with a keyboard or mouse; phones and tablets cannot take part. Please "
        "open the same link on a computer.",
        403,
    )


def _mobile(form=None) -> bool:
    touch = form is not None and form.get("device") == "touch"
    return touch or is_mobile_user_agent(request.headers.get("User-Agent"))


@bp.get("/")
def consent():
    """Consent and instructions; the start form carries the platform ids as hidden fields."""
    args = request.args
    if not current_settings().allow_mobile and _mobile():
        return _device_refused()
    if args.get("assignmentId") == MTURK_PREVIEW:
        return render_template("study/consent.html", preview=True, hidden={}, local=False)
    worker = _worker_from(args)
    hidden = {}
    if worker is not None and worker.platform != "local":
        keys = (
            ("assignmentId", "hitId", "workerId", "turkSubmitTo")
            if worker.platform == "mturk"
            else ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")
        )
        hidden = {k: args[k] for k in keys}
    resp = make_response(
        render_template(
            "study/consent.html",
            preview=False,
            hidden=hidden,
            local=worker is None or worker.platform == "local",
            participant_id=args.get("participant_id", ""),
            csrf=csrf_token(),
        )
    )
    leases.set_session_cookie(resp, current_settings())
    return resp


@bp.post("/start")
def start():
    """Consent given: allocate a HIT (inside one transaction, with a lease) and redirect to it."""
    check_csrf(request.form.get("csrf"))
    if request.form.get("consent") != "yes":
        abort(400, "consent is required to take part")
    worker = _worker_from(request.form)
    if worker is None:
        abort(400, "missing participant id")
    settings, factory = current_settings(), None
    if not settings.allow_mobile and _mobile(request.form):
        return _device_refused()
    if settings.design == "asap":  # numpy/scipy are imported only for active sampling
        from .active import hit_factory

        factory = hit_factory()
    client = leases.client_of_request(settings)
    try:
        token = allocate(get_engine(), worker, settings, hit_factory=factory, client=client)
    except AlreadyDone as exc:
        return redirect(url_for("participant.done", token=exc.token), code=303)
    return redirect(url_for("participant.hit", token=token), code=303)


def _trial_urls(token: str, trial_ids: list[int]) -> list[dict]:
    """Image URLs of each trial (built from one ``url_for``: 30 calls cost ~2 ms per page)."""
    prefix = url_for("participant.image", token=token, trial_id=0, slot="x")[: -len("/0/x")]
    return [
        {slot: f"{prefix}/{tid}/{slot}" for slot in ("reference", "left", "right")}
        for tid in trial_ids
    ]


@bp.get("/hit/<token>")
def hit(token: str):
    """The trial page; a reload resumes at the first unanswered trial and renews the lease."""
    settings = current_settings()
    state = load_assignment(
        get_engine(),
        token,
        lease_seconds=settings.lease_seconds,
        start_lease_seconds=settings.first_lease_seconds,
    )
    a = state["assignment"]
    if a["status"] == "completed":
        return redirect(url_for("participant.done", token=token))
    if not state["leased"]:
        return _message(
            "This HIT has expired",
            "You were away longer than the time limit, so these trials went to "
            "another participant. You may start again from the study link.",
            410,
        )
    urls = _trial_urls(token, [t["id"] for t in state["trials"]])
    sizes = _image_sizes()
    trials = []
    for t, u in zip(state["trials"], urls):
        trial = {"id": t["id"], "answered": t["id"] in state["answered"], "urls": u,
                 "size": sizes[t["image_id"]]}  # fmt: skip
        if t["kind"] == "practice":  # (labelled on screen; checks are never marked)
            trial["practice"] = True
        trials.append(trial)
    s = settings
    data = {
        "trials": trials,
        "answer_url": url_for("participant.answer", token=token),
        "view_url": url_for("participant.page_view", token=token),
        "done_url": url_for("participant.done", token=token),
        "display": {
            "layout": s.layout,
            "fit": s.fit,
            "flicker_ms": s.flicker_ms,
            "allow_tie": s.allow_tie,
            "allow_mobile": s.allow_mobile,
        },
        "heartbeat_url": url_for("participant.heartbeat", token=token),
        "heartbeat_ms": 1000 * settings.heartbeat_seconds,
    }
    return render_template(
        "study/hit.html",
        data=json.dumps(data).replace("<", "\\u003c"),
        total=len(trials),
    )


def _image_sizes() -> dict[str, list[int]]:
    """Image id -> [width, height] of the current experiment (computed once per app)."""
    from flask import current_app

    sizes = current_app.extensions.get("study_image_sizes")
    if sizes is None:
        exp = current_experiment()
        sizes = current_app.extensions["study_image_sizes"] = {
            e.id: [e.width, e.height] for e in exp.images
        }
    return sizes


@bp.post("/api/answer/<token>")
def answer(token: str):
    """Store one answer (JSON); see ``store.record_answer`` for the rules and status codes."""
    require_json_api()
    payload = request.get_json(silent=True)
    sizes = _image_sizes()
    result = record_answer(
        get_engine(),
        token,
        payload,
        current_settings(),
        image_size=lambda image_id: sizes.get(image_id),
        user_agent=request.headers.get("User-Agent"),
    )
    if result["done"]:
        result["next"] = url_for("participant.done", token=token)
    return result


@bp.post("/api/heartbeat/<token>")
def heartbeat(token: str):
    """The open trial page renews its HIT's lease (JSON; 410 when the HIT is no longer its)."""
    require_json_api()
    return leases.heartbeat(get_engine(), token, current_settings())


@bp.post("/api/view/<token>")
def page_view(token: str):
    """Store the HIT page's report of the screen and of what it could show (JSON)."""
    require_json_api()
    if not TOKEN_RE.fullmatch(token):
        abort(404)
    try:
        row = parse_page_view(request.get_json(silent=True), request.headers.get("User-Agent"))
    except ViewError as exc:
        return {"error": str(exc)}, 400
    return {"stored": record_page_view(get_engine(), token, row)}


@bp.get("/img/<token>/<int:trial_id>/<slot>")
def image(token: str, trial_id: int, slot: str):
    """The image shown in ``slot`` of a trial of this participant's HIT (never a path).

    Every image goes out the same way (PNG bytes, the same headers, no file dates), and the
    reference side of an attention check is a pixel-different twin of the reference
    (:mod:`study.images`), so neither the URL, the headers nor the bytes give a check away."""
    if slot not in ("reference", "left", "right") or not TOKEN_RE.fullmatch(token):
        abort(404)
    if trial_id > MAX_ID:  # (the database's integer range: larger ids cannot exist)
        abort(404)
    trial = serve_trial(get_engine(), token, trial_id, slot)
    if trial is None:
        abort(404)
    exp = current_experiment()
    entry = exp.image(trial.image_id)
    cond = {"reference": None, "left": trial.left, "right": trial.right}[slot]
    if cond == CHECK_DISTORTED:
        from .images import distorted_png

        body = distorted_png(entry.reference)
    elif cond == CHECK_REFERENCE:
        from .images import reference_twin_png

        body = reference_twin_png(entry.reference)
    else:
        body = exp.path_for(entry.id, cond or CHECK_REFERENCE).read_bytes()
    resp = Response(body, mimetype="image/png")
    resp.headers["Cache-Control"] = "private, max-age=3600"
    return resp


@bp.get("/done/<token>")
def done(token: str):
    """Completion, shown only when every answer of the HIT is stored."""
    state = load_assignment(get_engine(), token)
    a = state["assignment"]
    if a["status"] != "completed":
        return redirect(url_for("participant.hit", token=token))
    if a["platform"] == "prolific":
        code = current_settings().prolific_completion_code
        if not code:
            return _message(
                "Thank you!",
                "All answers are saved. The study has no Prolific "
                "completion code configured; please contact the researcher.",
            )
        return redirect(f"{PROLIFIC_COMPLETE}?{urlencode({'cc': code})}")
    if a["platform"] == "mturk":
        return render_template(
            "study/done.html",
            mturk=True,
            action=a["turk_submit_to"] + "/mturk/externalSubmit",
            fields={"assignmentId": a["mturk_assignment_id"], "completion": token},
        )
    return render_template("study/done.html", mturk=False)
