"""Flows in Python: a :class:`Flow` of tasks, compiled by the same validator as flow files.

A ``Flow`` only collects the keys a flow file would hold. Compiling it writes that mapping
as YAML and passes it through :func:`signoff.spec.parse_flow`, so every rule (names,
references, cycles, templates, gates) applies exactly as to a file, errors come as the same
:class:`~signoff.errors.SpecError`, and a flow and its YAML twin have the same ``spec_hash``.
Issues point at the Python line that added the task (or created the flow).

Nothing here opens a database until :meth:`Flow.run`, which imports the wiring lazily:
``import signoff`` stays light.
"""

from __future__ import annotations

import getpass
import importlib
import inspect
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from signoff.domain.specs import ConditionSpec, FlowSpec, ParamValue
from signoff.errors import ExecutionError, SpecError, SpecIssue
from signoff.sdk._dump import dump_document
from signoff.sdk.tasks import (
    Duration,
    ParamInput,
    Task,
    TaskKindName,
    TaskOptions,
    call_path,
    default_name,
    task,
)
from signoff.spec import LoadedFlow, parse_flow

if TYPE_CHECKING:
    from signoff.domain.records import RunRecord

__all__ = ["Flow", "Task", "TaskRef", "task"]

_CALL_LATER = "<written when compiled>"  # the call depends on where the flow runs
_TASK_FIELD = re.compile(r"tasks\[(\d+)\]")


@dataclass(frozen=True, slots=True)
class TaskRef:
    """A task added to a :class:`Flow`; pass it in ``after=`` of the tasks that follow it."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class _Where:
    """A place in Python source: where a task was added or the flow created."""

    file: str
    line: int
    column: int

    @staticmethod
    def caller(depth: int = 2) -> _Where:
        """Where the user's code called the method that calls this (``depth`` frames up)."""
        frame = sys._getframe(depth)
        positions = inspect.getframeinfo(frame, context=0).positions
        column = positions.col_offset if positions and positions.col_offset is not None else 0
        return _Where(frame.f_code.co_filename, frame.f_lineno, column + 1)


@dataclass
class _Entry:
    """One task as added: its flow-file keys, and the function it calls (if any)."""

    name: str
    keys: dict[str, Any]
    where: _Where
    target: object = None  # a function or 'module:function' string for a Python task


@dataclass(frozen=True)
class _Compiled:
    loaded: LoadedFlow
    text: str


