"""The run table (``run`` on a terminal, ``show --follow``) and the remote outcome lines print
names, states and reasons as text: a reason holding ``[/data]`` or ``[bold]`` prints as it is."""

from __future__ import annotations

from rich.console import Console

from signoff.cli import remote
from signoff.cli.run_table import run_view, task_layers
from signoff.domain.records import RunRecord, TaskRunRecord
from signoff.domain.specs import TaskKind
from signoff.domain.states import RunState, TaskRunState
from signoff.spec import parse_flow

FLOW = """flow: tiny
tasks:
  - title: prep
    command: "true"
  - title: train
    command: "true"
    depends_on: prep
  - title: report
    command: "true"
    depends_on: prep
  - title: ship
    command: "true"
    depends_on: [train, report]
"""
# A task's last log line often becomes its reason; Rich would read these as markup tags.
REASON = "exit 1: [/data] missing [bold]x[/bold] [red"  # fits the note column


def _run(reason: str | None = None, state: RunState = RunState.RUNNING) -> RunRecord:
    return RunRecord(
        id="r1",
        flow_name="tiny [/x]",
        flow_hash="h",
        state=state,
        version=1,
        params={},
        started_by="carol",
        work_dir="/nonexistent",
        created_at=0.0,
        updated_at=0.0,
        reason=reason,
    )


def _task_run(name: str, state: TaskRunState, reason: str | None = None) -> TaskRunRecord:
    return TaskRunRecord(
        id=f"t-{name}",
        run_id="r1",
        task_name=name,
        index=-1,
        kind=TaskKind.EXEC,
        params={},
        state=state,
        version=1,
        attempt=1,
        work_dir="/nonexistent",
        created_at=0.0,
        reason=reason,
    )


def _text(renderable: object) -> str:
    console = Console(record=True, width=300, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_tasks_are_laid_out_by_depth() -> None:
    spec = parse_flow(FLOW).spec
    assert task_layers(spec) == [["prep"], ["train", "report"], ["ship"]]


def test_the_run_table_prints_reasons_and_names_as_text() -> None:
    spec = parse_flow(FLOW).spec
    trs = [
        _task_run("prep", TaskRunState.SUCCEEDED),
        _task_run("train", TaskRunState.FAILED, REASON),
        _task_run("report", TaskRunState.RUNNING),
    ]
    shown = _text(run_view(_run(), spec, trs, ["train | [/tmp] [bold]"]))
    assert REASON in shown
    assert "tiny [/x]" in shown
    assert "train | [/tmp] [bold]" in shown
    lines = [line for line in shown.splitlines() if "│" in line]
    assert [line.split("│")[2].strip() for line in lines] == ["prep", "train", "report"]
    assert "failed" in shown
    assert "running" in shown


def test_the_remote_outcome_prints_the_reason_as_text() -> None:
    detail = {
        "run_id": "r1",
        "state": "failed",
        "reason": REASON,
        "gates": [
            {
                "state": "waiting_for_approval",
                "task": "sign [/off]",
                "targets": ["alice [b]"],
                "report_html": None,
            }
        ],
        "tasks": [],
    }
    console = Console(record=True, width=300, color_system=None)
    remote.print_outcome(console, detail, "signoff")
    shown = console.export_text()
    assert f"run r1 is failed ({REASON})" in shown
    detail["state"] = "waiting_for_approval"
    console = Console(record=True, width=300, color_system=None)
    remote.print_outcome(console, detail, "signoff")
    assert "gate sign [/off] for alice [b];" in console.export_text()
