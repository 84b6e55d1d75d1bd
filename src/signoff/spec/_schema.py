"""Pydantic models of the flow-file shape (their errors become messages in ``_messages``).

The models check one mapping at a time: known keys, types, and values that need parsing
(cron, durations, sizes, comma-separated lists). Rules that depend on the task type or on
other tasks live in the loader, which sees the whole file. Each custom value carries the JSON
Schema of what it accepts, so that :func:`signoff.spec.flow_json_schema` is built from these
same models.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)

from signoff.domain.names import ENDPOINT_NAME_PATTERN
from signoff.domain.specs import (
    Catchup,
    ConditionSpec,
    Overlap,
    ParamSpec,
    ParamValue,
    Resources,
    ScheduleSpec,
    TaskKind,
    TriggerKind,
)
from signoff.spec import _values as v

__all__ = [
    "CALL_EXCLUDED_KEYS",
    "CNVRG_DEPLOY_KEYS",
    "CNVRG_RUN_KEYS",
    "COMMAND_KEYS",
    "COMMON_TASK_KEYS",
    "KIND_TASK_KEYS",
    "ConditionModel",
    "FlowModel",
    "ParamModel",
    "RelationModel",
    "RequirementsModel",
    "ResourcesModel",
    "ScheduleModel",
    "TRIGGER_KEYS",
    "TaskModel",
    "TriggerModel",
]

# ---------------------------------------------------------------- JSON Schema of custom values

_STRING = {"type": "string"}
_NULL = {"type": "null"}
_NAME = {"type": "string", "minLength": 1, "pattern": r"\S"}
_SCALAR = {"type": ["string", "number", "boolean"]}
_LIST_ITEM = r"[^,\s]"  # a comma-separated string needs one item that is not blank
_NUMBER_TEXT = r"(\d+(\.\d*)?|\.\d+)"
_DURATION = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {
            "type": "string",
            "pattern": rf"^\s*{_NUMBER_TEXT}\s*$|^\s*(\d+(\.\d+)?\s*[dhms]\s*)+$",
        },
    ]
}
_MEMORY = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0},
        {"type": "string", "pattern": rf"^\s*{_NUMBER_TEXT}\s*([MmGgTt][Ii]?[Bb]?)?\s*$"},
    ]
}
_CRON_FIELD = r"[0-9*/,\-A-Za-z]+"


def _schema(validator: Any, json_schema: dict[str, Any]) -> tuple[PlainValidator, WithJsonSchema]:
    return PlainValidator(validator), WithJsonSchema(json_schema)


Name = Annotated[str, *_schema(v.parse_name, _NAME)]
_ENDPOINT_NAME = {"type": "string", "pattern": ENDPOINT_NAME_PATTERN}  # at most 63, too
EndpointName = Annotated[str, *_schema(v.parse_endpoint_name, _ENDPOINT_NAME)]
Scalar = Annotated[object, *_schema(v.parse_scalar, {"type": [*_SCALAR["type"], "null"]})]
Duration = Annotated[float | None, *_schema(v.duration_parser("timeout"), _DURATION)]
_CRON = {"type": "string", "pattern": rf"^\s*{_CRON_FIELD}(\s+{_CRON_FIELD}){{4,5}}\s*$"}
_SCHEDULE = {"allOf": [{"$ref": "#/$defs/ScheduleModel"}]}  # a cron string or a mapping
Window = Annotated[float | None, *_schema(v.duration_parser("window"), _DURATION)]
Every = Annotated[float | None, *_schema(v.duration_parser("every"), _DURATION)]


# ---------------------------------------------------------------- models


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class ParamModel(_Model):
    """One entry of ``params``: ``{key, values}`` (a grid when several) or ``{key, value}``."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["values"]}, {"required": ["value"]}]}
    )

    key: Name
    values: Annotated[
        tuple[ParamValue, ...] | None,
        *_schema(
            v.parse_param_values,
            {
                "anyOf": [
                    {"type": "array", "minItems": 1, "items": _SCALAR},
                    {"type": "string", "pattern": _LIST_ITEM},
                    {"type": ["number", "boolean"]},
                ]
            },
        ),
    ] = None
    value: Annotated[ParamValue | None, *_schema(v.parse_param_value, _SCALAR)] = None
    type: str | None = (
        None  # cnvrg's type hint (categorical, discrete, ...); values keep YAML types
    )

    @model_validator(mode="after")
    def _one_of_values(self) -> ParamModel:
        if self.values is None and self.value is None:
            raise ValueError(f"param '{self.key}' needs 'values' (or 'value')")
        if self.values is not None and self.value is not None:
            raise ValueError(f"param '{self.key}': use either 'values' or 'value', not both")
        return self

    def to_spec(self) -> ParamSpec:
        """The domain parameter."""
        values = self.values if self.values is not None else (self.value,)
        return ParamSpec(key=self.key, values=tuple(x for x in values if x is not None))


