"""The approvals inbox: the gates waiting for me (as a target, or through my groups).

Each row shows the gate's age, flow, candidate (model version), headline metric and quorum;
the other open gates are listed below it, read-only, with why I cannot decide them.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from signoff.domain.gates import check_decider
from signoff.server.deps import AppDep, SignedInDep
from signoff.server.ui.layout import PageRoute, show
from signoff.server.ui.review import gate_view

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/inbox")
def inbox(app: AppDep, who: SignedInDep) -> HTMLResponse:
    """Gates waiting for the signed-in user first, then every other open gate."""
    groups = app.store.groups()
    mine, others = [], []
    for gate in app.store.waiting_gates():
        view = gate_view(app, gate, groups)
        verdict = check_decider(gate, who.name, groups)
        decided = any(d.actor == who.name for d in view.decisions)
        if verdict.allowed and not decided:
            mine.append(view)
        else:
            reason = "you already approved" if decided else verdict.reason
            others.append((view, reason))
    mine.sort(key=lambda v: v.gate.opened_at)
    return show(
        "inbox.html",
        who,
        refresh=30,
        mine=mine,
        others=others,
        now=app.engine.clock.now(),
    )
