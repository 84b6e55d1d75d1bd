"""RoutingExecutor: one Executor for the engine, handing each task run to the one it names.

A task run names its executor through ``Resources.executor`` / ``TaskExecution.executor``
(the task's ``executor:``, else its flow's); None means the process's default
(``SIGNOFF_EXECUTOR``). Executors other than the default are built on first use, so a flow
that pins one step to ``local`` under ``SIGNOFF_EXECUTOR=ray`` (or the reverse) starts Ray
only when a task asks for it.
"""

from __future__ import annotations

import dataclasses
import platform
import threading
import time
from collections.abc import Callable, Mapping

from signoff.domain.ports_execution import Executor, TaskExecution, TaskOutcome
from signoff.domain.specs import Resources
from signoff.errors import SignoffError

__all__ = ["RoutingExecutor"]

_POLL = 0.05  # seconds between looks when several executors have task runs in flight


class RoutingExecutor:
    """Routes by executor name; ``factories`` build an executor the first time it is named."""

    def __init__(self, default: str, factories: Mapping[str, Callable[[], Executor]]) -> None:
        self.default = default
        self._factories = dict(factories)
        self._built: dict[str, Executor] = {}
        self._owner: dict[str, str] = {}  # task run id -> executor name
        self._broken: dict[str, str] = {}  # executor name -> why it could not be built
        self._lock = threading.Lock()

    def _name(self, name: str | None) -> str:
        return name or self.default

    def _get(self, name: str) -> Executor:
        with self._lock:
            executor = self._built.get(name)
            if executor is None:
                executor = self._built[name] = self._factories[name]()
            return executor

    def _missing(self, name: str) -> str | None:
        if name not in self._factories:
            known = ", ".join(sorted(self._factories))
            return f"executor {name!r} is not available here (known: {known})"
        if name in self._broken:
            return self._broken[name]
        try:  # built on first use; one that cannot be (Ray not installed) refuses its tasks
            self._get(name)
        except SignoffError as exc:
            self._broken[name] = str(exc)
            return self._broken[name]
        return None

    def refusal(self, resources: Resources) -> str | None:
        name = self._name(resources.executor)
        return self._missing(name) or self._get(name).refusal(resources)

    def fits(self, resources: Resources) -> bool:
        name = self._name(resources.executor)
        return self._missing(name) is None and self._get(name).fits(resources)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._owner)

    def submit(self, execution: TaskExecution) -> None:
        name = self._name(execution.executor)
        if (missing := self._missing(name)) is not None:
            raise ValueError(missing)  # the engine asks refusal first; this is a bug
        executor = self._get(name)
        with self._lock:
            self._owner[execution.task_run_id] = name
        executor.submit(execution)

    def wait_any(self, timeout: float | None = None) -> list[TaskOutcome]:
        with self._lock:
            busy = sorted({self._owner[t] for t in self._owner})
            executors = [(name, self._built[name]) for name in busy]
        if not executors:
            if timeout:
                time.sleep(timeout)
            return []
        if len(executors) == 1:  # the usual case: block in the one executor
            name, executor = executors[0]
            return self._ended(name, executor.wait_any(timeout))
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found: list[TaskOutcome] = []
            for name, executor in executors:
                found += self._ended(name, executor.wait_any(0))
            if found or (deadline is not None and time.monotonic() >= deadline):
                return found
            time.sleep(_POLL)

    def _ended(self, name: str, outcomes: list[TaskOutcome]) -> list[TaskOutcome]:
        with self._lock:
            for outcome in outcomes:
                self._owner.pop(outcome.task_run_id, None)
        return [_named(o, o.executor or name) for o in outcomes]

    def cancel(self, task_run_id: str) -> None:
        with self._lock:
            name = self._owner.get(task_run_id)
            executor = self._built.get(name) if name else None
        if executor is not None:
            executor.cancel(task_run_id)

    def shutdown(self) -> None:
        with self._lock:
            built = list(self._built.values())
        for executor in built:
            executor.shutdown()


def _named(outcome: TaskOutcome, name: str) -> TaskOutcome:
    node = outcome.node or (platform.node() if name == "local" else None)
    return dataclasses.replace(outcome, executor=name, node=node)