class Flow:
    """A flow defined in Python: add tasks in order, then compile, export or run it.

    ``params`` are flow-level params (one value each, available to every task);
    ``schedule`` is a five-field cron line; the other keywords are the flow file's metadata.
    """

    def __init__(
        self,
        name: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        schedule: str | None = None,
        description: str | None = None,
        tags: Sequence[str] | None = None,
        version: str | None = None,
        author: str | None = None,
        author_email: str | None = None,
        long_description: str | None = None,
    ) -> None:
        self._name = name
        self._where = _Where.caller()
        frame_globals = sys._getframe(1).f_globals
        self._module = str(frame_globals.get("__name__", "__main__"))
        module_file = frame_globals.get("__file__")
        self._base_dir = Path(module_file).resolve().parent if module_file else None
        header: dict[str, Any] = {
            "flow": name,
            "description": description,
            "long_description": long_description,
            "version": version,
            "author": author,
            "author_email": author_email,
            "tags": list(tags) if tags is not None else None,
            "schedule": schedule,
            "params": _params(params),
        }
        self._header = {k: v for k, v in header.items() if v is not None}
        self._entries: list[_Entry] = []

    def __repr__(self) -> str:
        return f"<Flow {self._name!r}: {', '.join(e.name for e in self._entries) or 'no tasks'}>"

    @property
    def name(self) -> str:
        """The flow's name."""
        return self._name

    @property
    def base_dir(self) -> Path | None:
        """The folder of the module that created the flow: a run snapshots it (``None``: none)."""
        return self._base_dir

    @property
    def task_names(self) -> tuple[str, ...]:
        """The names of the tasks added so far, in order."""
        return tuple(e.name for e in self._entries)

    # ------------------------------------------------------------------ adding tasks

    def add(
        self,
        function: Task[..., Any] | Callable[..., Any] | str,
        *,
        name: str | None = None,
        after: TaskRef | str | Iterable[TaskRef | str] = (),
        kind: TaskKindName | None = None,
        params: Mapping[str, ParamInput] | None = None,
        resources: Mapping[str, float | int | str] | None = None,
        retries: int | None = None,
        retry_delay: Duration | None = None,
        cache: bool | None = None,
        description: str | None = None,
    ) -> TaskRef:
        """Add a Python task: a ``@task`` function, a plain function, or ``"module:function"``.

        Keywords given here override the ``@task`` options. The name defaults to the
        function's name with ``_`` turned into ``-``.
        """
        where = _Where.caller()
        if isinstance(function, str):
            base = TaskOptions()
            default = default_name(re.split(r"[:.]", function)[-1])
        else:
            field_path = f"tasks[{len(self._entries)}].call"
            call_path(function, in_process=True, field=field_path)  # lambdas, nested: refused
            base = function.options if isinstance(function, Task) else TaskOptions()
            default = default_name(getattr(function, "__name__", "task"))
        given = TaskOptions(
            name=name,
            kind=kind,
            params=params,
            resources=resources,
            retries=retries,
            retry_delay=retry_delay,
            cache=cache,
            description=description,
        )
        options = base.updated(given)
        task_name = options.name or default
        keys = _drop_none(
            {
                "title": task_name,
                "type": options.kind,
                "description": options.description,
                "depends_on": _names(after),
                "call": _CALL_LATER,
                "params": _params(options.params),
                "resources": _mapping(options.resources),
                "retries": options.retries,
                "retry_delay": _seconds(options.retry_delay),
                "cache": options.cache,
            }
        )
        return self._append(_Entry(task_name, keys, where, target=function))

    def command(
        self,
        name: str,
        command: str,
        *,
        after: TaskRef | str | Iterable[TaskRef | str] = (),
        kind: TaskKindName | None = None,
        params: Mapping[str, ParamInput] | None = None,
        resources: Mapping[str, float | int | str] | None = None,
        env: Mapping[str, str | int | float | bool] | None = None,
        retries: int | None = None,
        retry_delay: Duration | None = None,
        timeout: Duration | None = None,
        cache: bool | None = None,
        output_dir: str | None = None,
        description: str | None = None,
    ) -> TaskRef:
        """Add a task that runs a shell command (a Jinja2 template of its params)."""
        keys = _drop_none(
            {
                "title": name,
                "type": kind,
                "description": description,
                "depends_on": _names(after),
                "command": command,
                "params": _params(params),
                "resources": _mapping(resources),
                "env": _mapping(env),
                "retries": retries,
                "retry_delay": _seconds(retry_delay),
                "timeout": _seconds(timeout),
                "cache": cache,
                "output_dir": output_dir,
            }
        )
        return self._append(_Entry(name, keys, _Where.caller()))

    def select(
        self,
        name: str,
        *,
        conditions: Sequence[Mapping[str, Any] | ConditionSpec],
        after: TaskRef | str | Iterable[TaskRef | str] = (),
        compare_to: Literal["champion"] | None = None,
        evaluate: str | None = None,
        min_improvement: float | None = None,
        description: str | None = None,
    ) -> TaskRef:
        """Add a task that picks the best upstream task run by ``conditions``.

        Each condition is ``{"tag_key": ..., "objective": "max" | "min", "target": ...}`` (or
        a :class:`~signoff.domain.specs.ConditionSpec`); the first ranks, the others break ties.
        With ``compare_to="champion"`` the winner must also beat the model in production by
        ``min_improvement``, both scored by the ``evaluate`` command when one is given.
        """
        keys = _drop_none(
            {
                "title": name,
                "type": "select",
                "description": description,
                "depends_on": _names(after),
                "conditions": [_condition(c) for c in conditions],
                "compare_to": compare_to,
                "evaluate": evaluate,
                "min_improvement": min_improvement,
            }
        )
        return self._append(_Entry(name, keys, _Where.caller()))

    def gate(
        self,
        name: str,
        *,
        target: str | Sequence[str],
        after: TaskRef | str | Iterable[TaskRef | str] = (),
        quorum: Literal["any", "all"] | int | None = None,
        timeout: Duration | None = None,
        allow_self_approval: bool | None = None,
        require_comment_on_reject: bool | None = None,
        remind_every: Duration | None = None,
        supersede: bool | None = None,
        auto_approve_if: Mapping[str, Any] | None = None,
        description: str | None = None,
    ) -> TaskRef:
        """Add a human-validation gate: ``target`` people (or ``group:NAME``) approve or reject.

        The policy keys are those of a flow file (see docs/gates.md).
        """
        keys = _drop_none(
            {
                "title": name,
                "type": "human_validation",
                "description": description,
                "depends_on": _names(after),
                "target": target if isinstance(target, str) else list(target),
                "quorum": quorum,
                "timeout": _seconds(timeout),
                "allow_self_approval": allow_self_approval,
                "require_comment_on_reject": require_comment_on_reject,
                "remind_every": _seconds(remind_every),
                "supersede": supersede,
                "auto_approve_if": dict(auto_approve_if) if auto_approve_if else None,
            }
        )
        return self._append(_Entry(name, keys, _Where.caller()))

    def deploy(
        self,
        name: str,
        *,
        endpoint: str,
        after: TaskRef | str | Iterable[TaskRef | str] = (),
        port: int | None = None,
        traffic: int | None = None,
        probation: Duration | None = None,
        max_error_rate: float | None = None,
        description: str | None = None,
    ) -> TaskRef:
        """Add a task that serves the approved model on ``endpoint`` (a canary below 100%)."""
        keys = _drop_none(
            {
                "title": name,
                "type": "deploy",
                "description": description,
                "depends_on": _names(after),
                "endpoint": endpoint,
                "port": port,
                "traffic": traffic,
                "probation": _seconds(probation),
                "max_error_rate": max_error_rate,
            }
        )
        return self._append(_Entry(name, keys, _Where.caller()))

    def _append(self, entry: _Entry) -> TaskRef:
        self._entries.append(entry)
        return TaskRef(entry.name)

    # ------------------------------------------------------------------ compiling

    def validate(self) -> LoadedFlow:
        """Compile and check the flow; raises :class:`SpecError` listing every problem.

        The result holds the spec and the warnings (positioned at the Python lines).
        """
        return self._compile(in_process=False).loaded

    def to_spec(self) -> FlowSpec:
        """The validated :class:`FlowSpec`, equal to the one its flow-file twin loads to."""
        return self.validate().spec

    def to_yaml(self) -> str:
        """The equivalent flow file (validated first: it loads as it is)."""
        return self._compile(in_process=False).text

    def _document(self, *, in_process: bool) -> tuple[dict[str, Any], list[SpecIssue]]:
        """The plain mapping a flow file would hold, and the tasks whose function is unusable."""
        problems: list[SpecIssue] = []
        tasks: list[dict[str, Any]] = []
        for i, entry in enumerate(self._entries):
            keys = dict(entry.keys)
            if entry.target is not None:
                keys["call"] = self._call_of(entry, i, in_process, problems)
            tasks.append(keys)
        return {**self._header, "tasks": tasks}, problems

    def _call_of(self, entry: _Entry, index: int, in_process: bool, out: list[SpecIssue]) -> str:
        if isinstance(entry.target, str):
            return entry.target
        try:
            return call_path(entry.target, in_process=in_process, field=f"tasks[{index}].call")
        except SpecError as exc:
            out.extend(exc.issues)
            return "__main__:task"  # a stand-in of the right form: the rest is still checked

    def _compile(self, *, in_process: bool) -> _Compiled:
        document, problems = self._document(in_process=in_process)
        text = dump_document(document, where=f"flow {self.name!r}")
        filename = f"<flow {self.name} defined in module {self._module}>"
        base = self._base_dir if self._base_dir is not None else Path.cwd()
        issues: list[SpecIssue] = []
        try:
            loaded = parse_flow(text, filename=filename, base_dir=base)
        except SpecError as exc:
            issues = [self._place(i) for i in exc.issues]
        if problems or issues:
            raise SpecError(sorted([*problems, *issues], key=_task_index))
        warnings = tuple(self._place(w) for w in loaded.warnings)
        return _Compiled(replace(loaded, warnings=warnings), text)

    def _place(self, issue: SpecIssue) -> SpecIssue:
        """An issue of the generated text, moved to the Python line it came from."""
        match = _TASK_FIELD.match(issue.field)
        if match and int(match.group(1)) < len(self._entries):
            where = self._entries[int(match.group(1))].where
        else:
            where = self._where
        return replace(issue, file=where.file, line=where.line, column=where.column)

    # ------------------------------------------------------------------ running

    def run(
        self,
        params: Mapping[str, ParamValue] | None = None,
        *,
        home: str | Path | None = None,
        database_url: str | None = None,
        started_by: str | None = None,
    ) -> RunRecord:
        """Run the flow in this process, until it ends or waits at a gate; return the run.

        Python tasks run in this process's threads (functions of ``__main__`` work here);
        command tasks run in the flow module's folder, snapshotted. ``home`` and
        ``database_url`` default to the settings (``SIGNOFF_HOME``, ``SIGNOFF_DATABASE_URL``,
        else ``.signoff/`` and its SQLite file), so ``signoff runs`` and ``signoff approve``
        see the run. ``params`` override flow or task params (a grid collapses to the value).
        """
        compiled = self._compile(in_process=True)
        spec = compiled.loaded.spec
        _check_importable(spec)
        from signoff.bootstrap import Settings, build_app  # the store: only when running

        given: dict[str, Any] = {"home": home, "database_url": database_url}
        settings = Settings(**{k: v for k, v in given.items() if v is not None})
        app = build_app(settings)
        try:
            run = app.engine.start_run(
                spec,
                base_dir=self._base_dir,
                source=compiled.text,
                params=params,
                started_by=started_by or settings.user or _login(),
            )
            return app.engine.drive(run.id)
        finally:
            app.close()


