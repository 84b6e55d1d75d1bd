"""Deciding a gate: one function for every channel (CLI, REST API, e-mail link, rule).

Eligibility is checked at decision time against the gate's policy (targets, groups,
self-approval) and its deadline (a decision at or after ``expires_at`` never counts, whether
or not a timer has expired the gate yet); a refused attempt is recorded and audited; the
decision, the gate's new state, the audit entry and (for a link) the link's single use are
written in one transaction with a compare-and-set, so concurrent decisions yield exactly one
outcome. Every audit entry says how the decider was authenticated (``auth``) and names the
decision row it stands for (``decision_id``), so ``signoff audit verify`` can match the two.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from signoff.domain.gates import check_decider, outcome_of, required_approvals
from signoff.domain.ports import AccountStore, Clock, GateStore, RunStore
from signoff.domain.records import AuditEvent, DecisionRecord, GateRecord, TaskRunRecord
from signoff.domain.states import TaskRunState
from signoff.errors import (
    ConflictError,
    GateClosedError,
    LinkUsedError,
    NotATargetError,
    NotFoundError,
    SignoffError,
)

__all__ = [
    "AUTH_BY_CHANNEL",
    "DecisionResult",
    "DecisionStore",
    "GateRunStore",
    "decide",
    "decide_gate",
    "open_gate_of_run",
]


class GateRunStore(RunStore, GateStore, Protocol):
    """The store roles that find a run's gates: runs and task runs, gates."""


class DecisionStore(GateRunStore, AccountStore, Protocol):
    """The store roles a decision uses: runs, gates and decisions, users and groups."""


_MAX_ATTEMPTS = 50

AUTH_BY_CHANNEL: dict[str, str] = {
    "api": "token",
    "web": "session",
    "email": "link",
    "rule": "rule",
}
"""How a channel authenticates its decider when the caller does not say (the CLI always says)."""


@dataclass(frozen=True, slots=True)
class DecisionResult:
    """What a decision did: the gate, the recorded decision, and the gate's state after it."""

    gate: GateRecord
    decision: DecisionRecord
    state: TaskRunState
    approvals: int
    required: int


def open_gate_of_run(store: GateRunStore, run_id: str) -> tuple[GateRecord, TaskRunRecord]:
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
    why = f" ({last.reason})" if last.reason else ""
    raise GateClosedError(f"the gate of run {run.id} is already decided: {last.state}{why}")


def decide(
    store: DecisionStore,
    clock: Clock,
    run_id: str,
    *,
    actor: str,
    approve: bool,
    comment: str | None,
    channel: str,
    new_id: Callable[[], str],
    auth: str | None = None,
) -> DecisionResult:
    """Record ``actor``'s approval or rejection of the run's open gate, under its policy."""
    gate, tr = open_gate_of_run(store, run_id)
    return decide_gate(
        store,
        clock,
        gate,
        tr,
        actor=actor,
        approve=approve,
        comment=comment,
        channel=channel,
        new_id=new_id,
        auth=auth,
    )


