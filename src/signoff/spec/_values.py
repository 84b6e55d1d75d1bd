"""Parsers of single flow-file values: names, params, durations, sizes, cron lines, paths.

Each parser takes the plain YAML value and returns the typed value or raises ``ValueError``
with a message meant for the user; the models in ``_schema`` attach them to keys.
"""

from __future__ import annotations

import difflib
import math
import re
import zoneinfo
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import NoReturn

from croniter import CroniterBadDateError, croniter

from signoff.domain.names import endpoint_name_problem
from signoff.domain.specs import Catchup, Overlap, ParamValue, TaskKind, TriggerKind
from signoff.spec._yaml import type_name

__all__ = [
    "CALL_PATTERN",
    "RESERVED_WORK_NAMES",
    "DECAY_METRICS",
    "cron_parser",
    "parse_catchup",
    "parse_feature_list",
    "parse_min_events",
    "parse_overlap",
    "parse_schedule_value",
    "parse_timezone",
    "parse_trigger_kind",
    "parse_trigger_metric",
    "parse_triggers_value",
    "duration_parser",
    "memory_parser",
    "parse_call",
    "parse_computes",
    "parse_condition_objective",
    "parse_depends_on",
    "parse_endpoint_name",
    "parse_env",
    "parse_name",
    "parse_compare_to",
    "parse_metric_list",
    "parse_on_timeout",
    "parse_output_dir",
    "parse_param_value",
    "parse_param_values",
    "parse_port",
    "parse_quorum",
    "parse_retries",
    "parse_scalar",
    "parse_tags",
    "parse_targets",
    "parse_task_kind",
    "parse_task_objective",
]

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")
_NUMBER = re.compile(r"\d+(\.\d*)?|\.\d+")
_CRON_FIELD = re.compile(r"[0-9*/,\-A-Za-z]+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms])")
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?\s*[dhms]\s*)+")
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WINDOWS_DRIVE = re.compile(r"[A-Za-z]:")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_SIZE_UNITS_MB = {
    **dict.fromkeys(("m", "mi", "mb", "mib"), 1),
    **dict.fromkeys(("g", "gi", "gb", "gib"), 1024),
    **dict.fromkeys(("t", "ti", "tb", "tib"), 1024 * 1024),
}

_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
CALL_PATTERN = rf"^{_DOTTED}:{_DOTTED}$"
"""``package.module:function`` (or ``module:Class.method``): dotted identifiers, one colon."""
_CALL = re.compile(CALL_PATTERN)

RESERVED_WORK_NAMES = frozenset({"inputs", "records.jsonl", "stdout.log"})
"""Names in a task's working folder that signoff writes itself (``output_dir`` may not use)."""


def _fail(message: str) -> NoReturn:
    raise ValueError(message)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ---------------------------------------------------------------- names and scalars


def parse_name(value: object) -> str:
    """A non-empty string (task, flow, endpoint and param names)."""
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type_name(value)}")
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def parse_endpoint_name(value: object) -> str:
    """An endpoint name: the one rule of :mod:`signoff.domain.names` (it becomes a folder)."""
    name = parse_name(value)
    problem = endpoint_name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    return name


def parse_scalar(value: object) -> object:
    """Any string, number, boolean or null; mappings and lists are refused."""
    if isinstance(value, dict | list):
        return _fail(f"expected a scalar, got {type_name(value)}")
    return value


def parse_tags(value: object) -> tuple[str, ...] | None:
    """``tags: [training, vision]`` -> the tags, in order (null: none)."""
    if value is None:
        return None
    if not isinstance(value, list):
        return _fail(f"tags must be a list of strings, got {type_name(value)}")
    tags: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            _fail(f"tags[{i}] must be a non-empty string, got {type_name(item)}")
        if "," in item:
            _fail(f"tag '{item}' contains ',' (tags are stored comma-separated)")
        tags.append(item.strip())
    return tuple(tags)


