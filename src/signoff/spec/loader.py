"""Flow files to :class:`FlowSpec`: the one validator behind the CLI, the API and the SDK.

Checking runs in three passes over one parsed document and never stops at the first
problem: YAML syntax and duplicate keys, then the shape of every mapping (pydantic, one
task at a time), then the rules that span keys and tasks (task types, names, references,
cycles, templates). Every issue carries the file, line, column and field path.
"""

from __future__ import annotations

import difflib
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from signoff.domain.specs import DeploySpec, FlowSpec, GatePolicy, Resources, TaskKind, TaskSpec
from signoff.errors import SpecError, SpecIssue
from signoff.spec._schema import (
    COMMON_TASK_KEYS,
    KIND_TASK_KEYS,
    FlowModel,
    TaskModel,
    describe_error,
    parse_param_values,
)
from signoff.spec._yaml import Loc, format_path, locate, read_yaml, type_name
from signoff.spec.templates import task_slug, template_variables

__all__ = ["BUILTIN_VARIABLES", "LoadedFlow", "load_flow", "parse_flow"]

BUILTIN_VARIABLES = frozenset({"run_id", "task", "output_dir", "inputs"})
"""Template variables every command may use besides its params and the flow's params."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEFAULT_GATE = GatePolicy(targets=())
_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True)
class LoadedFlow:
    """A valid flow, the warnings found while loading it, and where it came from."""

    spec: FlowSpec
    warnings: tuple[SpecIssue, ...]
    path: Path | None  # absolute path of the flow file; None when parsed from text
    base_dir: Path  # the folder holding the flow file (commands run relative to it)


def load_flow(path: str | Path) -> LoadedFlow:
    """Read and validate a flow file; raises :class:`SpecError` listing every error found."""
    file = Path(path)
    name = str(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise SpecError([_file_issue(name, "flow file not found")]) from None
    except IsADirectoryError:
        raise SpecError([_file_issue(name, "is a folder, not a flow file")]) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SpecError([_file_issue(name, f"cannot read flow file: {reason}")]) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        issue = SpecIssue(name, line, column, "", "flow file is not UTF-8 text")
        raise SpecError([issue]) from None
    resolved = file.resolve()
    return _Checker(text, name).load(path=resolved, base_dir=resolved.parent)


def parse_flow(text: str, filename: str = "<flow>", base_dir: Path | None = None) -> LoadedFlow:
    """Validate flow text (``filename`` only names it in issues); ``base_dir`` defaults to cwd."""
    base = base_dir if base_dir is not None else Path.cwd()
    return _Checker(text.removeprefix("\ufeff"), filename).load(path=None, base_dir=base)


@dataclass(frozen=True)
class _Task:
    """What the checks learned about one task entry (``None`` where the entry is broken)."""

    index: int
    raw: dict[str, Any]
    model: TaskModel | None
    name: str | None
    name_key: str
    kind: TaskKind | None

    @property
    def loc(self) -> Loc:
        return ("tasks", self.index)


class _Checker:
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
        self.check_flow_name(data)
        flow_params = self.check_params(data.get("params"), ("params",))
        raw_tasks = data.get("tasks")
        tasks = [
            self.check_task(i, raw, flow_params)
            for i, raw in enumerate(raw_tasks if isinstance(raw_tasks, list) else [])
        ]
        upstream = self.check_graph(tasks, data.get("relations"))
        if flow is None or any(i.severity == "error" for i in self.issues):
            raise self.spec_error()
        spec = _build_flow(flow, tasks, upstream)
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

    def warn(self, loc: Loc, message: str) -> None:
        self.error(loc, message, severity="warning")

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

    # ------------------------------------------------------------ flow level

    def check_flow_name(self, data: dict[str, Any]) -> None:
        present = [k for k in ("flow", "title") if k in data]
        if len(present) == 2:
            later = max(present, key=lambda k: locate(self.tree, (k,), at_key=True))
            self.error((later,), "use either 'flow' or 'title' for the flow name", at_key=True)
        elif not present:
            message = "missing required key 'flow' (the flow name; cnvrg exports use 'title')"
            self.error(("flow",), message, pos=())

    def check_params(self, raw: object, loc: Loc) -> list[str]:
        """Duplicate keys are errors; returns the keys (for templates)."""
        keys: list[str] = []
        first_line: dict[str, int] = {}
        for j, item in enumerate(raw if isinstance(raw, list) else []):
            key = item.get("key") if isinstance(item, dict) else None
            if not isinstance(key, str):
                continue
            key_loc = (*loc, j, "key")
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

    # ------------------------------------------------------------ one task

    def check_task(self, index: int, raw: object, flow_params: list[str]) -> _Task:
        loc: Loc = ("tasks", index)
        model, broken = self.validate(TaskModel, raw, loc)
        if not isinstance(raw, dict) or model is None:
            return _Task(index, {}, None, None, "title", None)
        name, name_key = self.check_task_name(loc, raw)
        kind = self.task_kind(loc, model, broken)
        if kind is not None:
            self.check_kind_keys(loc, raw, kind)
            self.check_kind_required(loc, raw, model, broken, kind)
        params = self.check_params(raw.get("params"), (*loc, "params"))
        if model.command is not None and kind is not TaskKind.DEPLOY:
            self.check_template((*loc, "command"), model.command, [*params, *flow_params])
        return _Task(index, raw, model, name, name_key, kind)

    def check_task_name(self, loc: Loc, raw: dict[str, Any]) -> tuple[str | None, str]:
        present = [k for k in ("title", "name") if k in raw]
        if not present:
            self.error((*loc, "title"), "a task needs a 'title' (or 'name')", pos=loc)
            return None, "title"
        if len(present) == 2:
            later = max(present, key=lambda k: locate(self.tree, (*loc, k), at_key=True))
            self.error((*loc, later), "use either 'title' or 'name' for the task name", at_key=True)
        value = raw[present[0]]
        if isinstance(value, str | int | float) and str(value).strip():
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
            if key == "params" and value == []:
                continue  # cnvrg exports write `params: []` on every task
            message = f"key '{key}' is not allowed on a task of type '{kind.value}'"
            if key == "command":
                message += " (it runs inside signoff)"
            self.error((*loc, key), message, at_key=True)

    def check_kind_required(
        self, loc: Loc, raw: dict[str, Any], model: TaskModel, broken: set[str], kind: TaskKind
    ) -> None:
        def absent(key: str) -> bool:
            return key not in broken and getattr(model, key) is None

        if kind.runs_command and absent("command"):
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
            present = [k for k in ("endpoint_title", "endpoint") if k in raw]
            if len(present) == 2:
                later = max(present, key=lambda k: locate(self.tree, (*loc, k), at_key=True))
                message = "use either 'endpoint' or 'endpoint_title', not both"
                self.error((*loc, later), message, at_key=True)
            elif not present:
                message = "a deploy task needs an 'endpoint' (or 'endpoint_title')"
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

    def check_template(self, loc: Loc, command: str, params: list[str]) -> None:
        try:
            used = template_variables(command)
        except ValueError as exc:
            self.error(loc, f"invalid template: {exc}")
            return
        known = sorted(set(params) | BUILTIN_VARIABLES)
        for var in sorted(used.difference(known)):
            self.error(loc, f"unknown template variable '{var}' (known: {', '.join(known)})")

    # ------------------------------------------------------------ across tasks

    def check_graph(self, tasks: list[_Task], relations: object) -> dict[str, list[str]]:
        """Names, references and cycles; returns each task's upstream names, first seen first."""
        by_name = self.check_names(tasks)
        upstream: dict[str, list[str]] = {name: [] for name in by_name}

        def link(source: str, target: str | None, ref_loc: Loc) -> None:
            if source not in by_name:
                self.error(ref_loc, _unknown_task(source, by_name))
            elif target in upstream and source not in upstream[target]:
                upstream[target].append(source)

        for task in tasks:
            target = task.name if task.name and by_name.get(task.name) is task else None
            for ref, ref_loc in _references(task):
                link(ref, target, ref_loc)
        for k, rel in enumerate(relations if isinstance(relations, list) else []):
            if not isinstance(rel, dict):
                continue
            source, target = rel.get("from"), rel.get("to")
            if isinstance(target, str) and target.strip() and target not in by_name:
                self.error(("relations", k, "to"), _unknown_task(target, by_name))
            if isinstance(source, str) and source.strip():
                link(source, target if isinstance(target, str) else None, ("relations", k, "from"))
        for cycle in _cycles(list(by_name), upstream):
            start = by_name[cycle[0]]
            self.error(start.loc, "cycle: " + " -> ".join(cycle))
        return upstream

    def check_names(self, tasks: list[_Task]) -> dict[str, _Task]:
        by_name: dict[str, _Task] = {}
        slugs: dict[str, str] = {}
        for task in tasks:
            if task.name is None:
                continue
            name_loc = (*task.loc, task.name_key)
            if task.name in by_name:
                first = self.line_of(by_name[task.name].loc)
                self.error(name_loc, f"duplicate task name '{task.name}' (first at line {first})")
                continue
            by_name[task.name] = task
            slug = task_slug(task.name)
            if not slug:
                self.error(name_loc, f"task name '{task.name}' needs a letter or a digit")
            elif slug in slugs:
                message = (
                    f"task name '{task.name}' clashes with '{slugs[slug]}': "
                    f"both become '{slug}' in folders and variables"
                )
                self.error(name_loc, message)
            else:
                slugs[slug] = task.name
        return by_name