def decide_gate(
    store: DecisionStore,
    clock: Clock,
    gate: GateRecord,
    tr: TaskRunRecord,
    *,
    actor: str,
    approve: bool,
    comment: str | None,
    channel: str,
    new_id: Callable[[], str],
    link_token_hash: str | None = None,
    check_eligibility: bool = True,
    auth: str | None = None,
) -> DecisionResult:
    """Decide one gate. ``check_eligibility=False`` only for the gate's own rule (auto-approve).

    ``auth`` says how ``actor`` was authenticated (``token``, ``session``, ``link``,
    ``password``, ``login``, ``rule``, or ``asserted`` for a store with no users); it is
    recorded in the audit entry.
    """
    how = auth or AUTH_BY_CHANNEL.get(channel, "asserted")
    groups = store.groups()
    attempt = _Attempt(gate, actor, approve, channel, how)
    _check_may_decide(store, clock, attempt, groups, comment, new_id, check_eligibility)
    need = required_approvals(gate, groups)
    for _ in range(_MAX_ATTEMPTS):
        if tr.state is not TaskRunState.WAITING_FOR_APPROVAL:
            why = f" ({tr.reason})" if tr.reason else ""
            raise GateClosedError(f"the gate is already decided: {tr.state}{why}")
        decision = DecisionRecord(
            id=new_id(),
            gate_id=gate.id,
            actor=actor,
            decision=_verb(approve),
            comment=comment,
            channel=channel,
            at=clock.now(),
            model_digest=gate.model_digest,
            report_digest=gate.report_digest,
        )
        counted = [*store.list_decisions(gate.id), decision]
        new_state = outcome_of(gate, counted, groups)
        approvals = len({d.actor for d in counted if d.decision == "approve"})
        reason = None
        if new_state is not None:
            reason = f"{'approved' if approve else 'rejected'} by {actor}" + (
                f": {comment}" if comment else ""
            )
        event = _decided_event(attempt, decision, approvals, need, (new_state or tr.state).value)
        try:
            tr = store.add_decision(
                decision,
                tr,
                new_state,
                reason=reason,
                audit=[event],
                link_token_hash=link_token_hash,
            )
        except LinkUsedError as exc:
            raise GateClosedError("this link was already used") from exc
        except ConflictError:
            tr = store.get_task_run(tr.id)
            continue
        return DecisionResult(gate, decision, tr.state, approvals, need)
    raise ConflictError("the gate is too busy; try again")


@dataclass(frozen=True, slots=True)
class _Attempt:
    """Who tries to decide which gate, which way, through which channel, proved how."""

    gate: GateRecord
    actor: str
    approve: bool
    channel: str
    auth: str


def _check_may_decide(
    store: DecisionStore,
    clock: Clock,
    attempt: _Attempt,
    groups: Mapping[str, Sequence[str]],
    comment: str | None,
    new_id: Callable[[], str],
    check_eligibility: bool,
) -> None:
    """Refuse (recorded and audited) a non-target or a late decision; a bare rejection."""
    gate = attempt.gate
    if check_eligibility:
        verdict = check_decider(gate, attempt.actor, groups)
        if not verdict.allowed:
            _refuse(store, clock, attempt, verdict.reason, new_id)
            raise NotATargetError(f"refused: {verdict.reason}")
    late = clock.now()
    if late >= gate.expires_at:
        too_late = (
            f"the gate's deadline passed {late - gate.expires_at:.0f}s ago; "
            "a late decision does not count"
        )
        _refuse(store, clock, attempt, too_late, new_id)
        raise GateClosedError(f"refused: {too_late}")
    if not attempt.approve and gate.require_comment_on_reject and not (comment or "").strip():
        raise SignoffError("a rejection needs a comment (--comment) under this gate's policy")


def _decided_event(
    attempt: _Attempt, decision: DecisionRecord, approvals: int, need: int, gate_state: str
) -> AuditEvent:
    """The audit entry a decision is bound to (by ``decision_id``)."""
    gate = attempt.gate
    data = {
        "decision_id": decision.id,
        "decision": decision.decision,
        "comment": decision.comment,
        "channel": attempt.channel,
        "auth": attempt.auth,
        "model_digest": gate.model_digest,
        "report_digest": gate.report_digest,
        "approvals": approvals,
        "required": need,
        "gate_state": gate_state,
    }
    return AuditEvent("decided", gate.run_id, gate.id, attempt.actor, data)


def _refuse(
    store: DecisionStore,
    clock: Clock,
    attempt: _Attempt,
    reason: str,
    new_id: Callable[[], str],
) -> None:
    """Record and audit an attempt that does not count (not a target, too late)."""
    gate = attempt.gate
    refusal = DecisionRecord(
        id=new_id(),
        gate_id=gate.id,
        actor=attempt.actor,
        decision="refused",
        comment=reason,
        channel=attempt.channel,
        at=clock.now(),
        model_digest=gate.model_digest,
        report_digest=gate.report_digest,
    )
    data = {
        "decision_id": refusal.id,
        "channel": attempt.channel,
        "auth": attempt.auth,
        "reason": reason,
        "wanted": _verb(attempt.approve),
    }
    event = AuditEvent("refused", gate.run_id, gate.id, attempt.actor, data)
    store.add_refusal(refusal, audit=[event])


def _verb(approve: bool) -> str:
    return "approve" if approve else "reject"
