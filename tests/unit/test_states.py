"""Transition tables: every (from, to) pair of runs and task runs, checked against the design."""

from __future__ import annotations

import itertools

import pytest

from signoff.domain.states import (
    RUN_TRANSITIONS,
    TASK_TRANSITIONS,
    RunState,
    TaskRunState,
    check_run_transition,
    check_task_transition,
)
from signoff.errors import ConflictError, InvalidTransitionError, SignoffError

R = RunState
T = TaskRunState

# Written from the design (section 5), not copied from the module under test.
RUN_ALLOWED: frozenset[tuple[RunState, RunState]] = frozenset(
    {
        (R.QUEUED, R.RUNNING),
        (R.QUEUED, R.CANCELLED),
        (R.RUNNING, R.SUCCEEDED),
        (R.RUNNING, R.FAILED),
        (R.RUNNING, R.REJECTED),
        (R.RUNNING, R.EXPIRED),
        (R.RUNNING, R.CANCELLED),
        (R.RUNNING, R.WAITING_FOR_APPROVAL),
        (R.WAITING_FOR_APPROVAL, R.RUNNING),
        (R.WAITING_FOR_APPROVAL, R.REJECTED),
        (R.WAITING_FOR_APPROVAL, R.EXPIRED),
        (R.WAITING_FOR_APPROVAL, R.CANCELLED),
    }
)

# A command task: pending -> queued -> running -> succeeded | failed, retry running -> queued,
# pending -> skipped, any non-terminal -> cancelled, never waiting_for_approval.
# From waiting_for_approval (a state a command task never reaches) the gate exits stay open:
# the design only forbids a command task from *entering* waiting_for_approval.
TASK_ALLOWED: frozenset[tuple[TaskRunState, TaskRunState]] = frozenset(
    {
        (T.PENDING, T.QUEUED),
        (T.PENDING, T.SKIPPED),
        (T.PENDING, T.CANCELLED),
        (T.QUEUED, T.RUNNING),
        (T.QUEUED, T.CANCELLED),
        (T.RUNNING, T.SUCCEEDED),
        (T.RUNNING, T.FAILED),
        (T.RUNNING, T.QUEUED),
        (T.RUNNING, T.CANCELLED),
        (T.WAITING_FOR_APPROVAL, T.APPROVED),
        (T.WAITING_FOR_APPROVAL, T.REJECTED),
        (T.WAITING_FOR_APPROVAL, T.EXPIRED),
        (T.WAITING_FOR_APPROVAL, T.CANCELLED),
    }
)

# A gate: pending -> waiting_for_approval -> approved | rejected | expired, pending -> skipped,
# any non-terminal -> cancelled; never queued, running, succeeded or failed (so from queued or
# running, states a gate never reaches, only cancelled is left).
GATE_ALLOWED: frozenset[tuple[TaskRunState, TaskRunState]] = frozenset(
    {
        (T.PENDING, T.WAITING_FOR_APPROVAL),
        (T.PENDING, T.SKIPPED),
        (T.PENDING, T.CANCELLED),
        (T.WAITING_FOR_APPROVAL, T.APPROVED),
        (T.WAITING_FOR_APPROVAL, T.REJECTED),
        (T.WAITING_FOR_APPROVAL, T.EXPIRED),
        (T.WAITING_FOR_APPROVAL, T.CANCELLED),
        (T.QUEUED, T.CANCELLED),
        (T.RUNNING, T.CANCELLED),
    }
)

RUN_TERMINAL = {R.SUCCEEDED, R.FAILED, R.REJECTED, R.EXPIRED, R.CANCELLED}
TASK_TERMINAL = {T.SUCCEEDED, T.FAILED, T.APPROVED, T.REJECTED, T.EXPIRED, T.CANCELLED, T.SKIPPED}

RUN_PAIRS = list(itertools.product(RunState, RunState))
TASK_PAIRS = list(itertools.product(TaskRunState, TaskRunState))


def _pair_id(pair: tuple[object, object]) -> str:
    return f"{pair[0]}->{pair[1]}"


# ---------------------------------------------------------------- persisted values


def test_run_state_values_are_pinned() -> None:
    assert {s.name: s.value for s in RunState} == {
        "QUEUED": "queued",
        "RUNNING": "running",
        "WAITING_FOR_APPROVAL": "waiting_for_approval",
        "SUCCEEDED": "succeeded",
        "FAILED": "failed",
        "REJECTED": "rejected",
        "EXPIRED": "expired",
        "CANCELLED": "cancelled",
    }


def test_task_run_state_values_are_pinned() -> None:
    assert {s.name: s.value for s in TaskRunState} == {
        "PENDING": "pending",
        "QUEUED": "queued",
        "RUNNING": "running",
        "SUCCEEDED": "succeeded",
        "FAILED": "failed",
        "WAITING_FOR_APPROVAL": "waiting_for_approval",
        "APPROVED": "approved",
        "REJECTED": "rejected",
        "EXPIRED": "expired",
        "CANCELLED": "cancelled",
        "SKIPPED": "skipped",
    }


