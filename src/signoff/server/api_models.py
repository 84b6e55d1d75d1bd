"""Registered models: their names, and one model's versions, aliases and alias history."""

from __future__ import annotations

from fastapi import APIRouter

from signoff.errors import NotFoundError
from signoff.server.api_access import ERRORS, NOT_FOUND, BoundedRoute, ReadDep, checked_name
from signoff.server.deps import AppDep
from signoff.views.inventory import model_version_out
from signoff.views.models import AliasMove, ModelDetail, ModelSummary

__all__ = ["router"]

router = APIRouter(tags=["models"], route_class=BoundedRoute, responses=ERRORS)


@router.get("/models")
def list_models(app: AppDep, _who: ReadDep) -> list[ModelSummary]:
    """Every model name: its number of versions, the latest, and where its aliases point."""
    by_name: dict[str, list[str]] = {}
    labels: dict[str, str] = {}
    for mv in app.store.list_model_versions():
        by_name.setdefault(mv.name, []).append(mv.label)
        labels[mv.id] = mv.label
    return [
        ModelSummary(
            name=name,
            versions=len(versions),
            latest=versions[-1],
            aliases={a: labels.get(v, v) for a, v in sorted(app.store.aliases(name).items())},
        )
        for name, versions in by_name.items()
    ]


@router.get("/models/{name}", responses=NOT_FOUND)
def show_model(name: str, app: AppDep, _who: ReadDep) -> ModelDetail:
    """One model: every version (oldest first), its aliases and who moved them, when, why."""
    versions = app.store.list_model_versions(checked_name(name, "model"))
    if not versions:
        raise NotFoundError(f"no model {name!r}")
    aliases = app.store.aliases(name)
    labels = {mv.id: mv.label for mv in versions}
    return ModelDetail(
        name=name,
        aliases={a: labels.get(v, v) for a, v in sorted(aliases.items())},
        versions=[model_version_out(mv, aliases) for mv in versions],
        alias_history=[
            AliasMove(
                alias=m["alias"],
                model_version_id=m["model_version_id"],
                model_version=labels.get(m["model_version_id"]),
                actor=m["actor"],
                at=m["at"],
                reason=m["reason"],
            )
            for m in app.store.alias_history(name)
        ],
    )