class ResourcesModel(_Model):
    """``resources: {cpu, gpu, memory, custom}`` (a bare memory number is in MB)."""

    cpu: float = Field(default=1.0, ge=0)
    gpu: float = Field(default=0.0, ge=0)
    memory: Annotated[int | None, *_schema(v.memory_parser("MB"), _MEMORY)] = None
    custom: dict[Annotated[str, Field(min_length=1)], Annotated[float, Field(ge=0)]] | None = None

    def to_spec(self) -> Resources:
        """The domain resources."""
        custom = tuple(sorted((k, float(n)) for k, n in (self.custom or {}).items()))
        return Resources(
            cpu=float(self.cpu), gpu=float(self.gpu), memory_mb=self.memory, custom=custom
        )


class RequirementsModel(_Model):
    """cnvrg's ``requirements: {cpu, memory, gpu, hpu}`` (a bare memory number is in GB)."""

    cpu: float = Field(default=1.0, ge=0)
    memory: Annotated[int | None, *_schema(v.memory_parser("GB"), _MEMORY)] = None
    gpu: float = Field(default=0.0, ge=0)
    hpu: float = Field(default=0.0, ge=0)  # accepted with a warning: no HPU support

    def to_spec(self) -> Resources:
        """The domain resources (``hpu`` has no counterpart)."""
        return Resources(cpu=float(self.cpu), gpu=float(self.gpu), memory_mb=self.memory)


class AutoApproveModel(_Model):
    """A rule that approves a gate without a human when the review's figures allow it."""

    beats_champion_on: Annotated[
        tuple[str, ...],
        *_schema(v.parse_metric_list, {"type": "array", "minItems": 1, "items": _STRING}),
    ]
    margin: Annotated[float, Field(ge=0)] = 0.0
    no_drift: bool = False

    def to_json(self) -> str:
        """The rule as canonical JSON (what the gate policy keeps)."""
        return json.dumps(
            {
                "beats_champion_on": list(self.beats_champion_on),
                "margin": self.margin,
                "no_drift": self.no_drift,
            },
            sort_keys=True,
        )


class ConditionModel(_Model):
    """One selection condition of a select task (cnvrg's condition keys)."""

    tag_key: Name
    objective: Annotated[str, *_schema(v.parse_condition_objective, {"enum": ["max", "min"]})] = (
        "max"
    )
    target: float | None = None
    task: Scalar = None  # cnvrg: the task whose tag is read; accepted, warned when set
    value: Scalar = None  # cnvrg: accepted, warned when set

    def to_spec(self) -> ConditionSpec:
        """The domain condition."""
        return ConditionSpec(tag_key=self.tag_key, objective=self.objective, target=self.target)


class RelationModel(_Model):
    """One cnvrg edge: ``{from: upstream, to: downstream}``."""

    from_: Name = Field(alias="from")
    to: Name


_NOT_BOTH: list[JsonValue] = [
    {"not": {"required": ["title", "name"]}},
    {"not": {"required": ["command", "input"]}},
    {"not": {"required": ["command", "call"]}},
    {"not": {"required": ["input", "call"]}},
    {"not": {"required": ["resources", "requirements"]}},
    {"not": {"required": ["endpoint", "endpoint_title"]}},
]


