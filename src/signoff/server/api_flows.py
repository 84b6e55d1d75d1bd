"""Flows: the ones that ran, one flow's latest version, and validating a flow file.

A flow is known by its runs: each run pins the flow's content hash, and the newest run of a
name gives the flow's latest version. ``POST /flows/validate`` takes the flow file's text
and answers with the spec, or with every issue (file, line, column, field) in one pass:
the same validator as ``signoff validate`` and the SDK.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from signoff.bootstrap import App
from signoff.domain.records import RunRecord
from signoff.errors import NotFoundError, SpecError, SpecIssue
from signoff.server.api_access import (
    ERRORS,
    NOT_FOUND,
    TOO_LARGE,
    BoundedRoute,
    ReadDep,
    checked_name,
)
from signoff.server.deps import AppDep
from signoff.server.schemas import SpecProblem
from signoff.spec import parse_flow
from signoff.views import build
from signoff.views.models import FlowDetail, FlowSummary, FlowValidation

__all__ = ["SCAN_WINDOW", "latest_run_of", "router", "spec_problem"]

router = APIRouter(tags=["flows"], route_class=BoundedRoute, responses=ERRORS)

SCAN_WINDOW = 5000
"""How many of the newest runs the flow listing looks through (the store lists by age)."""

_RECENT = 20
_FLOW_TEXT = "<request>"


def spec_problem(exc: SpecError) -> JSONResponse:
    """A 422 answer listing every issue of an invalid flow."""
    issues = [build.spec_issue(i) for i in exc.issues]
    body = SpecProblem(detail=str(exc) or "invalid flow", issues=issues)
    return JSONResponse(body.model_dump(), status_code=422)


def latest_run_of(app: App, name: str) -> RunRecord:
    """The newest run of a flow (it pins the flow's latest version)."""
    for run in app.store.list_runs(SCAN_WINDOW):
        if run.flow_name == name:
            return run
    raise NotFoundError(f"no flow {name!r} has run here")


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError(
            [SpecIssue(_FLOW_TEXT, line, column, "", "flow file is not UTF-8 text")]
        ) from None


@router.get("/flows")
def list_flows(app: AppDep, _who: ReadDep) -> list[FlowSummary]:
    """Flows that have runs, the most recently run first."""
    return build.flow_summaries(app.store.list_runs(SCAN_WINDOW))


@router.get("/flows/{name}", responses=NOT_FOUND)
def show_flow(name: str, app: AppDep, _who: ReadDep) -> FlowDetail:
    """A flow's latest version (canonical spec and hash) and its recent runs."""
    checked_name(name, "flow")
    recent = [r for r in app.store.list_runs(SCAN_WINDOW) if r.flow_name == name][:_RECENT]
    if not recent:
        raise NotFoundError(f"no flow {name!r} has run here")
    spec = app.store.get_flow(recent[0].flow_hash)
    return build.flow_detail(name, spec, recent)


@router.post(
    "/flows/validate",
    response_model=FlowValidation,
    responses={
        **TOO_LARGE,
        422: {"model": SpecProblem, "description": "every issue found, with positions"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "the flow file (YAML text, UTF-8)",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def validate_flow(request: Request, _who: ReadDep) -> FlowValidation | JSONResponse:
    """Validate a flow file's text: 200 with the spec, or 422 with every issue and position."""
    try:
        text = _decode(await request.body())
        loaded = await run_in_threadpool(parse_flow, text, _FLOW_TEXT)
    except SpecError as exc:
        return spec_problem(exc)
    return build.flow_validation(loaded.spec, loaded.warnings)
