"""Deciding a gate: one function for every channel (CLI now; API and e-mail links later).

Eligibility is checked at decision time against the gate's policy; a refused attempt is
recorded; the decision and the gate's new state are written in one transaction with a
compare-and-set, so concurrent decisions yield exactly one outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from signoff.domain.gates import check_decider, outcome_of
from signoff.domain.ports import Clock, Store
from signoff.domain.records import DecisionRecord, GateRecord, TaskRunRecord
from signoff.domain.states import TaskRunState
from signoff.errors import (
    ConflictError,
    GateClosedError,
    NotATargetError,
    NotFoundError,
    SignoffError,
)

__all__ = ["DecisionResult", "decide", "open_gate_of_run"]

_MAX_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class DecisionResult:
    """What a decision did: the gate, the recorded decision, and the gate's state after it."""

    gate: GateRecord
    decision: DecisionRecord
    state: TaskRunState
    approvals: int


def open_gate_of_run(store: Store, run_id: str) -> tuple[GateRecord, TaskRunRecord]:
    """The gate of a run that waits for a decision (or a clear reason why there is none)."""
    run = store.get_run(run_id)
    gates = store.gates_of_run(run.id)
    if not gates:
        raise NotFoundError(f"run {run.id} has no gate (it is {run.state})")
    for gate in gates:
        tr = store.get_task_run(gate.task_run_id)
        if tr.state is TaskRunState.WAITING_FOR_APPROVAL:
            return gate, tr
    last = store.get_task_run(gates[-1].task_run_id)
    raise GateClosedError(f"the gate of run {run.id} is already decided: {last.state}")


def decide(
    store: Store,
    clock: Clock,
    run_id: str,
    *,
    actor: str,
    approve: bool,
    comment: str | None,
    channel: str,
    new_id: Callable[[], str],
) -> DecisionResult:
    """Record ``actor``'s approval or rejection of the run's open gate, under its policy."""
    gate, tr = open_gate_of_run(store, run_id)
    verdict = check_decider(gate, actor)
    if not verdict.allowed:
        store.add_refusal(
            DecisionRecord(
                id=new_id(),
                gate_id=gate.id,
                actor=actor,
                decision="refused",
                comment=verdict.reason,
                channel=channel,
                at=clock.now(),
                model_digest=gate.model_digest,
                report_digest=gate.report_digest,
            )
        )
        raise NotATargetError(f"refused: {verdict.reason}")
    if not approve and gate.require_comment_on_reject and not (comment or "").strip():
        raise SignoffError("a rejection needs a comment (--comment) under this gate's policy")
    for _ in range(_MAX_ATTEMPTS):
        if tr.state is not TaskRunState.WAITING_FOR_APPROVAL:
            raise GateClosedError(f"the gate is already decided: {tr.state}")
        decisions = store.list_decisions(gate.id)
        decision = DecisionRecord(
            id=new_id(),
            gate_id=gate.id,
            actor=actor,
            decision="approve" if approve else "reject",
            comment=comment,
            channel=channel,
            at=clock.now(),
            model_digest=gate.model_digest,
            report_digest=gate.report_digest,
        )
        new_state = outcome_of(gate, [*decisions, decision])
        reason = None
        if new_state is not None:
            reason = f"{'approved' if approve else 'rejected'} by {actor}" + (
                f": {comment}" if comment else ""
            )
        try:
            tr = store.add_decision(decision, tr, new_state, reason=reason)
        except ConflictError:
            tr = store.get_task_run(tr.id)
            continue
        approvals = len({d.actor for d in [*decisions, decision] if d.decision == "approve"})
        return DecisionResult(gate, decision, tr.state, approvals)
    raise ConflictError("the gate is too busy; try again")