class TaskModel(_Model):
    """Every key a task may carry; which ones a given task type allows is checked later."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [{"required": ["title"]}, {"required": ["name"]}],
            "allOf": _NOT_BOTH,
        }
    )

    # names and type
    title: Name | None = None
    name: Name | None = None
    type: Annotated[
        TaskKind | None, *_schema(v.parse_task_kind, {"enum": [k.value for k in TaskKind]})
    ] = None
    objective: Annotated[
        str | None,
        *_schema(v.parse_task_objective, {"const": TaskKind.HUMAN_VALIDATION.value}),
    ] = None
    description: str | None = None
    depends_on: Annotated[
        tuple[str, ...],
        *_schema(
            v.parse_depends_on,
            {"anyOf": [_NAME, {"type": "array", "items": _NAME}, _NULL]},
        ),
    ] = ()
    # commands (exec, data)
    command: Name | None = None
    input: Name | None = None  # cnvrg's name for the command
    call: Annotated[
        str | None, *_schema(v.parse_call, {"type": "string", "pattern": v.CALL_PATTERN})
    ] = None  # a Python function instead of a command (the SDK writes it)
    params: list[ParamModel] | None = None
    resources: ResourcesModel | None = None
    requirements: RequirementsModel | None = None
    executor: Literal["local", "ray"] | None = None  # else the flow's, else SIGNOFF_EXECUTOR
    env: Annotated[
        tuple[tuple[str, str], ...],
        *_schema(
            v.parse_env,
            {
                "type": "object",
                "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                "additionalProperties": _SCALAR,
            },
        ),
    ] = ()
    retries: Annotated[int | None, *_schema(v.parse_retries, {"type": "integer", "minimum": 0})] = (
        None
    )
    retry_delay: Annotated[
        float | None, *_schema(v.duration_parser("retry_delay", allow_zero=True), _DURATION)
    ] = None
    timeout: Duration = None  # a command's time limit, or a gate's approval timeout
    cache: bool | None = None
    output_dir: Annotated[
        str | None,
        *_schema(
            v.parse_output_dir,
            {
                "type": "string",
                "pattern": r"^(?![/\\~]|[A-Za-z]:)(?!(.*[/\\])?\.\.([/\\]|$)).*[^/\\.\s]",
            },
        ),
    ] = None
    # cnvrg keys accepted with a warning
    image: str | None = None
    language: str | None = None
    library: str | None = None
    library_version: Scalar = None
    git_branch: Scalar = None
    git_commit: Scalar = None
    computes: Annotated[
        tuple[str, ...],
        *_schema(v.parse_computes, {"anyOf": [{"type": "array", "items": _STRING}, _NULL]}),
    ] = ()
    # select
    conditions: list[ConditionModel] | None = None
    # human_validation
    target: Annotated[
        tuple[str, ...] | None,
        *_schema(
            v.parse_targets,
            {
                "anyOf": [
                    {"type": "string", "pattern": _LIST_ITEM},
                    {"type": "array", "minItems": 1, "items": _STRING},
                ]
            },
        ),
    ] = None
    quorum: Annotated[
        str | int | None,
        *_schema(
            v.parse_quorum,
            {"anyOf": [{"enum": ["any", "all"]}, {"type": "integer", "minimum": 1}]},
        ),
    ] = None
    on_timeout: Annotated[str | None, *_schema(v.parse_on_timeout, {"const": "reject"})] = None
    allow_self_approval: bool | None = None
    require_comment_on_reject: bool | None = None
    remind_every: Annotated[
        float | None, *_schema(v.duration_parser("remind_every"), _DURATION)
    ] = None
    supersede: bool | None = None
    auto_approve_if: AutoApproveModel | None = None
    # select: compare the winner with the model in production
    compare_to: Annotated[str | None, *_schema(v.parse_compare_to, {"const": "champion"})] = None
    min_improvement: float | None = None
    evaluate: str | None = None
    # deploy
    endpoint_title: EndpointName | None = None
    endpoint: EndpointName | None = None
    port: Annotated[
        int | None,
        *_schema(v.parse_port, {"type": "integer", "minimum": 1024, "maximum": 65535}),
    ] = None
    traffic: Annotated[int, Field(ge=1, le=100)] | None = None
    probation: Annotated[
        float | None, *_schema(v.duration_parser("probation", allow_zero=True), _DURATION)
    ] = None
    max_error_rate: Annotated[float, Field(ge=0, le=1)] | None = None
    kind: str | None = None
    file_name: str | None = None
    function_name: str | None = None
    prep_file: str | None = None
    prep_function: str | None = None
    accept_files: bool | None = None
    input_example: Any = None
    input_schema: Any = None
    output_schema: Any = None
    # cnvrg canvas coordinates, ignored
    top: Any = None
    left: Any = None


def _string_or_mapping(schema: dict[str, Any]) -> None:
    # `schedule:` is a cron string or this mapping; a keyword applies only to its own type
    # (pattern to strings, properties to objects), so one definition says both
    schema["type"] = ["string", "object"]
    schema["pattern"] = _CRON["pattern"]


class ScheduleModel(_Model):
    """``schedule:`` as a mapping: a cron line, its time zone and the scheduler's policies."""

    model_config = ConfigDict(json_schema_extra=_string_or_mapping)

    cron: Annotated[str, *_schema(v.cron_parser("cron"), _CRON)]
    timezone: Annotated[str, *_schema(v.parse_timezone, {"type": "string", "minLength": 1})] = "UTC"
    catchup: Annotated[Catchup, *_schema(v.parse_catchup, {"enum": [c.value for c in Catchup]})] = (
        Catchup.NONE
    )
    overlap: Annotated[Overlap, *_schema(v.parse_overlap, {"enum": [o.value for o in Overlap]})] = (
        Overlap.SKIP
    )

    def to_spec(self) -> ScheduleSpec:
        """The domain schedule."""
        return ScheduleSpec(
            cron=self.cron, timezone=self.timezone, catchup=self.catchup, overlap=self.overlap
        )


