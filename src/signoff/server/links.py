"""Decision links from e-mails: GET shows the review and a confirm form; only POST decides.

Mail scanners and link previewers fetch links, so a GET never changes anything. The POST
needs the CSRF value bound to the link and to the browser's CSRF cookie. A link answers
plainly when it is forged, expired, used, or when its gate is no longer open.

A link is one approver's. Opened in a browser signed in as someone else, it is refused (403,
and a ``link_refused`` audit event) on every route: otherwise whoever holds the link, in
whatever session, would decide as its owner. Without a session, or in the owner's, it works.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from signoff.bootstrap import App
from signoff.domain.gates import required_approvals
from signoff.domain.records import AuditEvent, GateRecord, LinkToken, TaskRunRecord
from signoff.domain.states import TaskRunState
from signoff.engine.engine import new_id
from signoff.errors import GateClosedError, NotATargetError, NotFoundError, SignoffError
from signoff.gates.decide import decide_gate
from signoff.gates.links import LinkError, LinkGoneError, token_hash
from signoff.server.auth import signed_in
from signoff.server.deps import AppDep, WorkerDep
from signoff.server.pages import message_page, render
from signoff.server.ui.layout import REPORT_HEADERS, PageRoute, printable, show

__all__ = ["router"]

# PageRoute: a malformed form (an overlong comment) is answered with a page and a 4xx.
router = APIRouter(route_class=PageRoute, include_in_schema=False)
CSRF_COOKIE = "signoff_csrf"


def _open_link(app: App, token: str) -> tuple[dict[str, Any], LinkToken, GateRecord, TaskRunRecord]:
    body = app.signer.read(token, now=app.engine.clock.now())
    record = app.store.link_token(token_hash(token))
    if record is None:
        raise LinkError("this link is not known to this signoff server")
    if record.used_at is not None:
        raise LinkGoneError("this link was already used; each link decides once")
    if (record.gate_id, record.user, record.decision) != (body["g"], body["u"], body["d"]):
        raise LinkError("this link's contents do not match its record")
    try:
        gate = app.store.get_gate(record.gate_id)
    except NotFoundError as exc:
        raise LinkError("the gate of this link no longer exists") from exc
    tr = app.store.get_task_run(gate.task_run_id)
    if tr.state is not TaskRunState.WAITING_FOR_APPROVAL:
        why = f": {tr.reason}" if tr.reason else ""
        raise GateClosedError(f"this gate is no longer open, it is {tr.state}{why}")
    return body, record, gate, tr


def _someone_else(
    request: Request, app: App, record: LinkToken, gate: GateRecord
) -> Response | None:
    """A refusal when the browser is signed in as someone other than the link's approver."""
    who = signed_in(request)
    if who is None or who.name == record.user:
        return None
    event = AuditEvent(
        "link_refused",
        gate.run_id,
        gate.id,
        who.name,
        {"link_user": record.user, "decision": record.decision, "method": request.method},
    )
    app.store.append_audit([event], at=app.engine.clock.now())
    return show(
        "message.html",
        who,
        status=403,
        title="This link is not yours",
        text=f"This link is {record.user}'s; you are signed in as {who.name} — sign out or "
        f"use {record.user}'s browser. Nothing was decided.",
        css="bad",
    )


def _link_error(app: App, exc: SignoffError) -> HTMLResponse:
    base = app.settings.base_url.rstrip("/")
    # 410 Gone: the link was genuine but is spent; 403: it never was one of ours (or is not
    # this gate's); 409: the link is fine but its gate was decided another way.
    if isinstance(exc, LinkGoneError):
        status = 410
    elif isinstance(exc, GateClosedError):
        status = 409
    else:
        status = 403
    return message_page("This link does not work", str(exc), status=status, base=base)


