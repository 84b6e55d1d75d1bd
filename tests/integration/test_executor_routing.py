"""Each task run goes to the executor its task or flow names; `show --json` says where it ran.

RoutingExecutor over real LocalExecutors (two of them, under two names) running real shell
commands; then whole runs through the CLI, where a flow that says `executor: ray` and pins
its only command task to `local` runs without Ray ever being started.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from signoff.cli.commands import build_cli
from signoff.domain.ports import Executor, TaskExecution, TaskOutcome
from signoff.domain.specs import Resources
from signoff.errors import SpecError
from signoff.executors.local import LocalExecutor
from signoff.executors.routing import RoutingExecutor
from signoff.spec import load_flow


def _execution(tmp_path: Path, name: str, command: str, executor: str | None) -> TaskExecution:
    work = tmp_path / name
    work.mkdir()
    return TaskExecution(
        task_run_id=name, command=command, work_dir=work, env={}, executor=executor
    )


def _wait(ex: RoutingExecutor, n: int, limit: float = 30) -> dict[str, TaskOutcome]:
    found: dict[str, TaskOutcome] = {}
    deadline = time.monotonic() + limit
    while len(found) < n and time.monotonic() < deadline:
        for outcome in ex.wait_any(timeout=1.0):
            found[outcome.task_run_id] = outcome
    return found


def test_task_runs_go_to_the_executor_they_name(tmp_path: Path) -> None:
    built: list[str] = []

    def factory(name: str) -> Callable[[], Executor]:
        def make() -> Executor:
            built.append(name)
            return LocalExecutor(slots=2)

        return make

    ex = RoutingExecutor("local", {"local": factory("local"), "spare": factory("spare")})
    try:
        assert built == []  # nothing is built before a task run names it
        ex.submit(_execution(tmp_path, "a", "exit 3", None))
        assert built == ["local"]
        ex.submit(_execution(tmp_path, "b", "true", "spare"))
        ex.submit(_execution(tmp_path, "c", "sleep 0.3", "local"))
        assert built == ["local", "spare"]
        assert ex.in_flight() == 3
        outcomes = _wait(ex, 3)
    finally:
        ex.shutdown()
    assert {k: (o.exit_code, o.executor) for k, o in outcomes.items()} == {
        "a": (3, "local"),
        "b": (0, "spare"),
        "c": (0, "local"),
    }
    assert outcomes["a"].node == platform.node()  # a local process ran on this machine
    assert ex.in_flight() == 0


def test_an_unknown_executor_is_refused_with_the_known_ones() -> None:
    ex = RoutingExecutor("local", {"local": lambda: LocalExecutor(slots=1)})
    try:
        reason = ex.refusal(Resources(executor="kubernetes"))
        assert reason == "executor 'kubernetes' is not available here (known: local)"
        assert not ex.fits(Resources(executor="kubernetes"))
        assert ex.refusal(Resources()) is None
    finally:
        ex.shutdown()


FLOW = """\
flow: pinned
executor: ray
tasks:
  - title: small step
    executor: local
    command: echo hello > output/greeting.txt
  - title: approve
    objective: human_validation
    target: alice
    depends_on: small step
"""


@pytest.fixture
def cli_home(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("SIGNOFF_USER", "SIGNOFF_EXECUTOR", "SIGNOFF_RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SIGNOFF_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SIGNOFF_DATABASE_URL", database_url)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_pinned_task_runs_locally_and_show_says_where(cli_home: Path) -> None:
    flow = cli_home / "pinned.yaml"
    flow.write_text(FLOW)
    spec = load_flow(flow).spec
    assert spec.task("small step").resources.executor == "local"  # the task's word wins
    runner = CliRunner()
    started = runner.invoke(build_cli(), ["run", str(flow)])
    assert started.exit_code == 0, started.output
    listed = json.loads(runner.invoke(build_cli(), ["runs", "--json"]).output)
    [run] = listed if isinstance(listed, list) else listed["runs"]
    shown = json.loads(runner.invoke(build_cli(), ["show", run["run_id"], "--json"]).output)
    assert shown["state"] == "waiting_for_approval"
    by_task = {tr["task"]: tr for tr in shown["tasks"]}
    assert by_task["small step"]["state"] == "succeeded"
    assert by_task["small step"]["executor"] == "local"
    assert by_task["small step"]["node"] == platform.node()
    assert by_task["approve"]["executor"] is None  # a gate runs on no executor


def test_flow_and_task_executor_keys_load_and_bad_ones_are_placed(tmp_path: Path) -> None:
    flow = tmp_path / "f.yaml"
    flow.write_text(
        "flow: f\nexecutor: ray\ntasks:\n"
        "  - title: a\n    command: 'true'\n"
        "    resources: {gpu: 1, custom: {gpu_pool: 1}}\n"
        "  - title: b\n    command: 'true'\n    executor: local\n    depends_on: a\n"
    )
    spec = load_flow(flow).spec
    a, b = spec.task("a").resources, spec.task("b").resources
    assert (a.executor, a.gpu, a.custom) == ("ray", 1.0, (("gpu_pool", 1.0),))
    assert (b.executor, b.custom) == ("local", ())
    flow.write_text("flow: f\ntasks:\n  - title: a\n    command: 'true'\n    executor: spark\n")
    with pytest.raises(SpecError) as caught:
        load_flow(flow)
    [issue] = caught.value.issues
    assert (issue.line, issue.column, issue.field) == (5, 15, "tasks[0].executor")
    assert "'local' or 'ray'" in issue.message
