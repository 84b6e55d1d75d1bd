"""``show --follow``: watch a run that another process drives, with its DAG and recent logs."""

from __future__ import annotations

import time

from rich.console import Console
from rich.live import Live

from signoff.cli.run_table import log_tail, run_view
from signoff.domain.ports import Store
from signoff.domain.records import RunRecord
from signoff.domain.states import RunState

__all__ = ["follow_run"]

_POLL = 0.5


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