# ---------------------------------------------------------------- graph helpers


def _references(task: _Task) -> list[tuple[str, Loc]]:
    deps = task.raw.get("depends_on")
    loc: Loc = (*task.loc, "depends_on")
    if isinstance(deps, str):
        return [(deps, loc)] if deps.strip() else []
    if isinstance(deps, list):
        return [(d, (*loc, j)) for j, d in enumerate(deps) if isinstance(d, str) and d.strip()]
    return []


def _unknown_task(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown task '{name}'{hint}"


def _cycles(order: list[str], upstream: dict[str, list[str]]) -> list[list[str]]:
    """One cycle per strongly connected component, starting at its first task in file order."""
    downstream: dict[str, list[str]] = {name: [] for name in order}
    for target in order:
        for source in upstream[target]:
            downstream[source].append(target)
    position = {name: i for i, name in enumerate(order)}
    cycles: list[list[str]] = []
    for component in _components(order, downstream):
        start = min(component, key=position.__getitem__)
        if len(component) == 1 and start not in downstream[start]:
            continue
        cycles.append(_cycle_through(start, set(component), downstream))
    return sorted(cycles, key=lambda c: position[c[0]])


def _components(order: list[str], succ: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iterative (flows can be long chains)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)

    for root in order:
        if root in index:
            continue
        visit(root)
        work = [(root, iter(succ[root]))]
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    visit(child)
                    work.append((child, iter(succ[child])))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    result.append(component)
    return result


def _cycle_through(start: str, members: set[str], succ: dict[str, list[str]]) -> list[str]:
    """The shortest path start -> ... -> start inside one component."""
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in succ[node]:
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if child in members and child not in parent:
                parent[child] = node
                queue.append(child)
    return [start, start]  # unreachable for a real component; keeps the type simple


# ---------------------------------------------------------------- building


def _build_flow(flow: FlowModel, tasks: list[_Task], upstream: dict[str, list[str]]) -> FlowSpec:
    name = flow.flow if flow.flow is not None else flow.title
    assert name is not None  # checked: a flow without a name is an error
    return FlowSpec(
        name=name,
        tasks=tuple(_build_task(t, upstream) for t in tasks),
        params=tuple(p.to_spec() for p in flow.params or ()),
        schedule=flow.schedule,
        description=flow.description,
    )


def _build_task(task: _Task, upstream: dict[str, list[str]]) -> TaskSpec:
    model, name, kind = task.model, task.name, task.kind
    # each of these is None only after an error was recorded, and then nothing is built
    assert model is not None
    assert name is not None
    assert kind is not None
    gate = None
    if kind is TaskKind.HUMAN_VALIDATION:
        gate = GatePolicy(
            targets=model.target or (),
            quorum=model.quorum if model.quorum is not None else _DEFAULT_GATE.quorum,
            timeout_seconds=model.timeout or _DEFAULT_GATE.timeout_seconds,
            allow_self_approval=_or(model.allow_self_approval, _DEFAULT_GATE.allow_self_approval),
            require_comment_on_reject=_or(
                model.require_comment_on_reject, _DEFAULT_GATE.require_comment_on_reject
            ),
        )
    deploy = None
    if kind is TaskKind.DEPLOY:
        endpoint = model.endpoint or model.endpoint_title
        assert endpoint is not None
        deploy = DeploySpec(endpoint=endpoint, port=model.port)
    return TaskSpec(
        name=name,
        kind=kind,
        command=model.command if kind.runs_command else None,
        params=tuple(p.to_spec() for p in model.params or ()),
        depends_on=tuple(upstream[name]),
        resources=model.resources.to_spec() if model.resources else Resources(),
        conditions=tuple(c.to_spec() for c in model.conditions or ()),
        gate=gate,
        deploy=deploy,
        env=model.env,
    )


def _or(value: bool | None, default: bool) -> bool:
    return default if value is None else value


def _file_issue(filename: str, message: str) -> SpecIssue:
    return SpecIssue(file=filename, line=1, column=1, field="", message=message)