class TriggerModel(_Model):
    """One entry of ``triggers:``; which keys a kind of trigger allows is checked later."""

    on: Annotated[
        TriggerKind, *_schema(v.parse_trigger_kind, {"enum": [k.value for k in TriggerKind]})
    ]
    endpoint: EndpointName | None = None
    metric: Annotated[
        str | None,
        *_schema(
            v.parse_trigger_metric,
            {"enum": [m for ms in v.DECAY_METRICS.values() for m in ms]},
        ),
    ] = None
    threshold: float | None = Field(default=None, gt=0)
    below: float | None = None
    above: float | None = None
    features: Annotated[
        tuple[str, ...] | None,
        *_schema(
            v.parse_feature_list,
            {"anyOf": [{"type": "array", "minItems": 1, "items": _NAME}, _NAME]},
        ),
    ] = None
    min_events: Annotated[
        int | None, *_schema(v.parse_min_events, {"type": "integer", "minimum": 1})
    ] = None
    window: Window = None
    every: Every = None
    path: Name | None = None
    group_by: Name | None = None
    k: Annotated[int | None, *_schema(v.parse_min_events, {"type": "integer", "minimum": 1})] = None


_DECAY_KEYS = frozenset({"endpoint", "min_events", "window", "every"})
TRIGGER_KEYS: dict[TriggerKind, frozenset[str]] = {
    TriggerKind.DRIFT: _DECAY_KEYS | {"metric", "threshold", "features"},
    TriggerKind.QUALITY: _DECAY_KEYS | {"metric", "below", "above", "group_by", "k"},
    TriggerKind.ERROR_RATE: _DECAY_KEYS | {"above"},
    TriggerKind.DATA: frozenset({"path", "every"}),
    TriggerKind.WEBHOOK: frozenset(),
}
"""Keys each kind of trigger accepts besides ``on``."""


