"""The live table of a run (its task runs by DAG step, recent log lines) and how states look.

Shared by ``run``/``resume`` (:mod:`signoff.cli.progress`, drawn from engine events) and
``show --follow`` (:mod:`signoff.cli.follow`, drawn from polling the store), so both show a run
the same way; neither of those modules imports the other.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Group
from rich.table import Table
from rich.text import Text

from signoff.domain.records import RunRecord, TaskRunRecord
from signoff.domain.specs import FlowSpec
from signoff.domain.states import TaskRunState

__all__ = ["STATE_STYLE", "log_tail", "run_view", "task_layers"]

STATE_STYLE = {
    "pending": "dim",
    "queued": "cyan",
    "running": "bold blue",
    "succeeded": "green",
    "approved": "green",
    "failed": "bold red",
    "rejected": "red",
    "expired": "red",
    "cancelled": "yellow",
    "skipped": "dim",
    "waiting_for_approval": "bold magenta",
}


def task_layers(spec: FlowSpec) -> list[list[str]]:
    """Tasks grouped by depth in the DAG (a task sits one layer below its deepest upstream)."""
    depth: dict[str, int] = {}
    remaining = list(spec.tasks)
    while remaining:
        progressed = False
        for task in list(remaining):
            if all(up in depth for up in task.depends_on):
                depth[task.name] = 1 + max((depth[u] for u in task.depends_on), default=-1)
                remaining.remove(task)
                progressed = True
        if not progressed:  # cannot happen for a validated flow; show the rest flat
            for task in remaining:
                depth[task.name] = 0
            break
    layers: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for task in spec.tasks:
        layers[depth[task.name]].append(task.name)
    return layers


def run_view(run: RunRecord, spec: FlowSpec, trs: list[TaskRunRecord], tail: list[str]) -> Group:
    """A run's task runs in DAG order with state, attempt and reason, then the log tail.

    Every value is a ``Text``, never markup: a reason is often a task's last log line, and
    ``[/data]`` in it would otherwise stop the live view with a markup error.
    """
    title = Text(f"run {run.id} · {run.flow_name} · {run.state}")
    table = Table(title=title, title_justify="left")
    table.add_column("step")
    table.add_column("task")
    table.add_column("state")
    table.add_column("attempt")
    table.add_column("note", overflow="fold", max_width=50)
    for depth, names in enumerate(task_layers(spec)):
        for name in names:
            for tr in (t for t in trs if t.task_name == name):
                table.add_row(
                    Text(str(depth + 1)),
                    Text(tr.label),
                    Text(tr.state.value, style=STATE_STYLE.get(tr.state.value, "")),
                    Text(str(tr.attempt)),
                    Text(tr.reason or ""),
                )
    return Group(table, Text("\n".join(tail), style="dim"))


def log_tail(trs: list[TaskRunRecord], lines: int = 6) -> list[str]:
    """The last ``lines`` lines of each running task run's output, at most twice that in all."""
    out: list[str] = []
    for tr in trs:
        if tr.state is not TaskRunState.RUNNING:
            continue
        log = Path(tr.work_dir) / "stdout.log"
        if log.is_file():
            text = log.read_text(errors="replace").splitlines()[-lines:]
            out.extend(f"{tr.label} | {line}" for line in text)
    return out[-lines * 2 :]
