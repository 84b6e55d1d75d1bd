"""The task context: where the task-side API writes when a task runs inside this process.

A command task learns its context from environment variables; a Python callable run
in-process by the executor gets it from this context variable instead (threads have their
own value), so ``signoff.log_metric`` works the same under every executor.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TaskContext", "current_task", "task_context"]


@dataclass(frozen=True, slots=True)
class TaskContext:
    """What a task run needs to know about itself."""

    run_id: str
    task: str
    task_run_id: str
    output_dir: Path
    inputs_dir: Path
    records_file: Path
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, Path] = field(default_factory=dict)  # upstream name -> its outputs


_CURRENT: ContextVar[TaskContext | None] = ContextVar("signoff_task", default=None)


def current_task() -> TaskContext | None:
    """The task running in this thread, when the executor runs it in-process."""
    return _CURRENT.get()


@contextmanager
def task_context(ctx: TaskContext) -> Iterator[TaskContext]:
    """Run a block as the given task run."""
    token = _CURRENT.set(ctx)
    try:
        yield ctx
    finally:
        _CURRENT.reset(token)
