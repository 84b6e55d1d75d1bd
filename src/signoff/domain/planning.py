"""Pure decisions of the engine: which task runs are ready, which are skipped, how a run ends."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from signoff.domain.records import TaskRunRecord
from signoff.domain.specs import FlowSpec
from signoff.domain.states import RunState, TaskRunState

__all__ = ["Plan", "evaluate_tasks", "plan_run", "run_outcome"]

_T = TaskRunState


@dataclass(frozen=True, slots=True)
class Plan:
    """What the engine should do next for one run, given its task runs as stored."""

    ready: tuple[TaskRunRecord, ...]
    skip: tuple[TaskRunRecord, ...]
    active: int  # task runs queued or running
    waiting_gates: tuple[TaskRunRecord, ...]
    outcome: RunState | None  # set when every task run is terminal


def evaluate_tasks(
    spec: FlowSpec,
    by_task: Mapping[str, Sequence[TaskRunRecord]],
    names: Iterable[str],
    upstreams: Mapping[str, Sequence[str]] | None = None,
) -> tuple[list[TaskRunRecord], list[TaskRunRecord]]:
    """For the named tasks, which pending task runs are ready and which must be skipped.

    Ready: every upstream task run (every grid combination) succeeded or was approved.
    Skipped: an upstream task run ended without success. ``upstreams`` (task name to its
    upstream names) saves the lookups when a caller evaluates often.
    """
    if upstreams is None:
        upstreams = {t.name: t.depends_on for t in spec.tasks}
    ready: list[TaskRunRecord] = []
    skip: list[TaskRunRecord] = []
    for name in names:
        pending = [tr for tr in by_task.get(name, ()) if tr.state is _T.PENDING]
        if not pending:
            continue
        upstream = [u for up in upstreams[name] for u in by_task.get(up, ())]
        if any(u.state.is_terminal and not u.state.is_success for u in upstream):
            skip.extend(pending)
        elif all(u.state.is_success for u in upstream):
            ready.extend(pending)
    return ready, skip


def plan_run(spec: FlowSpec, task_runs: Sequence[TaskRunRecord]) -> Plan:
    """Decide the next step: pending task runs become ready or skipped by their upstreams."""
    by_task: dict[str, list[TaskRunRecord]] = {}
    for tr in task_runs:
        by_task.setdefault(tr.task_name, []).append(tr)
    ready, skip = evaluate_tasks(spec, by_task, [t.name for t in spec.tasks])
    order = {tr.id: i for i, tr in enumerate(task_runs)}
    ready.sort(key=lambda tr: order[tr.id])
    skip.sort(key=lambda tr: order[tr.id])
    active = sum(1 for tr in task_runs if tr.state in (_T.QUEUED, _T.RUNNING))
    waiting = tuple(tr for tr in task_runs if tr.state is _T.WAITING_FOR_APPROVAL)
    skipped_ids = {tr.id for tr in skip}
    all_terminal = all(tr.state.is_terminal or tr.id in skipped_ids for tr in task_runs)
    outcome = _outcome(task_runs) if all_terminal and not ready else None
    return Plan(tuple(ready), tuple(skip), active, waiting, outcome)


def run_outcome(task_runs: Sequence[TaskRunRecord]) -> RunState:
    """How a run ends once every task run is terminal."""
    return _outcome(task_runs)


def _outcome(task_runs: Sequence[TaskRunRecord]) -> RunState:
    states = {tr.state for tr in task_runs}
    if _T.FAILED in states:
        return RunState.FAILED
    if _T.REJECTED in states:
        return RunState.REJECTED
    if _T.EXPIRED in states:
        return RunState.EXPIRED
    if _T.CANCELLED in states:
        return RunState.CANCELLED
    return RunState.SUCCEEDED
