"""Flow files to :class:`FlowSpec`: the one validator behind the CLI, the API and the SDK.

Checking runs in passes over one parsed document and never stops at the first problem: YAML
syntax and duplicate keys, then the shape of every mapping (pydantic, one task at a time),
then the rules that span keys and tasks (task types, names, references, cycles, templates,
cnvrg ``/input/`` paths). Every issue carries the file, line, column and field path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from signoff.domain.specs import FlowSpec, TaskKind
from signoff.errors import SpecError, SpecIssue
from signoff.spec import _cnvrg
from signoff.spec._build import CheckedTask, build_flow
from signoff.spec._messages import describe_error
from signoff.spec._reading import MAX_FLOW_BYTES, check_flow_size, read_flow_text
from signoff.spec._references import ReferenceChecks, param_value_loc
from signoff.spec._schedules import ScheduleChecks
from signoff.spec._schema import (
    CALL_EXCLUDED_KEYS,
    COMMON_TASK_KEYS,
    KIND_TASK_KEYS,
    FlowModel,
    TaskModel,
)
from signoff.spec._values import parse_param_values
from signoff.spec._yaml import Loc, format_path, locate, read_yaml, type_name
from signoff.spec.templates import template_variables

__all__ = ["BUILTIN_VARIABLES", "MAX_FLOW_BYTES", "LoadedFlow", "load_flow", "parse_flow"]

BUILTIN_VARIABLES = frozenset({"run_id", "task", "output_dir", "inputs"})
"""Template variables every command may use besides its params and the flow's params."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TEMPLATE_MARKS = ("{{", "{%", "{#")
_NUMBER_TOKEN = re.compile(r"[^\s,\]}#]+")
_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True)
class LoadedFlow:
    """A valid flow, the warnings found while loading it, and where it came from."""

    spec: FlowSpec
    warnings: tuple[SpecIssue, ...]  # each with its file, line, column and field
    path: Path | None  # absolute path of the flow file; None when parsed from text
    base_dir: Path  # the folder holding the flow file (commands run relative to it)


def load_flow(path: str | Path) -> LoadedFlow:
    """Read and validate a flow file; raises :class:`SpecError` listing every error found.

    Every entry point reads flow files here: a file over :data:`MAX_FLOW_BYTES` is refused
    after reading no more than that.
    """
    file = Path(path)
    name = str(path)
    text = read_flow_text(file, name)
    resolved = file.resolve()
    return _Checker(text, name).load(path=resolved, base_dir=resolved.parent)


def parse_flow(text: str, filename: str = "<flow>", base_dir: Path | None = None) -> LoadedFlow:
    """Validate flow text (``filename`` only names it in issues); ``base_dir`` defaults to cwd."""
    check_flow_size(text, filename)
    base = base_dir if base_dir is not None else Path.cwd()
    return _Checker(text.removeprefix("\ufeff"), filename).load(path=None, base_dir=base)


