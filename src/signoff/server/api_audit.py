"""The audit log: its entries (all, or one run's) and a check of its hash chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from signoff.server.api_access import ERRORS, NOT_FOUND, BoundedRoute, ReadDep, run_of
from signoff.server.deps import AppDep
from signoff.views.inventory import audit_entry, audit_verify
from signoff.views.models import AuditEntryOut, AuditVerifyOut

__all__ = ["router"]

router = APIRouter(tags=["audit"], route_class=BoundedRoute, responses=ERRORS)


@router.get("/audit", responses=NOT_FOUND)
def list_audit(
    app: AppDep,
    _who: ReadDep,
    run_id: Annotated[str | None, Query(max_length=32, description="only this run")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="the newest this many")] = 1000,
) -> list[AuditEntryOut]:
    """Audit entries in chain order (``signoff audit show --json``), the newest ``limit``."""
    rid = run_of(app, run_id).id if run_id is not None else None
    return [audit_entry(e) for e in app.store.list_audit(rid)[-limit:]]


@router.get("/audit/verify")
def verify_audit(app: AppDep, _who: ReadDep) -> AuditVerifyOut:
    """Check the keyed chain, this server's checkpoints and the decisions table together."""
    return audit_verify(app.verify_audit())
