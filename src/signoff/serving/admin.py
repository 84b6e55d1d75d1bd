"""The admin API of an endpoint process: load a version beside the others, split traffic, unload.

Every call needs ``Authorization: Bearer <token>`` (401 without, 403 with a wrong one) and
comes from loopback; without a configured token the API is off (403). Bodies are checked
before anything changes: a bad one is a 4xx with a reason, never a 500. Changes are
serialized by one lock; serving never waits for it (loading runs in a worker thread, and a
traffic switch is a reference assignment).

- ``POST /admin/load`` ``{"model_dir", "digest", "model_version"}``: digest check, load,
  warm-up; the version is then held with no traffic. 409 digest mismatch or a label loaded
  with another digest, 422 a folder that cannot be loaded or fails its warm-up.
- ``POST /admin/traffic`` ``{"<version>": share, ...}``: percent per loaded version, adding
  up to 100; versions not named get none. One atomic switch.
- ``POST /admin/unload`` ``{"model_version"}``: a version without traffic is drained (its
  in-flight requests finish) and forgotten.
- ``GET /admin/state``: the versions, their shares and their request and error counts.
"""

from __future__ import annotations

import asyncio
import hmac
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, TypeAdapter, ValidationError

from signoff.errors import IntegrityError
from signoff.registry.flavors import load_model
from signoff.serving.bodies import BadRequestError, read_json, validation_reason
from signoff.serving.versions import Router, ServedVersion, TrafficError, warm_up

__all__ = ["DRAIN_SECONDS", "add_admin_routes"]

DRAIN_SECONDS = 30.0  # the longest an unload waits for the version's in-flight requests
_ADMIN_BODY_BYTES = 64 * 1024
_LOOPBACK = frozenset({"127.0.0.1", "::1"})


class _LoadBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, protected_namespaces=())

    model_dir: Annotated[str, Field(min_length=1, max_length=4096)]
    digest: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    model_version: Annotated[str, Field(min_length=1, max_length=200)]


class _UnloadBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, protected_namespaces=())

    model_version: Annotated[str, Field(min_length=1, max_length=200)]


_Body = TypeVar("_Body")

_Shares = TypeAdapter(dict[Annotated[str, Field(min_length=1, max_length=200)], StrictInt])


def add_admin_routes(app: FastAPI, router: Router, endpoint: str, token: str | None) -> None:
    """Mount ``/admin/*`` on the endpoint app."""
    routes = _AdminRoutes(router, endpoint, token)
    app.add_api_route("/admin/load", routes.load, methods=["POST"])
    app.add_api_route("/admin/traffic", routes.traffic, methods=["POST"])
    app.add_api_route("/admin/unload", routes.unload, methods=["POST"])
    app.add_api_route("/admin/state", routes.state, methods=["GET"])


