"""Reading deployments: model versions by reference, the approval behind one, summaries.

The pure helpers the :class:`~signoff.deployment.deployer.Deployer` and the CLI share: which
version a reference names, which approved gate stands behind a version (or why none does),
what a rollback returns to, and the summary every change reports.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from signoff.domain.ports import RolloverResult, Store
from signoff.domain.records import DeploymentKind, DeploymentRecord, GateRecord, ModelVersionRecord
from signoff.domain.states import TaskRunState
from signoff.errors import IntegrityError, NotFoundError
from signoff.registry.flavors import folder_digest

__all__ = [
    "approval_of",
    "check_files",
    "gate_of",
    "resolve_model_version",
    "rollback_target",
    "summary",
    "why_unapproved",
]

_SETS_SERVING = (DeploymentKind.ROLLOVER, DeploymentKind.PROMOTE, DeploymentKind.ROLLBACK)
_LABEL = re.compile(r"^(?P<name>.+):v?(?P<version>\d+)$")


def resolve_model_version(store: Store, ref: str) -> ModelVersionRecord:
    """A model version by id, ``name:vN`` / ``name:N``, or ``name@alias`` (e.g. champion)."""
    if "@" in ref:
        name, _, alias = ref.partition("@")
        version_id = store.aliases(name).get(alias)
        if version_id is None:
            raise NotFoundError(f"model {name} has no alias {alias!r}")
        return store.get_model_version(version_id)
    match = _LABEL.match(ref)
    if match:
        for mv in store.list_model_versions(match["name"]):
            if mv.version == int(match["version"]):
                return mv
        raise NotFoundError(f"no model version {ref}")
    try:
        return store.get_model_version(ref)
    except NotFoundError:
        raise NotFoundError(
            f"no model version {ref!r} (give an id, NAME:vN or NAME@ALIAS)"
        ) from None


def approval_of(store: Store, model: ModelVersionRecord) -> GateRecord | None:
    """The approved gate that reviewed this model version with its digest, if any."""
    for gate in store.gates_of_run(model.run_id):
        if gate.model_version_id != model.id or gate.model_digest != model.digest:
            continue
        if store.get_task_run(gate.task_run_id).state is TaskRunState.APPROVED:
            return gate
    return None


def why_unapproved(store: Store, model: ModelVersionRecord) -> str:
    """Why no gate stands behind this version: its gates and where they are, or none."""
    found = []
    for gate in store.gates_of_run(model.run_id):
        if gate.model_version_id != model.id:
            continue
        tr = store.get_task_run(gate.task_run_id)
        approvals = len({d.actor for d in store.list_decisions(gate.id) if d.decision == "approve"})
        found.append(f"gate {gate.id} of run {gate.run_id} is {tr.state} ({approvals} approval(s))")
    return "; ".join(found) or f"no gate reviewed it (run {model.run_id} had none)"


def check_files(model: ModelVersionRecord, digest: str | None) -> None:
    """Refuse a model whose folder no longer has its registered digest."""
    actual = digest or folder_digest(Path(model.path))
    if actual != model.digest:
        raise IntegrityError(
            f"model {model.label} changed on disk since it was registered (digest "
            f"{actual[:12]}…, registered {model.digest[:12]}…); refusing to serve it"
        )


def rollback_target(rows: list[DeploymentRecord], current: str | None) -> str | None:
    """What served before ``current`` took over (the change that put it in service)."""
    for row in reversed(rows):
        if row.kind in _SETS_SERVING and row.model_version_id == current:
            return row.previous_model_version_id
    return None


def gate_of(rows: list[DeploymentRecord], model_version_id: str) -> str | None:
    """The gate of the latest deployment of this version that had one."""
    for row in reversed(rows):
        if row.model_version_id == model_version_id and row.gate_id:
            return row.gate_id
    return None


def summary(
    store: Store,
    endpoint: str,
    url: str,
    model: ModelVersionRecord,
    kind: DeploymentKind,
    result: RolloverResult,
    previous_id: str | None,
) -> dict[str, Any]:
    """What the task result, the CLI and ``--json`` report about one change."""
    previous = None
    if previous_id and previous_id != model.id:
        previous = store.get_model_version(previous_id).label
    return {
        "endpoint": endpoint,
        "url": url,
        "model_version_id": model.id,
        "model_version": model.label,
        "digest": model.digest,
        "kind": kind.value,
        "traffic": result.traffic,
        "previous_model_version": previous,
        "switch_seconds": round(result.seconds, 4),
    }
