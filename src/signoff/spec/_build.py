"""Building the domain :class:`FlowSpec` from a flow the checks found valid."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from dataclasses import replace as _replace
from typing import Any

from signoff.domain.specs import (
    ChampionCheck,
    DeploySpec,
    FlowSpec,
    GatePolicy,
    ParamSpec,
    Resources,
    ScheduleSpec,
    TaskKind,
    TaskSpec,
    TriggerSpec,
)
from signoff.spec._schema import FlowModel, TaskModel
from signoff.spec._yaml import Loc

__all__ = ["CheckedTask", "build_flow"]

_DEFAULT_GATE = GatePolicy(targets=())


@dataclass(frozen=True)
class CheckedTask:
    """What the checks learned about one task entry (``None`` where the entry is broken)."""

    index: int
    raw: dict[str, Any]
    model: TaskModel | None
    name: str | None
    name_key: str
    kind: TaskKind | None
    command_key: str | None = None  # "command" or cnvrg's "input", when the task runs one
    # the command and params with cnvrg's /input/<slug> paths resolved (set after the graph)
    command: str | None = None
    params: tuple[ParamSpec, ...] = field(default=())

    @property
    def loc(self) -> Loc:
        """Where the task is in the document."""
        return ("tasks", self.index)


def build_flow(
    flow: FlowModel,
    tasks: list[CheckedTask],
    upstream: dict[str, list[str]],
    metadata: tuple[tuple[str, str], ...],
    *,
    cron: str | None = None,
    schedule: ScheduleSpec | None = None,
    triggers: tuple[TriggerSpec, ...] = (),
) -> FlowSpec:
    """The domain spec; only called when no error was found."""
    name = flow.name
    assert name is not None  # checked: a flow without a name is an error
    return FlowSpec(
        name=name,
        tasks=tuple(_build_task(t, upstream, flow.executor) for t in tasks),
        params=tuple(p.to_spec() for p in flow.params or ()),
        schedule=cron,
        description=flow.description,
        metadata=metadata,
        schedule_spec=schedule,
        triggers=triggers,
    )


def _build_task(
    task: CheckedTask, upstream: dict[str, list[str]], executor: str | None
) -> TaskSpec:
    model, name, kind = task.model, task.name, task.kind
    # each of these is None only after an error was recorded, and then nothing is built
    assert model is not None
    assert name is not None
    assert kind is not None
    base = TaskSpec(
        name=name,
        kind=kind,
        depends_on=tuple(upstream[name]),
        description=model.description,
    )
    if kind.runs_command:
        return _command_task(base, task, model, executor)
    if kind is TaskKind.SELECT:
        conditions = tuple(c.to_spec() for c in model.conditions or ())
        check = None
        if model.compare_to == "champion":
            check = ChampionCheck(
                min_improvement=model.min_improvement or 0.0, evaluate=model.evaluate
            )
        return _replace(base, conditions=conditions, champion_check=check)
    if kind is TaskKind.HUMAN_VALIDATION:
        return _replace(base, gate=_gate(model))
    endpoint = model.endpoint or model.endpoint_title
    assert endpoint is not None
    # a deploy task runs no command: its command, params, resources and env were warned about
    rollout = {
        k: getattr(model, k)
        for k in ("traffic", "probation", "max_error_rate")
        if getattr(model, k) is not None
    }
    return _replace(base, deploy=DeploySpec(endpoint=endpoint, port=model.port, **rollout))


def _command_task(
    base: TaskSpec, task: CheckedTask, model: TaskModel, executor: str | None
) -> TaskSpec:
    requested = model.resources or model.requirements
    resources = requested.to_spec() if requested else Resources()
    if model.computes and not resources.custom:  # cnvrg: the first compute template asked
        resources = _replace(resources, custom=((model.computes[0], 1.0),))
    return _replace(
        base,
        command=task.command,
        call=model.call,
        params=task.params,
        resources=_replace(resources, executor=model.executor or executor),
        env=model.env,
        retries=model.retries or 0,
        retry_delay=model.retry_delay or 0.0,
        timeout=model.timeout,
        cache=bool(model.cache),
        output_dir=model.output_dir,
    )


def _gate(model: TaskModel) -> GatePolicy:
    timeout = _DEFAULT_GATE.timeout_seconds
    if model.timeout is not None:
        timeout = math.ceil(model.timeout)  # gates count whole seconds
    return GatePolicy(
        targets=model.target or (),
        quorum=model.quorum if model.quorum is not None else _DEFAULT_GATE.quorum,
        timeout_seconds=timeout,
        allow_self_approval=_or(model.allow_self_approval, _DEFAULT_GATE.allow_self_approval),
        require_comment_on_reject=_or(
            model.require_comment_on_reject, _DEFAULT_GATE.require_comment_on_reject
        ),
        remind_every_seconds=math.ceil(model.remind_every) if model.remind_every else None,
        supersede=_or(model.supersede, _DEFAULT_GATE.supersede),
        auto_approve_if=model.auto_approve_if.to_json() if model.auto_approve_if else None,
    )


def _or(value: bool | None, default: bool) -> bool:
    return default if value is None else value
