"""Endpoints: what each one serves now, and the history of its deployments."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from signoff.bootstrap import App
from signoff.server.deps import AppDep, SignedInDep
from signoff.server.ui.layout import PageError, PageRoute, printable, show

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _labels(app: App) -> dict[str, str]:
    return {mv.id: mv.label for mv in app.store.list_model_versions()}


def _label(labels: dict[str, str], version_id: str | None) -> str:
    if version_id is None:
        return "—"
    return labels.get(version_id, version_id)


@router.get("/endpoints")
def endpoints_page(app: AppDep, who: SignedInDep) -> HTMLResponse:
    """Every endpoint: URL, state, the version it serves."""
    labels = _labels(app)
    rows = [(ep, _label(labels, ep.model_version_id)) for ep in app.store.list_endpoints()]
    return show("endpoints.html", who, endpoints=rows)


@router.get("/endpoints/{name}")
def endpoint_page(name: str, app: AppDep, who: SignedInDep) -> HTMLResponse:
    """One endpoint: what it serves and every deployment (rollover, canary, rollback...)."""
    name = printable(name)[:200]
    endpoint = app.store.get_endpoint(name)
    if endpoint is None:
        raise PageError(404, "Not found", f"no endpoint {name[:200]!r}")
    labels = _labels(app)
    deployments = [
        (d, _label(labels, d.model_version_id), _label(labels, d.previous_model_version_id))
        for d in reversed(app.store.list_deployments(endpoint.name))
    ]
    return show(
        "endpoint.html",
        who,
        endpoint=endpoint,
        serving=_label(labels, endpoint.model_version_id),
        deployments=deployments,
    )
