"""The HTTP surface of one model endpoint: predict, feedback, health, version, metrics, admin.

Every request body is parsed and checked before a model sees it: bad input gets a 4xx with
a one-line ``detail``, never a 500. A request picks its model version once, when it
arrives (by the traffic split), and is answered by that version to the end.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError

from signoff.errors import NotFoundError
from signoff.registry.flavors import LoadedModel, SignatureError
from signoff.serving.admin import add_admin_routes
from signoff.serving.bodies import (
    MAX_BODY_BYTES,
    MAX_ROWS,
    BadRequestError,
    read_json,
    read_rows,
    validation_reason,
)
from signoff.serving.metrics import LATENCY_BUCKETS, metrics_registry, render_metrics
from signoff.serving.predictions import PredictionLog
from signoff.serving.versions import Router, ServedVersion, warm_up

__all__ = [
    "LATENCY_BUCKETS",
    "MAX_BODY_BYTES",
    "MAX_ROWS",
    "create_app",
    "warm_up",
]

_JSON = "application/json"
_FEEDBACK_BODY_BYTES = 64 * 1024
_FAILURE_LOG_EVERY = 1000  # a failing model logs its first failure, then one line per 1000


class _Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    prediction_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    label: StrictBool | int | float | StrictStr


def create_app(
    name: str,
    model: LoadedModel,
    model_version: str,
    digest: str,
    *,
    model_dir: str | None = None,
    admin_token: str | None = None,
    prediction_log: PredictionLog | None = None,
) -> FastAPI:
    """Build the endpoint app around its first model; runs the warm-up prediction first.

    ``admin_token`` turns the ``/admin`` API on; ``prediction_log`` logs sampled requests
    (their answers then carry ``prediction_ids``).
    """
    warm_up(model)
    router = Router(ServedVersion(model_version, digest, model, model_dir))
    registry = metrics_registry(
        name, router.metrics_rows, prediction_log.counts if prediction_log is not None else None
    )
    app = FastAPI(
        title=f"signoff endpoint {name}",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        started = time.perf_counter()
        served = router.pick()
        served.in_flight += 1
        try:
            response = await _answer(request, name, served, started, prediction_log)
        finally:
            served.in_flight -= 1
        served.metrics.observe(response.status_code, time.perf_counter() - started)
        return response

    @app.post("/feedback")
    async def feedback(request: Request) -> Response:
        if prediction_log is None:
            return _error(404, "prediction logging is off on this endpoint: no prediction ids")
        try:
            body = _Feedback.model_validate(await read_json(request, _FEEDBACK_BODY_BYTES))
        except BadRequestError as exc:
            return _error(exc.status, exc.detail)
        except ValidationError as exc:
            return _error(422, validation_reason(exc))
        if isinstance(body.label, float) and not math.isfinite(body.label):
            return _error(422, "label must be finite")
        try:
            await asyncio.to_thread(prediction_log.add_feedback, body.prediction_id, body.label)
        except NotFoundError:
            return _error(404, f"no logged prediction {body.prediction_id}")
        except Exception as exc:  # the store is unreachable: the client may retry
            return _error(503, f"cannot store feedback now: {type(exc).__name__}")
        return JSONResponse({"prediction_id": body.prediction_id, "stored": True}, 201)

    @app.get("/health")
    async def health() -> dict[str, str]:
        # The app only exists once a model answered its warm-up, so reachable means ready.
        return {"status": "ready", "model_version": router.primary.label}

    @app.get("/version")
    async def version() -> dict[str, Any]:
        return router.primary.describe(name)

    @app.get("/metrics")
    async def prometheus_metrics(request: Request) -> Response:
        body, content_type = render_metrics(registry, request.headers.get("accept"))
        return Response(body, media_type=content_type)

    add_admin_routes(app, router, name, admin_token)
    return app


async def _answer(
    request: Request,
    endpoint: str,
    served: ServedVersion,
    started: float,
    log: PredictionLog | None,
) -> Response:
    try:
        rows = await read_rows(request)
        try:
            matrix = served.model.rows_to_matrix(rows)
        except SignatureError as exc:
            raise BadRequestError(422, str(exc)) from None
        except OverflowError:
            raise BadRequestError(422, "a number is too large") from None
    except BadRequestError as exc:
        return _error(exc.status, exc.detail)
    try:
        predictions = served.model.predict(matrix)
        answer: dict[str, Any] = {
            "predictions": predictions,
            "model_version": served.label,
            "endpoint": endpoint,
        }
        if log is not None:
            ids = None
            if log.sampled():
                latency_ms = (time.perf_counter() - started) * 1000
                ids = log.record(served.label, rows, predictions, latency_ms)
            answer["prediction_ids"] = ids
        body = json.dumps(answer, allow_nan=False).encode()
    except Exception as exc:  # the model failed on checked input: counted as its error
        _report_failure(endpoint, served, exc)
        return _error(500, f"model {served.label} failed: {type(exc).__name__}")
    return Response(body, media_type=_JSON)


def _report_failure(endpoint: str, served: ServedVersion, exc: Exception) -> None:
    if served.failures_logged % _FAILURE_LOG_EVERY == 0:
        print(
            f"signoff.serving[{endpoint}]: {served.label} failed on a request "
            f"({served.failures_logged + 1} so far): {type(exc).__name__}: {exc}",
            file=sys.stderr,
            flush=True,
        )
    served.failures_logged += 1


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)
