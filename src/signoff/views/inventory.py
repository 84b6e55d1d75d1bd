"""Builders of the read models of the registry, serving, users and audit log.

Model versions and aliases, endpoints and their deployments, users, audit entries: records
and reads of the Store port in, :mod:`signoff.views.models` out. They only read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from signoff.domain.audit import AuditEntry
from signoff.domain.ports import Store
from signoff.domain.records import (
    DeploymentRecord,
    EndpointRecord,
    ModelVersionRecord,
    UserRecord,
)
from signoff.errors import NotFoundError
from signoff.gates.audit import AuditReport
from signoff.views.build import finite
from signoff.views.models import (
    AuditEntryOut,
    AuditVerifyOut,
    ChainBreakOut,
    DeploymentOut,
    EndpointDetail,
    EndpointOut,
    HistoryRow,
    ModelRow,
    ModelVersionOut,
    UserOut,
    UserRow,
)

__all__ = [
    "IsAlive",
    "audit_entry",
    "audit_verify",
    "deployment_history",
    "deployment_out",
    "endpoint_detail",
    "endpoint_out",
    "endpoint_rows",
    "model_rows",
    "model_version_out",
    "user_out",
    "user_row",
]

IsAlive = Callable[[int], bool]
"""Whether an endpoint's process id is alive (the endpoint runner answers)."""


# ---------------------------------------------------------------------------- models
def _aliases_of(mv: ModelVersionRecord, aliases: dict[str, str]) -> list[str]:
    return sorted(a for a, v in aliases.items() if v == mv.id)


def model_version_out(mv: ModelVersionRecord, aliases: dict[str, str]) -> ModelVersionOut:
    """A registered model version and the aliases (alias -> version id) that point at it."""
    return ModelVersionOut(
        id=mv.id,
        name=mv.name,
        version=mv.version,
        label=mv.label,
        flavor=mv.flavor,
        aliases=_aliases_of(mv, aliases),
        digest=mv.digest,
        signature=mv.signature,
        metrics=finite(mv.metrics),
        params=mv.params,
        run_id=mv.run_id,
        task_run_id=mv.task_run_id,
        created_at=mv.created_at,
    )


def model_rows(store: Store, name: str | None) -> list[ModelRow]:
    """Registered model versions (of one model, or all) with their aliases."""
    aliases: dict[str, dict[str, str]] = {}
    rows = []
    for mv in store.list_model_versions(name):
        if mv.name not in aliases:
            aliases[mv.name] = store.aliases(mv.name)
        rows.append(
            ModelRow(
                id=mv.id,
                name=mv.name,
                version=mv.version,
                label=mv.label,
                flavor=mv.flavor,
                aliases=_aliases_of(mv, aliases[mv.name]),
                metrics=finite(mv.metrics),
                run_id=mv.run_id,
                digest=mv.digest,
            )
        )
    return rows


# ------------------------------------------------------------------------- endpoints
def _model_or_none(store: Store, model_version_id: str | None) -> ModelVersionRecord | None:
    if model_version_id is None:
        return None
    try:
        return store.get_model_version(model_version_id)
    except NotFoundError:
        return None


def _endpoint_fields(store: Store, ep: EndpointRecord, is_alive: IsAlive) -> dict[str, Any]:
    model = _model_or_none(store, ep.model_version_id)
    alive = bool(ep.pid and is_alive(ep.pid))
    return {
        "name": ep.name,
        "url": ep.url,
        "state": ep.state if alive or ep.state == "stopped" else "down",
        "pid": ep.pid,
        "model_version": model.label if model else None,
        "model_version_id": ep.model_version_id,
        "digest": model.digest if model else None,
        "updated_at": ep.updated_at,
    }


def endpoint_out(store: Store, ep: EndpointRecord, is_alive: IsAlive) -> EndpointOut:
    """An endpoint: ``down`` when its process is gone although it should serve."""
    return EndpointOut(**_endpoint_fields(store, ep, is_alive))


