"""Runs and their task runs: start, list, show, cancel, decide, task runs, logs.

A run started here is driven by the server's worker (``worker.schedule``); the request
returns at once with the run queued. ``GET /runs/{id}`` answers what ``signoff show --json``
prints. Run ids may be given as unique prefixes, as on the command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Body, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse

from signoff.bootstrap import App
from signoff.domain.records import RunRecord, TaskRunRecord
from signoff.domain.specs import FlowSpec
from signoff.domain.states import RunState
from signoff.engine.engine import new_id
from signoff.errors import NotFoundError, SignoffError, SpecError
from signoff.gates.decide import decide_gate, open_gate_of_run
from signoff.server.api_access import (
    BAD_REQUEST,
    CONFLICT,
    ERRORS,
    NOT_FOUND,
    TEXT_ERRORS,
    TOO_LARGE,
    BoundedRoute,
    DecideDep,
    ReadDep,
    RunScopeDep,
    checked_name,
    run_of,
)
from signoff.server.api_flows import SCAN_WINDOW, latest_run_of, spec_problem
from signoff.server.api_gates import decision_out
from signoff.server.deps import AppDep, WorkerDep
from signoff.server.schemas import DecisionIn, RunCancel, RunCreate, SpecProblem
from signoff.spec import parse_flow
from signoff.views import build
from signoff.views.models import DecisionOut, RunDetail, RunRow, RunSummary, TaskRunOut

__all__ = ["router", "run_detail", "run_summary"]

router = APIRouter(tags=["runs"], route_class=BoundedRoute, responses=ERRORS)

LOG_TAIL_DEFAULT = 256 * 1024
LOG_TAIL_MAX = 4 * 1024 * 1024


# ---------------------------------------------------------------------- services
def run_summary(app: App, run: RunRecord) -> RunSummary:
    """The run, its open gate and the endpoints it deployed (``signoff run --json``)."""
    return build.run_summary(app.store, run)


def run_detail(app: App, run: RunRecord) -> RunDetail:
    """Everything ``signoff show --json`` tells about a run."""
    return build.run_detail(app.store, run)


def _task_run(app: App, run: RunRecord, label: str) -> TaskRunRecord:
    """One task run of this run, by label (``train[1]``), key or id; never another run's."""
    for tr in app.store.list_task_runs(run.id):
        if label in (tr.label, tr.key, tr.id):
            return tr
    raise NotFoundError(f"run {run.id} has no task {label[:200]!r}")


def _base_dir(raw: str | None) -> Path | None:
    if raw is None:
        return None
    path = Path(raw)
    if "\x00" in raw or not path.is_absolute():
        raise SignoffError(f"base_dir must be an absolute folder on the server, got {raw[:200]!r}")
    if not path.is_dir():
        raise SignoffError(f"base_dir {raw[:200]!r} is not a folder on the server")
    return path


def _rerun_source(app: App, name: str) -> tuple[FlowSpec, Path | None]:
    """The latest stored version of a flow and the code snapshot of its latest run."""
    latest = latest_run_of(app, checked_name(name, "flow"))
    code = Path(latest.work_dir) / "code"
    return app.store.get_flow(latest.flow_hash), code if code.is_dir() else None


# ------------------------------------------------------------------------ routes
@router.post(
    "/runs",
    status_code=201,
    response_model=RunSummary,
    responses={
        **NOT_FOUND,
        **TOO_LARGE,
        **BAD_REQUEST,
        422: {"model": SpecProblem, "description": "the flow or the request is invalid"},
    },
)
async def start_run(
    body: RunCreate, app: AppDep, who: RunScopeDep, worker: WorkerDep
) -> RunSummary | JSONResponse:
    """Start a run from a flow file's text, or again from a stored flow; the worker drives it."""
    if body.flow_yaml is not None:
        base_dir = _base_dir(body.base_dir)
        try:
            loaded = await run_in_threadpool(parse_flow, body.flow_yaml, "<flow_yaml>", base_dir)
        except SpecError as exc:
            return spec_problem(exc)
        spec, source = loaded.spec, body.flow_yaml
    else:
        spec, base_dir = await run_in_threadpool(_rerun_source, app, body.flow or "")
        source = None
    run = await run_in_threadpool(
        lambda: app.engine.start_run(
            spec, base_dir=base_dir, source=source, params=body.params, started_by=who.user
        )
    )
    if worker is not None:
        worker.schedule(run.id)
    return await run_in_threadpool(run_summary, app, run)


