"""Gate policy: who may decide, group targets, quorum, and when decisions settle a gate."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from signoff.domain.gates import check_decider, expand_targets, outcome_of, required_approvals
from signoff.domain.records import DecisionRecord, GateRecord
from signoff.domain.states import TaskRunState

GROUPS: dict[str, list[str]] = {"leads": ["carol", "dave"], "ops": ["erin"], "empty": []}

_ids = itertools.count()


def make_gate(
    *targets: str,
    quorum: str | int = "any",
    started_by: str = "sam",
    allow_self_approval: bool = False,
) -> GateRecord:
    return GateRecord(
        id="gate-1",
        run_id="run-1",
        task_run_id="tr-review",
        targets=targets,
        quorum=quorum,
        allow_self_approval=allow_self_approval,
        require_comment_on_reject=True,
        started_by=started_by,
        model_version_id="mv-1",
        model_digest="sha256:model",
        report_digest="sha256:report",
        report_path="report.html",
        opened_at=100.0,
        expires_at=100.0 + 72 * 3600,
    )


def decision(actor: str, kind: str = "approve", comment: str | None = None) -> DecisionRecord:
    return DecisionRecord(
        id=f"d-{next(_ids)}",
        gate_id="gate-1",
        actor=actor,
        decision=kind,
        comment=comment,
        channel="cli",
        at=200.0,
        model_digest="sha256:model",
        report_digest="sha256:report",
    )


# ---------------------------------------------------------------- who may decide


def test_target_may_decide() -> None:
    verdict = check_decider(make_gate("alice", "bob"), "bob")
    assert verdict.allowed
    assert verdict.reason == ""


def test_non_target_is_refused_with_a_reason_naming_the_approvers() -> None:
    verdict = check_decider(make_gate("alice", "bob"), "mallory")
    assert not verdict.allowed
    assert "mallory" in verdict.reason
    assert "alice" in verdict.reason
    assert "bob" in verdict.reason


def test_run_starter_is_refused_unless_self_approval_is_allowed() -> None:
    gate = make_gate("alice", "sam", started_by="sam")
    verdict = check_decider(gate, "sam")
    assert not verdict.allowed
    assert "self-approval" in verdict.reason

    assert check_decider(replace(gate, allow_self_approval=True), "sam").allowed
    # the rule is about the starter only: other approvers are unaffected
    assert check_decider(gate, "alice").allowed


def test_starter_who_is_not_a_target_is_refused_even_with_self_approval() -> None:
    gate = make_gate("alice", started_by="sam", allow_self_approval=True)
    verdict = check_decider(gate, "sam")
    assert not verdict.allowed
    assert "not an approver" in verdict.reason


def test_group_members_may_decide_through_expand_targets() -> None:
    gate = make_gate("alice", "group:leads")
    assert check_decider(gate, "carol", GROUPS).allowed
    assert check_decider(gate, "dave", GROUPS).allowed
    assert check_decider(gate, "alice", GROUPS).allowed
    refused = check_decider(gate, "erin", GROUPS)
    assert not refused.allowed
    assert "group:leads" in refused.reason
    # without the group table a member is not recognised
    assert not check_decider(gate, "carol").allowed


def test_group_member_who_started_the_run_is_still_the_starter() -> None:
    gate = make_gate("group:leads", started_by="carol")
    assert not check_decider(gate, "carol", GROUPS).allowed
    assert check_decider(gate, "dave", GROUPS).allowed


def test_expand_targets() -> None:
    assert expand_targets(["alice", "group:leads", "group:ops"], GROUPS) == {
        "alice",
        "carol",
        "dave",
        "erin",
    }
    assert expand_targets(["group:unknown", "group:empty"], GROUPS) == set()
    assert expand_targets(["carol", "group:leads"], GROUPS) == {"carol", "dave"}
    assert expand_targets([], GROUPS) == set()


# ---------------------------------------------------------------- how many approvals


def test_required_approvals() -> None:
    assert required_approvals(make_gate("a", "b", "c")) == 1
    assert required_approvals(make_gate("a", "b", "c", quorum="all")) == 3
    assert required_approvals(make_gate("a", "b", "c", quorum=2)) == 2
    assert required_approvals(make_gate("a", "group:leads", quorum="all"), GROUPS) == 3


def test_quorum_any_first_approval_settles() -> None:
    gate = make_gate("alice", "bob")
    assert outcome_of(gate, []) is None
    assert outcome_of(gate, [decision("bob")]) is TaskRunState.APPROVED


def test_quorum_all_needs_every_approver() -> None:
    gate = make_gate("alice", "bob", "carol", quorum="all")
    assert outcome_of(gate, [decision("alice"), decision("bob")]) is None
    approved = [decision("alice"), decision("bob"), decision("carol")]
    assert outcome_of(gate, approved) is TaskRunState.APPROVED


def test_quorum_all_counts_group_members() -> None:
    gate = make_gate("alice", "group:leads", quorum="all")
    some = [decision("alice"), decision("carol")]
    assert outcome_of(gate, some, GROUPS) is None
    assert outcome_of(gate, [*some, decision("dave")], GROUPS) is TaskRunState.APPROVED


def test_quorum_two_counts_distinct_approvers() -> None:
    gate = make_gate("alice", "bob", "carol", quorum=2)
    twice = [decision("alice"), decision("alice")]
    assert outcome_of(gate, twice) is None
    assert outcome_of(gate, [*twice, decision("carol")]) is TaskRunState.APPROVED


def test_any_reject_rejects() -> None:
    gate = make_gate("alice", "bob", "carol", quorum="all")
    assert outcome_of(gate, [decision("alice", "reject", "no")]) is TaskRunState.REJECTED
    mixed = [decision("alice"), decision("bob"), decision("carol", "reject", "drift")]
    assert outcome_of(gate, mixed) is TaskRunState.REJECTED
    # a reject among enough approvals under quorum any still rejects
    any_gate = make_gate("alice", "bob")
    mixed_any = [decision("alice"), decision("bob", "reject", "no")]
    assert outcome_of(any_gate, mixed_any) is TaskRunState.REJECTED


def test_refused_entries_do_not_count() -> None:
    gate = make_gate("alice", "bob", quorum=2)
    refused = [decision("mallory", "refused"), decision("sam", "refused")]
    assert outcome_of(gate, refused) is None
    assert outcome_of(gate, [*refused, decision("alice")]) is None
    assert outcome_of(gate, [*refused, decision("alice"), decision("bob")]) is (
        TaskRunState.APPROVED
    )
    # a refused attempt is never read as a reject either
    assert outcome_of(make_gate("alice"), [decision("mallory", "refused")]) is None


def test_unknown_decision_kinds_do_not_count() -> None:
    gate = make_gate("alice")
    assert outcome_of(gate, [decision("alice", "maybe")]) is None


@pytest.mark.parametrize(
    ("targets", "quorum"),
    [(("group:empty",), "all"), (("group:unknown",), "all")],
    ids=["all-of-an-empty-group", "all-of-an-unknown-group"],
)
def test_gate_is_never_approved_without_a_single_approval(
    targets: tuple[str, ...], quorum: str | int
) -> None:
    """Approval needs at least one human "approve" (design §6.4: only the right people decide).

    A quorum that expands to zero approvers must not settle the gate as approved on its own.
    """
    gate = make_gate(*targets, quorum=quorum)
    assert outcome_of(gate, [], GROUPS) is None
    assert outcome_of(gate, [decision("mallory", "refused")], GROUPS) is None
