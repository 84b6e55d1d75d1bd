"""Python functions as tasks: the ``@task`` decorator and how a function is named in a flow.

A task function is found again by ``"package.module:qualname"`` (``TaskSpec.call``): the
executor imports the module and calls the function with the params it declares. So a task
function must live at the top level of a module; lambdas and functions defined inside other
functions are refused where they are marked or added, with the reason.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from types import FunctionType
from typing import Generic, Literal, ParamSpec, TypeVar, overload

from signoff.domain.specs import ParamValue
from signoff.errors import SpecError, SpecIssue

__all__ = [
    "Duration",
    "ParamInput",
    "Task",
    "TaskKindName",
    "TaskOptions",
    "call_path",
    "task",
]

P = ParamSpec("P")
R = TypeVar("R")

ParamInput = ParamValue | Sequence[ParamValue]
"""A param as given in Python: one value, or a list (or tuple) of values, which is a grid."""

Duration = float | int | str | timedelta
"""Seconds, a flow-file duration such as ``"30m"`` or ``"1h30m"``, or a ``timedelta``."""

TaskKindName = Literal["exec", "data"]
"""The types of task that run a Python function (``data`` is shown as data in reviews)."""


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """The flow-file keys of a Python task; ``None`` means "not given" (the loader's default)."""

    name: str | None = None
    kind: TaskKindName | None = None
    params: Mapping[str, ParamInput] | None = None
    resources: Mapping[str, float | int | str] | None = None
    retries: int | None = None
    retry_delay: Duration | None = None
    cache: bool | None = None
    description: str | None = None

    def updated(self, other: TaskOptions) -> TaskOptions:
        """These options with every option given in ``other`` taking precedence."""
        given = {f.name: getattr(other, f.name) for f in fields(other)}
        return replace(self, **{k: v for k, v in given.items() if v is not None})


class Task(Generic[P, R]):
    """A function marked with :func:`task`: call it like the function, add it to a ``Flow``.

    ``__wrapped_task__`` is the plain function; the executor unwraps it before calling.
    """

    __wrapped_task__: Callable[P, R]
    options: TaskOptions

    def __init__(self, function: Callable[P, R], options: TaskOptions) -> None:
        self.__wrapped_task__ = function
        self.options = options
        functools.update_wrapper(self, function)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.__wrapped_task__(*args, **kwargs)

    @property
    def name(self) -> str:
        """The name in a flow: ``name=``, else the function's name with ``-`` for ``_``."""
        return self.options.name or default_name(self.__wrapped_task__.__name__)

    def __repr__(self) -> str:
        return f"<signoff task {self.name!r}: {call_path(self, in_process=True)}>"


@overload
def task(function: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(
    *,
    name: str | None = None,
    kind: TaskKindName | None = None,
    params: Mapping[str, ParamInput] | None = None,
    resources: Mapping[str, float | int | str] | None = None,
    retries: int | None = None,
    retry_delay: Duration | None = None,
    cache: bool | None = None,
    description: str | None = None,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(
    function: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    kind: TaskKindName | None = None,
    params: Mapping[str, ParamInput] | None = None,
    resources: Mapping[str, float | int | str] | None = None,
    retries: int | None = None,
    retry_delay: Duration | None = None,
    cache: bool | None = None,
    description: str | None = None,
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Mark a top-level function as a signoff task: ``@task`` or ``@task(name=..., ...)``.

    The options are the flow-file keys of an exec task: ``params`` (a list is a grid),
    ``resources`` (``{"cpu": 2, "memory": "4Gi"}``), ``retries``, ``retry_delay``, ``cache``,
    ``kind`` (``"exec"`` or ``"data"``), ``description``. ``Flow.add`` may override them.
    The function receives the params it declares as keyword arguments and logs with
    ``signoff.log_metric`` and friends. Calling the decorated function calls the function.
    """
    options = TaskOptions(
        name=name,
        kind=kind,
        params=params,
        resources=resources,
        retries=retries,
        retry_delay=retry_delay,
        cache=cache,
        description=description,
    )

    def mark(fn: Callable[P, R]) -> Task[P, R]:
        call_path(fn, in_process=True, field="call")  # refuses lambdas and nested functions
        return Task(fn, options)

    return mark if function is None else mark(function)


def default_name(function_name: str) -> str:
    """A task's default name: the function's name with ``_`` turned into ``-``."""
    return function_name.replace("_", "-")


def call_path(target: object, *, in_process: bool, field: str = "call") -> str:
    """``"module:qualname"`` of a task function, or :class:`SpecError` saying why there is none.

    A function of ``__main__`` (the script being run) can be called only in this process
    (``in_process``); otherwise it is named by the module ``python -m`` ran, if any.
    """
    fn = target.__wrapped_task__ if isinstance(target, Task) else target
    if not isinstance(fn, FunctionType):
        raise TypeError(
            "a task is a function (plain or marked with @task) or a 'module:function' string, "
            f"got {type(target).__name__}"
        )
    module, qualname = fn.__module__, fn.__qualname__
    problem: str | None = None
    if fn.__name__ == "<lambda>":
        problem = (
            "a lambda cannot be a task: signoff finds a task function again by "
            "'module:function'; define it with 'def' at the top level of a module"
        )
    elif "<locals>" in qualname.split("."):
        problem = (
            f"task function '{qualname}' is defined inside another function, so "
            f"'{module}:{qualname}' cannot be imported; define it at the top level of a module"
        )
    elif module == "__main__" and not in_process:
        main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        real_name = getattr(main_spec, "name", None)
        if real_name and real_name != "__main__":
            return f"{real_name}:{qualname}"  # `python -m package.module`: importable by name
        problem = (
            f"task function '{qualname}' is defined in __main__ (the script being run), which "
            "no other process can import; move it to a module, run the script with "
            "'python -m package.module', or run the flow in this process with flow.run()"
        )
    if problem is not None:
        code = fn.__code__
        raise SpecError([SpecIssue(code.co_filename, code.co_firstlineno, 1, field, problem)])
    return f"{module}:{qualname}"
