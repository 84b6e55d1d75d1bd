"""The HTTP surface of one model endpoint: predict, health, version and Prometheus metrics.

Every request body is parsed and checked here before the model sees it: bad input gets a 4xx
with a one-line ``detail``, never a 500.
"""

from __future__ import annotations

import bisect
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from signoff.registry.flavors import LoadedModel, SignatureError

__all__ = [
    "LATENCY_BUCKETS",
    "MAX_BODY_BYTES",
    "MAX_ROWS",
    "create_app",
    "warm_up",
]

MAX_BODY_BYTES = 1 << 20  # 1 MiB
MAX_ROWS = 10_000
LATENCY_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

_JSON = "application/json"
_PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
_SHAPE_HINT = 'expected {"rows": [...]}, {"columns": {...}} or a JSON list of row objects'


class _BadRequestError(Exception):
    """A request that is answered with ``status`` and ``detail`` before the model sees it."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class _Metrics:
    """Counters and a latency histogram for ``/predict``, rendered in Prometheus text format."""

    def __init__(self, endpoint: str, version: str, digest: str) -> None:
        self._labels = f'endpoint="{_escape(endpoint)}",version="{_escape(version)}"'
        self._info = f'{self._labels},digest="{_escape(digest)}"'
        self._requests: dict[int, int] = {}
        self._buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # last one is +Inf
        self._sum = 0.0
        self._count = 0

    def observe(self, status: int, seconds: float) -> None:
        self._requests[status] = self._requests.get(status, 0) + 1
        # Prometheus buckets are "less than or equal": bisect_left finds the first bound >= value.
        self._buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._sum += seconds
        self._count += 1

    def render(self) -> str:
        lines = [
            "# HELP signoff_requests_total Prediction requests by HTTP status.",
            "# TYPE signoff_requests_total counter",
        ]
        for status in sorted(self._requests):
            lines.append(
                f'signoff_requests_total{{{self._labels},status="{status}"}} '
                f"{self._requests[status]}"
            )
        lines += [
            "# HELP signoff_request_latency_seconds Time spent answering /predict.",
            "# TYPE signoff_request_latency_seconds histogram",
        ]
        cumulative = 0
        bounds = [*(f"{b:g}" for b in LATENCY_BUCKETS), "+Inf"]
        for bound, n in zip(bounds, self._buckets, strict=True):
            cumulative += n
            lines.append(
                f'signoff_request_latency_seconds_bucket{{{self._labels},le="{bound}"}} '
                f"{cumulative}"
            )
        lines += [
            f"signoff_request_latency_seconds_sum{{{self._labels}}} {self._sum!r}",
            f"signoff_request_latency_seconds_count{{{self._labels}}} {self._count}",
            "# HELP signoff_model_info The model this endpoint serves.",
            "# TYPE signoff_model_info gauge",
            f"signoff_model_info{{{self._info}}} 1",
        ]
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def warm_up(model: LoadedModel) -> None:
    """Predict once for a row of zeros (``False`` for booleans) so the first request is fast."""
    row = {f.name: (False if f.dtype == "bool" else 0) for f in model.meta.signature}
    model.predict(model.rows_to_matrix([row]))


def create_app(name: str, model: LoadedModel, model_version: str, digest: str) -> FastAPI:
    """Build the endpoint app for a loaded model; runs the warm-up prediction first."""
    warm_up(model)
    metrics = _Metrics(name, model_version, digest)
    version_body = {
        "endpoint": name,
        "model_version": model_version,
        "digest": digest,
        "flavor": model.meta.flavor,
        "signature": [{"name": f.name, "dtype": f.dtype} for f in model.meta.signature],
    }
    app = FastAPI(
        title=f"signoff endpoint {name}",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        started = time.perf_counter()
        try:
            rows = await _read_rows(request)
            try:
                matrix = model.rows_to_matrix(rows)
            except SignatureError as exc:
                raise _BadRequestError(422, str(exc)) from None
            except OverflowError:
                raise _BadRequestError(422, "a number is too large") from None
            predictions = model.predict(matrix)
            body = json.dumps(
                {"predictions": predictions, "model_version": model_version, "endpoint": name},
                allow_nan=False,
            ).encode()
            response = Response(body, media_type=_JSON)
        except _BadRequestError as exc:
            response = JSONResponse({"detail": exc.detail}, status_code=exc.status)
        except Exception:  # the model itself failed on checked input: count it, then re-raise
            metrics.observe(500, time.perf_counter() - started)
            raise
        metrics.observe(response.status_code, time.perf_counter() - started)
        return response

    @app.get("/health")
    async def health() -> dict[str, str]:
        # The app only exists once warm-up passed, so being reachable means being ready.
        return {"status": "ready", "model_version": model_version}

    @app.get("/version")
    async def version() -> dict[str, Any]:
        return version_body

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=_PROMETHEUS)

    return app


async def _read_rows(request: Request) -> Sequence[Mapping[str, Any]]:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != _JSON:
        raise _BadRequestError(415, "content type must be application/json")
    raw = await _read_body(request)
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, huge ints
        raise _BadRequestError(400, f"malformed JSON: {exc}") from None
    rows = _rows_of(payload)
    if not rows:
        raise _BadRequestError(422, "no rows to predict")
    return rows


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise _BadRequestError(400, "invalid Content-Length")
        if int(declared) > MAX_BODY_BYTES:
            raise _BadRequestError(413, f"body larger than {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _BadRequestError(413, f"body larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _rows_of(payload: object) -> Sequence[Mapping[str, Any]]:
    if isinstance(payload, list):
        return _checked_count(payload)
    if not isinstance(payload, dict) or len(payload) != 1:
        raise _BadRequestError(422, _SHAPE_HINT)
    if "rows" in payload:
        rows = payload["rows"]
        if not isinstance(rows, list):
            raise _BadRequestError(422, '"rows" must be a list of row objects')
        return _checked_count(rows)
    if "columns" in payload:
        return _rows_from_columns(payload["columns"])
    raise _BadRequestError(422, _SHAPE_HINT)


def _rows_from_columns(columns: object) -> list[dict[str, Any]]:
    if not isinstance(columns, dict):
        raise _BadRequestError(422, '"columns" must be an object of feature -> list of values')
    lengths = set()
    for key, values in columns.items():
        if not isinstance(values, list):
            raise _BadRequestError(422, f"column {key} must be a list of values")
        lengths.add(len(values))
    if len(lengths) > 1:
        raise _BadRequestError(422, "all columns must have the same length")
    n = lengths.pop() if lengths else 0
    if n > MAX_ROWS:
        raise _BadRequestError(413, f"more than {MAX_ROWS} rows")
    names = list(columns)
    rows = zip(*columns.values(), strict=True)  # lengths were checked above
    return [dict(zip(names, values, strict=True)) for values in rows]


def _checked_count(rows: list[Any]) -> list[Any]:
    if len(rows) > MAX_ROWS:
        raise _BadRequestError(413, f"more than {MAX_ROWS} rows")
    return rows
