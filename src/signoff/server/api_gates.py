"""Gates: the ones waiting, one gate, and decisions on it (as the token's user)."""

from __future__ import annotations

from fastapi import APIRouter

from signoff.domain.records import GateRecord
from signoff.engine.engine import new_id
from signoff.gates.decide import DecisionResult, decide_gate
from signoff.server.api_access import (
    BAD_REQUEST,
    CONFLICT,
    ERRORS,
    NOT_FOUND,
    TOO_LARGE,
    BoundedRoute,
    DecideDep,
    ReadDep,
    gate_of,
)
from signoff.server.deps import AppDep, WorkerDep
from signoff.server.schemas import DecisionIn
from signoff.server.worker import Worker
from signoff.views import build
from signoff.views.models import DecisionOut, GateOut

__all__ = ["decision_out", "router"]

router = APIRouter(tags=["gates"], route_class=BoundedRoute, responses=ERRORS)


def decision_out(
    gate: GateRecord, decision: str, result: DecisionResult, worker: Worker | None
) -> DecisionOut:
    """What a decision did; a decided gate hands its run to the worker to continue."""
    if result.state.is_terminal and worker is not None:
        worker.schedule(gate.run_id)
    return build.decision_out(gate, decision, result)


@router.get("/gates")
def list_gates(app: AppDep, _who: ReadDep) -> list[GateOut]:
    """Gates waiting for a decision, newest run first (like ``signoff gates --json``)."""
    return build.waiting_gates(app.store)


@router.get("/gates/{gate_id}", responses=NOT_FOUND)
def show_gate(gate_id: str, app: AppDep, _who: ReadDep) -> GateOut:
    """One gate with its policy and decisions."""
    return build.gate_out(app.store, gate_of(app, gate_id))


@router.post(
    "/gates/{gate_id}/decisions", responses={**NOT_FOUND, **CONFLICT, **TOO_LARGE, **BAD_REQUEST}
)
def decide(
    gate_id: str, body: DecisionIn, app: AppDep, who: DecideDep, worker: WorkerDep
) -> DecisionOut:
    """Approve or reject as the token's user (checked against the gate's policy now)."""
    gate = gate_of(app, gate_id)
    result = decide_gate(
        app.store,
        app.engine.clock,
        gate,
        app.store.get_task_run(gate.task_run_id),
        actor=who.user,
        approve=body.decision == "approve",
        comment=body.comment,
        channel="api",
        new_id=new_id,
    )
    return decision_out(gate, body.decision, result, worker)
