"""A gate's deadline is enforced by the decision itself, not only by the timer that expires it.

With the timers off (``signoff server --no-timers``, or no server at all), a decision after
``expires_at`` must not count; with them on, one that slips in before the next tick must not
either. Every channel goes through the one decision function, so checking it there holds for
the CLI, the API, the web page and the e-mailed links alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gate_flows import write_flow

from conftest import Attacks
from signoff.bootstrap import App, Settings, build_app
from signoff.domain.states import RunState, TaskRunState
from signoff.engine.engine import new_id
from signoff.errors import GateClosedError
from signoff.gates.decide import decide
from signoff.spec import load_flow


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    a = build_app(Settings(home=tmp_path / "home", database_url=database_url, slots=2))
    clock = FakeClock()
    a.engine.clock = clock
    a.gates.clock = clock
    try:
        yield a
    finally:
        a.close()


def _waiting_run(app: App, folder: Path) -> str:
    loaded = load_flow(write_flow(folder, targets="alice,bob", policy="timeout: 1h"))
    run = app.engine.start_run(loaded.spec, base_dir=loaded.base_dir, started_by="carol")
    return app.engine.drive(run.id).id


def _approve(app: App, run_id: str, who: str = "alice") -> None:
    decide(
        app.store,
        app.engine.clock,
        run_id,
        actor=who,
        approve=True,
        comment=None,
        channel="api",
        new_id=new_id,
    )


@pytest.mark.parametrize("late_by", [10.0, 1.0, 0.0])
def test_a_decision_at_or_after_the_deadline_never_counts(
    app: App, tmp_path: Path, late_by: float, attacks: Attacks
) -> None:
    run_id = _waiting_run(app, tmp_path / "f")
    gate = app.store.gates_of_run(run_id)[0]
    assert isinstance(app.engine.clock, FakeClock)
    app.engine.clock.t = gate.expires_at + late_by  # no timer has run: the gate still waits
    with pytest.raises(GateClosedError, match="deadline passed"):
        _approve(app, run_id)
    assert app.store.get_task_run(gate.task_run_id).state is TaskRunState.WAITING_FOR_APPROVAL
    decisions = app.store.list_decisions(gate.id)
    assert [(d.actor, d.decision) for d in decisions] == [("alice", "refused")]
    refused = [e for e in app.store.list_audit(run_id) if e.event == "refused"]
    assert refused[-1].data["wanted"] == "approve"
    assert "deadline" in refused[-1].data["reason"]
    assert app.engine.drive(run_id).state is RunState.WAITING_FOR_APPROVAL  # nothing deployed
    assert app.store.list_endpoints() == []
    assert app.gates.expire_due() == [run_id]  # the timer then ends it, never approving
    assert app.store.get_run(run_id).state is RunState.EXPIRED
    assert app.verify_audit().intact
    attacks.record(
        "decision at or after the deadline, before any timer expired the gate",
        "store",
        len(decisions),
        sum(d.decision == "refused" for d in decisions),
    )


def test_a_decision_just_before_the_deadline_counts(app: App, tmp_path: Path) -> None:
    run_id = _waiting_run(app, tmp_path / "f")
    gate = app.store.gates_of_run(run_id)[0]
    assert isinstance(app.engine.clock, FakeClock)
    app.engine.clock.t = gate.expires_at - 0.5
    _approve(app, run_id)
    assert app.store.get_task_run(gate.task_run_id).state is TaskRunState.APPROVED
