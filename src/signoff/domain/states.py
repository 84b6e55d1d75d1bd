"""Run and task-run states and the transition tables every state change is checked against.

States are persisted as these lower_snake strings and never renamed.
"""

from __future__ import annotations

from enum import StrEnum

from signoff.errors import InvalidTransitionError

__all__ = [
    "RUN_TRANSITIONS",
    "TASK_TRANSITIONS",
    "RunState",
    "TaskRunState",
    "check_run_transition",
    "check_task_transition",
]


class RunState(StrEnum):
    """Where a run is."""

    QUEUED = "queued"
    RUNNING = "running"
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in _RUN_TERMINAL


class TaskRunState(StrEnum):
    """Where one task run (or gate) is."""

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    @property
    def is_terminal(self) -> bool:
        return self in _TASK_TERMINAL

    @property
    def is_success(self) -> bool:
        """Success-like: downstream tasks may run after it."""
        return self in (TaskRunState.SUCCEEDED, TaskRunState.APPROVED)


_RUN_TERMINAL = frozenset(
    {RunState.SUCCEEDED, RunState.FAILED, RunState.REJECTED, RunState.EXPIRED, RunState.CANCELLED}
)
_TASK_TERMINAL = frozenset(
    {
        TaskRunState.SUCCEEDED,
        TaskRunState.FAILED,
        TaskRunState.APPROVED,
        TaskRunState.REJECTED,
        TaskRunState.EXPIRED,
        TaskRunState.CANCELLED,
        TaskRunState.SKIPPED,
    }
)

R = RunState
T = TaskRunState

RUN_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    R.QUEUED: frozenset({R.RUNNING, R.CANCELLED}),
    R.RUNNING: frozenset(
        {R.WAITING_FOR_APPROVAL, R.SUCCEEDED, R.FAILED, R.REJECTED, R.EXPIRED, R.CANCELLED}
    ),
    R.WAITING_FOR_APPROVAL: frozenset({R.RUNNING, R.REJECTED, R.EXPIRED, R.CANCELLED}),
    **{s: frozenset() for s in _RUN_TERMINAL},
}

TASK_TRANSITIONS: dict[TaskRunState, frozenset[TaskRunState]] = {
    T.PENDING: frozenset({T.QUEUED, T.WAITING_FOR_APPROVAL, T.SKIPPED, T.CANCELLED}),
    T.QUEUED: frozenset({T.RUNNING, T.CANCELLED}),
    # running -> queued is a retry (attempt + 1)
    T.RUNNING: frozenset({T.SUCCEEDED, T.FAILED, T.QUEUED, T.CANCELLED}),
    T.WAITING_FOR_APPROVAL: frozenset({T.APPROVED, T.REJECTED, T.EXPIRED, T.CANCELLED}),
    **{s: frozenset() for s in _TASK_TERMINAL},
}


def check_run_transition(current: RunState, new: RunState) -> None:
    """Raise :class:`InvalidTransitionError` unless the run table allows ``current -> new``."""
    if new not in RUN_TRANSITIONS[current]:
        raise InvalidTransitionError(f"a run cannot go from {current} to {new}")


def check_task_transition(current: TaskRunState, new: TaskRunState, *, is_gate: bool) -> None:
    """Raise unless the task table allows ``current -> new`` for this kind of task."""
    if new not in TASK_TRANSITIONS[current]:
        raise InvalidTransitionError(f"a task run cannot go from {current} to {new}")
    gate_only = {T.WAITING_FOR_APPROVAL}
    if not is_gate and new in gate_only:
        raise InvalidTransitionError(f"only a human_validation task can be {new}")
    if is_gate and new in (T.QUEUED, T.RUNNING, T.SUCCEEDED, T.FAILED):
        raise InvalidTransitionError(f"a human_validation task is never {new}")
