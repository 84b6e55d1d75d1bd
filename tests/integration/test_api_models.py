"""The API answers with the read models of ``signoff.views``: its OpenAPI document says so.

Every JSON response of ``/api/v1`` is declared with a model; for the read models, the schema
the OpenAPI document publishes is the model's own JSON schema, definition for definition, so
what the server sends and what the CLI prints and parses cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from signoff.bootstrap import Settings, build_app
from signoff.server import create_app
from signoff.views import models

_REF = "#/components/schemas/"
_VIEWS = {
    name: cls
    for name, cls in vars(models).items()
    if isinstance(cls, type) and issubclass(cls, models.View) and cls is not models.View
}


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home: Path = tmp_path_factory.mktemp("home")
    app = build_app(Settings(home=home))
    try:
        server = create_app(app)
        doc = server.openapi()
        if not any(p.startswith("/runs") or "/api/v1/runs" in p for p in doc["paths"]):
            for route in server.routes:  # the API may be a mounted sub-application
                sub = getattr(route, "app", None)
                if hasattr(sub, "openapi"):
                    doc = sub.openapi()
                    break
        yield doc
    finally:
        app.close()


def _answers(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(operation, status, schema) of every successful JSON answer."""
    found = []
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            for status, response in op.get("responses", {}).items():
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if status.startswith("2") and schema is not None:
                    found.append((f"{method.upper()} {path}", status, schema))
    return found


def _model_of(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref") or schema.get("items", {}).get("$ref")
    return ref.removeprefix(_REF) if ref else None


def _published(cls: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """The model's JSON schema (for serialization) and its definitions, by name."""
    schema = cls.model_json_schema(mode="serialization", ref_template=_REF + "{model}")
    defs = schema.pop("$defs", {})
    return {name: _shape(s) for name, s in {cls.__name__: schema, **defs}.items()}


def _shape(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema without its properties' defaults (an answer always carries every field, so
    the OpenAPI document leaves the defaults out)."""
    properties = {
        k: {key: v for key, v in p.items() if key != "default"}
        for k, p in schema.get("properties", {}).items()
    }
    return {**schema, "properties": properties} if "properties" in schema else schema


def test_every_json_answer_is_a_declared_model(openapi: dict[str, Any]) -> None:
    answers = _answers(openapi)
    assert len(answers) >= 15
    untyped = [op for op, _, schema in answers if _model_of(schema) is None]
    assert untyped == ["GET /health"]  # the liveness probe's own small document


def test_each_answer_schema_is_the_read_models_json_schema(openapi: dict[str, Any]) -> None:
    components = openapi["components"]["schemas"]
    used = {_model_of(schema) for _, _, schema in _answers(openapi)}
    read = sorted(name for name in used if name in _VIEWS)
    assert {"RunRow", "RunDetail", "RunSummary", "GateOut", "EndpointDetail"} <= set(read)
    for name in read:
        for part, schema in _published(_VIEWS[name]).items():
            assert _shape(components[part]) == schema, (name, part)


def test_the_answers_not_from_views_are_the_servers_own(openapi: dict[str, Any]) -> None:
    used = {_model_of(schema) for _, _, schema in _answers(openapi)}
    assert used - set(_VIEWS) <= {"LoginOut", "TriggerOut", None}  # None: GET /health
