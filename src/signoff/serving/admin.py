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
from pathlib import Path
from typing import Annotated

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


_Shares = TypeAdapter(dict[Annotated[str, Field(min_length=1, max_length=200)], StrictInt])


def add_admin_routes(app: FastAPI, router: Router, endpoint: str, token: str | None) -> None:
    """Mount ``/admin/*`` on the endpoint app."""
    lock = asyncio.Lock()
    prefix = f"signoff.serving[{endpoint}]"

    def refused(request: Request) -> Response | None:
        if token is None:
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
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            return _error(403, "wrong admin token")
        return None

    @app.post("/admin/load")
    async def load(request: Request) -> Response:
        denied = refused(request)
        if denied is not None:
            return denied
        try:
            body = _LoadBody.model_validate(await read_json(request, _ADMIN_BODY_BYTES))
        except BadRequestError as exc:
            return _error(exc.status, exc.detail)
        except ValidationError as exc:
            return _error(422, validation_reason(exc))
        async with lock:
            existing = router.get(body.model_version)
            if existing is not None:
                if existing.digest != body.digest:
                    return _error(
                        409, f"version {body.model_version} is loaded with another digest"
                    )
                return JSONResponse({"loaded": body.model_version, "already_loaded": True})
            folder = Path(body.model_dir)
            if not folder.is_absolute() or not folder.is_dir():
                return _error(422, f"model_dir {body.model_dir} is not an absolute folder path")
            started = time.perf_counter()
            try:
                version = await asyncio.to_thread(_load, folder, body.digest, body.model_version)
            except _LoadError as exc:
                print(f"{prefix}: not loaded: {exc.detail}", file=sys.stderr, flush=True)
                return _error(exc.status, exc.detail)
            router.add(version)
        seconds = time.perf_counter() - started
        print(f"{prefix}: loaded {body.model_version} in {seconds:.2f}s", file=sys.stderr)
        return JSONResponse({"loaded": body.model_version, "seconds": seconds})

    @app.post("/admin/traffic")
    async def traffic(request: Request) -> Response:
        denied = refused(request)
        if denied is not None:
            return denied
        try:
            shares = _Shares.validate_python(await read_json(request, _ADMIN_BODY_BYTES))
        except BadRequestError as exc:
            return _error(exc.status, exc.detail)
        except ValidationError as exc:
            return _error(422, validation_reason(exc, 'expected {"<model version>": percent, ...}'))
        async with lock:
            try:
                router.set_traffic(shares)
            except TrafficError as exc:
                return _error(exc.status, str(exc))
            now = router.shares()
        split = ", ".join(f"{k}={v}%" for k, v in now.items() if v)
        print(f"{prefix}: traffic {split}", file=sys.stderr, flush=True)
        return JSONResponse({"traffic": {k: v for k, v in now.items() if v}})

    @app.post("/admin/unload")
    async def unload(request: Request) -> Response:
        denied = refused(request)
        if denied is not None:
            return denied
        try:
            body = _UnloadBody.model_validate(await read_json(request, _ADMIN_BODY_BYTES))
        except BadRequestError as exc:
            return _error(exc.status, exc.detail)
        except ValidationError as exc:
            return _error(422, validation_reason(exc))
        async with lock:
            version = router.get(body.model_version)
            if version is None:
                return _error(404, f"version {body.model_version} is not loaded")
            if router.shares().get(body.model_version, 0) > 0:
                return _error(409, f"version {body.model_version} still gets traffic")
            drained = await _drain(version)
            router.remove(body.model_version)
        print(f"{prefix}: unloaded {body.model_version}", file=sys.stderr, flush=True)
        return JSONResponse({"unloaded": body.model_version, "drained": drained})

    @app.get("/admin/state")
    async def state(request: Request) -> Response:
        denied = refused(request)
        if denied is not None:
            return denied
        shares = router.shares()
        return JSONResponse(
            {
                "endpoint": endpoint,
                "primary": router.primary.label,
                "traffic": {k: v for k, v in shares.items() if v},
                "versions": router.state(),
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