@router.get("/runs")
def list_runs(
    app: AppDep,
    _who: ReadDep,
    flow: Annotated[str | None, Query(max_length=200, description="only this flow")] = None,
    state: Annotated[RunState | None, Query(description="only runs in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="how many, newest first")] = 20,
) -> list[RunRow]:
    """Runs, newest first (``signoff runs --json``), optionally of one flow or in one state."""
    if flow is None and state is None:
        return [build.run_row(r) for r in app.store.list_runs(limit)]
    found = [
        r
        for r in app.store.list_runs(SCAN_WINDOW)
        if (flow is None or r.flow_name == flow) and (state is None or r.state is state)
    ]
    return [build.run_row(r) for r in found[:limit]]


@router.get("/runs/{run_id}", responses=NOT_FOUND)
def show_run(run_id: str, app: AppDep, _who: ReadDep) -> RunDetail:
    """A run, every task run (params, metrics, result) and its gates."""
    return run_detail(app, run_of(app, run_id))


@router.post("/runs/{run_id}/cancel", responses={**NOT_FOUND, **CONFLICT, **TOO_LARGE})
def cancel_run(
    run_id: str,
    app: AppDep,
    who: RunScopeDep,
    body: Annotated[RunCancel | None, Body()] = None,
) -> RunSummary:
    """Cancel a run: what has not ended is cancelled, running commands are stopped (409 if
    it already ended)."""
    run = run_of(app, run_id)
    app.engine.cancel(run.id, actor=who.user, reason=body.reason if body else None)
    return run_summary(app, app.store.get_run(run.id))


@router.post(
    "/runs/{run_id}/decisions",
    tags=["gates"],
    responses={**NOT_FOUND, **CONFLICT, **TOO_LARGE, **BAD_REQUEST},
)
def decide_run(
    run_id: str, body: DecisionIn, app: AppDep, who: DecideDep, worker: WorkerDep
) -> DecisionOut:
    """Approve or reject the run's open gate as the token's user (``signoff approve RUN``)."""
    gate, tr = open_gate_of_run(app.store, run_of(app, run_id).id)
    result = decide_gate(
        app.store,
        app.engine.clock,
        gate,
        tr,
        actor=who.user,
        approve=body.decision == "approve",
        comment=body.comment,
        channel="api",
        new_id=new_id,
    )
    return decision_out(gate, body.decision, result, worker)


@router.get("/runs/{run_id}/tasks", responses=NOT_FOUND)
def list_tasks(run_id: str, app: AppDep, _who: ReadDep) -> list[TaskRunOut]:
    """The run's task runs in order, with params, final metrics and results."""
    run = run_of(app, run_id)
    return build.task_runs(app.store, run, app.store.list_task_runs(run.id))


@router.get(
    "/runs/{run_id}/tasks/{label}/logs",
    response_class=PlainTextResponse,
    responses={
        **TEXT_ERRORS,
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "the tail of the task run's output (UTF-8)",
            "headers": {
                "X-Log-Size": {
                    "description": "bytes of output in all",
                    "schema": {"type": "integer", "minimum": 0},
                },
                "X-Log-Truncated": {
                    "description": "true when only the tail is sent",
                    "schema": {"type": "string", "enum": ["true", "false"]},
                },
            },
        },
    },
)
def task_logs(
    run_id: str,
    label: str,
    app: AppDep,
    _who: ReadDep,
    tail: Annotated[
        int, Query(ge=1, le=LOG_TAIL_MAX, description="at most this many bytes, from the end")
    ] = LOG_TAIL_DEFAULT,
) -> PlainTextResponse:
    """A task run's output (stdout and stderr), its last ``tail`` bytes."""
    tr = _task_run(app, run_of(app, run_id), label)
    log = Path(tr.work_dir) / "stdout.log"
    size = 0
    data = b""
    if log.is_file():
        with log.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - tail))
            data = f.read(tail)
    return PlainTextResponse(
        data.decode("utf-8", errors="replace"),
        headers={"X-Log-Size": str(size), "X-Log-Truncated": str(size > tail).lower()},
    )