def endpoint_rows(store: Store, is_alive: IsAlive) -> list[EndpointOut]:
    """Every endpoint (``signoff endpoints --json``)."""
    return [endpoint_out(store, ep, is_alive) for ep in store.list_endpoints()]


def deployment_out(d: DeploymentRecord, labels: dict[str, str]) -> DeploymentOut:
    """One deployment, with the labels (version id -> label) of the versions it names."""
    return DeploymentOut(
        id=d.id,
        kind=d.kind.value,
        model_version_id=d.model_version_id,
        model_version=labels.get(d.model_version_id),
        previous_model_version_id=d.previous_model_version_id,
        traffic=d.traffic,
        run_id=d.run_id,
        gate_id=d.gate_id,
        deployed_by=d.deployed_by,
        at=d.at,
        reason=d.reason,
        max_error_rate=d.max_error_rate,
        override=d.override,
    )


def endpoint_detail(store: Store, ep: EndpointRecord, is_alive: IsAlive) -> EndpointDetail:
    """An endpoint and every deployment to it, oldest first."""
    deployments = store.list_deployments(ep.name)
    labels: dict[str, str] = {}
    for d in deployments:
        for mv_id in (d.model_version_id, d.previous_model_version_id):
            model = _model_or_none(store, mv_id) if mv_id and mv_id not in labels else None
            if model is not None:
                labels[model.id] = model.label
    return EndpointDetail(
        **_endpoint_fields(store, ep, is_alive),
        deployments=[deployment_out(d, labels) for d in deployments],
    )


# ------------------------------------------------------------------- users and audit
def user_out(user: UserRecord) -> UserOut:
    """A user as the API lists it."""
    return UserOut(
        name=user.name,
        email=user.email,
        roles=list(user.roles),
        active=user.active,
        created_at=user.created_at,
    )


def user_row(user: UserRecord) -> UserRow:
    """A user as ``signoff users list --json`` prints it."""
    return UserRow(name=user.name, email=user.email, roles=list(user.roles), active=user.active)


def audit_entry(e: AuditEntry) -> AuditEntryOut:
    """One audit log entry."""
    return AuditEntryOut(
        seq=e.seq,
        at=e.at,
        event=e.event,
        run_id=e.run_id,
        gate_id=e.gate_id,
        actor=e.actor,
        data=e.data,
        hash=e.hash,
    )


def audit_verify(report: AuditReport) -> AuditVerifyOut:
    """The outcome of checking the audit chain, its checkpoints and the decisions."""
    return AuditVerifyOut(
        entries=report.entries,
        intact=report.intact,
        checkpoints=report.checkpoints,
        checkpoints_verified=report.checkpoints_verified,
        decisions=report.decisions,
        decisions_matched=report.decisions_matched,
        summary=report.summary(),
        breaks=[ChainBreakOut(seq=b.seq, reason=b.reason) for b in report.breaks],
    )


def deployment_history(store: Store, endpoint: str) -> list[HistoryRow]:
    """Every deployment of an endpoint, oldest first, with labels and approvers."""
    if store.get_endpoint(endpoint) is None:
        raise NotFoundError(f"no endpoint {endpoint!r}")
    labels: dict[str, str] = {}

    def label(version_id: str | None) -> str | None:
        if version_id is None:
            return None
        if version_id not in labels:
            model = _model_or_none(store, version_id)
            labels[version_id] = model.label if model else version_id
        return labels[version_id]

    rows = []
    for d in store.list_deployments(endpoint):
        approvers: list[str] = []
        if d.gate_id:
            decisions = store.list_decisions(d.gate_id)
            approvers = sorted({x.actor for x in decisions if x.decision == "approve"})
        rows.append(
            HistoryRow(
                id=d.id,
                at=d.at,
                kind=d.kind.value,
                model_version=label(d.model_version_id),
                model_version_id=d.model_version_id,
                traffic=d.traffic,
                previous_model_version=label(d.previous_model_version_id),
                deployed_by=d.deployed_by,
                run_id=d.run_id,
                gate_id=d.gate_id,
                approved_by=approvers,
                reason=d.reason,
                override=d.override,
            )
        )
    return rows
