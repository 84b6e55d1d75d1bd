"""Request dependencies: the wired App, the worker, API tokens, and web sessions."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Form, HTTPException, Request

from signoff.bootstrap import App
from signoff.server.auth import SignedIn, check_csrf, signed_in
from signoff.server.tokens import Principal, verify_token
from signoff.server.ui.layout import PageError
from signoff.server.worker import Worker

__all__ = [
    "AdminDep",
    "AppDep",
    "EditorDep",
    "FormDep",
    "PrincipalDep",
    "SignedInDep",
    "WorkerDep",
    "get_app",
    "require_admin",
    "require_editor",
    "require_form",
    "require_signed_in",
    "require_token",
]


def get_app(request: Request) -> App:
    app: App = request.app.state.app
    return app


def get_worker(request: Request) -> Worker | None:
    worker: Worker | None = request.app.state.worker
    return worker


def require_token(request: Request) -> Principal:
    """A valid ``Authorization: Bearer`` token; tokens in URLs are never accepted."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "an API token is needed: Authorization: Bearer <token>")
    app = get_app(request)
    principal = verify_token(app.store, token.strip(), now=app.engine.clock.now())
    if principal is None:
        raise HTTPException(401, "the API token is not valid (unknown, expired or revoked)")
    return principal


AppDep = Annotated[App, Depends(get_app)]
WorkerDep = Annotated[Worker | None, Depends(get_worker)]
PrincipalDep = Annotated[Principal, Depends(require_token)]


def require_signed_in(request: Request) -> SignedIn:
    """A live web session (the cookie only); a page without one sends the browser to login."""
    who = signed_in(request)
    if who is None:
        raise PageError(401, "Sign in first", "Your session ended; sign in again.", login=True)
    request.state.signed_in = who
    return who


SignedInDep = Annotated[SignedIn, Depends(require_signed_in)]


def require_form(who: SignedInDep, csrf: Annotated[str, Form(max_length=200)] = "") -> SignedIn:
    """A signed-in form POST carrying its session's CSRF value; anything else is refused."""
    if not check_csrf(who.csrf, csrf):
        raise PageError(
            403,
            "Not done",
            "The form's security check failed: it was not sent from a signoff page of this "
            "session. Reload the page and try again.",
        )
    return who


FormDep = Annotated[SignedIn, Depends(require_form)]


def require_editor(who: SignedInDep) -> SignedIn:
    """A signed-in editor (or admin): may start and cancel runs."""
    if not who.may_edit:
        raise PageError(403, "Not allowed", f"{who.name} is not an editor (roles: {_roles(who)}).")
    return who


def require_admin(who: SignedInDep) -> SignedIn:
    """A signed-in admin: may manage users and read the settings."""
    if not who.is_admin:
        raise PageError(403, "Not allowed", f"{who.name} is not an admin (roles: {_roles(who)}).")
    return who


def _roles(who: SignedIn) -> str:
    return ", ".join(who.user.roles) or "none"


EditorDep = Annotated[SignedIn, Depends(require_editor)]
AdminDep = Annotated[SignedIn, Depends(require_admin)]