def parse_computes(value: object) -> tuple[str, ...]:
    """cnvrg's ``computes: [medium, large]``: compute template names."""
    if value is None:
        return ()
    if not isinstance(value, list):
        return _fail(f"computes must be a list of compute names, got {type_name(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            _fail(f"computes[{i}] must be a compute name, got {type_name(item)}")
    return tuple(value)


# ---------------------------------------------------------------- params


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


def parse_param_value(value: object) -> ParamValue:
    """``value:`` of a param: one string, number or boolean, never split."""
    return _param_scalar(value, "value")


# ---------------------------------------------------------------- task type and references


def parse_task_kind(value: object) -> TaskKind:
    """``type:`` of a task."""
    allowed = ", ".join(k.value for k in TaskKind)
    if isinstance(value, str):
        try:
            return TaskKind(value)
        except ValueError:
            pass
        return _fail(f"unknown task type '{value}' (expected one of: {allowed})")
    return _fail(f"type must be one of: {allowed}; got {type_name(value)}")


def parse_task_objective(value: object) -> str:
    """``objective:`` on a task: only the seed's ``human_validation``."""
    if value == TaskKind.HUMAN_VALIDATION.value:
        return TaskKind.HUMAN_VALIDATION.value
    return _fail(
        f"objective on a task can only be 'human_validation', got {value!r} "
        "(ranking objectives go under 'conditions' of a select task)"
    )


def parse_condition_objective(value: object) -> str:
    """``objective:`` of a condition: ``max`` or ``min``."""
    if value in ("max", "min"):
        return str(value)
    return _fail(f"objective must be 'max' or 'min', got {value!r}")


def parse_call(value: object) -> str:
    """``package.module:function``: a Python function the executor imports and calls.

    Only the form is checked; nothing is imported while a flow loads.
    """
    if not isinstance(value, str):
        return _fail(f"call must be 'package.module:function', got {type_name(value)}")
    if not _CALL.fullmatch(value):
        return _fail(
            f"call must be 'package.module:function' (dotted identifiers, one ':'), got '{value}'"
        )
    return value


def parse_depends_on(value: object) -> tuple[str, ...]:
    """One task name or a list of them."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (parse_name(value),)
    if not isinstance(value, list):
        return _fail(f"depends_on must be a task name or a list of names, got {type_name(value)}")
    names: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            _fail(f"depends_on[{i}] must be a task name, got {type_name(item)}")
        names.append(item)
    return tuple(names)


# ---------------------------------------------------------------- gates


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


def parse_quorum(value: object) -> str | int:
    """``any``, ``all`` or a positive number of approvers."""
    if value in ("any", "all"):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return _fail(f"quorum must be 'any', 'all' or a positive number of approvers, got {value!r}")


def parse_metric_list(value: object) -> tuple[str, ...]:
    """One metric name or a list of them."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        return _fail("expected a metric name or a non-empty list of metric names")
    names = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            return _fail("metric names must be non-empty strings")
        names.append(item.strip())
    return tuple(names)


def parse_compare_to(value: object) -> str:
    """What a select task compares its winner with: only ``champion`` (the production model)."""
    if value == "champion":
        return "champion"
    return _fail(f"compare_to must be 'champion', got {value!r}")


def parse_on_timeout(value: object) -> str:
    """Only ``reject``: a timeout never approves."""
    if value == "reject":
        return "reject"
    if value == "approve":
        return _fail("on_timeout: approve is not allowed; timeouts never approve")
    return _fail(f"on_timeout must be 'reject', got {value!r}")


# ---------------------------------------------------------------- durations, sizes, counts


def _seconds(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text):
            return float(text)
        if _DURATION.fullmatch(value):
            return float(sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(value)))
    return None


def duration_parser(key: str, *, allow_zero: bool = False) -> Callable[[object], float]:
    """A parser of ``72h``, ``30m``, ``45s``, ``2d``, ``1d12h``, ``1.5s`` or seconds -> seconds."""

    def parse(value: object) -> float:
        seconds = _seconds(value)
        if seconds is None or seconds < 0:
            return _fail(
                f"{key} must be a duration like '30s', '10m', '72h' or '2d', "
                f"or a number of seconds; got {value!r}"
            )
        if seconds == 0 and not allow_zero:
            return _fail(f"{key} must be positive")
        return seconds

    return parse


