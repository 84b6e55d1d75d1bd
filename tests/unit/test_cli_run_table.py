"""The run table (``run`` on a terminal, ``show --follow``) and the remote outcome lines print
names, states and reasons as text: a reason holding ``[/data]`` or ``[bold]`` prints as it is."""

from __future__ import annotations

from rich.console import Console

from signoff.cli import views
from signoff.cli.run_table import run_view, task_layers
from signoff.domain.records import RunRecord, TaskRunRecord
from signoff.domain.specs import TaskKind
from signoff.domain.states import RunState, TaskRunState
from signoff.spec import parse_flow
from signoff.views.models import RunDetail

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


def _detail(state: str) -> RunDetail:
    gate = {
        "gate_id": "g1",
        "task": "sign [/off]",
        "state": "waiting_for_approval",
        "targets": ["alice [b]"],
        "quorum": "any",
        "model_version_id": None,
        "model_digest": None,
        "report": None,
        "report_html": None,
        "report_digest": None,
        "opened_at": 0.0,
        "expires_at": 1.0,
        "decisions": [],
    }
    return RunDetail.model_validate(
        {
            "run_id": "r1",
            "flow": "f",
            "state": state,
            "started_by": "alice",
            "created_at": 0.0,
            "ended_at": None,
            "reason": REASON,
            "flow_hash": "h",
            "params": {},
            "work_dir": "/w",
            "facts": {},
            "tasks": [],
            "gates": [gate],
        }
    )


def test_the_outcome_prints_the_reason_as_text() -> None:
    console = Console(record=True, width=300, color_system=None)
    views.print_outcome(console, _detail("failed"), "signoff", name_approver=False)
    shown = console.export_text()
    assert f"run r1 is failed ({REASON})" in shown
    console = Console(record=True, width=300, color_system=None)
    views.print_outcome(console, _detail("waiting_for_approval"), "signoff", name_approver=True)
    shown = console.export_text()
    assert "gate sign [/off] for alice [b];" in shown
    assert "approve r1 --as alice [b] --comment" in shown
