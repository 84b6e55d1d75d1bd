"""A run with two gates: deciding one moves its branch at once, while the other still waits.

The decision is recorded by one process (``decide_gate``, as the API and the links do) and
the run is driven by a worker's pass (``RunDriver.drive_ready``), as in the team deployment
(`signoff server --no-worker` plus workers). Before, the pass skipped every run with an open
gate, so the approved branch waited for the other gate's decision.
"""

from __future__ import annotations

import dataclasses
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


def test_a_pass_finds_a_queued_run_behind_500_newer_ones(app: App, tmp_path: Path) -> None:
    """The pass asks for movable runs; it used to read the 500 newest and miss older ones."""
    flow = tmp_path / "one.yaml"
    flow.write_text("flow: one\ntasks:\n  - title: a\n    command: 'true'\n")
    loaded = load_flow(flow)
    oldest = app.engine.start_run(loaded.spec, base_dir=loaded.base_dir, started_by="carol")
    base = app.store.get_run(oldest.id)
    newer = [
        dataclasses.replace(base, id=f"done{i:08d}", state=RunState.SUCCEEDED,
                            created_at=base.created_at + 1 + i)
        for i in range(500)
    ]  # fmt: skip
    for run in newer:
        app.store.create_run(run, [])
    assert oldest.id not in {r.id for r in app.store.list_runs(limit=500)}
    driver = RunDriver(app.engine, threads=1)
    try:
        assert driver.drive_ready() == [oldest.id]
        assert driver.wait_idle(timeout=60)
    finally:
        driver.close()
    assert app.store.get_run(oldest.id).state is RunState.SUCCEEDED
