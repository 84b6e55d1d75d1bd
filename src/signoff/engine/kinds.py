"""The built-in task kinds signoff runs itself, looked up by kind.

Each kind is a function of one :class:`KindContext` (what a built-in needs: the store, the
clock, the endpoints, the run and its flow, the task and its task run). ``select`` and
``deploy`` run as a task does (``running``, then a result or an error); ``human_validation``
opens a gate and waits. A reproduction runs neither gates nor deployments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from signoff.domain.ports import Clock, EndpointRunner, Store
from signoff.domain.ports_execution import ArtifactStore
from signoff.domain.records import GateRecord, RunRecord, TaskRunRecord
from signoff.domain.specs import FlowSpec, TaskKind, TaskSpec
from signoff.engine import builtin
from signoff.engine.deploy import deploy
from signoff.errors import SignoffError

__all__ = ["BuiltinKind", "KindContext", "builtin_kind"]


@dataclass(frozen=True, slots=True)
class KindContext:
    """What a built-in task needs to run."""

    store: Store
    clock: Clock
    endpoints: EndpointRunner
    run: RunRecord
    spec: FlowSpec
    task: TaskSpec
    task_run: TaskRunRecord
    new_id: Callable[[], str]
    artifacts: ArtifactStore | None = None  # where the review report is stored as well


@dataclass(frozen=True, slots=True)
class BuiltinKind:
    """How the engine runs one built-in kind.

    ``work`` returns the task run's result (or raises :class:`SignoffError`: it failed);
    ``open_gate`` opens the approval request and returns it with the task run it moved.
    """

    work: Callable[[KindContext], dict[str, Any]] | None = None
    open_gate: Callable[[KindContext], tuple[GateRecord, TaskRunRecord]] | None = None
    in_reproduction: bool = True


def _select(ctx: KindContext) -> dict[str, Any]:
    return builtin.select(ctx.store, ctx.run, ctx.spec, ctx.task, ctx.task_run)


def _deploy(ctx: KindContext) -> dict[str, Any]:
    return deploy(
        ctx.store, ctx.clock, ctx.endpoints, ctx.run, ctx.spec, ctx.task, ctx.task_run, ctx.new_id
    )


def _open_gate(ctx: KindContext) -> tuple[GateRecord, TaskRunRecord]:
    return builtin.open_gate(
        ctx.store, ctx.clock, ctx.run, ctx.spec, ctx.task, ctx.task_run, ctx.new_id, ctx.artifacts
    )


_KINDS: dict[TaskKind, BuiltinKind] = {
    TaskKind.SELECT: BuiltinKind(work=_select),
    TaskKind.DEPLOY: BuiltinKind(work=_deploy, in_reproduction=False),
    TaskKind.HUMAN_VALIDATION: BuiltinKind(open_gate=_open_gate, in_reproduction=False),
}


def builtin_kind(kind: TaskKind) -> BuiltinKind:
    """The built-in kind's runner; a kind that runs a command has none."""
    found = _KINDS.get(kind)
    if found is None:  # pragma: no cover - the loader admits no other kinds
        raise SignoffError(f"unknown task kind {kind}")
    return found
