"""The webhook trigger: ``POST /api/v1/flows/{name}/trigger`` starts a run of a scheduled flow.

The flow must be registered (``signoff schedule add``) and declare ``{on: webhook}`` among
its triggers; the call needs a Bearer token with the ``run`` scope. An ``Idempotency-Key``
header makes retries safe: the same key returns the run the first call started.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Response
from pydantic import BaseModel

from signoff.domain.ports import FiringState
from signoff.scheduling import Scheduler, TriggerRefusedError
from signoff.server.deps import AppDep, PrincipalDep, WorkerDep

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["triggers"])

_SCOPES = frozenset({"run", "trigger", "*"})


class TriggerOut(BaseModel):
    """What a webhook call did."""

    flow: str
    firing: str
    state: str
    run_id: str | None
    reason: str | None
    repeated: bool  # the idempotency key was used before: this is that call's run


@router.post(
    "/flows/{name}/trigger",
    status_code=201,
    responses={
        401: {"description": "no valid API token"},
        403: {"description": "the token lacks the run scope, or the flow takes no webhook"},
        404: {"description": "no scheduled flow of that name"},
    },
)
def trigger_flow(
    name: str,
    app: AppDep,
    who: PrincipalDep,
    worker: WorkerDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> TriggerOut:
    """Start a run of the flow now (its webhook trigger); returns the run's id."""
    if not _SCOPES & set(who.scopes):
        raise HTTPException(403, "this token may not start runs (scope 'run' is missing)")
    scheduler = Scheduler(
        app.store,
        app.engine,
        app.engine.clock,
        endpoints=app.endpoints,
        role="api",
        after_start=worker.schedule if worker is not None else None,
    )
    try:
        firing, created = scheduler.fire_webhook(
            name, requested_by=who.user, idempotency_key=idempotency_key
        )
    except TriggerRefusedError as exc:
        raise HTTPException(403, str(exc)) from None
    if not created:
        response.status_code = 200
    if firing.state is FiringState.FAILED:
        raise HTTPException(422, f"the run could not be started: {firing.reason}")
    return TriggerOut(
        flow=firing.flow,
        firing=firing.key,
        state=firing.state.value,
        run_id=firing.run_id,
        reason=firing.reason,
        repeated=not created,
    )
