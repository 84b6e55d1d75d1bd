"""A run with two gates: deciding one moves its branch at once, while the other still waits.

The decision is recorded by one process (``decide_gate``, as the API and the links do) and
the run is driven by a worker's pass (``RunDriver.drive_ready``), as in the team deployment
(`signoff server --no-worker` plus workers). Before, the pass skipped every run with an open
gate, so the approved branch waited for the other gate's decision.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from signoff.bootstrap import App, Settings, build_app
from signoff.domain.states import RunState, TaskRunState
from signoff.engine.driving import RunDriver
from signoff.engine.engine import new_id
from signoff.gates.decide import decide_gate
from signoff.spec import load_flow

FLOW = """\
flow: two-gates
tasks:
  - title: train
    command: 'true'
  - title: legal
    objective: human_validation
    target: alice
    depends_on: train
  - title: product
    objective: human_validation
    target: bob
    depends_on: train
  - title: after legal
    command: echo legal > output/done.txt
    depends_on: legal
  - title: after product
    command: echo product > output/done.txt
    depends_on: product
"""


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    a = build_app(Settings(home=tmp_path / "home", database_url=database_url, slots=2))
    try:
        yield a
    finally:
        a.close()


def _states(app: App, run_id: str) -> dict[str, TaskRunState]:
    return {tr.task_name: tr.state for tr in app.store.list_task_runs(run_id)}


def _approve(app: App, run_id: str, task: str, who: str) -> None:
    by_task = {tr.task_name: tr for tr in app.store.list_task_runs(run_id)}
    [gate] = [g for g in app.store.gates_of_run(run_id) if g.task_run_id == by_task[task].id]
    decide_gate(
        app.store, app.engine.clock, gate, by_task[task],
        actor=who, approve=True, comment=None, channel="test", new_id=new_id,
    )  # fmt: skip


def test_deciding_one_of_two_gates_moves_its_branch(app: App, tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW)
    loaded = load_flow(flow)
    run = app.engine.start_run(loaded.spec, base_dir=loaded.base_dir, started_by="carol")
    assert app.engine.drive(run.id).state is RunState.WAITING_FOR_APPROVAL
    driver = RunDriver(app.engine, threads=1)
    try:
        assert driver.drive_ready() == []  # both gates open: nothing to do, nothing read
        _approve(app, run.id, "legal", "alice")
        assert driver.drive_ready() == [run.id]
        assert driver.wait_idle(timeout=60)
        states = _states(app, run.id)
        assert states["after legal"] is TaskRunState.SUCCEEDED
        assert states["product"] is TaskRunState.WAITING_FOR_APPROVAL
        assert states["after product"] is TaskRunState.PENDING
        assert app.store.get_run(run.id).state is RunState.WAITING_FOR_APPROVAL
        assert driver.drive_ready() == []  # its branch moved: waiting costs nothing again
        _approve(app, run.id, "product", "bob")
        assert driver.drive_ready() == [run.id]
        assert driver.wait_idle(timeout=60)
    finally:
        driver.close()
    assert app.store.get_run(run.id).state is RunState.SUCCEEDED
    assert _states(app, run.id)["after product"] is TaskRunState.SUCCEEDED
