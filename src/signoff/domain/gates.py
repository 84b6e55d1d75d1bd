"""Gate policy: who may decide, and when the decisions so far settle the gate."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from signoff.domain.records import DecisionRecord, GateRecord
from signoff.domain.states import TaskRunState

__all__ = [
    "Eligibility",
    "check_decider",
    "expand_targets",
    "outcome_of",
    "required_approvals",
]


@dataclass(frozen=True, slots=True)
class Eligibility:
    """Whether a user may decide a gate, and why not."""

    allowed: bool
    reason: str = ""


def expand_targets(targets: Iterable[str], groups: Mapping[str, Sequence[str]]) -> set[str]:
    """Resolve ``group:NAME`` targets to their members; plain names stand for themselves."""
    users: set[str] = set()
    for target in targets:
        if target.startswith("group:"):
            users.update(groups.get(target.removeprefix("group:"), ()))
        else:
            users.add(target)
    return users


def check_decider(
    gate: GateRecord, user: str, groups: Mapping[str, Sequence[str]] | None = None
) -> Eligibility:
    """Check, at decision time, that ``user`` may decide ``gate`` under its policy."""
    allowed = expand_targets(gate.targets, groups or {})
    if user not in allowed:
        return Eligibility(
            False, f"{user} is not an approver of this gate (approvers: {', '.join(gate.targets)})"
        )
    if user == gate.started_by and not gate.allow_self_approval:
        return Eligibility(False, f"{user} started this run and the policy forbids self-approval")
    return Eligibility(True)


def required_approvals(gate: GateRecord, groups: Mapping[str, Sequence[str]] | None = None) -> int:
    """How many distinct approvers the quorum asks for; never fewer than one.

    ``all`` means every target who may decide: the run's starter is left out when the policy
    forbids self-approval (otherwise the gate could only expire).
    """
    if gate.quorum == "any":
        return 1
    if gate.quorum == "all":
        eligible = expand_targets(gate.targets, groups or {})
        if not gate.allow_self_approval:
            eligible.discard(gate.started_by)
        return max(1, len(eligible))
    return max(1, int(gate.quorum))


def outcome_of(
    gate: GateRecord,
    decisions: Sequence[DecisionRecord],
    groups: Mapping[str, Sequence[str]] | None = None,
) -> TaskRunState | None:
    """The gate's state once these decisions count: rejected on any reject, approved at quorum."""
    counted = [d for d in decisions if d.decision in ("approve", "reject")]
    if any(d.decision == "reject" for d in counted):
        return TaskRunState.REJECTED
    approvers = {d.actor for d in counted if d.decision == "approve"}
    if len(approvers) >= required_approvals(gate, groups):
        return TaskRunState.APPROVED
    return None
