"""Showing a run move: a live Rich table on a terminal, plain lines otherwise."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console, RenderableType
from rich.live import Live
from rich.table import Table

from signoff.bootstrap import App
from signoff.cli.run_table import log_tail, run_view
from signoff.domain.records import GateRecord, RunRecord, TaskRunRecord
from signoff.domain.specs import FlowSpec

__all__ = ["ProgressObserver", "drive_with_progress"]


class ProgressObserver:
    """An EngineObserver that draws task states as they change."""

    def __init__(self, console: Console, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.tasks: dict[str, TaskRunRecord] = {}
        self.run: RunRecord | None = None
        self.gates: list[GateRecord] = []
        self.spec: FlowSpec | None = None
        self._live: Live | None = None
        self._t0 = time.monotonic()

    def seed(self, run: RunRecord, task_runs: list[TaskRunRecord], spec: FlowSpec) -> None:
        self.run = run
        self.spec = spec
        for tr in task_runs:
            self.tasks[tr.id] = tr

    @contextmanager
    def showing(self) -> Iterator[None]:
        if self.quiet or not self.console.is_terminal:
            yield
            return
        with Live(self._table(), console=self.console, refresh_per_second=4) as live:
            self._live = live
            try:
                yield
            finally:
                live.update(self._table())
                self._live = None

    def _table(self) -> RenderableType:
        if self.run is None or self.spec is None:
            return Table()
        trs = list(self.tasks.values())
        return run_view(self.run, self.spec, trs, log_tail(trs))

    def _emit(self, line: str) -> None:
        if self.quiet:
            return
        if self._live is not None:
            self._live.update(self._table())
        else:
            elapsed = time.monotonic() - self._t0
            self.console.print(f"{elapsed:7.1f}s  {line}", markup=False, highlight=False)

    def after_task_transition(self, task_run: TaskRunRecord) -> None:
        self.tasks[task_run.id] = task_run
        note = f" ({task_run.reason})" if task_run.reason else ""
        self._emit(f"{task_run.label:<24} {task_run.state}{note}")

    def after_run_transition(self, run: RunRecord) -> None:
        self.run = run
        self._emit(f"run {run.id} {run.state}" + (f" ({run.reason})" if run.reason else ""))

    def on_gate_opened(self, gate: GateRecord) -> None:
        self.gates.append(gate)


def drive_with_progress(app: App, run_id: str, console: Console, *, quiet: bool) -> None:
    """Drive a run in this process, drawing its task states on ``console`` as they change."""
    observer = ProgressObserver(console, quiet=quiet)
    run = app.store.get_run(run_id)
    observer.seed(run, app.store.list_task_runs(run_id), app.store.get_flow(run.flow_hash))
    app.engine.observer = observer
    with observer.showing():
        app.engine.drive(run_id)
