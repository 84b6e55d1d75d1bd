"""Random walks over one task run or gate: terminal stays terminal, a gate is decided once.

The model keeps a task run's state and, for a gate, an append-only decision log. Every change
goes through ``check_task_transition`` (the one door); gate decisions go through
``check_decider`` and ``outcome_of`` as the review service does.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from signoff.domain.gates import check_decider, outcome_of, required_approvals
from signoff.domain.records import DecisionRecord, GateRecord
from signoff.domain.states import TaskRunState, check_task_transition
from signoff.errors import InvalidTransitionError

T = TaskRunState
USERS = ("alice", "bob", "carol", "sam", "mallory")
DECIDED = (T.APPROVED, T.REJECTED)


class TaskRunMachine(RuleBasedStateMachine):
    """One task run (a command task or a gate) and the decisions on it."""

    def __init__(self) -> None:
        super().__init__()
        self.is_gate = False
        self.state = T.PENDING
        self.history: list[TaskRunState] = [T.PENDING]
        self.gate: GateRecord | None = None
        self.decisions: list[DecisionRecord] = []
        self.settled_by_decisions = 0

    @initialize(
        is_gate=st.booleans(),
        approvers=st.lists(st.sampled_from(USERS[:4]), min_size=1, max_size=3, unique=True),
        quorum=st.sampled_from(["any", "all", 2]),
        allow_self=st.booleans(),
    )
    def start(
        self, is_gate: bool, approvers: list[str], quorum: str | int, allow_self: bool
    ) -> None:
        self.is_gate = is_gate
        if is_gate:
            self.gate = GateRecord(
                id="g",
                run_id="r",
                task_run_id="tr",
                targets=tuple(approvers),
                quorum=quorum,
                allow_self_approval=allow_self,
                require_comment_on_reject=True,
                started_by="sam",
                model_version_id=None,
                model_digest=None,
                report_digest=None,
                report_path=None,
                opened_at=0.0,
                expires_at=1.0,
            )

    def _move(self, new: TaskRunState) -> bool:
        """Apply ``new`` through the one door; False (state untouched) when refused."""
        before = self.state
        try:
            check_task_transition(before, new, is_gate=self.is_gate)
        except InvalidTransitionError:
            assert self.state is before
            return False
        assert not before.is_terminal, f"{before} is terminal but {new} was accepted"
        if before in DECIDED:
            raise AssertionError(f"gate already {before}, yet {new} was accepted")
        self.state = new
        self.history.append(new)
        return True

    @rule(new=st.sampled_from(TaskRunState))
    def try_transition(self, new: TaskRunState) -> None:
        was_terminal = self.state.is_terminal
        moved = self._move(new)
        if was_terminal:
            assert not moved

    @rule()
    def open_gate(self) -> None:
        can_open = self.is_gate and self.state is T.PENDING
        moved = self._move(T.WAITING_FOR_APPROVAL)
        assert moved == can_open
        if not self.is_gate:
            assert T.WAITING_FOR_APPROVAL not in self.history

    # decisions arrive once the gate was opened (and keep arriving after it was decided)
    @precondition(lambda self: self.gate is not None and self.state is not T.PENDING)
    @rule(who=st.integers(0, 6), approve=st.sampled_from([True, True, True, False]))
    def decide(self, who: int, approve: bool) -> None:
        assert self.gate is not None
        # mostly the gate's own approvers, sometimes the run's starter or an outsider
        targets = self.gate.targets
        actor = targets[who % len(targets)] if who < 4 else USERS[who - 2]
        verdict = check_decider(self.gate, actor)
        kind = "refused" if not verdict.allowed else ("approve" if approve else "reject")
        self.decisions.append(
            DecisionRecord(
                id=f"d{len(self.decisions)}",
                gate_id="g",
                actor=actor,
                decision=kind,
                comment=None if approve else "no",
                channel="cli",
                at=float(len(self.decisions)),
                model_digest=None,
                report_digest=None,
            )
        )
        outcome = outcome_of(self.gate, self.decisions)
        if outcome is None:
            return
        assert outcome in DECIDED
        waiting = self.state is T.WAITING_FOR_APPROVAL
        moved = self._move(outcome)
        # only an open gate can be settled; a late decision never changes a decided gate
        assert moved == waiting
        if moved:
            self.settled_by_decisions += 1

    @invariant()
    def state_is_a_valid_task_run_state(self) -> None:
        assert isinstance(self.state, TaskRunState)
        assert TaskRunState(self.state.value) is self.state

    @invariant()
    def terminal_is_the_last_state(self) -> None:
        terminal_at = [i for i, s in enumerate(self.history) if s.is_terminal]
        assert terminal_at in ([], [len(self.history) - 1])

    @invariant()
    def gate_is_decided_at_most_once(self) -> None:
        assert sum(1 for s in self.history if s in DECIDED) <= 1
        assert self.settled_by_decisions <= 1

    @invariant()
    def kinds_keep_to_their_states(self) -> None:
        gate_only = {T.WAITING_FOR_APPROVAL}
        command_only = {T.QUEUED, T.RUNNING, T.SUCCEEDED, T.FAILED}
        forbidden = command_only if self.is_gate else gate_only
        assert forbidden.isdisjoint(self.history)

    @invariant()
    def approval_needs_its_quorum(self) -> None:
        # try_transition may approve directly (the table alone allows it, the review service
        # guards it), so only an approval that came from the decision log must meet the quorum
        if self.gate is None or self.state is not T.APPROVED or not self.settled_by_decisions:
            return
        approvers = {d.actor for d in self.decisions if d.decision == "approve"}
        assert len(approvers) >= max(1, required_approvals(self.gate))
        assert self.gate.started_by not in approvers or self.gate.allow_self_approval


TaskRunMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=15, deadline=None, database=None
)
test_task_run_state_machine = TaskRunMachine.TestCase
