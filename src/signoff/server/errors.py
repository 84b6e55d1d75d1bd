"""The one table from errors to HTTP statuses: bad input is a 4xx with a reason, never a 500."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from signoff.errors import (
    ConflictError,
    IntegrityError,
    NotATargetError,
    NotFoundError,
    ScopeError,
    SignoffError,
    SpecError,
)

__all__ = ["install_error_handlers", "status_of"]


def status_of(exc: SignoffError) -> int:
    """The HTTP status for a signoff error."""
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, NotATargetError | ScopeError):
        return 403
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, SpecError | IntegrityError):
        return 422
    return 400


def install_error_handlers(app: FastAPI) -> None:
    """JSON errors with a reason for every signoff error and every request validation error."""

    @app.exception_handler(SignoffError)
    async def _signoff_error(_request: Request, exc: SignoffError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        reasons = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in exc.errors()
        ]
        return JSONResponse({"detail": "; ".join(reasons) or "invalid request"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
