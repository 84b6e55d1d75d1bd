"""``show --follow``: watch a run that another process drives, with its DAG and recent logs."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from signoff.cli.progress import STATE_STYLE
from signoff.domain.ports import Store
from signoff.domain.records import RunRecord, TaskRunRecord
from signoff.domain.specs import FlowSpec
from signoff.domain.states import RunState, TaskRunState

__all__ = ["follow_run", "log_tail", "run_view", "task_layers"]

_POLL = 0.5


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
    table = Table(title=f"run {run.id} · {run.flow_name} · {run.state}", title_justify="left")
    table.add_column("step")
    table.add_column("task")
    table.add_column("state")
    table.add_column("attempt")
    table.add_column("note", overflow="fold", max_width=50)
    for depth, names in enumerate(task_layers(spec)):
        for name in names:
            for tr in (t for t in trs if t.task_name == name):
                style = STATE_STYLE.get(tr.state.value, "")
                table.add_row(
                    str(depth + 1),
                    tr.label,
                    f"[{style}]{tr.state}[/]",
                    str(tr.attempt),
                    tr.reason or "",
                )
    return Group(table, Text("\n".join(tail), style="dim"))


def log_tail(trs: list[TaskRunRecord], lines: int = 6) -> list[str]:
    out: list[str] = []
    for tr in trs:
        if tr.state is not TaskRunState.RUNNING:
            continue
        log = Path(tr.work_dir) / "stdout.log"
        if log.is_file():
            text = log.read_text(errors="replace").splitlines()[-lines:]
            out.extend(f"{tr.label} | {line}" for line in text)
    return out[-lines * 2 :]


def _settled(run: RunRecord) -> bool:
    return run.state.is_terminal or run.state is RunState.WAITING_FOR_APPROVAL


def follow_run(
    store: Store, run_id: str, console: Console, *, timeout: float | None = None
) -> RunRecord:
    """Redraw (terminal) or print changes (pipe) until the run ends or waits at a gate."""
    run = store.get_run(run_id)
    spec = store.get_flow(run.flow_hash)
    deadline = None if timeout is None else time.monotonic() + timeout
    if console.is_terminal:
        with Live(console=console, refresh_per_second=4) as live:
            while True:
                run = store.get_run(run.id)
                trs = store.list_task_runs(run.id)
                live.update(run_view(run, spec, trs, log_tail(trs)))
                if _settled(run) or (deadline and time.monotonic() > deadline):
                    return run
                time.sleep(_POLL)
    seen: dict[str, str] = {}
    last_run_state = ""
    while True:
        run = store.get_run(run.id)
        for tr in store.list_task_runs(run.id):
            if seen.get(tr.id) != tr.state.value:
                seen[tr.id] = tr.state.value
                note = f" ({tr.reason})" if tr.reason else ""
                console.print(f"{tr.label:<24} {tr.state}{note}", markup=False, highlight=False)
        if run.state.value != last_run_state:
            last_run_state = run.state.value
            console.print(f"run {run.id} {run.state}", markup=False, highlight=False)
        if _settled(run) or (deadline and time.monotonic() > deadline):
            return run
        time.sleep(_POLL)
