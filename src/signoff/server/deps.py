"""Request dependencies: the wired App, the worker, and API-token authentication."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from signoff.bootstrap import App
from signoff.server.tokens import Principal, verify_token
from signoff.server.worker import Worker

__all__ = ["AppDep", "PrincipalDep", "get_app", "require_token"]


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
