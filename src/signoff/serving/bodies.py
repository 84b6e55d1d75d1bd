"""Reading request bodies: content type, size limit, strict JSON, and the accepted row shapes.

Every body is read and checked here before anything else sees it; a bad one raises
:class:`BadRequestError` with the status and the one-line reason the client gets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_ROWS",
    "BadRequestError",
    "read_json",
    "read_rows",
    "validation_reason",
]

MAX_BODY_BYTES = 1 << 20  # 1 MiB
MAX_ROWS = 10_000

_JSON = "application/json"
_SHAPE_HINT = 'expected {"rows": [...]}, {"columns": {...}} or a JSON list of row objects'


class BadRequestError(Exception):
    """A request answered with ``status`` and ``detail`` before any model sees it."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


async def read_json(request: Request, limit: int = MAX_BODY_BYTES) -> object:
    """The request's JSON document (415, 413 or 400 when it is not one)."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != _JSON:
        raise BadRequestError(415, "content type must be application/json")
    raw = await _read_body(request, limit)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, huge ints
        raise BadRequestError(400, f"malformed JSON: {exc}") from None


async def read_rows(request: Request) -> Sequence[Mapping[str, Any]]:
    """The rows of a ``/predict`` body: rows, columns or a bare list (422 when empty)."""
    rows = _rows_of(await read_json(request))
    if not rows:
        raise BadRequestError(422, "no rows to predict")
    return rows


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequestError(400, "invalid Content-Length")
        if int(declared) > limit:
            raise BadRequestError(413, f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequestError(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _rows_of(payload: object) -> Sequence[Mapping[str, Any]]:
    if isinstance(payload, list):
        return _checked_count(payload)
    if not isinstance(payload, dict) or len(payload) != 1:
        raise BadRequestError(422, _SHAPE_HINT)
    if "rows" in payload:
        rows = payload["rows"]
        if not isinstance(rows, list):
            raise BadRequestError(422, '"rows" must be a list of row objects')
        return _checked_count(rows)
    if "columns" in payload:
        return _rows_from_columns(payload["columns"])
    raise BadRequestError(422, _SHAPE_HINT)


def _rows_from_columns(columns: object) -> list[dict[str, Any]]:
    if not isinstance(columns, dict):
        raise BadRequestError(422, '"columns" must be an object of feature -> list of values')
    lengths = set()
    for key, values in columns.items():
        if not isinstance(values, list):
            raise BadRequestError(422, f"column {key} must be a list of values")
        lengths.add(len(values))
    if len(lengths) > 1:
        raise BadRequestError(422, "all columns must have the same length")
    n = lengths.pop() if lengths else 0
    if n > MAX_ROWS:
        raise BadRequestError(413, f"more than {MAX_ROWS} rows")
    names = list(columns)
    rows = zip(*columns.values(), strict=True)  # lengths were checked above
    return [dict(zip(names, values, strict=True)) for values in rows]


def _checked_count(rows: list[Any]) -> list[Any]:
    if len(rows) > MAX_ROWS:
        raise BadRequestError(413, f"more than {MAX_ROWS} rows")
    return rows


def validation_reason(exc: ValidationError, hint: str | None = None) -> str:
    """A pydantic validation error as one line: ``field: message; ...`` (and a hint)."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else str(err["msg"]))
    reason = "; ".join(parts) or "invalid body"
    return f"{reason} ({hint})" if hint else reason
