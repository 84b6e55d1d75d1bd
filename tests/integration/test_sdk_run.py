"""Flows in Python run in-process on real stores: grid, select, gate, failures, ``__main__``."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from signoff.bootstrap import App, Settings, build_app
from signoff.domain.states import RunState
from signoff.engine.engine import new_id
from signoff.gates.decide import decide

SDK = Path(__file__).resolve().parents[1] / "resources" / "sdk"


@pytest.fixture(scope="module")
def sdk_tasks() -> Iterator[ModuleType]:
    """The resource module of Python tasks, imported by name like the executor does."""
    sys.path.insert(0, str(SDK))
    try:
        yield importlib.import_module("sdk_tasks")
    finally:
        sys.path.remove(str(SDK))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def app(home: Path, database_url: str) -> Iterator[App]:
    """The same store ``flow.run`` wrote to, opened again as another caller would."""
    a = build_app(Settings(home=home, database_url=database_url))
    try:
        yield a
    finally:
        a.close()


def test_a_python_flow_waits_at_the_gate_then_succeeds(
    sdk_tasks: ModuleType, home: Path, database_url: str, app: App
) -> None:
    flow = sdk_tasks.review_flow()
    run = flow.run(home=home, database_url=database_url, started_by="carol")
    assert run.state is RunState.WAITING_FOR_APPROVAL, run.reason
    assert run.started_by == "carol"
    assert run.flow_hash == flow.to_spec().spec_hash
    trs = {tr.label: tr for tr in app.store.list_task_runs(run.id)}
    assert {label: tr.state.value for label, tr in trs.items()} == {
        "prepare": "succeeded",
        "train[0]": "succeeded",
        "train[1]": "succeeded",
        "train[2]": "succeeded",
        "pick": "succeeded",
        "sign-off": "waiting_for_approval",
        "publish": "pending",
    }
    # the grid's params reached the functions; their metrics are in the store
    assert [trs[f"train[{i}]"].params for i in range(3)] == [
        {"seed": 7, "quality": q} for q in (2, 7, 5)
    ]
    metrics = {
        (trs_label, m.key, m.value)
        for trs_label, tr in trs.items()
        for m in app.store.list_metrics([tr.id])
    }
    assert {("prepare", "rows", 3.0), ("train[1]", "score", 0.7)} <= metrics
    assert ("train[2]", "seed_seen", 7.0) in metrics
    assert app.store.logged_params(trs["train[0]"].id) == {"data": "seed=7"}  # read its input
    assert trs["pick"].result["winner_label"] == "train[1]"

    decide(
        app.store,
        app.engine.clock,
        run.id,
        actor="bob",
        approve=True,
        comment="looks right",
        channel="test",
        new_id=new_id,
    )
    final = app.engine.drive(run.id)
    assert final.state is RunState.SUCCEEDED, final.reason
    publish = next(tr for tr in app.store.list_task_runs(run.id) if tr.task_name == "publish")
    assert app.store.logged_tags(publish.id) == {"published": "yes"}


def test_params_override_a_grid(
    sdk_tasks: ModuleType, home: Path, database_url: str, app: App
) -> None:
    run = sdk_tasks.review_flow().run({"quality": 9}, home=home, database_url=database_url)
    assert run.state is RunState.WAITING_FOR_APPROVAL, run.reason
    labels = [tr.label for tr in app.store.list_task_runs(run.id)]
    assert labels == ["prepare", "train", "pick", "sign-off", "publish"]


def test_an_exception_in_a_task_fails_the_run_with_its_text(
    sdk_tasks: ModuleType, home: Path, database_url: str, app: App
) -> None:
    run = sdk_tasks.failing_flow().run(home=home, database_url=database_url)
    assert run.state is RunState.FAILED
    assert run.reason is not None
    assert "explode failed: RuntimeError: the warehouse is closed" in run.reason
    states = {tr.label: tr.state.value for tr in app.store.list_task_runs(run.id)}
    assert states == {"prepare": "succeeded", "explode": "failed", "publish": "skipped"}
    explode = next(tr for tr in app.store.list_task_runs(run.id) if tr.task_name == "explode")
    log = (Path(explode.work_dir) / "stdout.log").read_text()
    assert "Traceback" in log
    assert "RuntimeError: the warehouse is closed" in log


SCRIPT = """
    import signoff
    from signoff import Flow, task
    from signoff.errors import SpecError


    @task(params={"n": [1, 2]})
    def count(n: int) -> None:
        signoff.log_metric("n", n)


    flow = Flow("from-a-script")
    flow.add(count)

    if __name__ == "__main__":
        try:
            flow.to_yaml()
        except SpecError as exc:
            print("to_yaml:", exc.issues[0].message.split(",")[0])
        run = flow.run(home=HOME, started_by="dora")
        print("run:", run.state.value, run.reason)
"""


def test_functions_of_a_script_run_in_process_but_do_not_export(tmp_path: Path) -> None:
    script = tmp_path / "flows" / "script.py"
    script.parent.mkdir()
    script.write_text(textwrap.dedent(SCRIPT).replace("HOME", repr(str(tmp_path / "home"))))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "to_yaml: task function 'count' is defined in __main__ (the script being run)",
        "run: succeeded every task succeeded",
    ]
