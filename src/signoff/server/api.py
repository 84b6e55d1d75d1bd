"""REST API under /api/v1 (machine clients authenticate with a Bearer token)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from signoff.domain.gates import required_approvals
from signoff.domain.records import GateRecord
from signoff.engine.engine import new_id
from signoff.errors import NotFoundError
from signoff.review.decide import decide_gate
from signoff.server.deps import AppDep, PrincipalDep, WorkerDep

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["gates"])


class DecisionIn(BaseModel):
    """A decision on a gate."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    comment: str | None = Field(default=None, max_length=4000)


class DecisionOut(BaseModel):
    """What a decision did."""

    gate_id: str
    run_id: str
    decision: str
    gate_state: str
    approvals: int
    required: int


def _gate_json(app: Any, gate: GateRecord) -> dict[str, Any]:
    tr = app.store.get_task_run(gate.task_run_id)
    decisions = app.store.list_decisions(gate.id)
    return {
        "gate_id": gate.id,
        "run_id": gate.run_id,
        "task": tr.task_name,
        "state": tr.state.value,
        "targets": list(gate.targets),
        "quorum": gate.quorum,
        "required": required_approvals(gate, app.store.groups()),
        "model_version_id": gate.model_version_id,
        "model_digest": gate.model_digest,
        "report_digest": gate.report_digest,
        "opened_at": gate.opened_at,
        "expires_at": gate.expires_at,
        "decisions": [
            {
                "actor": d.actor,
                "decision": d.decision,
                "comment": d.comment,
                "channel": d.channel,
                "at": d.at,
            }
            for d in decisions
        ],
    }


@router.get("/gates")
def list_gates(app: AppDep, _who: PrincipalDep) -> list[dict[str, Any]]:
    """Gates waiting for a decision."""
    return [_gate_json(app, g) for g in app.store.waiting_gates()]


@router.get("/gates/{gate_id}")
def show_gate(gate_id: str, app: AppDep, _who: PrincipalDep) -> dict[str, Any]:
    """One gate with its policy and decisions."""
    return _gate_json(app, app.store.get_gate(gate_id))


@router.post("/gates/{gate_id}/decisions")
def decide(
    gate_id: str, body: DecisionIn, app: AppDep, who: PrincipalDep, worker: WorkerDep
) -> DecisionOut:
    """Approve or reject as the token's user (checked against the gate's policy now)."""
    if "decide" not in who.scopes and "*" not in who.scopes:
        from signoff.errors import NotATargetError

        raise NotATargetError("this token may not decide gates (scope 'decide' is missing)")
    try:
        gate = app.store.get_gate(gate_id)
    except NotFoundError as exc:
        raise NotFoundError(f"no gate {gate_id!r}") from exc
    tr = app.store.get_task_run(gate.task_run_id)
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
    if result.state.is_terminal and worker is not None:
        worker.schedule(gate.run_id)
    return DecisionOut(
        gate_id=gate.id,
        run_id=gate.run_id,
        decision=body.decision,
        gate_state=result.state.value,
        approvals=result.approvals,
        required=result.required,
    )