class _Checker(ScheduleChecks, ReferenceChecks):
    """Collects the issues of one flow document and builds its spec when there are none."""

    def __init__(self, text: str, filename: str) -> None:
        self.text = text
        self.file = filename
        self.tree: Any = None
        self.issues: list[SpecIssue] = []

    # ------------------------------------------------------------ driver

    def load(self, *, path: Path | None, base_dir: Path) -> LoadedFlow:
        parsed = read_yaml(self.text, self.file)
        self.issues.extend(parsed.issues)
        if not parsed.ok:
            raise SpecError(parsed.issues)
        self.tree = parsed.tree
        data = parsed.data
        if not isinstance(data, dict):
            got = "an empty file" if data is None else type_name(data)
            self.error((), f"a flow file must be a mapping with 'flow' and 'tasks', got {got}")
            raise self.spec_error()
        flow, _ = self.validate(FlowModel, data, ())
        self.check_flow_keys(data)
        flow_params = self.check_params(data.get("params"), ("params",))
        raw_tasks = data.get("tasks")
        tasks = [
            self.check_task(i, raw, flow_params)
            for i, raw in enumerate(raw_tasks if isinstance(raw_tasks, list) else [])
        ]
        upstream, unsure = self.check_graph(tasks, data.get("relations"))
        tasks = [self.resolve_inputs(task, tasks, upstream, unsure) for task in tasks]
        cron, schedule = self.check_schedule(data)
        triggers = self.check_triggers(data.get("triggers"))
        if flow is None or any(i.severity == "error" for i in self.issues):
            raise self.spec_error()
        spec = build_flow(
            flow,
            tasks,
            upstream,
            self.metadata(flow),
            cron=cron,
            schedule=schedule,
            triggers=triggers,
        )
        warnings = tuple(sorted(self.issues, key=lambda i: (i.line, i.column)))
        return LoadedFlow(spec=spec, warnings=warnings, path=path, base_dir=base_dir)

    def spec_error(self) -> SpecError:
        return SpecError(sorted(self.issues, key=lambda i: (i.line, i.column)))

    def error(
        self,
        loc: Loc,
        message: str,
        *,
        at_key: bool = False,
        pos: Loc | None = None,
        severity: str = "error",
    ) -> None:
        """Record an issue for field ``loc``, positioned at ``pos`` (default: ``loc``)."""
        line, column = locate(self.tree, loc if pos is None else pos, at_key=at_key)
        self.issues.append(
            SpecIssue(self.file, line, column, format_path(loc), message, severity=severity)
        )

    def warn(self, loc: Loc, message: str, *, at_key: bool = False) -> None:
        """Record a warning: it is reported and never stops the flow."""
        self.error(loc, message, at_key=at_key, severity="warning")

    def line_of(self, loc: Loc) -> int:
        return locate(self.tree, loc)[0]

    def validate(self, model: type[_M], raw: object, loc: Loc) -> tuple[_M | None, set[str]]:
        """Validate one mapping; on errors, retry without the broken keys to keep checking."""
        try:
            return model.model_validate(raw), set()
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
        broken: set[str] = set()
        for err in errors:
            field, pos, at_key, message = describe_error(model, err)
            self.error((*loc, *field), message, at_key=at_key, pos=(*loc, *pos))
            if err["loc"]:
                broken.add(str(err["loc"][0]))
        if not isinstance(raw, dict) or not broken:
            return None, broken
        try:
            salvaged = model.model_validate({k: v for k, v in raw.items() if k not in broken})
        except ValidationError:
            return None, broken
        return salvaged, broken

    def either(self, loc: Loc, raw: dict[str, Any], keys: tuple[str, str], message: str) -> bool:
        """Refuse two keys that say the same thing (at the later one); true when both are given."""
        present = [k for k in keys if k in raw]
        if len(present) < 2:
            return False
        later = max(present, key=lambda k: locate(self.tree, (*loc, k), at_key=True))
        self.error((*loc, later), message, at_key=True)
        return True

    # ------------------------------------------------------------ flow level

    def check_flow_keys(self, data: dict[str, Any]) -> None:
        message = "use either 'flow' or 'title' for the flow name"
        if not self.either((), data, ("flow", "title"), message):
            key = "flow" if "flow" in data else "title" if "title" in data else None
            if key is None:
                message = "missing required key 'flow' (the flow name; cnvrg exports use 'title')"
                self.error(("flow",), message, pos=())
            elif data[key] is None:
                self.error((key,), "the flow name must not be empty", at_key=True)
        message = "use either 'schedule' or 'recurring' (cnvrg's name for it), not both"
        self.either((), data, ("schedule", "recurring"), message)

    def metadata(self, flow: FlowModel) -> tuple[tuple[str, str], ...]:
        """``version``, ``author``, ``author_email``, ``long_description``, ``tags`` as text."""
        pairs: list[tuple[str, str]] = []
        for key in ("author", "author_email", "long_description", "version"):
            value = getattr(flow, key)
            if value is not None and value != "":
                pairs.append((key, self.scalar_text((key,), value)))
        if flow.tags:
            pairs.append(("tags", ",".join(flow.tags)))
        return tuple(sorted(pairs))

    def scalar_text(self, loc: Loc, value: object) -> str:
        """A scalar as the file wrote it: ``version: 1.10`` is ``"1.10"``, not ``"1.1"``."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            line, column = locate(self.tree, loc)
            lines = self.text.splitlines()
            if 0 < line <= len(lines):
                token = _NUMBER_TOKEN.match(lines[line - 1], column - 1)
                if token and _same_number(token.group(0), value):
                    return token.group(0)
        return str(value)

    def check_params(self, raw: object, loc: Loc) -> list[str]:
        """Duplicate keys are errors; returns the keys (for templates)."""
        keys: list[str] = []
        first_line: dict[str, int] = {}
        for j, item in enumerate(raw if isinstance(raw, list) else []):
            key = item.get("key") if isinstance(item, dict) else None
            if not isinstance(key, str):
                continue
            key_loc = (*loc, j, "key")
            self.check_value_templates(item, (*loc, j))
            if key in first_line:
                self.error(key_loc, f"duplicate param '{key}' (first at line {first_line[key]})")
                continue
            first_line[key] = self.line_of(key_loc)
            keys.append(key)
            if not _IDENTIFIER.fullmatch(key):
                self.warn(key_loc, f"param '{key}' is not an identifier: templates cannot use it")
            self.check_repeated_values(item, (*loc, j, "values"))
        return keys

    def check_repeated_values(self, item: dict[str, Any], loc: Loc) -> None:
        try:
            values = parse_param_values(item.get("values"))
        except ValueError:
            return  # reported by the schema pass (or the param uses `value:`)
        distinct = {(type(v), v) for v in values}
        if len(distinct) < len(values):
            self.warn(loc, "values repeat: the grid runs the same combination more than once")

    def check_value_templates(self, item: dict[str, Any], loc: Loc) -> None:
        """String param values are rendered like commands, with the built-in variables only."""
        for value, value_loc in _string_values(item, loc):
            if not any(mark in value for mark in _TEMPLATE_MARKS):
                continue
            try:
                used = template_variables(value)
            except ValueError as exc:
                self.error(value_loc, f"invalid template: {exc}")
                continue
            known = ", ".join(sorted(BUILTIN_VARIABLES))
            for var in sorted(used - BUILTIN_VARIABLES):
                message = f"unknown template variable '{var}' (param values may use: {known})"
                self.error(value_loc, message)

    # ------------------------------------------------------------ one task

    def check_task(self, index: int, raw: object, flow_params: list[str]) -> CheckedTask:
        loc: Loc = ("tasks", index)
        model, broken = self.validate(TaskModel, raw, loc)
        if not isinstance(raw, dict) or model is None:
            return CheckedTask(index, {}, None, None, "title", None)
        name, name_key = self.check_task_name(loc, raw)
        kind = self.task_kind(loc, model, broken)
        self.either(loc, raw, ("command", "input"), _TWO_COMMANDS)
        for key in ("command", "input"):
            self.either(loc, raw, (key, "call"), _COMMAND_AND_CALL.format(key=key))
        message = "use either 'resources' or 'requirements' (cnvrg's name for it), not both"
        self.either(loc, raw, ("resources", "requirements"), message)
        params = self.check_params(raw.get("params"), (*loc, "params"))
        command_key: str | None = None
        if kind is not None:
            self.check_kind_keys(loc, raw, kind)
            self.check_kind_required(loc, raw, model, broken, kind)
            _cnvrg.ignored_task_keys(self, loc, raw, kind)
            if kind.runs_command and (model.call is None or "call" in broken):
                command_key = "command" if model.command is not None else "input"
                self.check_command(loc, raw, command_key, [*params, *flow_params])
            elif kind.runs_command:
                self.check_call_keys(loc, raw)
            if kind is TaskKind.SELECT:
                _cnvrg.ignored_condition_keys(self, (*loc, "conditions"), raw.get("conditions"))
                self.check_champion_keys(loc, raw, flow_params)
        command = model.command if model.command is not None else model.input
        task_params = tuple(p.to_spec() for p in model.params or ())
        return CheckedTask(
            index, raw, model, name, name_key, kind, command_key, command, task_params
        )

    def check_task_name(self, loc: Loc, raw: dict[str, Any]) -> tuple[str | None, str]:
        present = [k for k in ("title", "name") if k in raw]
        if not present:
            self.error((*loc, "title"), "a task needs a 'title' (or 'name')", pos=loc)
            return None, "title"
        self.either(loc, raw, ("title", "name"), "use either 'title' or 'name' for the task name")
        value = raw[present[0]]
        if value is None:
            self.error((*loc, present[0]), "the task name must not be empty", at_key=True)
        elif isinstance(value, str | int | float) and str(value).strip():
            return str(value), present[0]  # a non-string name is reported by the schema pass
        return None, present[0]

    def task_kind(self, loc: Loc, model: TaskModel, broken: set[str]) -> TaskKind | None:
        if broken & {"type", "objective"}:
            return None
        if model.type is None:
            return TaskKind.HUMAN_VALIDATION if model.objective else TaskKind.EXEC
        if model.objective is not None and model.type is not TaskKind.HUMAN_VALIDATION:
            message = f"objective: human_validation conflicts with type: {model.type.value}"
            self.error((*loc, "objective"), message, at_key=True)
        return model.type

    def check_kind_keys(self, loc: Loc, raw: dict[str, Any], kind: TaskKind) -> None:
        allowed = COMMON_TASK_KEYS | KIND_TASK_KEYS[kind]
        for key, value in raw.items():
            if key not in TaskModel.model_fields or key in allowed:
                continue
            if key in ("params", "conditions") and value == []:
                continue  # cnvrg exports write empty lists on every task
            message = f"key '{key}' is not allowed on a task of type '{kind.value}'"
            if key in ("command", "input", "call"):
                message += " (it runs inside signoff)"
            self.error((*loc, key), message, at_key=True)

    def check_kind_required(
        self, loc: Loc, raw: dict[str, Any], model: TaskModel, broken: set[str], kind: TaskKind
    ) -> None:
        given = {"command", "input", "call"} & (broken | {k for k in raw if raw[k] is not None})
        if kind.runs_command and not given:
            article = "an" if kind is TaskKind.EXEC else "a"
            message = f"{article} {kind.value} task needs a 'command'"
            self.error((*loc, "command"), message, pos=loc)
        if kind is TaskKind.SELECT and "conditions" not in broken and not model.conditions:
            cond: Loc = (*loc, "conditions")
            pos = cond if "conditions" in raw else loc
            self.error(cond, "a select task needs at least one condition", pos=pos)
        if kind is TaskKind.HUMAN_VALIDATION:
            self.check_gate(loc, model, broken)
        if kind is TaskKind.DEPLOY:
            keys = ("endpoint_title", "endpoint")
            message = "use either 'endpoint' or 'endpoint_title', not both"
            both = self.either(loc, raw, keys, message)
            if not both and not broken & set(keys) and not (model.endpoint or model.endpoint_title):
                message = "a deploy task needs an 'endpoint' (or 'endpoint_title')"
                empty = [k for k in keys if k in raw]  # present, but null or empty
                if empty:
                    self.error((*loc, empty[0]), message, at_key=True)
                else:
                    self.error((*loc, "endpoint"), message, pos=loc)

    def check_gate(self, loc: Loc, model: TaskModel, broken: set[str]) -> None:
        if "target" in broken:
            return
        targets = model.target
        if targets is None:
            message = "a human_validation task needs at least one target"
            self.error((*loc, "target"), message, pos=loc)
            return
        quorum = model.quorum
        has_group = any(t.startswith("group:") for t in targets)
        if isinstance(quorum, int) and not has_group and quorum > len(targets):
            message = f"quorum {quorum} is more than the {len(targets)} target(s)"
            self.error((*loc, "quorum"), message)

    def check_champion_keys(self, loc: Loc, raw: dict[str, Any], flow_params: list[str]) -> None:
        """``min_improvement``/``evaluate`` only with ``compare_to``; the evaluate template."""
        if raw.get("compare_to") is None:
            for key in ("min_improvement", "evaluate"):
                if raw.get(key) is not None:
                    self.error((*loc, key), f"'{key}' needs 'compare_to: champion'", at_key=True)
            return
        evaluate = raw.get("evaluate")
        if not isinstance(evaluate, str):
            return
        try:
            used = template_variables(evaluate)
        except ValueError as exc:
            self.error((*loc, "evaluate"), f"invalid template: {exc}")
            return
        known = sorted({*flow_params, *BUILTIN_VARIABLES, "model", "digest"})
        for var in sorted(used.difference(known)):
            message = f"unknown template variable '{var}' (known: {', '.join(known)})"
            self.error((*loc, "evaluate"), message)

    def check_call_keys(self, loc: Loc, raw: dict[str, Any]) -> None:
        """A Python function runs in the executor's process: no per-task env, no hard stop."""
        for key in sorted(CALL_EXCLUDED_KEYS & raw.keys()):
            if raw[key] is not None:
                self.error((*loc, key), _NOT_WITH_CALL[key], at_key=True)

    def check_command(self, loc: Loc, raw: dict[str, Any], key: str, params: list[str]) -> None:
        """The command's template, and cnvrg-style params the command does not pass on."""
        command = raw.get(key)
        if not isinstance(command, str):
            return  # missing (reported) or not a string (reported by the schema pass)
        cmd_loc = (*loc, key)
        try:
            used = template_variables(command)
        except ValueError as exc:
            self.error(cmd_loc, f"invalid template: {exc}")
            return
        known = sorted(set(params) | BUILTIN_VARIABLES)
        for var in sorted(used.difference(known)):
            self.error(cmd_loc, f"unknown template variable '{var}' (known: {', '.join(known)})")
        raw_params = raw.get("params")
        for j, item in enumerate(raw_params if isinstance(raw_params, list) else []):
            if not isinstance(item, dict) or "type" not in item:
                continue  # only cnvrg-style params (with a `type`) expect to be appended
            name = item.get("key")
            if isinstance(name, str) and name not in used and _IDENTIFIER.fullmatch(name):
                env = "SIGNOFF_PARAM_" + name.upper()
                message = (
                    f"param '{name}' is not in the command: cnvrg appends params as "
                    f"'--{name} <value>', signoff does not (write '--{name} {{{{ {name} }}}}' "
                    f"in the command, or read {env})"
                )
                self.warn((*loc, "params", j, "key"), message)


# ---------------------------------------------------------------- helpers

_TWO_COMMANDS = "use either 'command' or 'input' (cnvrg's name for the command), not both"
_COMMAND_AND_CALL = "use either '{key}' (a shell command) or 'call' (a Python function), not both"
_NOT_WITH_CALL = {
    "env": (
        "key 'env' is not allowed on a task with 'call': the function runs in the executor's "
        "own process, whose environment is shared by every task"
    ),
    "timeout": (
        "key 'timeout' is not allowed on a task with 'call': a function running in the "
        "executor's process cannot be stopped; limit the time inside the function"
    ),
}


def _string_values(item: dict[str, Any], loc: Loc) -> Iterator[tuple[str, Loc]]:
    """The string values of one raw param entry, each with where it is."""
    if isinstance(item.get("value"), str):
        yield item["value"], (*loc, "value")
    if "values" not in item:
        return
    try:
        values = parse_param_values(item["values"])
    except ValueError:
        return  # reported by the schema pass
    for i, value in enumerate(values):
        if isinstance(value, str):
            yield value, param_value_loc(item, loc, i)


def _same_number(token: str, value: int | float) -> bool:
    try:
        return float(token) == value
    except ValueError:
        return False