def memory_parser(default_unit: str) -> Callable[[object], int]:
    """A parser of memory sizes -> whole MB (rounded up); bare numbers are in ``default_unit``.

    Sizes take a unit: ``Mi``/``M``/``MB``, ``Gi``/``G``/``GB``, ``Ti``/``T``/``TB`` (any case;
    all are powers of 1024, so ``4G`` and ``4Gi`` are both 4096 MB).
    """
    default_mb = _SIZE_UNITS_MB[default_unit.lower()]

    def parse(value: object) -> int:
        amount: float | None = None
        unit_mb = default_mb
        if isinstance(value, int | float) and not isinstance(value, bool):
            amount = float(value)
        elif isinstance(value, str) and (match := _SIZE.fullmatch(value)):
            unit = match.group(2).lower()
            if not unit or unit in _SIZE_UNITS_MB:
                amount = float(match.group(1))
                unit_mb = _SIZE_UNITS_MB[unit] if unit else default_mb
        if amount is None or not math.isfinite(amount):
            return _fail(
                f"memory must be a number of {default_unit} or a size like '4Gi' or '512Mi', "
                f"got {value!r}"
            )
        if amount <= 0:
            return _fail("memory must be positive")
        return math.ceil(amount * unit_mb)

    return parse


def parse_retries(value: object) -> int:
    """How many times a failed task run is tried again: a whole number, 0 or more."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return _fail(f"retries must be a whole number, 0 or more; got {value!r}")


def parse_port(value: object) -> int:
    """A fixed endpoint port, 1024 to 65535."""
    if isinstance(value, int) and not isinstance(value, bool) and 1024 <= value <= 65535:
        return value
    return _fail(f"port must be a whole number from 1024 to 65535, got {value!r}")


# ---------------------------------------------------------------- env, paths, cron


def parse_env(value: object) -> tuple[tuple[str, str], ...]:
    """``env: {NAME: value}`` -> sorted (name, text) pairs; booleans become true/false."""
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


def parse_output_dir(value: object) -> str:
    """A folder inside the task's working folder: relative, no ``..`` -> normalised with ``/``."""
    if not isinstance(value, str) or not value.strip():
        return _fail(f"output_dir must be a relative folder path, got {type_name(value)}")
    text = value.strip()
    if text.startswith(("/", "\\", "~")) or _WINDOWS_DRIVE.match(text):
        return _fail(f"output_dir must be a path relative to the working folder, got '{text}'")
    parts = [p for p in re.split(r"[/\\]", text) if p not in ("", ".")]
    if ".." in parts:
        return _fail(f"output_dir must stay inside the working folder ('..' in '{text}')")
    if not parts:
        return _fail(f"output_dir must name a folder inside the working folder, got '{text}'")
    if parts[0] in RESERVED_WORK_NAMES:
        return _fail(f"output_dir cannot be under '{parts[0]}': signoff writes that itself")
    return "/".join(parts)


def cron_parser(key: str) -> Callable[[object], str]:
    """A parser of cron lines: five fields (``minute hour day month weekday``), one space apart.

    A sixth field, seconds, is accepted last (``*/10 * * * * 30``): an advanced option for
    tests and demos. The line must be one croniter reads and must fire at least once.
    """

    def parse(value: object) -> str:
        if not isinstance(value, str):
            return _fail(f"{key} must be a cron string like '0 3 * * MON', got {type_name(value)}")
        fields = value.split()
        if len(fields) not in (5, 6):
            return _fail(
                f"{key} must have 5 cron fields (minute hour day month weekday), or 6 with "
                f"seconds last; got {len(fields)} in {value!r}"
            )
        for i, part in enumerate(fields, start=1):
            if not _CRON_FIELD.fullmatch(part):
                _fail(f"{key} field {i} ({part!r}) is not a valid cron field")
        line = " ".join(fields)
        try:
            croniter(line, datetime(2000, 1, 1)).get_next(datetime)
        except CroniterBadDateError:  # a line croniter reads but no date matches (Feb 31)
            return _fail(f"{key} {line!r} never fires")
        except (ValueError, KeyError) as exc:  # croniter's other errors are ValueErrors
            reason = str(exc) or type(exc).__name__
            return _fail(f"{key} {line!r} is not a valid cron line: {reason}")
        return line

    return parse


