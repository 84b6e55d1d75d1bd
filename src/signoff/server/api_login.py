"""Signing in from the command line: a name and password for a token, and signing out.

``POST /api/v1/login`` is the only route without a Bearer token. It counts failed attempts
like the web's sign-in form (the same store counters, so the two limits are one), answers
429 past the limit without checking the password, and issues a token whose scopes are
bounded by the user's roles. ``POST /api/v1/logout`` revokes the token that calls it.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response

from signoff.server.api_access import ERRORS, TOO_LARGE, BoundedRoute, TokenDep
from signoff.server.auth import FAILURE_WINDOW, MAX_FAILURES_PER_CLIENT, MAX_FAILURES_PER_USER
from signoff.server.deps import AppDep
from signoff.server.passwords import verify_password
from signoff.server.schemas import ErrorOut, LoginIn, LoginOut
from signoff.server.tokens import issue_token

__all__ = ["router"]

router = APIRouter(tags=["users"], route_class=BoundedRoute)

_REFUSED: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "wrong name or password"},
    403: {"model": ErrorOut, "description": "a scope the user's roles do not allow"},
    422: {"model": ErrorOut, "description": "the request is malformed"},
    429: {"model": ErrorOut, "description": "too many failed sign-ins; wait"},
}


@router.post("/login", responses={**_REFUSED, **TOO_LARGE})
def login(body: LoginIn, request: Request, app: AppDep) -> LoginOut:
    """Check the password (argon2id) and issue a token for the command line."""
    store = app.store
    now = app.engine.clock.now()
    client = request.client.host if request.client else "unknown"
    by_user, by_client = store.count_login_failures(
        user=body.name, client=client, since=now - FAILURE_WINDOW
    )
    if by_user >= MAX_FAILURES_PER_USER or by_client >= MAX_FAILURES_PER_CLIENT:
        raise HTTPException(
            429,
            f"too many failed sign-ins; wait {FAILURE_WINDOW // 60} minutes",
            headers={"Retry-After": str(FAILURE_WINDOW)},
        )
    user = store.get_user(body.name)
    good = verify_password(store.password_hash(body.name) if user else None, body.password)
    if user is None or not user.active or not good:
        store.add_login_failure(body.name, client, now, forget_before=now - 86400)
        raise HTTPException(401, "wrong name or password")
    store.clear_login_failures(user.name)
    ttl = body.days * 86400
    token = issue_token(store, user.name, scopes=body.scopes or ["*"], now=now, ttl_seconds=ttl)
    scopes = store.api_token(token.split("_")[1])
    return LoginOut(
        user=user.name,
        token=token,
        scopes=list(scopes["scopes"]) if scopes else [],
        expires_at=now + ttl,
    )


@router.post("/logout", status_code=204, responses=ERRORS)
def logout(request: Request, app: AppDep, _who: TokenDep) -> Response:
    """Revoke the token this request carries."""
    token = request.headers.get("authorization", "").partition(" ")[2].strip()
    app.store.revoke_api_token(token.split("_")[1], app.engine.clock.now())
    return Response(status_code=204)
