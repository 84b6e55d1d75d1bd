"""Who may call the REST API and with what: token scopes, body size, identifiers in paths.

Every route of ``/api/v1`` takes a Bearer token (``deps.require_token``; a token in a URL is
never read) and one scope: ``read`` for GETs, ``run`` to start and cancel runs, ``decide``
for decisions, ``admin`` for users (and then the user must hold the ``admin`` role too).
Bodies over :data:`MAX_BODY_BYTES` are refused with 413 before they are read whole.
Malformed identifiers in paths answer 404 like unknown ones: they name nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Response, Security
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Receive

from signoff.bootstrap import App
from signoff.bootstrap.lookup import resolve_run
from signoff.domain.access import SCOPES as ACCESS_SCOPES
from signoff.domain.records import GateRecord, RunRecord
from signoff.errors import NotFoundError
from signoff.server.deps import AppDep, PrincipalDep
from signoff.server.schemas import ErrorOut
from signoff.server.tokens import Principal
from signoff.spec import MAX_FLOW_BYTES

__all__ = [
    "BAD_REQUEST",
    "CONFLICT",
    "ERRORS",
    "MAX_BODY_BYTES",
    "NOT_FOUND",
    "TEXT_ERRORS",
    "TOO_LARGE",
    "SCOPES",
    "AdminDep",
    "BoundedRoute",
    "DecideDep",
    "ReadDep",
    "RunScopeDep",
    "TokenDep",
    "checked_name",
    "gate_of",
    "run_of",
]

SCOPES = ACCESS_SCOPES
"""What a token may be allowed (bounded by its user's roles: :mod:`signoff.domain.access`)."""

MAX_BODY_BYTES = MAX_FLOW_BYTES
"""The largest request body the API reads: the flow-file limit (1 MiB)."""

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no token, or an unknown, expired or revoked one"},
    403: {"model": ErrorOut, "description": "the token lacks the scope (or the user the right)"},
    422: {"model": ErrorOut, "description": "the request is malformed"},
}
"""Answers every route may give."""

TEXT_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {
        "description": answer["description"],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
    }
    for code, answer in {**ERRORS, 404: {"description": "nothing by that name or id"}}.items()
}
"""The same answers for a route whose success is text (they stay JSON)."""

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "nothing by that name or id"}
}
TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorOut, "description": f"the body is over {MAX_BODY_BYTES} bytes"}
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorOut,
        "description": "the state does not allow it (already ended, already decided)",
    }
}
BAD_REQUEST: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "the request cannot be done as asked"}
}

_bearer = HTTPBearer(
    auto_error=False, description="an API token (`signoff users token NAME --scope ...`)"
)
_HEX_ID = re.compile(r"[0-9a-f]{1,32}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _too_large() -> JSONResponse:
    return JSONResponse(
        {"detail": f"the request body is larger than {MAX_BODY_BYTES} bytes"}, status_code=413
    )


def _capped(receive: Receive) -> Receive:
    """The request's receive channel, raising 413 once the body passes the limit."""
    seen = 0

    async def capped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > MAX_BODY_BYTES:
                raise HTTPException(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
        return message

    return capped


class BoundedRoute(APIRoute):
    """A route whose request body is capped: a declared or streamed excess answers 413."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            declared = request.headers.get("content-length")
            if declared is not None:
                if not declared.strip().isdigit():
                    return JSONResponse({"detail": "Content-Length is not a number"}, 400)
                if int(declared) > MAX_BODY_BYTES:
                    return _too_large()
            try:
                return await handler(Request(request.scope, _capped(request.receive)))
            except StarletteHTTPException as exc:
                # FastAPI answers bytes that are not UTF-8 with a bare 400 raised from the
                # decoding error; that error's type, not the 400's wording, says what it was.
                if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
                    raise HTTPException(422, "the body is not valid JSON (UTF-8 text)") from exc
                raise

        return bounded


def _scoped(scope: str, what: str) -> Callable[..., Principal]:
    def check(
        who: PrincipalDep,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> Principal:
        if scope not in who.scopes and "*" not in who.scopes:
            raise HTTPException(403, f"this token may not {what} (scope {scope!r} is missing)")
        return who

    check.__doc__ = f"A valid token with the {scope!r} scope."
    return check


def _admin(
    who: Annotated[Principal, Depends(_scoped("admin", "manage users"))], app: AppDep
) -> Principal:
    user = app.store.get_user(who.user)
    if user is None or "admin" not in user.roles:
        raise HTTPException(403, f"user {who.user} does not hold the admin role")
    return who


def _any_token(
    who: PrincipalDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Principal:
    """Any valid token, whatever its scopes."""
    return who


TokenDep = Annotated[Principal, Depends(_any_token)]
ReadDep = Annotated[Principal, Depends(_scoped("read", "read"))]
RunScopeDep = Annotated[Principal, Depends(_scoped("run", "start or cancel runs"))]
DecideDep = Annotated[Principal, Depends(_scoped("decide", "decide gates"))]
AdminDep = Annotated[Principal, Depends(_admin)]


def run_of(app: App, run_id: str) -> RunRecord:
    """The run with this id (or unique id prefix); anything else is a 404."""
    if not _HEX_ID.fullmatch(run_id):
        raise NotFoundError(f"no run {run_id!r}")
    return resolve_run(app.store, run_id)


def gate_of(app: App, gate_id: str) -> GateRecord:
    """The gate with this id; anything else is a 404."""
    if not _HEX_ID.fullmatch(gate_id):
        raise NotFoundError(f"no gate {gate_id!r}")
    try:
        return app.store.get_gate(gate_id)
    except NotFoundError as exc:
        raise NotFoundError(f"no gate {gate_id!r}") from exc


def checked_name(value: str, what: str) -> str:
    """A flow, model or endpoint name as given; one no store could hold is a 404."""
    if not value or len(value) > 200 or _CONTROL.search(value):
        raise NotFoundError(f"no {what} {value[:200]!r}")
    return value