class _AdminRoutes:
    """The admin routes of one endpoint process; one lock serializes their changes."""

    def __init__(self, router: Router, endpoint: str, token: str | None) -> None:
        self.router = router
        self.endpoint = endpoint
        self.token = token
        self.lock = asyncio.Lock()
        self.prefix = f"signoff.serving[{endpoint}]"

    def refused(self, request: Request) -> Response | None:
        """Why this request may not use the admin API (None: it may)."""
        if self.token is None:
            return _error(403, "the admin API is off: this endpoint has no admin token")
        client = request.client
        if client is None or client.host not in _LOOPBACK:
            return _error(403, "the admin API answers loopback clients only")
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            response = _error(401, "missing bearer token")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        if not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            return _error(403, "wrong admin token")
        return None

    async def _body(
        self, request: Request, parse: Callable[[object], _Body], hint: str | None = None
    ) -> _Body | Response:
        """The checked body of an allowed request, or the answer that refuses it."""
        denied = self.refused(request)
        if denied is not None:
            return denied
        try:
            return parse(await read_json(request, _ADMIN_BODY_BYTES))
        except BadRequestError as exc:
            return _error(exc.status, exc.detail)
        except ValidationError as exc:
            return _error(422, validation_reason(exc, hint))

    async def load(self, request: Request) -> Response:
        body = await self._body(request, _LoadBody.model_validate)
        if isinstance(body, Response):
            return body
        async with self.lock:
            seconds = await self._load_new(body)
        if isinstance(seconds, Response):
            return seconds
        print(f"{self.prefix}: loaded {body.model_version} in {seconds:.2f}s", file=sys.stderr)
        return JSONResponse({"loaded": body.model_version, "seconds": seconds})

    async def _load_new(self, body: _LoadBody) -> Response | float:
        """Load the version (under the lock): the seconds it took, or the answer when it is
        not loaded anew."""
        existing = self.router.get(body.model_version)
        if existing is not None:
            if existing.digest != body.digest:
                return _error(409, f"version {body.model_version} is loaded with another digest")
            return JSONResponse({"loaded": body.model_version, "already_loaded": True})
        folder = Path(body.model_dir)
        if not folder.is_absolute() or not folder.is_dir():
            return _error(422, f"model_dir {body.model_dir} is not an absolute folder path")
        started = time.perf_counter()
        try:
            version = await asyncio.to_thread(_load, folder, body.digest, body.model_version)
        except _LoadError as exc:
            print(f"{self.prefix}: not loaded: {exc.detail}", file=sys.stderr, flush=True)
            return _error(exc.status, exc.detail)
        self.router.add(version)
        return time.perf_counter() - started

    async def traffic(self, request: Request) -> Response:
        hint = 'expected {"<model version>": percent, ...}'
        shares = await self._body(request, _Shares.validate_python, hint)
        if isinstance(shares, Response):
            return shares
        async with self.lock:
            try:
                self.router.set_traffic(shares)
            except TrafficError as exc:
                return _error(exc.status, str(exc))
            now = self.router.shares()
        split = ", ".join(f"{k}={v}%" for k, v in now.items() if v)
        print(f"{self.prefix}: traffic {split}", file=sys.stderr, flush=True)
        return JSONResponse({"traffic": {k: v for k, v in now.items() if v}})

    async def unload(self, request: Request) -> Response:
        body = await self._body(request, _UnloadBody.model_validate)
        if isinstance(body, Response):
            return body
        async with self.lock:
            version = self.router.get(body.model_version)
            if version is None:
                return _error(404, f"version {body.model_version} is not loaded")
            if self.router.shares().get(body.model_version, 0) > 0:
                return _error(409, f"version {body.model_version} still gets traffic")
            drained = await _drain(version)
            self.router.remove(body.model_version)
        print(f"{self.prefix}: unloaded {body.model_version}", file=sys.stderr, flush=True)
        return JSONResponse({"unloaded": body.model_version, "drained": drained})

    async def state(self, request: Request) -> Response:
        denied = self.refused(request)
        if denied is not None:
            return denied
        shares = self.router.shares()
        return JSONResponse(
            {
                "endpoint": self.endpoint,
                "primary": self.router.primary.label,
                "traffic": {k: v for k, v in shares.items() if v},
                "versions": self.router.state(),
            }
        )


class _LoadError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _load(folder: Path, digest: str, label: str) -> ServedVersion:
    """Digest check, load and warm-up, each failure with its own reason (worker thread)."""
    try:
        model = load_model(folder, expected_digest=digest)
    except IntegrityError as exc:
        raise _LoadError(409, f"refusing {label}: {exc}") from None
    except Exception as exc:  # any failure of a model file is one line for the caller
        raise _LoadError(422, f"cannot load {label}: {exc}") from None
    try:
        warm_up(model)
    except Exception as exc:
        raise _LoadError(
            422, f"{label} failed its warm-up prediction: {type(exc).__name__}: {exc}"
        ) from None
    return ServedVersion(label=label, digest=digest, model=model, model_dir=str(folder))


async def _drain(version: ServedVersion) -> bool:
    """Wait until no request holds ``version`` (it gets no new ones); False after the limit."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while version.in_flight > 0:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)