def test_states_round_trip_through_their_persisted_strings() -> None:
    for run_state in RunState:
        assert RunState(str(run_state)) is run_state
        assert f"{run_state}" == run_state.value
    for task_state in TaskRunState:
        assert TaskRunState(str(task_state)) is task_state


def test_terminal_and_success_like_states() -> None:
    assert {s for s in RunState if s.is_terminal} == RUN_TERMINAL
    assert {s for s in TaskRunState if s.is_terminal} == TASK_TERMINAL
    assert {s for s in TaskRunState if s.is_success} == {T.SUCCEEDED, T.APPROVED}


def test_tables_have_a_row_for_every_state() -> None:
    assert set(RUN_TRANSITIONS) == set(RunState)
    assert set(TASK_TRANSITIONS) == set(TaskRunState)


def test_terminal_states_have_no_exits_in_the_tables() -> None:
    for run_state in RUN_TERMINAL:
        assert RUN_TRANSITIONS[run_state] == frozenset()
    for task_state in TASK_TERMINAL:
        assert TASK_TRANSITIONS[task_state] == frozenset()


def test_invalid_transition_is_a_conflict_of_the_one_error_root() -> None:
    with pytest.raises(InvalidTransitionError) as caught:
        check_run_transition(R.SUCCEEDED, R.RUNNING)
    assert isinstance(caught.value, ConflictError)
    assert isinstance(caught.value, SignoffError)
    assert "succeeded" in str(caught.value)
    assert "running" in str(caught.value)


# ---------------------------------------------------------------- every pair


@pytest.mark.parametrize("pair", RUN_PAIRS, ids=_pair_id)
def test_run_transition_pair(pair: tuple[RunState, RunState]) -> None:
    current, new = pair
    if pair in RUN_ALLOWED:
        check_run_transition(current, new)
        assert new in RUN_TRANSITIONS[current]
    else:
        with pytest.raises(InvalidTransitionError):
            check_run_transition(current, new)


@pytest.mark.parametrize("pair", TASK_PAIRS, ids=_pair_id)
def test_command_task_transition_pair(pair: tuple[TaskRunState, TaskRunState]) -> None:
    current, new = pair
    if pair in TASK_ALLOWED:
        check_task_transition(current, new, is_gate=False)
    else:
        with pytest.raises(InvalidTransitionError):
            check_task_transition(current, new, is_gate=False)


@pytest.mark.parametrize("pair", TASK_PAIRS, ids=_pair_id)
def test_gate_transition_pair(pair: tuple[TaskRunState, TaskRunState]) -> None:
    current, new = pair
    if pair in GATE_ALLOWED:
        check_task_transition(current, new, is_gate=True)
    else:
        with pytest.raises(InvalidTransitionError):
            check_task_transition(current, new, is_gate=True)


def test_allowed_sets_are_exactly_what_the_checks_accept() -> None:
    """The same enumeration as one set comparison, so a diff shows every disagreement at once."""

    def accepted_runs() -> set[tuple[RunState, RunState]]:
        out = set()
        for current, new in RUN_PAIRS:
            try:
                check_run_transition(current, new)
            except InvalidTransitionError:
                continue
            out.add((current, new))
        return out

    def accepted_tasks(is_gate: bool) -> set[tuple[TaskRunState, TaskRunState]]:
        out = set()
        for current, new in TASK_PAIRS:
            try:
                check_task_transition(current, new, is_gate=is_gate)
            except InvalidTransitionError:
                continue
            out.add((current, new))
        return out

    assert accepted_runs() == RUN_ALLOWED
    assert accepted_tasks(is_gate=False) == TASK_ALLOWED
    assert accepted_tasks(is_gate=True) == GATE_ALLOWED


def test_every_non_terminal_state_can_be_cancelled() -> None:
    for run_state in RunState:
        if not run_state.is_terminal:
            check_run_transition(run_state, R.CANCELLED)
    for task_state in TaskRunState:
        if not task_state.is_terminal:
            check_task_transition(task_state, T.CANCELLED, is_gate=False)
            check_task_transition(task_state, T.CANCELLED, is_gate=True)


def test_gate_is_never_queued_running_succeeded_or_failed() -> None:
    for current in TaskRunState:
        for new in (T.QUEUED, T.RUNNING, T.SUCCEEDED, T.FAILED):
            with pytest.raises(InvalidTransitionError):
                check_task_transition(current, new, is_gate=True)


def test_command_task_never_waits_for_approval() -> None:
    for current in TaskRunState:
        with pytest.raises(InvalidTransitionError):
            check_task_transition(current, T.WAITING_FOR_APPROVAL, is_gate=False)


def test_refusal_names_the_gate_rule() -> None:
    with pytest.raises(InvalidTransitionError, match="human_validation"):
        check_task_transition(T.PENDING, T.QUEUED, is_gate=True)
    with pytest.raises(InvalidTransitionError, match="human_validation"):
        check_task_transition(T.PENDING, T.WAITING_FOR_APPROVAL, is_gate=False)
