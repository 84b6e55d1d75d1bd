"""Pydantic models of the flow-file shape, and pydantic errors turned into readable messages.

The models check one mapping at a time: known keys, types, and values that need parsing
(cron, durations, comma-separated lists). Rules that depend on the task type or on other
tasks live in the loader, which sees the whole file.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable
from typing import Annotated, Any, NoReturn, get_args

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, model_validator
from pydantic_core import ErrorDetails

from signoff.domain.specs import ConditionSpec, ParamSpec, ParamValue, Resources, TaskKind
from signoff.spec._yaml import Loc, type_name

__all__ = [
    "COMMON_TASK_KEYS",
    "KIND_TASK_KEYS",
    "ConditionModel",
    "FlowModel",
    "ParamModel",
    "RelationModel",
    "ResourcesModel",
    "TaskModel",
    "describe_error",
]

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")
_CRON_FIELD = re.compile(r"[0-9*/,\-A-Za-z]+")
_DURATION_PART = re.compile(r"(\d+)\s*([dhms])")
_DURATION = re.compile(r"\s*(\d+\s*[dhms]\s*)+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_HIDDEN_KEYS = frozenset({"top", "left"})  # canvas coordinates of cnvrg exports


# ---------------------------------------------------------------- value parsers


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _name(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type_name(value)}")
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _param_scalar(value: object, what: str) -> ParamValue:
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{what} must be a finite number, got {value}")
        return value
    raise ValueError(f"{what} must be a string, number or boolean, got {type_name(value)}")


def _split_scalar(text: str) -> ParamValue:
    text = text.strip()
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def parse_param_values(value: object) -> tuple[ParamValue, ...]:
    """A list, a scalar, or a comma-separated string (items that look numeric become numbers)."""
    if isinstance(value, list):
        if not value:
            raise ValueError("values must not be empty")
        return tuple(_param_scalar(v, f"values[{i}]") for i, v in enumerate(value))
    if isinstance(value, str):
        items = tuple(_split_scalar(part) for part in value.split(",") if part.strip())
        if not items:
            raise ValueError("values must not be empty")
        return items
    if value is None:
        raise ValueError("values must not be empty")
    return (_param_scalar(value, "values"),)


def _param_value(value: object) -> ParamValue:
    return _param_scalar(value, "value")


def _task_kind(value: object) -> TaskKind:
    allowed = ", ".join(k.value for k in TaskKind)
    if isinstance(value, str):
        try:
            return TaskKind(value)
        except ValueError:
            pass
        return _fail(f"unknown task type '{value}' (expected one of: {allowed})")
    return _fail(f"type must be one of: {allowed}; got {type_name(value)}")


def _task_objective(value: object) -> str:
    if value == TaskKind.HUMAN_VALIDATION.value:
        return TaskKind.HUMAN_VALIDATION.value
    return _fail(
        f"objective on a task can only be 'human_validation', got {value!r} "
        "(ranking objectives go under 'conditions' of a select task)"
    )


def _condition_objective(value: object) -> str:
    if value in ("max", "min"):
        return str(value)
    return _fail(f"objective must be 'max' or 'min', got {value!r}")


def _depends_on(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (_name(value),)
    if not isinstance(value, list):
        return _fail(f"depends_on must be a task name or a list of names, got {type_name(value)}")
    names: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            _fail(f"depends_on[{i}] must be a task name, got {type_name(item)}")
        names.append(item)
    return tuple(names)


def parse_targets(value: object) -> tuple[str, ...] | None:
    """``"alice, bob"`` or ``[alice, group:ml]`` -> distinct targets, in order (null: absent)."""
    items: list[str] = []
    if value is None:
        return None  # `target:` with nothing after it reads as a missing target
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, str):
                _fail(f"target[{i}] must be a user name or group:name, got {type_name(item)}")
            items.append(item.strip())
    else:
        _fail(f"target must be a comma-separated string or a list, got {type_name(value)}")
    targets: list[str] = []
    for item in items:
        if not item:
            continue
        if any(ch.isspace() for ch in item):
            _fail(f"target '{item}' contains whitespace (separate targets with commas)")
        if item.startswith("group:") and not item.removeprefix("group:"):
            _fail("target 'group:' needs a group name")
        if item not in targets:
            targets.append(item)
    if not targets:
        _fail("a human_validation task needs at least one target")
    return tuple(targets)


def _quorum(value: object) -> str | int:
    if value in ("any", "all"):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return _fail(f"quorum must be 'any', 'all' or a positive number of approvers, got {value!r}")


def parse_duration(value: object) -> int:
    """``72h``, ``30m``, ``45s``, ``2d``, ``1d12h`` or a number of seconds -> seconds."""
    seconds: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and value.strip().isdigit():
        seconds = int(value)
    elif isinstance(value, str) and _DURATION.fullmatch(value):
        seconds = sum(int(n) * _UNITS[u] for n, u in _DURATION_PART.findall(value))
    if seconds is None:
        return _fail(
            f"timeout must be a duration like '72h', '30m', '45s' or '2d', "
            f"or a number of seconds; got {value!r}"
        )
    if seconds <= 0:
        return _fail("timeout must be positive")
    return seconds


def _on_timeout(value: object) -> str:
    if value == "reject":
        return "reject"
    if value == "approve":
        return _fail("on_timeout: approve is not allowed; timeouts never approve")
    return _fail(f"on_timeout must be 'reject', got {value!r}")


def _port(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 1024 <= value <= 65535:
        return value
    return _fail(f"port must be a whole number from 1024 to 65535, got {value!r}")


def _env(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        return _fail(f"env must be a mapping of names to strings, got {type_name(value)}")
    pairs: list[tuple[str, str]] = []
    for key, item in value.items():
        if not _ENV_NAME.fullmatch(key):
            _fail(f"env name '{key}' is not a valid environment variable name")
        if isinstance(item, bool):
            pairs.append((key, "true" if item else "false"))
        elif isinstance(item, str) or _is_number(item):
            pairs.append((key, str(item)))
        else:
            _fail(f"env value of '{key}' must be a string, got {type_name(item)}")
    return tuple(sorted(pairs))


def parse_schedule(value: object) -> str:
    """A five-field cron string (``minute hour day month weekday``), normalised to one space."""
    if not isinstance(value, str):
        return _fail(f"schedule must be a cron string like '0 3 * * MON', got {type_name(value)}")
    fields = value.split()
    if len(fields) != 5:
        return _fail(
            f"schedule must have 5 cron fields (minute hour day month weekday), "
            f"got {len(fields)} in {value!r}"
        )
    for i, part in enumerate(fields, start=1):
        if not _CRON_FIELD.fullmatch(part):
            _fail(f"schedule field {i} ({part!r}) is not a valid cron field")
    return " ".join(fields)


def _scalar(value: object) -> object:
    if isinstance(value, dict | list):
        return _fail(f"expected a scalar, got {type_name(value)}")
    return value


def _fail(message: str) -> NoReturn:
    raise ValueError(message)


Name = Annotated[str, PlainValidator(_name)]


# ---------------------------------------------------------------- models


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class ParamModel(_Model):
    """One entry of ``params``: ``{key, values}`` (a grid when several) or ``{key, value}``."""

    key: Name
    values: Annotated[tuple[ParamValue, ...] | None, PlainValidator(parse_param_values)] = None
    value: Annotated[ParamValue | None, PlainValidator(_param_value)] = None
    type: str | None = None  # cnvrg's type hint; accepted, not used

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
        return ParamSpec(key=self.key, values=tuple(v for v in values if v is not None))


class ResourcesModel(_Model):
    """``resources: {cpu, gpu, memory}`` (memory in MB)."""

    cpu: float = Field(default=1.0, ge=0)
    gpu: float = Field(default=0.0, ge=0)
    memory: int | None = Field(default=None, gt=0)

    def to_spec(self) -> Resources:
        """The domain resources."""
        return Resources(cpu=float(self.cpu), gpu=float(self.gpu), memory_mb=self.memory)


class ConditionModel(_Model):
    """One selection condition of a select task."""

    tag_key: Name
    objective: Annotated[str, PlainValidator(_condition_objective)] = "max"
    target: float | None = None

    def to_spec(self) -> ConditionSpec:
        """The domain condition."""
        return ConditionSpec(tag_key=self.tag_key, objective=self.objective, target=self.target)


class RelationModel(_Model):
    """One cnvrg edge: ``{from: upstream, to: downstream}``."""

    from_: Name = Field(alias="from")
    to: Name


class TaskModel(_Model):
    """Every key a task may carry; which ones a given task type allows is checked later."""

    title: Name | None = None
    name: Name | None = None
    type: Annotated[TaskKind | None, PlainValidator(_task_kind)] = None
    objective: Annotated[str | None, PlainValidator(_task_objective)] = None
    description: str | None = None
    command: Name | None = None
    params: list[ParamModel] | None = None
    depends_on: Annotated[tuple[str, ...], PlainValidator(_depends_on)] = ()
    resources: ResourcesModel | None = None
    env: Annotated[tuple[tuple[str, str], ...], PlainValidator(_env)] = ()
    conditions: list[ConditionModel] | None = None
    target: Annotated[tuple[str, ...] | None, PlainValidator(parse_targets)] = None
    quorum: Annotated[str | int | None, PlainValidator(_quorum)] = None
    timeout: Annotated[int | None, PlainValidator(parse_duration)] = None
    on_timeout: Annotated[str | None, PlainValidator(_on_timeout)] = None
    allow_self_approval: bool | None = None
    require_comment_on_reject: bool | None = None
    endpoint_title: Name | None = None
    endpoint: Name | None = None
    port: Annotated[int | None, PlainValidator(_port)] = None
    top: Any = None
    left: Any = None


class FlowModel(_Model):
    """The top level of a flow file; tasks are checked one by one with :class:`TaskModel`."""

    flow: Name | None = None
    title: Name | None = None
    description: str | None = None
    version: Annotated[object, PlainValidator(_scalar)] = None
    schedule: Annotated[str | None, PlainValidator(parse_schedule)] = None
    params: list[ParamModel] | None = None
    tasks: list[Any] = Field(min_length=1)
    relations: list[RelationModel] | None = None


COMMON_TASK_KEYS = frozenset(
    {"title", "name", "type", "objective", "description", "depends_on", "top", "left"}
)
"""Keys every task type accepts."""

_RUN_KEYS = frozenset({"command", "params", "resources", "env"})
KIND_TASK_KEYS: dict[TaskKind, frozenset[str]] = {
    TaskKind.EXEC: _RUN_KEYS,
    TaskKind.DATA: _RUN_KEYS,
    TaskKind.SELECT: frozenset({"conditions"}),
    TaskKind.HUMAN_VALIDATION: frozenset(
        {
            "target",
            "quorum",
            "timeout",
            "on_timeout",
            "allow_self_approval",
            "require_comment_on_reject",
        }
    ),
    TaskKind.DEPLOY: frozenset({"endpoint_title", "endpoint", "port"}) | _RUN_KEYS,
}
"""Keys a task type accepts besides :data:`COMMON_TASK_KEYS`."""


# ---------------------------------------------------------------- error messages

_EXPECTED = {
    "string_type": "a string",
    "bool_type": "true or false",
    "int_type": "a whole number",
    "float_type": "a number",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def describe_error(model: type[BaseModel], error: ErrorDetails) -> tuple[Loc, Loc, bool, str]:
    """One pydantic error as (field path, position path, position at the key?, message)."""
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden" and loc:
        key = str(loc[-1])
        return loc, loc, True, unknown_key_message(key, _keys_at(model, loc[:-1]))
    if kind == "missing" and loc:
        return loc, loc[:-1], False, f"missing required key '{loc[-1]}'"
    if kind == "value_error":
        ctx = error.get("ctx") or {}
        return loc, loc, False, str(ctx.get("error", error["msg"]))
    if kind in _EXPECTED:
        got = type_name(error["input"])
        return loc, loc, False, f"expected {_EXPECTED[kind]}, got {got}"
    if kind == "too_short" and loc == ("tasks",):
        return loc, loc, False, "a flow needs at least one task"
    message = error["msg"].replace("Input should be", "must be")
    return loc, loc, False, message


def unknown_key_message(key: str, allowed: Iterable[str]) -> str:
    """``unknown key 'x'`` with a did-you-mean, or the list of allowed keys."""
    choices = sorted(k for k in allowed if k not in _HIDDEN_KEYS)
    close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
    if close:
        return f"unknown key '{key}' (did you mean '{close[0]}'?)"
    return f"unknown key '{key}' (allowed: {', '.join(choices)})"


def _keys_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys accepted by the (nested) model found at ``loc``."""
    current: type[BaseModel] | None = model
    for step in loc:
        if current is None:
            return []
        if isinstance(step, int):
            continue
        current = _field_model(current, step)
    if current is None:
        return []
    return [f.alias or name for name, f in current.model_fields.items()]


def _field_model(model: type[BaseModel], key: str) -> type[BaseModel] | None:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return _find_model(info.annotation)
    return None


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _find_model(arg)
        if found is not None:
            return found
    return None
