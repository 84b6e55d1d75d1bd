"""The published JSON Schema: built from the code, committed unchanged, true to the loader.

``jsonschema`` is not a dependency, so the schema is checked with the small validator below.
It knows a fixed set of keywords and fails on any other one, so the schema cannot grow a
keyword that these tests would silently skip.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
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


# ---------------------------------------------------------------- a small validator

ANNOTATIONS = {"$schema", "$id", "$defs", "version", "title", "description"}
TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


class Validator:
    """Draft 2020-12, for the keywords our schema uses; unknown keywords are an error."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root

    def errors(self, value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
        found: list[str] = []
        for keyword, arg in schema.items():
            if keyword in ANNOTATIONS:
                continue
            check = getattr(self, "k_" + keyword.lstrip("$"), None)
            if check is None:
                raise AssertionError(f"the test validator does not know {keyword!r} ({path})")
            found.extend(check(value, arg, schema, path))
        return found

    def valid(self, value: Any, schema: dict[str, Any]) -> bool:
        return not self.errors(value, schema)

    def k_ref(self, value: Any, ref: str, _s: Any, path: str) -> list[str]:
        assert ref.startswith("#/$defs/"), ref
        return self.errors(value, self.root["$defs"][ref.removeprefix("#/$defs/")], path)

    def k_type(self, value: Any, arg: str | list[str], _s: Any, path: str) -> list[str]:
        names = [arg] if isinstance(arg, str) else arg
        ok = any(TYPES[n](value) for n in names)
        return [] if ok else [f"{path}: {value!r} is not of type {names}"]

    def k_enum(self, value: Any, arg: list[Any], _s: Any, path: str) -> list[str]:
        return [] if value in arg else [f"{path}: {value!r} not in {arg}"]

    def k_const(self, value: Any, arg: Any, _s: Any, path: str) -> list[str]:
        return [] if value == arg else [f"{path}: {value!r} != {arg!r}"]

    def k_properties(self, value: Any, props: dict[str, Any], _s: Any, path: str) -> list[str]:
        if not isinstance(value, dict):
            return []
        found: list[str] = []
        for key, sub in props.items():
            if key in value:
                found.extend(self.errors(value[key], sub, f"{path}.{key}"))
        return found

    def k_additionalProperties(self, value: Any, arg: Any, schema: Any, path: str) -> list[str]:
        if not isinstance(value, dict):
            return []
        extra = [k for k in value if k not in schema.get("properties", {})]
        if arg is False:
            return [f"{path}: unexpected key {k!r}" for k in extra]
        return [e for k in extra for e in self.errors(value[k], arg, f"{path}.{k}")]

    def k_propertyNames(self, value: Any, arg: Any, _s: Any, path: str) -> list[str]:
        if not isinstance(value, dict):
            return []
        return [e for k in value for e in self.errors(k, arg, f"{path}[{k!r}]")]

    def k_required(self, value: Any, arg: list[str], _s: Any, path: str) -> list[str]:
        if not isinstance(value, dict):
            return []
        return [f"{path}: missing {k!r}" for k in arg if k not in value]

    def k_items(self, value: Any, arg: Any, _s: Any, path: str) -> list[str]:
        if not isinstance(value, list):
            return []
        return [e for i, item in enumerate(value) for e in self.errors(item, arg, f"{path}[{i}]")]

    def k_minItems(self, value: Any, arg: int, _s: Any, path: str) -> list[str]:
        ok = not isinstance(value, list) or len(value) >= arg
        return [] if ok else [f"{path}: fewer than {arg} items"]

    def k_minLength(self, value: Any, arg: int, _s: Any, path: str) -> list[str]:
        ok = not isinstance(value, str) or len(value) >= arg
        return [] if ok else [f"{path}: shorter than {arg}"]

    def k_pattern(self, value: Any, arg: str, _s: Any, path: str) -> list[str]:
        ok = not isinstance(value, str) or re.search(arg, value) is not None
        return [] if ok else [f"{path}: {value!r} does not match {arg!r}"]

    def _bound(self, value: Any, ok: bool, path: str, what: str) -> list[str]:
        number = TYPES["number"](value)
        return [] if not number or ok else [f"{path}: {value!r} is not {what}"]

    def k_minimum(self, value: Any, arg: float, _s: Any, path: str) -> list[str]:
        return self._bound(value, TYPES["number"](value) and value >= arg, path, f">= {arg}")

    def k_maximum(self, value: Any, arg: float, _s: Any, path: str) -> list[str]:
        return self._bound(value, TYPES["number"](value) and value <= arg, path, f"<= {arg}")

    def k_exclusiveMinimum(self, value: Any, arg: float, _s: Any, path: str) -> list[str]:
        return self._bound(value, TYPES["number"](value) and value > arg, path, f"> {arg}")

    def k_anyOf(self, value: Any, arg: list[Any], _s: Any, path: str) -> list[str]:
        return [] if any(self.valid(value, s) for s in arg) else [f"{path}: matches no anyOf"]

    def k_oneOf(self, value: Any, arg: list[Any], _s: Any, path: str) -> list[str]:
        hits = sum(self.valid(value, s) for s in arg)
        return [] if hits == 1 else [f"{path}: matches {hits} of oneOf"]

    def k_allOf(self, value: Any, arg: list[Any], _s: Any, path: str) -> list[str]:
        return [e for s in arg for e in self.errors(value, s, path)]

    def k_not(self, value: Any, arg: Any, _s: Any, path: str) -> list[str]:
        return [f"{path}: matches a 'not' schema {arg}"] if self.valid(value, arg) else []


def read(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return flow_json_schema()


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> Validator:
    return Validator(schema)


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
    assert validator.errors(read(path), validator.root) == []  # ... and so does the schema


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("bad_unknown_key.yaml", "unexpected key 'comand'"),
        ("bad_cron.yaml", "does not match"),
        ("bad_gate.yaml", "'approve' != 'reject'"),
        ("cnvrg/bad_cnvrg_export.yaml", "matches a 'not' schema"),
    ],
)
def test_the_schema_refuses_shape_errors(name: str, expected: str, validator: Validator) -> None:
    errors = validator.errors(read(FLOWS / name), validator.root)
    assert any(expected in e for e in errors), errors


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
    assert validator.errors(flow, validator.root)


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
    assert validator.errors({"flow": "f", "tasks": [task]}, validator.root) == []
