"""The published JSON Schema of flow files, built from the loader's own pydantic models.

The schema checks shape (keys, types, value formats), so editors can complete and flag flow
files. What spans keys and tasks (which keys a task type allows, references, cycles,
templates, ``/input/`` paths) is left to the loader, which is always the final word.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from signoff.spec._schema import (
    AutoApproveModel,
    ConditionModel,
    FlowModel,
    ParamModel,
    RelationModel,
    RequirementsModel,
    ResourcesModel,
    ScheduleModel,
    TaskModel,
    TriggerModel,
)

__all__ = ["FLOW_SCHEMA_ID", "FLOW_SCHEMA_VERSION", "flow_json_schema"]

FLOW_SCHEMA_VERSION = "2"
"""Version of the flow-file format; a change that refuses files valid before bumps it."""

FLOW_SCHEMA_ID = f"https://signoff.dev/schemas/flow-{FLOW_SCHEMA_VERSION}.json"
"""Where the schema of this version is published."""

_DRAFT = "https://json-schema.org/draft/2020-12/schema"
_DEF_NAMES = {
    TaskModel.__name__: "task",
    ParamModel.__name__: "param",
    ResourcesModel.__name__: "resources",
    RequirementsModel.__name__: "requirements",
    ConditionModel.__name__: "condition",
    RelationModel.__name__: "relation",
    AutoApproveModel.__name__: "auto_approve",
    ScheduleModel.__name__: "schedule",
    TriggerModel.__name__: "trigger",
}
_NOT_ACTED_ON = "Accepted from cnvrg files but not acted on (a warning when set)."
_DEPLOY_NOT_ACTED_ON = "cnvrg deploy key; accepted but not acted on (a warning when set)."

# One line per key: the user's description, shown by editors. Kept next to the generator so
# that a new model field without a description fails the schema test.
_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "flow": {
        "": "A signoff flow file: cnvrg.io's flow format, extended.",
        "flow": "The flow's name (required; cnvrg exports use 'title').",
        "title": "cnvrg's name for 'flow'.",
        "description": "One-line description of the flow.",
        "long_description": "Longer description (metadata).",
        "version": "The flow's own version (metadata, kept as written).",
        "author": "Author (metadata).",
        "author_email": "Author's e-mail (metadata).",
        "tags": "Tags (metadata, stored comma-separated).",
        "schedule": (
            "When the flow starts by itself: a five-field cron line (minute hour day month "
            "weekday, UTC), or {cron, timezone, catchup, overlap}."
        ),
        "recurring": "cnvrg's name for 'schedule'.",
        "triggers": (
            "Rules that start the flow: drift, quality or error_rate on an endpoint, data "
            "(a path whose contents changed), webhook."
        ),
        "params": "Flow-level params, one value each, usable in every command.",
        "executor": (
            "Where the flow's task runs run: 'local' processes or a 'ray' cluster; default "
            "SIGNOFF_EXECUTOR. A task's own 'executor' wins."
        ),
        "tasks": "The tasks, in order.",
        "relations": "Edges between tasks; 'depends_on' on a task is the short form.",
    },
    "task": {
        "": "One task. Which keys apply depends on 'type'.",
        "title": "Unique task name; its slug names folders and inputs/<slug>/.",
        "name": "Same as 'title'.",
        "type": "exec (default), data, select, human_validation or deploy.",
        "objective": "'human_validation' makes the task a gate (the seed's form).",
        "description": "Free text.",
        "depends_on": "Upstream task names (one name or a list).",
        "command": "Shell line run by exec and data tasks; Jinja2 templates, strict.",
        "input": "cnvrg's name for 'command'.",
        "call": (
            "exec/data: a Python function 'package.module:function' run instead of a "
            "command, its params passed as keyword arguments."
        ),
        "params": "[{key, values}]: several values make a grid, one task run per combination.",
        "resources": "What one task run needs: cpu, gpu, memory, custom.",
        "executor": "exec/data: 'local' or 'ray' for this task; default: the flow's.",
        "requirements": "cnvrg's form of 'resources' (memory in GB).",
        "env": "Extra environment variables of the command.",
        "retries": "How many times a failed task run is tried again (default 0).",
        "retry_delay": "Wait before the first retry ('10s', '1m' or seconds); doubles each time.",
        "timeout": (
            "exec/data: how long the command may run; human_validation: how long the gate "
            "waits for a decision (default 72h). A duration like '30m', '72h', or seconds."
        ),
        "cache": "Reuse the result of an earlier identical task run (default false).",
        "output_dir": "Folder in the working folder collected as the task's output (relative).",
        "image": _NOT_ACTED_ON,
        "language": _NOT_ACTED_ON,
        "library": _NOT_ACTED_ON,
        "library_version": _NOT_ACTED_ON,
        "git_branch": _NOT_ACTED_ON,
        "git_commit": _NOT_ACTED_ON,
        "computes": (
            "cnvrg compute templates: the first is asked of a Ray cluster as a custom resource "
            "of that name (a warning); 'resources' is what both executors act on."
        ),
        "conditions": "select: how to rank candidates; the first ranks, the others break ties.",
        "target": "human_validation: approvers, 'alice,bob' or a list; 'group:NAME' for a group.",
        "quorum": "human_validation: 'any' (default), 'all' or a number of distinct approvers.",
        "on_timeout": "human_validation: 'reject' (a timeout never approves).",
        "allow_self_approval": "human_validation: may whoever started the run approve it?",
        "require_comment_on_reject": "human_validation: a rejection needs a comment (default).",
        "remind_every": "human_validation: e-mail the approvers again this often ('24h').",
        "supersede": (
            "human_validation: a newer run of the flow reaching its gate closes this one "
            "(default true)."
        ),
        "auto_approve_if": (
            "human_validation: approve without a human when the challenger beats the champion "
            "on every listed metric by 'margin' (and, with no_drift, no feature drifted); "
            "recorded like a decision."
        ),
        "compare_to": "select: 'champion': the winner must also beat the model in production.",
        "min_improvement": "select: how much better than the champion (default 0: as good).",
        "evaluate": (
            "select: a command evaluating {{ model }} on the winner's inputs, run for the "
            "champion and the challenger alike, logging metrics."
        ),
        "endpoint_title": (
            "deploy: the endpoint to serve the approved model on: lowercase letters, digits, "
            "'-' and '_', starting with a letter or a digit, at most 63 characters."
        ),
        "endpoint": "deploy: same as 'endpoint_title'.",
        "port": "deploy: a fixed port (default: keep the endpoint's port or pick a free one).",
        "traffic": "deploy: percent of requests for the new version (< 100: a canary).",
        "probation": "deploy: watch the new version this long after the switch ('2m').",
        "max_error_rate": "deploy: roll back when the new version errs above this (0..1).",
        "kind": "cnvrg deploy kind; 'webservice' is what signoff does, others are warned.",
        "file_name": _DEPLOY_NOT_ACTED_ON,
        "function_name": _DEPLOY_NOT_ACTED_ON,
        "prep_file": _DEPLOY_NOT_ACTED_ON,
        "prep_function": _DEPLOY_NOT_ACTED_ON,
        "accept_files": _DEPLOY_NOT_ACTED_ON,
        "input_example": _DEPLOY_NOT_ACTED_ON,
        "input_schema": _DEPLOY_NOT_ACTED_ON,
        "output_schema": _DEPLOY_NOT_ACTED_ON,
        "top": "cnvrg canvas position, ignored.",
        "left": "cnvrg canvas position, ignored.",
    },
    "param": {
        "": "A param: one value is plain, several values make a grid.",
        "key": "The name; an identifier if templates use it.",
        "values": "A list, one scalar, or a comma-separated string ('0.1, 0.2').",
        "value": "One value, never split.",
        "type": "cnvrg's type hint (categorical, discrete, ...); values keep their YAML types.",
    },
    "resources": {
        "": "What one task run needs from the executor.",
        "cpu": "CPU slots (default 1).",
        "gpu": "GPUs (default 0).",
        "memory": "MB as a number, or a size like '4Gi' or '512Mi'.",
        "custom": (
            "Custom resources a Ray cluster declares ({gpu_pool: 1}); the local executor "
            "does not wait for them."
        ),
    },
    "requirements": {
        "": "cnvrg's requirements, mapped to resources.",
        "cpu": "CPU slots (default 1).",
        "memory": "GB as a number (cnvrg's unit), or a size like '4Gi' or '512Mi'.",
        "gpu": "GPUs (default 0).",
        "hpu": "Accepted but not acted on (a warning when not 0).",
    },
    "auto_approve": {
        "": "When a gate approves itself; the evaluation is recorded like a decision.",
        "beats_champion_on": "Metrics the challenger must beat the champion on (all of them).",
        "margin": "By at least this much (default 0).",
        "no_drift": "Also require no significant drift (PSI > 0.2) in the training data.",
    },
    "condition": {
        "": "One selection condition of a select task.",
        "tag_key": "The metric or tag to rank by.",
        "objective": "'max' (default) or 'min'.",
        "target": "The worst acceptable value; candidates beyond it are not eligible.",
        "task": "cnvrg key; accepted, not acted on (a warning when set).",
        "value": "cnvrg key; accepted, not acted on (a warning when set).",
    },
    "schedule": {
        "": "A schedule with its time zone and policies.",
        "cron": "Cron line: minute hour day month weekday (a sixth field, seconds, last).",
        "timezone": "IANA time zone the cron line is read in (default UTC).",
        "catchup": "After the scheduler was down: none (default), latest or all missed times.",
        "overlap": "While an earlier run is going: skip (default), queue or supersede.",
    },
    "trigger": {
        "": "A rule that starts the flow. Which keys apply depends on 'on'.",
        "on": "drift, quality, error_rate (on an endpoint), data (a path) or webhook.",
        "endpoint": "drift/quality/error_rate: the endpoint watched.",
        "metric": "drift: psi (default) or ks; quality: accuracy, auc, rmse or ndcg.",
        "threshold": "drift: fires when a feature's statistic is above it (psi 0.2, ks 0.1).",
        "below": "quality: fires when accuracy, auc or ndcg is below it.",
        "above": "quality: fires when rmse is above it; error_rate: the share (0 to 1).",
        "features": "drift: only these features (default: every feature of the sample).",
        "min_events": "Judged only with at least this many events in the window (100).",
        "window": "How far back events count ('7d'; error_rate '1h').",
        "every": "How often the rule is evaluated (default 5m; data 1m).",
        "path": "data: a folder or file, local (relative to the flow file) or an fsspec URL.",
        "group_by": "quality ndcg: the input feature whose rows form one ranking.",
        "k": "quality ndcg: the cut-off (default: the whole ranking).",
    },
    "relation": {
        "": "An edge: 'from' runs before 'to'. Names match titles exactly, else by slug.",
        "from": "The upstream task.",
        "to": "The downstream task.",
    },
}


class _Generator(GenerateJsonSchema):
    """Pydantic's generator without per-field titles (the key names are the titles)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def flow_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of flow files, version :data:`FLOW_SCHEMA_VERSION`."""
    models = (FlowModel, TaskModel, ScheduleModel, TriggerModel)
    _, generated = models_json_schema(
        [(m, "validation") for m in models], schema_generator=_Generator
    )
    defs: dict[str, Any] = copy.deepcopy(generated["$defs"])
    flow = defs.pop(FlowModel.__name__)
    flow["properties"]["tasks"]["items"] = {"$ref": f"#/$defs/{TaskModel.__name__}"}
    flow["properties"]["triggers"]["items"] = {"$ref": f"#/$defs/{TriggerModel.__name__}"}
    renamed = {_DEF_NAMES[name]: schema for name, schema in defs.items()}
    schema: dict[str, Any] = {
        "$schema": _DRAFT,
        "$id": FLOW_SCHEMA_ID,
        "version": FLOW_SCHEMA_VERSION,
        "title": "signoff flow file",
        **flow,
        "$defs": renamed,
    }
    _describe(schema, _DESCRIPTIONS["flow"])
    for name, definition in renamed.items():
        _describe(definition, _DESCRIPTIONS[name])
    cleaned = _clean(schema)
    assert isinstance(cleaned, dict)
    return cleaned


def _describe(schema: dict[str, Any], descriptions: dict[str, str]) -> None:
    schema.pop("title", None)
    schema["description"] = descriptions[""]
    for key, prop in schema["properties"].items():
        prop["description"] = descriptions[key]


def _clean(node: Any, *, names: bool = False) -> Any:
    """Drop defaults (written in the descriptions) and point refs at the renamed definitions."""
    if isinstance(node, list):
        return [_clean(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if not names and key == "default":
            continue
        if not names and key == "$ref" and isinstance(value, str):
            target = value.rsplit("/", 1)[-1]
            out[key] = f"#/$defs/{_DEF_NAMES.get(target, target)}"
        else:
            # under `properties` and `$defs` the keys are names, not schema keywords
            out[key] = _clean(value, names=not names and key in ("properties", "$defs"))
    return out
