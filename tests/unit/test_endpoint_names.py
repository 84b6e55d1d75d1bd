"""Endpoint names: one rule (domain), applied by the flow loader, its JSON Schema and the SDK."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import Attacks
from signoff import Flow
from signoff.domain.names import (
    ENDPOINT_NAME_PATTERN,
    InvalidNameError,
    check_endpoint_name,
    endpoint_name_problem,
    suggest_endpoint_name,
)
from signoff.errors import SignoffError, SpecError
from signoff.spec import flow_json_schema, load_flow, parse_flow

HERE = __file__

# Each of these climbs out of a folder, hides a character, or breaks the DNS-label rule.
BAD_NAMES = [
    "../x",
    "../../x",
    "/abs",
    "/etc/passwd",
    "a/b",
    "a\\b",
    ".",
    "..",
    "x\0y",
    "x\ny",
    "recsys\n",
    "r\u0435csys",  # a Cyrillic letter that looks like "e"
    "\uff52ecsys",  # a fullwidth "r"
    "caf\u00e9",
    "x" * 64,
    "Recsys",
    "RECSYS",
    "rec sys",
    " recsys",
    "recsys ",
    "-recsys",
    "_recsys",
    "rec.sys",
    "",
    "~",
    "$HOME",
]
GOOD_NAMES = ["recsys", "churn", "a-b_1", "scene-classifier", "0", "a" * 63, "9lives", "x-"]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_valid_names_pass_unchanged(name: str) -> None:
    assert check_endpoint_name(name) == name
    assert endpoint_name_problem(name) is None
    assert re.fullmatch(ENDPOINT_NAME_PATTERN, name)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(InvalidNameError) as caught:
        check_endpoint_name(name)
    message = str(caught.value)
    assert "lowercase letters, digits, '-' and '_'" in message
    assert "at most 63 characters" in message
    assert "\n" not in message  # one printable line
    assert "\0" not in message
    assert isinstance(caught.value, SignoffError)
    assert isinstance(caught.value, ValueError)
    assert re.fullmatch(ENDPOINT_NAME_PATTERN, name) is None  # the JSON Schema agrees


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [
        ("../../x", "x"),
        ("/abs", "abs"),
        ("Churn Model", "churn-model"),
        ("caf\u00e9", "cafe"),
        ("x\0y", "x-y"),
        ("x" * 64, "x" * 63),
        (".", None),
        ("..", None),
    ],
)
def test_refusals_suggest_a_valid_name(text: str, suggestion: str | None) -> None:
    assert suggest_endpoint_name(text) == suggestion
    message = endpoint_name_problem(text)
    assert message is not None
    if suggestion:
        assert f"(for example '{suggestion}')" in message
        assert check_endpoint_name(suggestion) == suggestion
    else:
        assert "for example" not in message


def test_look_alike_letters_are_shown_escaped() -> None:
    message = endpoint_name_problem("r\u0435csys")
    assert message is not None
    assert "'r\\u0435csys'" in message  # the reader sees which letter is not what it seems


def test_a_huge_name_is_not_repeated_whole() -> None:
    message = endpoint_name_problem("a" * 100_000)
    assert message is not None
    assert "100000 characters long" in message
    assert len(message) < 400


# ---------------------------------------------------------------- flow files

DEPLOY = """flow: f
tasks:
  - title: train
    command: python train.py
  - title: ship
    type: deploy
    depends_on: train
    {key}: {value}
