"""Prediction endpoints: where each listens, what it serves, and its deployments."""

from __future__ import annotations

from fastapi import APIRouter

from signoff.bootstrap import App
from signoff.domain.names import endpoint_name_problem
from signoff.domain.records import EndpointRecord, ModelVersionRecord
from signoff.errors import NotFoundError
from signoff.server.api_access import ERRORS, NOT_FOUND, BoundedRoute, ReadDep
from signoff.server.deps import AppDep
from signoff.server.schemas import DeploymentOut, EndpointDetail, EndpointOut

__all__ = ["router"]

router = APIRouter(tags=["endpoints"], route_class=BoundedRoute, responses=ERRORS)


def _model(app: App, model_version_id: str | None) -> ModelVersionRecord | None:
    if model_version_id is None:
        return None
    try:
        return app.store.get_model_version(model_version_id)
    except NotFoundError:
        return None


def _fields(app: App, ep: EndpointRecord) -> dict[str, object]:
    alive = bool(ep.pid and app.endpoints.is_alive(ep.pid))
    return EndpointOut.fields_of(ep, _model(app, ep.model_version_id), alive)


@router.get("/endpoints")
def list_endpoints(app: AppDep, _who: ReadDep) -> list[EndpointOut]:
    """Endpoints with their URL, whether their process is up, and the version they serve."""
    return [EndpointOut.model_validate(_fields(app, ep)) for ep in app.store.list_endpoints()]


@router.get("/endpoints/{name}", responses=NOT_FOUND)
def show_endpoint(name: str, app: AppDep, _who: ReadDep) -> EndpointDetail:
    """One endpoint and every deployment to it (rollovers, canaries, rollbacks), oldest first."""
    problem = endpoint_name_problem(name)
    if problem is not None:  # no endpoint can have this name: say why
        raise NotFoundError(f"no such endpoint: {problem}")
    ep = app.store.get_endpoint(name)
    if ep is None:
        raise NotFoundError(f"no endpoint {name!r}")
    deployments = app.store.list_deployments(ep.name)
    labels: dict[str, str] = {}
    for d in deployments:
        for mv_id in (d.model_version_id, d.previous_model_version_id):
            model = _model(app, mv_id) if mv_id and mv_id not in labels else None
            if model is not None:
                labels[model.id] = model.label
    return EndpointDetail.model_validate(
        {**_fields(app, ep), "deployments": [DeploymentOut.of(d, labels) for d in deployments]}
    )
