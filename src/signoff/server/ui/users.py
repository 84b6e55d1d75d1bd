"""Users (admins only): the list, adding a user with a role, deactivating and reactivating.

Deactivating a user ends their web sessions at once; their API tokens stop working too
(a token of an inactive user is refused). Admins cannot deactivate themselves, so a server
always keeps one admin who can undo a mistake.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Form, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from signoff.bootstrap import App
from signoff.domain.records import UserRecord
from signoff.errors import ConflictError, NotFoundError
from signoff.server.auth import ROLES, SignedIn
from signoff.server.deps import AdminDep, AppDep, FormDep
from signoff.server.passwords import hash_password
from signoff.server.ui.layout import PageError, PageRoute, show

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_EMAIL = re.compile(r"^[^@\s<>\x00-\x1f]{1,200}@[^@\s<>\x00-\x1f]{1,200}$")
MIN_PASSWORD = 10


def _page(
    app: App, who: SignedIn, *, status: int = 200, error: str | None = None, added: str = ""
) -> HTMLResponse:
    return show(
        "users.html",
        who,
        status=status,
        users=app.store.list_users(),
        groups=app.store.groups(),
        roles=ROLES,
        error=error,
        added=added,
        min_password=MIN_PASSWORD,
    )


@router.get("/users")
def users_page(app: AppDep, who: AdminDep, added: str = Query("", max_length=64)) -> HTMLResponse:
    """Every user with roles and state, and the form to add one."""
    return _page(app, who, added=added)


@router.post("/users")
def add_user(
    app: AppDep,
    who: FormDep,
    _admin: AdminDep,
    name: Annotated[str, Form(max_length=64)] = "",
    email: Annotated[str, Form(max_length=320)] = "",
    role: Annotated[str, Form(max_length=20)] = "approver",
    password: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Add a user with one role and, for the web UI, a password (hashed with argon2id)."""
    name, email = name.strip(), email.strip()
    problem = None
    if not _NAME.match(name):
        problem = "a name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    elif email and not _EMAIL.match(email):
        problem = f"{email!r} is not an e-mail address"
    elif role not in ROLES:
        problem = f"role must be one of {', '.join(ROLES)}"
    elif password and len(password) < MIN_PASSWORD:
        problem = f"a password has at least {MIN_PASSWORD} characters"
    if problem is not None:
        return _page(app, who, status=400, error=problem)
    record = UserRecord(
        name=name,
        email=email or None,
        roles=(role,),
        active=True,
        created_at=app.engine.clock.now(),
    )
    try:
        app.store.add_user(record, password_hash=hash_password(password) if password else None)
    except ConflictError as exc:
        return _page(app, who, status=409, error=str(exc))
    return RedirectResponse(f"/users?added={name}", 303)


def _set_active(app: App, who: SignedIn, name: str, active: bool) -> Response:
    if not _NAME.match(name) or app.store.get_user(name) is None:
        raise PageError(404, "Not found", f"no user {name[:200]!r}")
    if name == who.name and not active:
        raise PageError(400, "Not done", "you cannot deactivate yourself")
    try:
        app.store.update_user(name, active=active)
    except NotFoundError as exc:
        raise PageError(404, "Not found", str(exc)) from exc
    if not active:
        app.store.delete_web_sessions(user=name)
    return RedirectResponse("/users", 303)


@router.post("/users/{name}/deactivate")
def deactivate(name: str, app: AppDep, who: FormDep, _admin: AdminDep) -> Response:
    """Deactivate a user: they can no longer sign in, decide, or use their tokens."""
    return _set_active(app, who, name, False)


@router.post("/users/{name}/activate")
def activate(name: str, app: AppDep, who: FormDep, _admin: AdminDep) -> Response:
    """Let a deactivated user back in."""
    return _set_active(app, who, name, True)
