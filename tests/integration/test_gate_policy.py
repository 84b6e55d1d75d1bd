"""The gate's policy, atomic decisions, timers and the audit chain, on real stores."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from gate_flows import write_flow

from conftest import Attacks
from signoff.bootstrap import App, Settings, build_app
from signoff.domain.audit import verify_chain
from signoff.domain.records import UserRecord
from signoff.domain.states import RunState, TaskRunState
from signoff.engine.engine import new_id
from signoff.errors import GateClosedError, NotATargetError, SignoffError
from signoff.gates.decide import DecisionResult, decide
from signoff.spec import load_flow

CLOSED_GATE = "decision on a gate already decided, expired or superseded"
NOT_A_TARGET = "decision by someone who is not an approver (by name or group)"


class FakeClock:
    """Time that moves only when the test says so."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    a = build_app(Settings(home=tmp_path / "home", database_url=database_url, slots=2))
    clock = FakeClock()
    a.engine.clock = clock
    a.gates.clock = clock
    try:
        yield a
    finally:
        for ep in a.store.list_endpoints():
            if ep.pid:
                a.endpoints.stop(ep.pid)
        a.close()


def _run(app: App, folder: Path, *, started_by: str = "carol", **kw: str) -> str:
    loaded = load_flow(write_flow(folder, **kw))
    run = app.engine.start_run(loaded.spec, base_dir=loaded.base_dir, started_by=started_by)
    return app.engine.drive(run.id).id


def _decide(app: App, run_id: str, who: str, approve: bool = True) -> DecisionResult:
    return decide(
        app.store,
        app.engine.clock,
        run_id,
        actor=who,
        approve=approve,
        comment=None if approve else f"{who} says no",
        channel="test",
        new_id=new_id,
    )


def _gate_state(app: App, run_id: str) -> TaskRunState:
    gate = app.store.gates_of_run(run_id)[0]
    return app.store.get_task_run(gate.task_run_id).state


def test_quorum_two_of_three_counts_each_approver_once(
    app: App, tmp_path: Path, attacks: Attacks
) -> None:
    run_id = _run(app, tmp_path / "f", targets="alice,bob,dave", policy="quorum: 2")
    first = _decide(app, run_id, "alice")
    assert (first.state, first.approvals, first.required) == (
        TaskRunState.WAITING_FOR_APPROVAL,
        1,
        2,
    )
    again = _decide(app, run_id, "alice")
    assert (again.state, again.approvals) == (TaskRunState.WAITING_FOR_APPROVAL, 1)
    final = _decide(app, run_id, "dave")
    assert (final.state, final.approvals) == (TaskRunState.APPROVED, 2)
    with pytest.raises(GateClosedError, match="already decided"):
        _decide(app, run_id, "bob")
    attacks.record("an approver approves twice toward a quorum", "store", 1, 1)
    attacks.record(CLOSED_GATE, "store", 1, 1)


def test_the_starter_cannot_approve_their_own_run(
    app: App, tmp_path: Path, attacks: Attacks
) -> None:
    run_id = _run(app, tmp_path / "f", targets="carol,bob")
    with pytest.raises(NotATargetError, match="started this run"):
        _decide(app, run_id, "carol")
    assert _gate_state(app, run_id) is TaskRunState.WAITING_FOR_APPROVAL
    refused = [e for e in app.store.list_audit(run_id) if e.event == "refused"]
    assert [(e.actor, e.data["channel"]) for e in refused] == [("carol", "test")]
    attacks.record("the run's starter approves their own run", "store", len(refused), len(refused))


def test_self_approval_when_the_policy_allows_it(app: App, tmp_path: Path) -> None:
    run_id = _run(app, tmp_path / "f", targets="carol", policy="allow_self_approval: true")
    assert _decide(app, run_id, "carol").state is TaskRunState.APPROVED


def test_a_non_target_is_refused_and_the_refusal_recorded(
    app: App, tmp_path: Path, attacks: Attacks
) -> None:
    run_id = _run(app, tmp_path / "f")
    with pytest.raises(NotATargetError, match="not an approver"):
        _decide(app, run_id, "mallory")
    gate = app.store.gates_of_run(run_id)[0]
    assert [(d.actor, d.decision) for d in app.store.list_decisions(gate.id)] == [
        ("mallory", "refused")
    ]
    attacks.record(NOT_A_TARGET, "store", 1, 1)


def test_group_targets(app: App, tmp_path: Path, attacks: Attacks) -> None:
    for name in ("erin", "frank"):
        app.store.add_user(UserRecord(name, None, ("approver",), True, 0.0))
    app.store.set_group("leads", ["erin", "frank"])
    run_id = _run(app, tmp_path / "f", targets="group:leads", policy="quorum: all")
    assert _decide(app, run_id, "erin").state is TaskRunState.WAITING_FOR_APPROVAL
    with pytest.raises(NotATargetError):
        _decide(app, run_id, "alice")
    assert _decide(app, run_id, "frank").state is TaskRunState.APPROVED
    attacks.record(NOT_A_TARGET, "store", 1, 1)


