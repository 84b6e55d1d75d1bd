"""Checks across tasks: names, ``depends_on`` and ``relations``, cycles, cnvrg ``/input/`` paths.

Mixed into the loader's checker: the same one pass, the same issues with file, line, column
and field path.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from signoff.domain.specs import ParamSpec, ParamValue
from signoff.spec import _cnvrg
from signoff.spec._build import CheckedTask
from signoff.spec._graph import find_cycles
from signoff.spec._yaml import Loc
from signoff.spec.templates import task_slug

__all__ = ["ReferenceChecks", "param_value_loc"]


class ReferenceChecks:
    """Task names and slugs, references between tasks, cycles, ``/input/<slug>`` paths."""

    if TYPE_CHECKING:  # provided by the loader's checker

        def error(
            self,
            loc: Loc,
            message: str,
            *,
            at_key: bool = False,
            pos: Loc | None = None,
            severity: str = "error",
        ) -> None: ...

        def warn(self, loc: Loc, message: str, *, at_key: bool = False) -> None: ...

        def line_of(self, loc: Loc) -> int: ...

    def check_graph(
        self, tasks: list[CheckedTask], relations: object
    ) -> tuple[dict[str, list[str]], set[str]]:
        """Names, references and cycles.

        Returns each task's upstream names (first seen first) and the tasks with a broken
        reference into them, whose upstream list is incomplete.
        """
        by_name = self.check_names(tasks)
        upstream: dict[str, list[str]] = {name: [] for name in by_name}
        unsure: set[str] = set()

        def link(source: str | None, target: str | None) -> None:
            if source is None:
                if target is not None:
                    unsure.add(target)
            elif target in upstream and source not in upstream[target]:
                upstream[target].append(source)

        for task in tasks:
            target = task.name if task.name and by_name.get(task.name) is task else None
            for ref, ref_loc in _references(task):
                if ref not in by_name:
                    self.error(ref_loc, _unknown_task(ref, by_name))
                link(ref if ref in by_name else None, target)
        for k, rel in enumerate(relations if isinstance(relations, list) else []):
            if isinstance(rel, dict):
                source = self.relation_end(rel.get("from"), ("relations", k, "from"), by_name)
                target = self.relation_end(rel.get("to"), ("relations", k, "to"), by_name)
                link(source, target)
        for cycle in find_cycles(list(by_name), upstream):
            start = by_name[cycle[0]]
            self.error(start.loc, "cycle: " + " -> ".join(cycle))
        return upstream, unsure

    def relation_end(self, ref: object, loc: Loc, by_name: dict[str, CheckedTask]) -> str | None:
        """A relation's ``from`` or ``to`` as a task name (cnvrg matches titles loosely)."""
        if not isinstance(ref, str) or not ref.strip():
            return None  # reported by the schema pass
        found = _cnvrg.resolve_relation_end(ref, by_name)
        if found.warning:
            self.warn(loc, found.warning)
        if found.error:
            self.error(loc, found.error)
        return found.name

    def check_names(self, tasks: list[CheckedTask]) -> dict[str, CheckedTask]:
        by_name: dict[str, CheckedTask] = {}
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

    def resolve_inputs(
        self,
        task: CheckedTask,
        tasks: list[CheckedTask],
        upstream: dict[str, list[str]],
        unsure: set[str],
    ) -> CheckedTask:
        """cnvrg's ``/input/<slug>`` in the command and string params -> ``{{ inputs }}/<slug>``.

        A slug must name one of the task's upstream tasks (unless a broken reference into the
        task was already reported: its upstream list is then incomplete).
        """
        if task.name is None or task.kind is None or not task.kind.runs_command:
            return task
        name = task.name
        ups = upstream.get(name, [])
        by_slug = {task_slug(u): u for u in ups}
        runs = {t.name: math.prod(len(p.values) for p in t.params) for t in tasks if t.name}
        all_names = [t.name for t in tasks if t.name]
        warned: set[str] = set()

        def resolve(text: str, loc: Loc) -> str:
            reported: set[str] = set()
            for slug in _cnvrg.find_input_refs(text):
                up = by_slug.get(slug)
                if up is None and name not in unsure and slug not in reported:
                    reported.add(slug)
                    message = _cnvrg.unknown_input_message(slug, name, ups, all_names)
                    self.error(loc, message)
                elif up is not None and runs.get(up, 1) > 1 and up not in warned:
                    warned.add(up)
                    count = runs[up]
                    message = (
                        f"'/input/{slug}' holds one folder per task run of '{up}' "
                        f"(a grid of {count}): '/input/{slug}/0/' to "
                        f"'/input/{slug}/{count - 1}/'"
                    )
                    self.warn(loc, message)
            return _cnvrg.rewrite_input_refs(text, by_slug.__contains__)

        command = task.command
        if command is not None and task.command_key is not None:
            command = resolve(command, (*task.loc, task.command_key))
        raw_params = task.raw.get("params")
        params: list[ParamSpec] = []
        for j, param in enumerate(task.params):
            item = raw_params[j] if isinstance(raw_params, list) else {}
            values: list[ParamValue] = []
            for i, value in enumerate(param.values):
                value_loc = param_value_loc(item, (*task.loc, "params", j), i)
                values.append(resolve(value, value_loc) if isinstance(value, str) else value)
            params.append(ParamSpec(param.key, tuple(values)))
        return replace(task, command=command, params=tuple(params))


def _references(task: CheckedTask) -> list[tuple[str, Loc]]:
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


def param_value_loc(item: object, loc: Loc, index: int) -> Loc:
    """Where the ``index``-th value of a param is: its list item, else the whole value."""
    if not isinstance(item, dict):
        return loc
    if isinstance(item.get("values"), list):
        return (*loc, "values", index)
    return (*loc, "values" if "values" in item else "value")