"""


BAD_NAME_IN_A_FLOW = "path-traversal or look-alike endpoint name in a flow (YAML or Python)"


@pytest.mark.parametrize("key", ["endpoint", "endpoint_title"])
@pytest.mark.parametrize("name", [n for n in BAD_NAMES if n])  # "": a missing endpoint
def test_loader_refuses_bad_deploy_endpoints_at_their_position(
    key: str, name: str, attacks: Attacks
) -> None:
    text = DEPLOY.format(key=key, value=json.dumps(name))
    with pytest.raises(SpecError) as caught:
        parse_flow(text, "flow.yaml")
    [issue] = caught.value.issues
    assert (issue.file, issue.line, issue.column) == ("flow.yaml", 8, len(key) + 7)
    assert issue.field == f"tasks[1].{key}"
    assert "endpoint name" in issue.message
    assert str(issue).startswith(f"flow.yaml:8:{len(key) + 7}: tasks[1].{key}: ")
    attacks.record(BAD_NAME_IN_A_FLOW, "flow file", 1, 1)


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_loader_keeps_valid_deploy_endpoints(name: str) -> None:
    spec = parse_flow(DEPLOY.format(key="endpoint", value=json.dumps(name))).spec
    deploy = spec.task("ship").deploy
    assert deploy is not None
    assert deploy.endpoint == name


def test_trigger_endpoints_follow_the_same_rule(attacks: Attacks) -> None:
    text = (
        "flow: f\ntasks:\n  - title: t\n    command: 'true'\ntriggers:\n"
        "  - {on: drift, endpoint: ../churn, metric: psi, threshold: 0.2}\n"
        "  - {on: drift, endpoint: churn, metric: psi, threshold: 0.2}\n"
    )
    with pytest.raises(SpecError) as caught:
        parse_flow(text, "flow.yaml")
    [issue] = caught.value.issues
    assert (issue.line, issue.field) == (6, "triggers[0].endpoint")
    assert "invalid endpoint name '../churn'" in issue.message
    attacks.record(BAD_NAME_IN_A_FLOW, "flow file", 1, 1)


def test_every_error_of_a_file_is_listed_once(tmp_path: Path, attacks: Attacks) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text(
        "flow: f\ntasks:\n"
        "  - {title: a, type: deploy, endpoint: ../a}\n"
        "  - {title: b, type: deploy, endpoint_title: /b}\n"
        "  - {title: c, type: deploy, endpoint: Churn}\n"
        "  - {title: d, type: deploy, endpoint: ok}\n"
    )
    with pytest.raises(SpecError) as caught:
        load_flow(path)
    found = [(i.line, i.field) for i in caught.value.issues]
    assert found == [
        (3, "tasks[0].endpoint"),
        (4, "tasks[1].endpoint_title"),
        (5, "tasks[2].endpoint"),
    ]
    attacks.record(BAD_NAME_IN_A_FLOW, "flow file", len(found), len(found))


def test_the_json_schema_carries_the_pattern() -> None:
    schema = flow_json_schema()
    task = schema["$defs"]["task"]["properties"]
    for key in ("endpoint", "endpoint_title"):
        assert {"type": "string", "pattern": ENDPOINT_NAME_PATTERN} in task[key]["anyOf"]
    trigger = schema["$defs"]["trigger"]["properties"]["endpoint"]
    assert {"type": "string", "pattern": ENDPOINT_NAME_PATTERN} in trigger["anyOf"]


# ---------------------------------------------------------------- the Python SDK


@pytest.mark.parametrize("name", ["../../x", "/abs", "Recsys", "x\0y"])
def test_sdk_deploy_refuses_bad_names_at_the_python_line(name: str, attacks: Attacks) -> None:
    flow = Flow("f")
    train = flow.command("train", "python train.py")
    flow.deploy("ship", endpoint=name, after=train)  # the deploy line
    with pytest.raises(SpecError) as caught:
        flow.validate()
    [issue] = caught.value.issues
    assert issue.file == HERE
    assert issue.line == _line_of("# the deploy line")
    assert issue.field == "tasks[1].endpoint"
    assert "endpoint name" in issue.message
    attacks.record(BAD_NAME_IN_A_FLOW, "flow file", 1, 1)


def test_sdk_deploy_keeps_valid_names() -> None:
    flow = Flow("f")
    train = flow.command("train", "python train.py")
    flow.deploy("ship", endpoint="a-b_1", after=train)
    deploy = flow.to_spec().task("ship").deploy
    assert deploy is not None
    assert deploy.endpoint == "a-b_1"


def _line_of(marker: str) -> int:
    lines = Path(HERE).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if marker in line and "_line_of" not in line)
