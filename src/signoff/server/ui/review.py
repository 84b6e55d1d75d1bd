"""The review page of a gate: the report, the decisions so far, and approve / reject.

Anyone signed in may read a review; only the gate's targets see the decide form, and the
server checks again on every POST (``decide_gate``: targets, groups, self-approval, quorum).
A POST from anyone else is refused with 403 and recorded as a refusal. The report is served
by its own route with a strict Content-Security-Policy and shown in a sandboxed frame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from signoff.bootstrap import App
from signoff.domain.gates import check_decider, required_approvals
from signoff.domain.records import DecisionRecord, GateRecord, RunRecord, TaskRunRecord
from signoff.domain.states import TaskRunState
from signoff.engine.engine import new_id
from signoff.errors import GateClosedError, NotATargetError, NotFoundError, SignoffError
from signoff.gates.decide import decide_gate
from signoff.server.auth import SignedIn
from signoff.server.deps import AppDep, FormDep, SignedInDep, WorkerDep
from signoff.server.ui.layout import (
    REPORT_HEADERS,
    PageError,
    PageRoute,
    is_id,
    printable,
    show,
)

__all__ = ["GateView", "gate_view", "load_gate", "router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@dataclass(frozen=True, slots=True)
class GateView:
    """What a page shows of a gate: its run, candidate, headline, quorum and decisions."""

    gate: GateRecord
    task_run: TaskRunRecord
    run: RunRecord
    candidate: str | None
    headline: str | None
    verdict: str | None
    approvals: int
    required: int
    decisions: list[DecisionRecord] = field(default_factory=list)
    refusals: list[DecisionRecord] = field(default_factory=list)

    @property
    def waiting(self) -> bool:
        return self.task_run.state is TaskRunState.WAITING_FOR_APPROVAL


def load_gate(app: App, gate_id: str) -> GateRecord:
    """The gate with this id, or a 404 page."""
    if not is_id(gate_id):
        raise PageError(404, "Not found", f"no gate {gate_id[:64]!r}")
    try:
        return app.store.get_gate(gate_id)
    except NotFoundError as exc:
        raise PageError(404, "Not found", f"no gate {gate_id!r}") from exc


def read_report(gate: GateRecord) -> dict[str, Any]:
    """The gate's ``report.json`` (an empty dict when it is missing or unreadable)."""
    if not gate.report_path:
        return {}
    try:
        data = json.loads(Path(gate.report_path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _headline(summary: dict[str, Any]) -> str | None:
    head = summary.get("headline")
    if not isinstance(head, dict) or not head.get("metric"):
        return None
    value, champion = head.get("challenger"), head.get("champion")
    text = f"{head['metric']} {_num(value)}"
    if champion is None:
        return text + " (no model in production yet)"
    delta = head.get("delta")
    return (
        text
        + f" vs {_num(champion)} in production"
        + (f" ({delta:+.4g})" if isinstance(delta, int | float) else "")
    )


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else str(value)


def gate_view(app: App, gate: GateRecord, groups: dict[str, list[str]] | None = None) -> GateView:
    """Everything a page needs to show about one gate."""
    store = app.store
    groups = store.groups() if groups is None else groups
    tr = store.get_task_run(gate.task_run_id)
    run = store.get_run(gate.run_id)
    report = read_report(gate)
    summary = report.get("summary") if isinstance(report.get("summary"), dict) else {}
    assert isinstance(summary, dict)
    candidate = None
    if gate.model_version_id:
        try:
            candidate = store.get_model_version(gate.model_version_id).label
        except NotFoundError:
            candidate = None
    challenger = summary.get("challenger")
    if candidate is None and isinstance(challenger, dict):
        candidate = challenger.get("label")
    decisions = store.list_decisions(gate.id)
    counted = [d for d in decisions if d.decision in ("approve", "reject")]
    verdict = summary.get("verdict_line") or summary.get("verdict")
    return GateView(
        gate=gate,
        task_run=tr,
        run=run,
        candidate=candidate,
        headline=_headline(summary),
        verdict=str(verdict) if verdict else None,
        approvals=len({d.actor for d in counted if d.decision == "approve"}),
        required=required_approvals(gate, groups),
        decisions=counted,
        refusals=[d for d in decisions if d.decision == "refused"],
    )


def _why_not(view: GateView, who: SignedIn, groups: dict[str, list[str]]) -> str | None:
    """None when ``who`` may decide now; otherwise the reason shown instead of the buttons."""
    if not view.waiting:
        why = f" ({view.task_run.reason})" if view.task_run.reason else ""
        return f"This gate is {view.task_run.state.value}{why}; it takes no more decisions."
    verdict = check_decider(view.gate, who.name, groups)
    if not verdict.allowed:
        return f"You cannot decide this gate: {verdict.reason}."
    mine = [d for d in view.decisions if d.actor == who.name and d.decision == "approve"]
    if mine:
        return (
            f"You approved this gate; it waits for "
            f"{max(0, view.required - view.approvals)} more approval(s)."
        )
    return None


def _page(
    app: App,
    who: SignedIn,
    gate: GateRecord,
    *,
    status: int = 200,
    error: str | None = None,
    comment: str = "",
) -> HTMLResponse:
    groups = app.store.groups()
    view = gate_view(app, gate, groups)
    html = Path(gate.report_path or "").with_suffix(".html") if gate.report_path else None
    return show(
        "review.html",
        who,
        status=status,
        refresh=None,
        view=view,
        why_not=_why_not(view, who, groups),
        has_report=bool(html and html.is_file()),
        error=error,
        comment=comment,
        now=app.engine.clock.now(),
    )


@router.get("/gates/{gate_id}")
def review_page(gate_id: str, app: AppDep, who: SignedInDep) -> HTMLResponse:
    """The review of one gate, with the decide form for its approvers."""
    return _page(app, who, load_gate(app, gate_id))


@router.get("/gates/{gate_id}/report")
def review_report(gate_id: str, app: AppDep, _who: SignedInDep) -> Response:
    """The gate's recorded report, framed by the review page (no script, nothing external)."""
    gate = load_gate(app, gate_id)
    html = Path(gate.report_path or "").with_suffix(".html") if gate.report_path else None
    if html is None or not html.is_file():
        raise PageError(404, "No report", "No report was recorded for this gate.")
    return HTMLResponse(html.read_text(), headers=REPORT_HEADERS)


@router.post("/gates/{gate_id}/decisions")
def decide(
    gate_id: str,
    app: AppDep,
    who: FormDep,
    worker: WorkerDep,
    decision: Annotated[str, Form(max_length=20)] = "",
    comment: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """Approve or reject as the signed-in user; the gate's policy is checked now."""
    if decision not in ("approve", "reject"):
        raise PageError(400, "Not decided", "decision must be 'approve' or 'reject'")
    gate = load_gate(app, gate_id)
    tr = app.store.get_task_run(gate.task_run_id)
    try:
        result = decide_gate(
            app.store,
            app.engine.clock,
            gate,
            tr,
            actor=who.name,
            approve=decision == "approve",
            comment=printable(comment, lines=True).strip() or None,
            channel="web",
            new_id=new_id,
        )
    except NotATargetError as exc:
        raise PageError(403, "Not allowed", str(exc)) from exc
    except GateClosedError as exc:
        raise PageError(409, "Already decided", str(exc)) from exc
    except SignoffError as exc:
        return _page(app, who, gate, status=400, error=str(exc), comment=comment)
    if result.state.is_terminal and worker is not None:
        worker.schedule(gate.run_id)
    return RedirectResponse(f"/gates/{gate.id}", 303)
