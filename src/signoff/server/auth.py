"""Web sign-in: sessions, login and logout, CSRF values for forms, the failed-login limit, roles.

- A session is a random id in an ``HttpOnly``, ``SameSite=Lax`` cookie (``Secure`` when the
  base URL is https). The store keeps only the id's sha256, who it is and when it was last
  seen: it ends after ``IDLE_SECONDS`` without a request, ``MAX_SECONDS`` after sign-in, at
  logout (the row is deleted), and when the user is deactivated.
- Signing in always makes a new id; whatever session cookie the browser had is ended, never
  promoted, so a cookie planted before login is useless (no session fixation).
- Every form that changes something carries a CSRF value: an HMAC of the session id with the
  server's secret, so it is bound to the session and needs no storage. The login form, which
  has no session yet, binds its value to a short-lived cookie of its own.
- Failed logins are counted in the store per user name and per client address over
  ``FAILURE_WINDOW`` seconds; past the limit the login answers 429 without checking the
  password. Every server process reads the same counts.
- Roles: ``admin`` (users, settings; may do everything), ``editor`` (start and cancel runs),
  ``approver`` and ``viewer`` (read). Deciding a gate is not a role: the gate's policy
  decides, at decision time, in :func:`signoff.gates.decide.decide_gate`.

Nothing here logs a password, a session id, a CSRF value or a token.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from signoff.bootstrap import App
from signoff.bootstrap.wiring import secret_key
from signoff.gates.links import same_secret
from signoff.server.identity import SignedIn
from signoff.server.passwords import verify_password
from signoff.server.ui.layout import PageError, PageRoute, printable, safe_next, show

__all__ = [
    "FAILURE_WINDOW",
    "IDLE_SECONDS",
    "LOGIN_COOKIE",
    "MAX_FAILURES_PER_CLIENT",
    "MAX_FAILURES_PER_USER",
    "MAX_SECONDS",
    "ROLES",
    "SESSION_COOKIE",
    "SignedIn",
    "check_csrf",
    "router",
    "signed_in",
]

log = logging.getLogger("signoff.server.auth")

SESSION_COOKIE = "signoff_session"
LOGIN_COOKIE = "signoff_login"
IDLE_SECONDS = 12 * 3600
MAX_SECONDS = 7 * 86400
TOUCH_EVERY = 60.0  # seconds between writes of a session's last-seen time
FAILURE_WINDOW = 15 * 60
MAX_FAILURES_PER_USER = 5
# One address may be a whole office behind NAT, so it gets more room than one account.
MAX_FAILURES_PER_CLIENT = 20
ROLES = ("admin", "editor", "approver", "viewer")

router = APIRouter(route_class=PageRoute, include_in_schema=False)


# ------------------------------------------------------------------------ secrets
def _app(request: Request) -> App:
    app: App = request.app.state.app
    return app


def _secret(request: Request) -> bytes:
    key: bytes | None = getattr(request.app.state, "web_secret", None)
    if key is None:
        key = secret_key(_app(request).settings)
        request.app.state.web_secret = key
    return key


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _mac(secret: bytes, purpose: str, value: str) -> str:
    return hmac.new(secret, f"{purpose}\0{value}".encode(), hashlib.sha256).hexdigest()


def check_csrf(expected: str, given: str | None) -> bool:
    """Whether a form's CSRF value is the expected one (constant time, any text: 4xx, not 500)."""
    return same_secret(expected, given)


def _secure(app: App) -> bool:
    return app.settings.base_url.lower().startswith("https://")


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# ----------------------------------------------------------------------- sessions
def signed_in(request: Request) -> SignedIn | None:
    """The session of this request, if its cookie names a live one of an active user.

    Only the cookie counts: a session id in a URL or a header is never looked at.
    """
    sid = request.cookies.get(SESSION_COOKIE)
    if not sid or len(sid) > 200:
        return None
    app = _app(request)
    store = app.store
    id_hash = _digest(sid)
    session = store.web_session(id_hash)
    if session is None:
        return None
    now = app.engine.clock.now()
    if now - session.last_seen_at > IDLE_SECONDS or now - session.created_at > MAX_SECONDS:
        store.delete_web_session(id_hash)
        return None
    user = store.get_user(session.user)
    if user is None or not user.active:
        store.delete_web_session(id_hash)
        return None
    if now - session.last_seen_at > TOUCH_EVERY:
        store.touch_web_session(id_hash, now)
    return SignedIn(user=user, csrf=_mac(_secret(request), "csrf", sid), session_hash=id_hash)


