"""Flows: every flow that has run, its schedule, its last runs; editors start a new run.

A new run from the web UI runs the flow's latest pinned version from the code snapshot of
its latest run, with that run's params (what ``signoff reproduce`` also starts from).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from signoff.domain.records import RunRecord
from signoff.domain.specs import FlowSpec
from signoff.errors import NotFoundError, SignoffError
from signoff.server.deps import AppDep, EditorDep, FormDep, SignedInDep, WorkerDep
from signoff.server.ui.dag import STATE_COLORS
from signoff.server.ui.layout import PageError, PageRoute, show

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

_RECENT = 5
_NAME = re.compile(r"^[\w.@:+-]{1,200}$")


@dataclass(frozen=True, slots=True)
class FlowView:
    """A flow as the list shows it."""

    name: str
    spec: FlowSpec | None
    runs: list[RunRecord]
    total: int


@router.get("/flows")
def flows_page(app: AppDep, who: SignedInDep) -> HTMLResponse:
    """Flows by name: schedule, tasks, and their last runs."""
    by_name: dict[str, list[RunRecord]] = {}
    for run in app.store.list_runs(limit=2000):
        by_name.setdefault(run.flow_name, []).append(run)
    views = []
    for name in sorted(by_name):
        runs = by_name[name]
        try:
            spec: FlowSpec | None = app.store.get_flow(runs[0].flow_hash)
        except NotFoundError:
            spec = None
        views.append(FlowView(name=name, spec=spec, runs=runs[:_RECENT], total=len(runs)))
    return show(
        "flows.html",
        who,
        flows=views,
        colors=STATE_COLORS,
        now=app.engine.clock.now(),
    )


@router.post("/flows/{name}/runs")
def start_flow(
    name: str, app: AppDep, who: FormDep, _editor: EditorDep, worker: WorkerDep
) -> Response:
    """Start a new run of a flow (editors and admins); the server's worker drives it."""
    if not _NAME.match(name):
        raise PageError(404, "Not found", f"no flow {name[:200]!r}")
    latest = next((r for r in app.store.list_runs(limit=2000) if r.flow_name == name), None)
    if latest is None:
        raise PageError(404, "Not found", f"no flow {name!r} has run here yet")
    code = Path(latest.work_dir) / "code"
    if not code.is_dir():
        raise PageError(409, "Not started", f"run {latest.id} has no code snapshot to start from")
    spec = app.store.get_flow(latest.flow_hash)
    try:
        run = app.engine.start_run(spec, base_dir=code, params=latest.params, started_by=who.name)
    except SignoffError as exc:
        raise PageError(400, "Not started", str(exc)) from exc
    if worker is not None:
        worker.schedule(run.id)
    return RedirectResponse(f"/runs/{run.id}", 303)
