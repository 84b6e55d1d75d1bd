"""Models: every registered model with its versions, its aliases and how the aliases moved."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from signoff.domain.records import ModelVersionRecord
from signoff.server.deps import AppDep, SignedInDep
from signoff.server.ui.layout import PageError, PageRoute, printable, show

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@dataclass(frozen=True, slots=True)
class ModelView:
    """A model name: its versions (newest first) and which version each alias points to."""

    name: str
    versions: list[ModelVersionRecord]
    aliases: dict[str, str]  # alias -> version label


def _label_of(versions: list[ModelVersionRecord], version_id: str) -> str:
    for mv in versions:
        if mv.id == version_id:
            return mv.label
    return version_id


@router.get("/models")
def models_page(app: AppDep, who: SignedInDep) -> HTMLResponse:
    """Every model name with its latest version and aliases."""
    by_name: dict[str, list[ModelVersionRecord]] = {}
    for mv in app.store.list_model_versions():
        by_name.setdefault(mv.name, []).append(mv)
    views = []
    for name in sorted(by_name):
        versions = sorted(by_name[name], key=lambda m: m.version, reverse=True)
        aliases = {a: _label_of(versions, v) for a, v in app.store.aliases(name).items()}
        views.append(ModelView(name=name, versions=versions, aliases=aliases))
    return show("models.html", who, models=views)


@router.get("/models/{name}")
def model_page(name: str, app: AppDep, who: SignedInDep) -> HTMLResponse:
    """One model: every version (metrics, digest, lineage), aliases and their history."""
    name = printable(name)[:200]
    versions = sorted(app.store.list_model_versions(name), key=lambda m: m.version, reverse=True)
    if not versions:
        raise PageError(404, "Not found", f"no model {name[:200]!r}")
    aliases = app.store.aliases(name)
    by_version: dict[str, list[str]] = {}
    for alias, version_id in sorted(aliases.items()):
        by_version.setdefault(version_id, []).append(alias)
    history = [
        {**h, "label": _label_of(versions, str(h.get("model_version_id", "")))}
        for h in reversed(app.store.alias_history(name))
    ]
    return show(
        "model.html",
        who,
        name=name,
        versions=versions,
        by_version=by_version,
        history=history,
    )
