"""The published JSON Schema: built from the code, committed unchanged, true to the loader.

The schema is checked with ``jsonschema`` (the draft it declares: 2020-12), itself checked
against its draft's meta-schema. ``jsonschema`` ignores keywords it does not know, so a test
pins the keywords the schema may use to the ones the validator checks: the schema cannot
grow a keyword that these tests would silently skip.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from ruamel.yaml import YAML

import signoff.spec
from signoff.spec import FLOW_SCHEMA_ID, FLOW_SCHEMA_VERSION, flow_json_schema, load_flow

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "tests" / "resources" / "flows"
SCHEMA_FILE = ROOT / "docs" / "flow-file.schema.json"
REGENERATE = (
    '.venv/bin/python -c "import json; from signoff.spec import flow_json_schema; '
    "open('docs/flow-file.schema.json', 'w').write("
    "json.dumps(flow_json_schema(), indent=2, sort_keys=True) + '\\n')\""
)
GOOD_FLOWS = sorted(
    [
        *FLOWS.glob("good_*.yaml"),
        FLOWS / "seed_literal.yaml",
        FLOWS / "tiny" / "flow.yaml",
        *(p for p in (FLOWS / "cnvrg").glob("*.yaml") if not p.name.startswith("bad_")),
        ROOT / "examples" / "recsys" / "flow.yaml",
    ]
)

# Keywords that only annotate ("version" is ours: the flow format's version).
ANNOTATIONS = {"$schema", "$id", "$defs", "title", "description", "version"}
# Where a keyword's value holds subschemas: one, a list of them, or a name -> schema map.
ONE_SCHEMA = {"not", "items", "additionalProperties", "propertyNames", "contains", "if", "then"}
ONE_SCHEMA |= {"else", "unevaluatedProperties", "unevaluatedItems"}
SCHEMA_LISTS = {"anyOf", "oneOf", "allOf", "prefixItems"}
SCHEMA_MAPS = {"properties", "$defs", "patternProperties", "dependentSchemas"}


def keywords(schema: Any) -> Iterator[tuple[str, str]]:
    """Every (keyword, where) in a schema and all of its subschemas."""
    stack: list[tuple[Any, str]] = [(schema, "$")]
    while stack:
        node, where = stack.pop()
        if not isinstance(node, dict):
            continue  # a boolean schema
        for key, value in node.items():
            yield key, where
            if key in ONE_SCHEMA:
                stack.append((value, f"{where}.{key}"))
            elif key in SCHEMA_LISTS:
                stack.extend((v, f"{where}.{key}[{i}]") for i, v in enumerate(value))
            elif key in SCHEMA_MAPS:
                stack.extend((v, f"{where}.{key}.{k}") for k, v in value.items())


def errors(validator: Validator, instance: Any) -> list[ValidationError]:
    """Every error, those under anyOf / oneOf / not included."""
    found: list[ValidationError] = []
    stack = list(validator.iter_errors(instance))
    while stack:
        error = stack.pop()
        found.append(error)
        stack.extend(error.context or ())
    return found


def read(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return flow_json_schema()


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> Validator:
    cls = validator_for(schema)
    cls.check_schema(schema)  # a valid schema of its draft, or SchemaError
    return cls(schema)


# ---------------------------------------------------------------- the schema as a schema


def test_the_schema_is_a_valid_draft_2020_12_schema(schema: dict[str, Any]) -> None:
    assert validator_for(schema) is Draft202012Validator
    Draft202012Validator.check_schema(schema)
    assert Draft202012Validator.META_SCHEMA["$id"] == schema["$schema"]


def test_the_schema_uses_only_keywords_the_validator_checks(schema: dict[str, Any]) -> None:
    known = set(Draft202012Validator.VALIDATORS) | ANNOTATIONS
    unknown = sorted({f"{key} ({where})" for key, where in keywords(schema) if key not in known})
    assert unknown == []
    used = {key for key, _ in keywords(schema)}
    assert {"$ref", "additionalProperties", "not", "oneOf", "pattern"} <= used  # it walked


def test_an_unknown_keyword_would_be_caught() -> None:
    sneaky = {"type": "object", "properties": {"a": {"anyOf": [{"maxiumum": 3}]}}}
    assert ("maxiumum", "$.properties.a.anyOf[0]") in set(keywords(sneaky))


# ---------------------------------------------------------------- the published file


def test_committed_schema_is_the_generated_one(schema: dict[str, Any]) -> None:
    expected = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    committed = SCHEMA_FILE.read_text(encoding="utf-8")
    assert committed == expected, f"docs/flow-file.schema.json is stale; run: {REGENERATE}"


def test_schema_is_versioned(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == FLOW_SCHEMA_ID == "https://signoff.dev/schemas/flow-2.json"
    assert schema["version"] == FLOW_SCHEMA_VERSION == "2"
    assert "flow_json_schema" in signoff.spec.__all__


def test_schema_is_deterministic_and_a_fresh_copy() -> None:
    first = flow_json_schema()
    first["properties"].clear()
    assert flow_json_schema() != first
    assert json.dumps(flow_json_schema(), sort_keys=True) == json.dumps(
        flow_json_schema(), sort_keys=True
    )


def test_every_key_is_described(schema: dict[str, Any]) -> None:
    objects = {"flow": schema, **schema["$defs"]}
    for name, definition in objects.items():
        assert definition["description"], name
        assert definition["additionalProperties"] is False, name
        for key, prop in definition["properties"].items():
            assert prop.get("description"), f"{name}.{key}"


def test_schema_keys_are_the_loader_keys(schema: dict[str, Any]) -> None:
    task = set(schema["$defs"]["task"]["properties"])
    assert {"retries", "retry_delay", "timeout", "cache", "output_dir", "input"} <= task
    assert {"requirements", "computes", "kind", "file_name", "top", "left"} <= task
    assert "call" in task  # a Python callable run in-process
    assert "executor" in task  # local or ray, per task
    flow = set(schema["properties"])
    assert flow == {
        "flow",
        "title",
        "description",
        "long_description",
        "version",
        "author",
        "author_email",
        "tags",
        "schedule",
        "recurring",
        "params",
        "executor",
        "tasks",
        "relations",
        "triggers",
    }


# ---------------------------------------------------------------- honest about real files


def test_good_fixtures_are_collected() -> None:
    names = {p.name for p in GOOD_FLOWS}
    assert {"blueprint_scene_classification.yaml", "flow_export_churn.yaml"} <= names
    assert not any(name.startswith("bad_") for name in names)


@pytest.mark.parametrize("path", GOOD_FLOWS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_good_flow_validates(path: Path, validator: Validator) -> None:
    load_flow(path)  # the loader accepts it ...
    assert [e.message for e in errors(validator, read(path))] == []  # ... and so does the schema


@pytest.mark.parametrize(
    ("name", "keyword", "path", "instance"),
    [
        ("bad_unknown_key.yaml", "additionalProperties", ["tasks", 0], None),
        ("bad_cron.yaml", "pattern", ["schedule"], "0 3 * *"),
        ("bad_gate.yaml", "const", ["tasks", 1, "on_timeout"], "approve"),
        ("cnvrg/bad_cnvrg_export.yaml", "not", [], None),
        ("cnvrg/bad_cnvrg_export.yaml", "minimum", ["tasks", 1, "retries"], -1),
    ],
)
def test_the_schema_refuses_shape_errors(
    name: str, keyword: str, path: list[str | int], instance: Any, validator: Validator
) -> None:
    found = [
        e
        for e in errors(validator, read(FLOWS / name))
        if e.validator == keyword and list(e.absolute_path) == path
    ]
    assert found, [e.message for e in errors(validator, read(FLOWS / name))]
    if instance is not None:
        assert any(e.instance == instance for e in found)
    if name == "bad_unknown_key.yaml":
        assert "'comand' was unexpected" in found[0].message


@pytest.mark.parametrize(
    "flow",
    [
        {"flow": "f", "tasks": [{"title": "t", "command": "c", "output_dir": "../x"}]},
        {"flow": "f", "tasks": [{"title": "t", "command": "c", "output_dir": "/abs"}]},
        {"flow": "f", "tasks": [{"title": "t", "command": "c", "retries": -1}]},
        {"flow": "f", "tasks": [{"title": "t", "command": "c", "timeout": "soon"}]},
        {"flow": "f", "tasks": [{"title": "t", "command": "c", "input": "c"}]},
        {"flow": "f", "tasks": [{"title": "t", "requirements": {"memory": "lots"}}]},
        {"flow": "f", "title": "f", "tasks": [{"title": "t"}]},
        {"flow": "f", "tasks": []},
        {"tasks": [{"title": "t"}]},
        {"flow": "f", "tags": ["a,b"], "tasks": [{"title": "t"}]},
        {"flow": "f", "tasks": [{"title": "t", "params": [{"key": "k"}]}]},
        {"flow": "f", "tasks": [{"name": "t", "env": {"1BAD": "x"}}]},
    ],
)
def test_the_schema_refuses_what_the_loader_refuses(
    flow: dict[str, Any], validator: Validator
) -> None:
    assert errors(validator, flow)
    assert not validator.is_valid(flow)


@pytest.mark.parametrize(
    "task",
    [
        {"title": "t", "command": "c", "retry_delay": "1m30s", "timeout": 2.5, "cache": True},
        {"title": "t", "input": "c", "requirements": {"memory": 4, "hpu": 0}},
        {"title": "t", "command": "c", "resources": {"memory": "512Mi"}, "output_dir": "out/a"},
        {"name": "g", "objective": "human_validation", "target": ["a"], "quorum": 1},
    ],
)
def test_the_schema_accepts_new_keys(task: dict[str, Any], validator: Validator) -> None:
    assert [e.message for e in errors(validator, {"flow": "f", "tasks": [task]})] == []