@router.get("/links/{token}")
def show_link(token: str, request: Request, app: AppDep) -> Response:
    """The review and a confirm form. Changes nothing."""
    base = app.settings.base_url.rstrip("/")
    try:
        _, record, gate, tr = _open_link(app, token)
    except SignoffError as exc:
        return _link_error(app, exc)
    if (refused := _someone_else(request, app, record, gate)) is not None:
        return refused
    run = app.store.get_run(gate.run_id)
    decisions = app.store.list_decisions(gate.id)
    approvals = len({d.actor for d in decisions if d.decision == "approve"})
    report = _report_summary(gate)
    cookie = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = render(
        "link.html",
        base=base,
        token=token,
        user=record.user,
        decision=record.decision,
        run=run,
        task=tr.task_name,
        targets=list(gate.targets),
        quorum=f"{gate.quorum} ({required_approvals(gate, app.store.groups())} needed)",
        approvals=approvals,
        challenger=report.get("label"),
        headline=report.get("headline"),
        model_digest=gate.model_digest,
        report_digest=gate.report_digest,
        comment_required=gate.require_comment_on_reject,
        csrf=app.signer.csrf_for(token, cookie),
    )
    response.set_cookie(
        CSRF_COOKIE,
        cookie,
        httponly=True,
        samesite="strict",
        secure=base.startswith("https://"),
        max_age=3600,
        path="/links",
    )
    return response


@router.get("/links/{token}/report")
def link_report(token: str, request: Request, app: AppDep) -> Response:
    """The review report the gate recorded, framed by the link page and sandboxed like the
    review page's (the same headers)."""
    try:
        _, record, gate, _ = _open_link(app, token)
    except SignoffError as exc:
        return _link_error(app, exc)
    if (refused := _someone_else(request, app, record, gate)) is not None:
        return refused
    html = Path(gate.report_path or "").with_suffix(".html")
    if not gate.report_path or not html.is_file():
        return HTMLResponse(
            "<p>No report was recorded for this gate.</p>", status_code=404, headers=REPORT_HEADERS
        )
    return HTMLResponse(html.read_text(), headers=REPORT_HEADERS)


@router.post("/links/{token}")
def decide_link(
    token: str,
    request: Request,
    app: AppDep,
    worker: WorkerDep,
    csrf: Annotated[str, Form(max_length=200)] = "",
    comment: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """Decide, if the link, the session, the CSRF value, and the approver's eligibility hold."""
    base = app.settings.base_url.rstrip("/")
    try:
        _, record, gate, tr = _open_link(app, token)
    except SignoffError as exc:
        return _link_error(app, exc)
    if (refused := _someone_else(request, app, record, gate)) is not None:
        return refused
    if not app.signer.check_csrf(token, request.cookies.get(CSRF_COOKIE), csrf):
        return message_page(
            "Not decided",
            "The form's security check failed (open the link again and confirm from there).",
            status=403,
            base=base,
        )
    try:
        result = decide_gate(
            app.store,
            app.engine.clock,
            gate,
            tr,
            actor=record.user,
            approve=record.decision == "approve",
            comment=printable(comment, lines=True).strip() or None,
            channel="email",
            new_id=new_id,
            link_token_hash=token_hash(token),
        )
    except NotATargetError as exc:
        return message_page("Not allowed", str(exc), status=403, base=base)
    except GateClosedError as exc:
        return message_page("Already decided", str(exc), status=409, base=base)
    except SignoffError as exc:
        return message_page("Not decided", str(exc), status=400, base=base)
    if result.state.is_terminal and worker is not None:
        worker.schedule(gate.run_id)
    verb = "approved" if record.decision == "approve" else "rejected"
    if result.state is TaskRunState.WAITING_FOR_APPROVAL:
        text = f"{result.approvals} of {result.required} approvals; the gate waits for more."
    elif result.state is TaskRunState.APPROVED:
        text = "The gate is approved; the run continues to deployment."
    else:
        text = "The gate is rejected; the run ends and production is untouched."
    return message_page(f"You {verb} run {gate.run_id}", text, status=200, base=base, ok=True)


def _report_summary(gate: GateRecord) -> dict[str, Any]:
    import json

    try:
        report = json.loads(Path(gate.report_path or "").read_text())
    except (OSError, ValueError):
        return {}
    challenger = report.get("challenger") or {}
    summary = report.get("summary") or {}
    head = summary.get("headline") if isinstance(summary, dict) else None
    headline = None
    if isinstance(head, dict) and head.get("metric"):
        champ = head.get("champion")
        headline = f"{head['metric']}: {head.get('challenger')}" + (
            f" vs {champ} in production" if champ is not None else " (no model in production)"
        )
    return {"label": challenger.get("label"), "headline": headline}
