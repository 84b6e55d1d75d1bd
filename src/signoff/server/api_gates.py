"""Gates: the ones waiting, one gate, and decisions on it (as the token's user)."""

from __future__ import annotations

from fastapi import APIRouter

from signoff.bootstrap import App
from signoff.domain.gates import required_approvals
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
from signoff.server.schemas import DecisionIn, DecisionOut, GateOut
from signoff.server.worker import Worker

__all__ = ["decision_out", "router"]

router = APIRouter(tags=["gates"], route_class=BoundedRoute, responses=ERRORS)


def gate_out(app: App, gate: GateRecord) -> GateOut:
    """A gate with its run, task run state, decisions and the approvals it needs."""
    run = app.store.get_run(gate.run_id)
    tr = app.store.get_task_run(gate.task_run_id)
    required = required_approvals(gate, app.store.groups())
    return GateOut.of(run, gate, tr, app.store.list_decisions(gate.id), required)


def decision_out(
    gate: GateRecord, decision: str, result: DecisionResult, worker: Worker | None
) -> DecisionOut:
    """What a decision did; a decided gate hands its run to the worker to continue."""
    if result.state.is_terminal and worker is not None:
        worker.schedule(gate.run_id)
    return DecisionOut(
        gate_id=gate.id,
        run_id=gate.run_id,
        decision=decision,
        gate_state=result.state.value,
        approvals=result.approvals,
        required=result.required,
    )


@router.get("/gates")
def list_gates(app: AppDep, _who: ReadDep) -> list[GateOut]:
    """Gates waiting for a decision, newest run first (like ``signoff gates --json``)."""
    rows = [gate_out(app, g) for g in app.store.waiting_gates()]
    created = {r.run_id: app.store.get_run(r.run_id).created_at for r in rows}
    return sorted(rows, key=lambda r: (-created[r.run_id], r.opened_at))


@router.get("/gates/{gate_id}", responses=NOT_FOUND)
def show_gate(gate_id: str, app: AppDep, _who: ReadDep) -> GateOut:
    """One gate with its policy and decisions."""
    return gate_out(app, gate_of(app, gate_id))


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
