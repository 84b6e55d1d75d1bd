"""Runs: the list (filtered by flow and state) and a run's page.

The run page draws the DAG as inline SVG (colored by state, refreshed while the run is
active) and shows every task run's params, metrics, the tail of its log (escaped like
every other value) and its artifacts. Editors may cancel a run that has not ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from signoff.bootstrap import App
from signoff.bootstrap.lookup import resolve_run
from signoff.domain.records import (
    ArtifactRecord,
    GateRecord,
    MetricRecord,
    RunRecord,
    TaskRunRecord,
)
from signoff.domain.states import RunState
from signoff.errors import ConflictError, NotFoundError
from signoff.server.deps import AppDep, EditorDep, FormDep, SignedInDep
from signoff.server.ui.dag import STATE_COLORS, anchor_of, layout_dag
from signoff.server.ui.layout import PageError, PageRoute, is_id, show

__all__ = ["load_run", "router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

_LOG_BYTES = 16_384
_LOG_LINES = 120
_ACTIVE = (RunState.QUEUED, RunState.RUNNING)


def load_run(app: App, run_id: str) -> RunRecord:
    """The run with this id (or a unique prefix of it), or a 404 page."""
    if not is_id(run_id):
        raise PageError(404, "Not found", f"no run {run_id[:64]!r}")
    try:
        return resolve_run(app.store, run_id)
    except NotFoundError as exc:
        raise PageError(404, "Not found", str(exc)) from exc


@router.get("/runs")
def runs_page(
    app: AppDep,
    who: SignedInDep,
    flow: str = Query("", max_length=200),
    state: str = Query("", max_length=40),
    limit: int = Query(100, ge=1, le=1000),
) -> HTMLResponse:
    """Runs, newest first, optionally of one flow and in one state."""
    states = [s.value for s in RunState]
    if state and state not in states:
        raise PageError(400, "Bad filter", f"state must be one of {', '.join(states)}")
    found = app.store.list_runs(limit=max(limit, 500))
    flows = sorted({r.flow_name for r in found})
    chosen = [
        r
        for r in found
        if (not flow or r.flow_name == flow) and (not state or r.state.value == state)
    ][:limit]
    return show(
        "runs.html",
        who,
        refresh=10 if any(r.state in _ACTIVE for r in chosen) else None,
        runs=chosen,
        flows=flows,
        states=states,
        flow=flow,
        state=state,
        colors=STATE_COLORS,
        now=app.engine.clock.now(),
    )


@dataclass(frozen=True, slots=True)
class TaskRunView:
    """One task run as its section on the run page shows it."""

    tr: TaskRunRecord
    logged: dict[str, Any]
    metrics: list[tuple[str, float, int]]  # key, last value, points
    artifacts: list[ArtifactRecord]
    log_tail: str | None
    log_cut: bool
    gate: GateRecord | None
    anchor: str | None  # the first task run of a task holds the task's anchor


def _metrics(records: list[MetricRecord]) -> list[tuple[str, float, int]]:
    last: dict[str, MetricRecord] = {}
    points: dict[str, int] = {}
    for m in records:
        points[m.key] = points.get(m.key, 0) + 1
        if m.key not in last or (m.step or 0, m.at) >= (last[m.key].step or 0, last[m.key].at):
            last[m.key] = m
    return [(k, last[k].value, points[k]) for k in sorted(last)]


def _tail(work_dir: str) -> tuple[str | None, bool]:
    path = Path(work_dir) / "stdout.log"
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - _LOG_BYTES))
            data = f.read()
    except OSError:
        return None, False
    lines = data.decode(errors="replace").splitlines()
    cut = size > _LOG_BYTES or len(lines) > _LOG_LINES
    return "\n".join(lines[-_LOG_LINES:]), cut


@router.get("/runs/{run_id}")
def run_page(run_id: str, app: AppDep, who: SignedInDep) -> HTMLResponse:
    """One run: the DAG, the task runs with params, metrics, logs and artifacts."""
    store = app.store
    run = load_run(app, run_id)
    spec = store.get_flow(run.flow_hash)
    trs = store.list_task_runs(run.id)
    metrics = store.list_metrics([tr.id for tr in trs])
    gates = {g.task_run_id: g for g in store.gates_of_run(run.id)}
    views = []
    seen: set[str] = set()
    for tr in trs:
        tail, cut = _tail(tr.work_dir)
        anchor = None if tr.task_name in seen else anchor_of(tr.task_name)
        seen.add(tr.task_name)
        views.append(
            TaskRunView(
                tr=tr,
                logged=store.logged_params(tr.id),
                metrics=_metrics([m for m in metrics if m.task_run_id == tr.id]),
                artifacts=store.list_artifacts(tr.id),
                log_tail=tail,
                log_cut=cut,
                gate=gates.get(tr.id),
                anchor=anchor,
            )
        )
    now = app.engine.clock.now()
    return show(
        "run.html",
        who,
        refresh=3 if run.state in _ACTIVE else None,
        run=run,
        spec=spec,
        dag=layout_dag(spec, trs),
        tasks=views,
        colors=STATE_COLORS,
        transitions=store.list_transitions(run.id),
        may_cancel=who.may_edit and not run.state.is_terminal,
        now=now,
    )


@router.post("/runs/{run_id}/cancel")
def cancel_run(run_id: str, app: AppDep, who: FormDep, _editor: EditorDep) -> Response:
    """Cancel a run that has not ended (editors and admins)."""
    run = load_run(app, run_id)
    try:
        app.engine.cancel(run.id, actor=who.name, reason="cancelled in the web UI")
    except ConflictError as exc:
        raise PageError(409, "Not cancelled", str(exc)) from exc
    return RedirectResponse(f"/runs/{run.id}", 303)