# ---------------------------------------------------------------- building the mapping


def _names(after: TaskRef | str | Iterable[TaskRef | str]) -> list[str] | None:
    items = [after] if isinstance(after, TaskRef | str) else list(after)
    names = [str(item) for item in items]
    return names or None


def _params(params: Mapping[str, ParamInput] | None) -> list[dict[str, Any]] | None:
    """Python params as flow-file params: a list (or tuple) of values is a grid.

    ``{"depth": [3, 6], "seed": 7}`` -> ``[{key: depth, values: [3, 6]}, {key: seed, value: 7}]``
    (one value is never split).
    """
    if not params:
        return None
    items: list[dict[str, Any]] = []
    for key, value in params.items():
        if isinstance(value, list | tuple):
            items.append({"key": key, "values": list(value)})
        else:
            items.append({"key": key, "value": value})
    return items


def _mapping(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(value) if value is not None else None


def _seconds(value: Duration | None) -> float | int | str | None:
    return value.total_seconds() if isinstance(value, timedelta) else value


def _condition(condition: Mapping[str, Any] | ConditionSpec) -> dict[str, Any]:
    if isinstance(condition, ConditionSpec):
        return _drop_none(
            {
                "tag_key": condition.tag_key,
                "objective": condition.objective,
                "target": condition.target,
            }
        )
    return dict(condition)


def _drop_none(keys: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in keys.items() if v is not None}


def _task_index(issue: SpecIssue) -> int:
    match = _TASK_FIELD.match(issue.field)
    return int(match.group(1)) if match else -1


# ---------------------------------------------------------------- running


def _check_importable(spec: FlowSpec) -> None:
    """Every Python task's function can be found, before a run exists."""
    problems: list[str] = []
    for t in spec.tasks:
        if t.call is None:
            continue
        module_name, _, qualname = t.call.partition(":")
        try:
            target: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                target = getattr(target, part)
        except Exception as exc:  # user code at import: any error means it cannot run
            problems.append(f"task '{t.name}': cannot load {t.call} ({type(exc).__name__}: {exc})")
            continue
        if not callable(target):
            problems.append(f"task '{t.name}': {t.call} is not a function")
    if problems:
        raise ExecutionError("; ".join(problems))


def _login() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in this environment (some containers)
        return "unknown"
