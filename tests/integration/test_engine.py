"""The engine end to end on real stores: grid, select, gate, decisions, failures, waiting."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from signoff.bootstrap import App, Settings, build_app
from signoff.domain.states import RunState, TaskRunState
from signoff.engine.engine import new_id
from signoff.errors import GateClosedError, NotATargetError, SignoffError
from signoff.gates.decide import decide
from signoff.spec import load_flow

TINY = Path(__file__).parents[1] / "resources" / "flows" / "tiny" / "flow.yaml"


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    a = build_app(Settings(home=tmp_path / "home", database_url=database_url, slots=2))
    try:
        yield a
    finally:
        a.close()


def _start(app: App, **params: object) -> str:
    loaded = load_flow(TINY)
    run = app.engine.start_run(
        loaded.spec,
        base_dir=loaded.base_dir,
        params=params,
        started_by="carol",  # type: ignore[arg-type]
    )
    return run.id


def _decide(app: App, run_id: str, user: str, approve: bool, comment: str | None = None) -> None:
    decide(
        app.store,
        app.engine.clock,
        run_id,
        actor=user,
        approve=approve,
        comment=comment,
        channel="test",
        new_id=new_id,
    )


def _states(app: App, run_id: str) -> dict[str, str]:
    return {tr.label: tr.state.value for tr in app.store.list_task_runs(run_id)}


def _children() -> list[int]:
    me = os.getpid()
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                kids.append(int(entry.name))
    return kids


def test_run_waits_at_the_gate_holding_nothing(app: App) -> None:
    run = app.engine.drive(_start(app))
    assert run.state is RunState.WAITING_FOR_APPROVAL
    assert _states(app, run.id) == {
        "prepare": "succeeded",
        "train[0]": "succeeded",
        "train[1]": "succeeded",
        "train[2]": "succeeded",
        "pick": "succeeded",
        "approve": "waiting_for_approval",
        "after": "pending",
    }
    # Waiting costs nothing: no child process of ours is left while the run waits.
    assert _children() == []
    pick = next(tr for tr in app.store.list_task_runs(run.id) if tr.task_name == "pick")
    assert pick.result["winner_label"] == "train[1]"
    assert [row["label"] for row in pick.result["leaderboard"]] == [
        "train[1]",
        "train[2]",
        "train[0]",
    ]
    gate = app.store.gates_of_run(run.id)[0]
    assert gate.targets == ("username", "username2")
    assert gate.report_digest is not None
    assert Path(gate.report_path or "").with_suffix(".html").is_file()


def test_outputs_are_tracked(app: App) -> None:
    run = app.engine.drive(_start(app))
    trs = {tr.label: tr for tr in app.store.list_task_runs(run.id)}
    metrics = {
        (m.key, m.value) for m in app.store.list_metrics([trs["train[1]"].id, trs["prepare"].id])
    }
    assert ("score", 0.7) in metrics
    assert ("seen_by_stdout", 7.0) in metrics  # cnvrg stdout convention
    assert ("rows", 3.0) in metrics
    assert app.store.logged_params(trs["train[1]"].id) == {"quality": 7.0}
    assert trs["train[1]"].params == {"fail": "no", "quality": 7}
    data = Path(trs["train[0]"].work_dir) / "inputs" / "prepare" / "data.txt"
    assert data.read_text() == "x"


def test_approval_resumes_the_run_to_success(app: App) -> None:
    run_id = app.engine.drive(_start(app)).id
    _decide(app, run_id, "username2", True, "fine")
    run = app.engine.drive(run_id)
    assert run.state is RunState.SUCCEEDED
    assert _states(app, run_id)["after"] == "succeeded"
    with pytest.raises(GateClosedError):
        _decide(app, run_id, "username", True)


def test_rejection_ends_the_run_and_skips_downstream(app: App) -> None:
    run_id = app.engine.drive(_start(app)).id
    with pytest.raises(SignoffError, match="needs a comment"):
        _decide(app, run_id, "username", False)
    _decide(app, run_id, "username", False, "metrics look off")
    run = app.engine.drive(run_id)
    assert run.state is RunState.REJECTED
    assert _states(app, run_id)["after"] == "skipped"
    assert run.reason is not None
    assert "metrics look off" in run.reason


def test_non_target_and_starter_are_refused_and_recorded(app: App) -> None:
    run_id = app.engine.drive(_start(app)).id
    with pytest.raises(NotATargetError, match="not an approver"):
        _decide(app, run_id, "mallory", True)
    gate = app.store.gates_of_run(run_id)[0]
    refusals = [d for d in app.store.list_decisions(gate.id) if d.decision == "refused"]
    assert [r.actor for r in refusals] == ["mallory"]
    assert app.store.get_task_run(gate.task_run_id).state is TaskRunState.WAITING_FOR_APPROVAL


def test_failed_task_fails_the_run_and_skips_the_rest(app: App) -> None:
    run = app.engine.drive(_start(app, fail="yes"))
    assert run.state is RunState.FAILED
    states = _states(app, run.id)
    assert states["train[0]"] == "failed"
    assert states["pick"] == "skipped"
    assert states["approve"] == "skipped"
    failed = next(tr for tr in app.store.list_task_runs(run.id) if tr.label == "train[0]")
    assert failed.reason is not None
    assert "exit code 3" in failed.reason
    assert "boom" in failed.reason


def test_unknown_param_is_refused_before_a_run_exists(app: App) -> None:
    with pytest.raises(SignoffError, match="unknown param"):
        _start(app, nope=1)
    assert app.store.list_runs() == []


def test_a_run_moved_only_through_recorded_transitions(app: App) -> None:
    run_id = app.engine.drive(_start(app)).id
    _decide(app, run_id, "username", True)
    app.engine.drive(run_id)
    history = app.store.list_transitions(run_id)
    run_path = [h.to_state for h in history if h.entity == "run"]
    assert run_path == ["queued", "running", "waiting_for_approval", "running", "succeeded"]
    for tr in app.store.list_task_runs(run_id):
        mine = [h for h in history if h.entity_id == tr.id]
        assert mine[-1].to_state == tr.state.value
        assert tr.version == len(mine)


def test_no_eligible_candidate_fails_the_run_before_the_gate(app: App) -> None:
    run = app.engine.drive(_start(app, quality=0.5))  # score 0.05 misses the 0.1 target
    assert run.state is RunState.FAILED
    states = _states(app, run.id)
    assert states["pick"] == "failed"
    assert states["approve"] == "skipped"
    pick = next(tr for tr in app.store.list_task_runs(run.id) if tr.task_name == "pick")
    assert pick.reason is not None
    assert "no eligible candidate" in pick.reason
    assert "misses target >= 0.1" in pick.reason
    assert app.store.gates_of_run(run.id) == []