class FlowModel(_Model):
    """The top level of a flow file; tasks are checked one by one with :class:`TaskModel`."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [{"required": ["flow"]}, {"required": ["title"]}],
            "allOf": [
                {"not": {"required": ["flow", "title"]}},
                {"not": {"required": ["schedule", "recurring"]}},
            ],
        }
    )

    flow: Name | None = None
    title: Name | None = None
    description: str | None = None
    long_description: str | None = None
    version: Scalar = None
    author: str | None = None
    author_email: str | None = None
    tags: Annotated[
        tuple[str, ...] | None,
        *_schema(
            v.parse_tags,
            {
                "anyOf": [
                    {
                        "type": "array",
                        "items": {"type": "string", "pattern": r"^[^,]*[^,\s][^,]*$"},
                    },
                    _NULL,
                ]
            },
        ),
    ] = None
    schedule: Annotated[object, *_schema(v.parse_schedule_value("schedule"), _SCHEDULE)] = None
    recurring: Annotated[object, *_schema(v.parse_schedule_value("recurring"), _SCHEDULE)] = None
    params: list[ParamModel] | None = None
    executor: Literal["local", "ray"] | None = None  # every task's, unless it names its own
    tasks: list[Any] = Field(min_length=1)
    relations: list[RelationModel] | None = None
    triggers: Annotated[list[Any] | None, *_schema(v.parse_triggers_value, {"type": "array"})] = (
        None
    )

    @property
    def name(self) -> str | None:
        """The flow's name (``flow`` or cnvrg's ``title``)."""
        return self.flow if self.flow is not None else self.title

    @property
    def cron(self) -> str | None:
        """The schedule's cron line (``schedule`` or cnvrg's ``recurring``, either form)."""
        value = self.schedule if self.schedule is not None else self.recurring
        if isinstance(value, dict):
            cron = value.get("cron")
            return cron if isinstance(cron, str) else None
        return value if isinstance(value, str) else None


COMMON_TASK_KEYS = frozenset(
    {"title", "name", "type", "objective", "description", "depends_on", "top", "left"}
)
"""Keys every task type accepts."""

COMMAND_KEYS = frozenset({"command", "input", "params", "resources", "requirements", "env"})
"""Keys of a task that runs a command (a deploy task accepts them too, and drops them)."""

CNVRG_RUN_KEYS = frozenset(
    {"image", "language", "library", "library_version", "git_branch", "git_commit", "computes"}
)
"""cnvrg keys of exec, data and deploy tasks that are accepted and not acted on."""

CNVRG_DEPLOY_KEYS = frozenset(
    {
        "kind",
        "file_name",
        "function_name",
        "prep_file",
        "prep_function",
        "accept_files",
        "input_example",
        "input_schema",
        "output_schema",
    }
)
"""cnvrg keys of deploy tasks that are accepted and not acted on."""

CALL_EXCLUDED_KEYS = frozenset({"env", "timeout"})
"""Keys of exec and data tasks that a task with ``call`` (a Python function) may not carry."""

_RUN_KEYS = (
    COMMAND_KEYS
    | {"call", "retries", "retry_delay", "timeout", "cache", "output_dir", "executor"}
    | CNVRG_RUN_KEYS
)
KIND_TASK_KEYS: dict[TaskKind, frozenset[str]] = {
    TaskKind.EXEC: _RUN_KEYS,
    TaskKind.DATA: _RUN_KEYS,
    TaskKind.SELECT: frozenset({"conditions", "compare_to", "min_improvement", "evaluate"}),
    TaskKind.HUMAN_VALIDATION: frozenset(
        {
            "target",
            "quorum",
            "timeout",
            "on_timeout",
            "allow_self_approval",
            "require_comment_on_reject",
            "remind_every",
            "supersede",
            "auto_approve_if",
        }
    ),
    TaskKind.DEPLOY: frozenset(
        {"endpoint_title", "endpoint", "port", "traffic", "probation", "max_error_rate"}
    )
    | CNVRG_DEPLOY_KEYS
    | COMMAND_KEYS
    | CNVRG_RUN_KEYS,
}
"""Keys a task type accepts besides :data:`COMMON_TASK_KEYS`."""
