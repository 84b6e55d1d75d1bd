"""Prediction endpoints: where each listens, what it serves, and its deployments."""

from __future__ import annotations

from fastapi import APIRouter

from signoff.domain.names import endpoint_name_problem
from signoff.errors import NotFoundError
from signoff.server.api_access import ERRORS, NOT_FOUND, BoundedRoute, ReadDep
from signoff.server.deps import AppDep
from signoff.views import inventory
from signoff.views.models import EndpointDetail, EndpointOut

__all__ = ["router"]

router = APIRouter(tags=["endpoints"], route_class=BoundedRoute, responses=ERRORS)


@router.get("/endpoints")
def list_endpoints(app: AppDep, _who: ReadDep) -> list[EndpointOut]:
    """Endpoints with their URL, whether their process is up, and the version they serve."""
    return inventory.endpoint_rows(app.store, app.endpoints.is_alive)


@router.get("/endpoints/{name}", responses=NOT_FOUND)
def show_endpoint(name: str, app: AppDep, _who: ReadDep) -> EndpointDetail:
    """One endpoint and every deployment to it (rollovers, canaries, rollbacks), oldest first."""
    problem = endpoint_name_problem(name)
    if problem is not None:  # no endpoint can have this name: say why
        raise NotFoundError(f"no such endpoint: {problem}")
    ep = app.store.get_endpoint(name)
    if ep is None:
        raise NotFoundError(f"no endpoint {name!r}")
    return inventory.endpoint_detail(app.store, ep, app.endpoints.is_alive)
