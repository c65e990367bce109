"""Request hygiene: strict same-origin checks, CSRF tokens, headers and reverse-proxy support.

- Every state-changing request (POST/PUT/PATCH/DELETE) whose ``Origin`` (or, without one,
  ``Referer``) names another origin is refused with 403.
- HTML forms carry a signed, time-limited CSRF token (``csrf_token()``/``check_csrf()``); the
  JSON answer API requires ``Content-Type: application/json`` and the ``X-Requested-With``
  header, which a cross-site page cannot send without a CORS preflight we never grant.
- Behind ``PROXY_FIX`` trusted proxies, werkzeug's ``ProxyFix`` applies X-Forwarded-For/Proto/
  Host, so origin checks and redirects use the public URL.
- Responses get ``nosniff``, ``Referrer-Policy: same-origin`` (participant links hold a secret
  token, so it never leaves the site; ``no-referrer`` would make browsers send ``Origin: null``) and a
  Content-Security-Policy whose ``frame-ancestors`` admits the MTurk hosts only.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from flask import abort, current_app, request, session
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadSignature, URLSafeTimedSerializer

from .settings import current_settings

__all__ = ["check_csrf", "csrf_token", "init_app", "require_json_api"]

CSRF_MAX_AGE = 24 * 3600


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_settings().secret_key, salt="mdf-study-csrf")


def csrf_token(bound: str = "form") -> str:
    """A signed CSRF token; ``bound`` ties it to a purpose (the admin binds it to the session)."""
    return _serializer().dumps(bound)


def check_csrf(value: str | None, bound: str = "form") -> None:
    """Abort with 403 unless ``value`` is a valid, unexpired CSRF token for ``bound``."""
    if not value:
        abort(403, "missing CSRF token")
    try:
        got = _serializer().loads(value, max_age=CSRF_MAX_AGE)
    except BadSignature:
        abort(403, "invalid or expired CSRF token")
    if not hmac.compare_digest(str(got), bound):
        abort(403, "CSRF token for another purpose")


def admin_binding() -> str:
    """The CSRF binding of the current admin session (a random value kept in the session)."""
    import secrets

    if "admin_nonce" not in session:
        session["admin_nonce"] = secrets.token_urlsafe(16)
    return "admin:" + session["admin_nonce"]


def require_json_api() -> None:
    """Abort with 415/403 unless the request is a same-origin JSON API call."""
    if not request.is_json:
        abort(415, "expected Content-Type: application/json")
    if request.headers.get("X-Requested-With") != "mdf-study":
        abort(403, "missing X-Requested-With header")


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def _same_origin_guard():
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    expected = f"{request.scheme}://{request.host}".lower()  # this site's origin
    origin = request.headers.get("Origin")
    if origin is not None:
        if origin.lower() != expected:
            abort(403, "cross-origin request refused")
        return
    referer = request.headers.get("Referer")
    if referer and _origin_of(referer) != expected:
        abort(403, "cross-origin request refused")
    return


def _csp(hosts) -> str:
    allowed = " ".join(["'self'", *hosts])
    return (
        f"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        f"frame-ancestors {allowed}; form-action {allowed}; base-uri 'none'"
    )


def _headers(resp):
    headers = resp.headers
    for name, value in current_app.extensions["study_security_headers"]:
        if name not in headers:
            headers[name] = value
    return resp


class _LazySessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, opened only when the request carries a session cookie
    (participants never do: only the admin logs in), so the participant routes skip building
    a signing serializer per request."""

    def open_session(self, app, request):
        if app.config["SESSION_COOKIE_NAME"] not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)


def init_app(app, settings) -> None:
    """Install the proxy fix, the same-origin guard and the response headers on ``app``
    (``settings``: the app's ``Settings``; PROXY_FIX, MTURK_SUBMIT_HOSTS)."""
    n = settings.proxy_fix
    if n:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)
        app.config.setdefault("PREFERRED_URL_SCHEME", "https")
    app.extensions["study_security_headers"] = (
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "same-origin"),
        ("Content-Security-Policy", _csp(settings.mturk_submit_hosts)),
    )
    app.session_interface = _LazySessionInterface()
    app.before_request(_same_origin_guard)
    app.after_request(_headers)