def _start_session(request: Request, response: Response, user: str) -> None:
    """A brand-new session for ``user``; any session the browser brought along is ended."""
    app = _app(request)
    old = request.cookies.get(SESSION_COOKIE)
    if old and len(old) <= 200:
        app.store.delete_web_session(_digest(old))
    now = app.engine.clock.now()
    app.store.delete_web_sessions(idle_before=now - IDLE_SECONDS, created_before=now - MAX_SECONDS)
    sid = secrets.token_urlsafe(32)
    app.store.add_web_session(_digest(sid), user, at=now, client=_client(request))
    response.set_cookie(
        SESSION_COOKIE, sid, httponly=True, samesite="lax", secure=_secure(app), path="/"
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")


# ------------------------------------------------------------------- rate limiting
def _limited(app: App, user: str, client: str) -> bool:
    now = app.engine.clock.now()
    by_user, by_client = app.store.count_login_failures(
        user=user, client=client, since=now - FAILURE_WINDOW
    )
    return by_user >= MAX_FAILURES_PER_USER or by_client >= MAX_FAILURES_PER_CLIENT


# --------------------------------------------------------------------------- pages
def _login_form(
    request: Request,
    *,
    next_path: str,
    name: str = "",
    error: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    current: str | None = None,
) -> HTMLResponse:
    app = _app(request)
    cookie = request.cookies.get(LOGIN_COOKIE)
    if not cookie or len(cookie) > 100:
        cookie = secrets.token_urlsafe(24)
    response = show(
        "login.html",
        None,
        status=status,
        headers=headers,
        csrf=_mac(_secret(request), "login", cookie),
        next_path=next_path,
        name=name,
        error=error,
        current=current,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        cookie,
        httponly=True,
        samesite="strict",
        secure=_secure(app),
        path="/login",
        max_age=3600,
    )
    return response


@router.get("/login")
def login_page(request: Request, next: str = "/inbox") -> Response:
    """The sign-in form; signing in again (as someone else) ends the current session."""
    who = signed_in(request)
    return _login_form(
        request, next_path=safe_next(next), current=who.name if who is not None else None
    )


@router.post("/login")
def login(
    request: Request,
    name: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/inbox",
) -> Response:
    """Check the password (argon2id) and start a new session; failures are counted."""
    app = _app(request)
    target = safe_next(next)
    name = printable(name).strip()
    cookie = request.cookies.get(LOGIN_COOKIE) or ""
    if not cookie or not check_csrf(_mac(_secret(request), "login", cookie), csrf):
        return _login_form(
            request,
            next_path=target,
            name=name,
            error="The sign-in form expired or was not sent from this site; try again.",
            status=403,
        )
    client = _client(request)
    if _limited(app, name, client):
        minutes = FAILURE_WINDOW // 60
        log.warning("sign-in refused by the failed-login limit for %r from %s", name, client)
        return _login_form(
            request,
            next_path=target,
            name=name,
            error=f"Too many failed sign-ins for this account or from this address. "
            f"Wait {minutes} minutes, then try again.",
            status=429,
            headers={"Retry-After": str(FAILURE_WINDOW)},
        )
    user = app.store.get_user(name) if name else None
    good = verify_password(app.store.password_hash(name) if user else None, password)
    if user is None or not user.active or not good:
        now = app.engine.clock.now()
        app.store.add_login_failure(name or "-", client, now, forget_before=now - 86400)
        log.info("failed sign-in for %r from %s", name, client)
        return _login_form(
            request, next_path=target, name=name, error="Wrong name or password.", status=401
        )
    app.store.clear_login_failures(user.name, before=app.engine.clock.now() - FAILURE_WINDOW)
    response = RedirectResponse(target, 303)
    _start_session(request, response, user.name)
    log.info("%s signed in from %s", user.name, client)
    return response


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
    """End the session on the server (its cookie is useless afterwards) and forget the cookie."""
    who = signed_in(request)
    if who is not None:
        if not check_csrf(who.csrf, csrf):
            raise PageError(403, "Not signed out", "The form's security check failed.")
        _app(request).store.delete_web_session(who.session_hash)
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