def test_fifty_concurrent_decisions_have_one_outcome(
    app: App, tmp_path: Path, attacks: Attacks
) -> None:
    people = [f"u{i:02d}" for i in range(50)]
    run_id = _run(app, tmp_path / "f", targets=",".join(people))
    barrier = threading.Barrier(len(people))
    outcomes: dict[str, str] = {}

    def one(who: str, approve: bool) -> None:
        barrier.wait(timeout=30)
        try:
            result = _decide(app, run_id, who, approve)
            outcomes[who] = result.state.value
        except GateClosedError:
            outcomes[who] = "already decided"

    threads = [threading.Thread(target=one, args=(who, i % 2 == 0)) for i, who in enumerate(people)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(outcomes) == 50
    settled = [v for v in outcomes.values() if v != "already decided"]
    assert len(settled) == 1
    assert settled[0] in ("approved", "rejected")
    gate = app.store.gates_of_run(run_id)[0]
    counted = [d for d in app.store.list_decisions(gate.id) if d.decision != "refused"]
    assert len(counted) == 1
    assert _gate_state(app, run_id).value == settled[0]
    assert verify_chain(app.store.list_audit(), app.audit_key) == []
    attacks.record(
        "concurrent approve and reject decisions racing on one gate",
        "store",
        len(people),
        len(outcomes),  # each got one answer: the single outcome, or "already decided"
    )


def test_a_timeout_expires_the_gate_and_never_approves(
    app: App, tmp_path: Path, attacks: Attacks
) -> None:
    run_id = _run(app, tmp_path / "f", policy="timeout: 2h")
    clock = app.engine.clock
    assert isinstance(clock, FakeClock)
    clock.advance(3599)
    assert app.gates.expire_due() == []
    clock.advance(7200)
    assert app.gates.expire_due() == [run_id]
    assert _gate_state(app, run_id) is TaskRunState.EXPIRED
    run = app.store.get_run(run_id)
    assert run.state is RunState.EXPIRED
    with pytest.raises(GateClosedError, match="expired"):
        _decide(app, run_id, "alice")
    deploy = next(tr for tr in app.store.list_task_runs(run_id) if tr.task_name == "deploy")
    assert deploy.state is TaskRunState.PENDING  # nothing downstream ever ran
    assert app.store.list_endpoints() == []
    assert [e.event for e in app.store.list_audit(run_id)][-1] == "expired"
    attacks.record(CLOSED_GATE, "store", 1, 1)


def test_a_newer_run_supersedes_the_older_gate(app: App, tmp_path: Path, attacks: Attacks) -> None:
    older = _run(app, tmp_path / "a")
    newer = _run(app, tmp_path / "b")
    assert _gate_state(app, older) is TaskRunState.CANCELLED
    assert app.store.get_run(older).state is RunState.CANCELLED
    assert _gate_state(app, newer) is TaskRunState.WAITING_FOR_APPROVAL
    with pytest.raises(GateClosedError, match=f"superseded by run {newer}"):
        _decide(app, older, "alice")
    events = [(e.event, e.data) for e in app.store.list_audit(older) if e.event == "superseded"]
    assert events == [("superseded", {"by_run": newer})]
    attacks.record(CLOSED_GATE, "store", 1, 1)


def test_supersede_can_be_turned_off(app: App, tmp_path: Path) -> None:
    older = _run(app, tmp_path / "a", policy="supersede: false")
    _run(app, tmp_path / "b", policy="supersede: false")
    assert _gate_state(app, older) is TaskRunState.WAITING_FOR_APPROVAL


def test_deploy_refuses_a_model_changed_after_approval(
    app: App, tmp_path: Path, attacks: Attacks
) -> None:
    run_id = _run(app, tmp_path / "f")
    gate = app.store.gates_of_run(run_id)[0]
    model = app.store.get_model_version(gate.model_version_id or "")
    (Path(model.path) / "model.skops").write_bytes(b"not the approved model")
    _decide(app, run_id, "alice")
    run = app.engine.drive(run_id)
    assert run.state is RunState.FAILED
    deploy = next(tr for tr in app.store.list_task_runs(run_id) if tr.task_name == "deploy")
    assert deploy.reason is not None
    assert "needs a new approval" in deploy.reason
    assert app.store.list_endpoints() == []
    assert "champion" not in app.store.aliases("tiny")
    attacks.record("model file replaced after the gate opened, then approved", "model file", 1, 1)


def test_every_decision_carries_the_digests_the_approver_saw(app: App, tmp_path: Path) -> None:
    run_id = _run(app, tmp_path / "f")
    result = _decide(app, run_id, "bob")
    gate = result.gate
    assert result.decision.model_digest == gate.model_digest is not None
    assert result.decision.report_digest == gate.report_digest is not None
    decided = [e for e in app.store.list_audit(run_id) if e.event == "decided"]
    assert decided[0].data["model_digest"] == gate.model_digest


def test_tampering_with_the_audit_log_is_detected(
    app: App, tmp_path: Path, attacks: Attacks
) -> None:
    run_id = _run(app, tmp_path / "f")
    with pytest.raises(NotATargetError):
        _decide(app, run_id, "mallory")
    _decide(app, run_id, "alice")
    entries = app.store.list_audit()
    assert len(entries) >= 4
    assert verify_chain(entries, app.audit_key) == []
    victim = entries[1].seq
    detected = 0
    with app.database.begin() as conn:
        conn.execute(
            sa.text("UPDATE audit_log SET actor = 'someone else' WHERE seq = :s"), {"s": victim}
        )
    breaks = verify_chain(app.store.list_audit(), app.audit_key)
    assert [b.seq for b in breaks] == [victim]
    assert "changed" in breaks[0].reason
    detected += 1
    with app.database.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_log WHERE seq = :s"), {"s": victim})
    assert any("missing" in b.reason for b in verify_chain(app.store.list_audit(), app.audit_key))
    detected += 1
    attacks.record(
        "audit entry's actor edited, then the entry deleted", "store", detected, detected
    )


def test_a_rejection_needs_a_comment(app: App, tmp_path: Path) -> None:
    run_id = _run(app, tmp_path / "f")
    with pytest.raises(SignoffError, match="needs a comment"):
        decide(
            app.store,
            app.engine.clock,
            run_id,
            actor="alice",
            approve=False,
            comment="  ",
            channel="test",
            new_id=new_id,
        )
    assert _gate_state(app, run_id) is TaskRunState.WAITING_FOR_APPROVAL


def test_auto_approve_if_holds_only_against_a_champion(app: App, tmp_path: Path) -> None:
    rule = "auto_approve_if: {beats_champion_on: [auc], margin: 0.01}"
    first = _run(app, tmp_path / "a", policy=rule)
    # no champion yet: people decide
    assert _gate_state(app, first) is TaskRunState.WAITING_FOR_APPROVAL
    evaluated = [e for e in app.store.list_audit(first) if e.event == "rule_evaluated"]
    assert evaluated[0].data["holds"] is False
    _decide(app, first, "alice")
    assert app.engine.drive(first).state is RunState.SUCCEEDED
    loaded = load_flow(write_flow(tmp_path / "b", policy=rule))
    better = app.engine.start_run(
        loaded.spec, base_dir=loaded.base_dir, started_by="carol", params={"seed": 5}
    )
    run = app.engine.drive(better.id)
    assert _gate_state(app, better.id) is TaskRunState.APPROVED
    assert run.state is RunState.SUCCEEDED
    gate = app.store.gates_of_run(better.id)[0]
    [decision] = app.store.list_decisions(gate.id)
    assert (decision.actor, decision.channel) == ("signoff:rule", "rule")
    assert verify_chain(app.store.list_audit(), app.audit_key) == []


def test_a_challenger_worse_than_the_champion_stops_before_the_gate(
    app: App, tmp_path: Path
) -> None:
    folder = tmp_path / "f"
    path = write_flow(folder)
    text = path.read_text().replace(
        "    conditions: [{tag_key: auc}]",
        "    conditions: [{tag_key: auc}]\n    compare_to: champion\n    min_improvement: 0.0",
    )
    path.write_text(text)
    loaded = load_flow(path)
    first = app.engine.start_run(
        loaded.spec, base_dir=loaded.base_dir, started_by="carol", params={"seed": 5}
    )
    app.engine.drive(first.id)
    pick = next(tr for tr in app.store.list_task_runs(first.id) if tr.task_name == "pick")
    assert pick.result["comparison"]["champion"] is None  # nothing to beat yet
    _decide(app, first.id, "alice")
    assert app.engine.drive(first.id).state is RunState.SUCCEEDED
    worse = app.engine.start_run(
        loaded.spec, base_dir=loaded.base_dir, started_by="carol", params={"seed": 0}
    )
    run = app.engine.drive(worse.id)
    assert run.state is RunState.FAILED
    pick = next(tr for tr in app.store.list_task_runs(worse.id) if tr.task_name == "pick")
    assert pick.reason is not None
    assert "does not beat the champion" in pick.reason
    comparison = pick.result["comparison"]
    assert comparison["passed"] is False
    assert comparison["delta"] == pytest.approx(-0.05)
    assert comparison["same_holdout"] is False
    assert app.store.gates_of_run(worse.id) == []