# ---------------------------------------------------------------- schedules and triggers


def parse_schedule_value(key: str) -> Callable[[object], object]:
    """``schedule:`` is a cron string or a mapping (checked key by key by the loader)."""
    cron = cron_parser(key)

    def parse(value: object) -> object:
        if isinstance(value, dict):
            return value
        if isinstance(value, str):
            return cron(value)
        return _fail(
            f"{key} must be a cron string like '0 3 * * MON' or a mapping "
            f"{{cron, timezone, catchup, overlap}}, got {type_name(value)}"
        )

    return parse


def parse_triggers_value(value: object) -> object:
    """``triggers:`` is a list of mappings (each checked by the loader)."""
    if value is None or isinstance(value, list):
        return value
    return _fail(
        f"triggers must be a list of rules like {{on: drift, ...}}, got {type_name(value)}"
    )


def parse_timezone(value: object) -> str:
    """An IANA time zone name (``Europe/Paris``, ``UTC``), known to ``zoneinfo``."""
    if not isinstance(value, str) or not value.strip():
        return _fail(f"timezone must be an IANA name like 'Europe/Paris', got {type_name(value)}")
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(value, sorted(zoneinfo.available_timezones()), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return _fail(f"unknown time zone '{value}'{hint}")
    return value


def _values_of(kind: type[StrEnum]) -> frozenset[str]:
    return frozenset(member.value for member in kind)


def parse_catchup(value: object) -> Catchup:
    """``none``, ``latest`` or ``all``."""
    if isinstance(value, str) and value in _values_of(Catchup):
        return Catchup(value)
    return _fail(f"catchup must be one of: none, latest, all; got {value!r}")


def parse_overlap(value: object) -> Overlap:
    """``skip``, ``queue`` or ``supersede``."""
    if isinstance(value, str) and value in _values_of(Overlap):
        return Overlap(value)
    return _fail(f"overlap must be one of: skip, queue, supersede; got {value!r}")


def parse_trigger_kind(value: object) -> TriggerKind:
    """``on:`` of a trigger."""
    allowed = ", ".join(k.value for k in TriggerKind)
    if isinstance(value, str) and value in _values_of(TriggerKind):
        return TriggerKind(value)
    return _fail(f"unknown trigger '{value}' (expected one of: {allowed})")


DECAY_METRICS: dict[TriggerKind, tuple[str, ...]] = {
    TriggerKind.DRIFT: ("psi", "ks"),
    TriggerKind.QUALITY: ("accuracy", "auc", "rmse", "ndcg"),
}
"""The metrics a drift and a quality rule may use."""


def parse_trigger_metric(value: object) -> str:
    """A drift statistic (``psi``, ``ks``) or a quality metric; which fits is checked later."""
    known = [m for ms in DECAY_METRICS.values() for m in ms]
    if isinstance(value, str) and value in known:
        return value
    return _fail(f"metric must be one of: {', '.join(known)}; got {value!r}")


def parse_feature_list(value: object) -> tuple[str, ...]:
    """``[age, income]`` or ``"age, income"``: feature names."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        return _fail(f"features must be a list of feature names, got {type_name(value)}")
    names: list[str] = []
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item.strip():
            _fail(f"features[{i}] must be a feature name, got {type_name(item)}")
        if item.strip() not in names:
            names.append(item.strip())
    if not names:
        return _fail("features must name at least one feature")
    return tuple(names)


def parse_min_events(value: object) -> int:
    """How many events a rule needs before it is judged: a whole number, 1 or more."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return _fail(f"must be a whole number, 1 or more; got {value!r}")
