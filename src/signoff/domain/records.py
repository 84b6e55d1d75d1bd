"""Frozen records of what happened: runs, task runs, gates, decisions, models, endpoints."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from signoff.domain.specs import TaskKind
from signoff.domain.states import RunState, TaskRunState

__all__ = [
    "ArtifactRecord",
    "AuditEvent",
    "LinkToken",
    "UserRecord",
    "DecisionRecord",
    "DeploymentKind",
    "DeploymentRecord",
    "EndpointRecord",
    "FeedbackRecord",
    "GateRecord",
    "MetricRecord",
    "ModelVersionRecord",
    "PredictionRecord",
    "RunRecord",
    "TaskOutputs",
    "TaskRunRecord",
    "TransitionRecord",
]


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One execution of a flow, pinned to the flow's content hash."""

    id: str
    flow_name: str
    flow_hash: str
    state: RunState
    version: int
    params: dict[str, Any]
    started_by: str
    work_dir: str
    created_at: float
    updated_at: float
    ended_at: float | None = None
    reason: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)  # code, environment, seeds, reproduces


@dataclass(frozen=True, slots=True)
class TaskRunRecord:
    """One execution of one task (one grid combination) inside a run."""

    id: str
    run_id: str
    task_name: str
    index: int
    kind: TaskKind
    params: dict[str, Any]
    state: TaskRunState
    version: int
    attempt: int
    work_dir: str
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    reason: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    not_before: float | None = None  # a retry waits until then
    cache_key: str | None = None

    @property
    def label(self) -> str:
        """The task name, with the grid index when the task fans out."""
        return self.task_name if not self.params or self.index < 0 else self.key

    @property
    def key(self) -> str:
        return f"{self.task_name}[{self.index}]"


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """One appended row of state history."""

    entity: str  # "run" or "task_run"
    entity_id: str
    from_state: str | None
    to_state: str
    at: float
    reason: str | None
    actor: str | None


@dataclass(frozen=True, slots=True)
class MetricRecord:
    """A metric value of a task run (a time series when it has steps)."""

    task_run_id: str
    key: str
    value: float
    step: int | None
    at: float


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    """One file a task run produced, content-addressed."""

    task_run_id: str
    path: str  # relative to the task run's output folder
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class TaskOutputs:
    """Everything a finished task run logged and produced, written with its final state."""

    params: dict[str, Any] = field(default_factory=dict)
    metrics: list[MetricRecord] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: list[ArtifactRecord] = field(default_factory=list)
    models: list[ModelVersionRecord] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ModelVersionRecord:
    """A registered model: its files, digest, signature and lineage."""

    id: str
    name: str
    version: int
    flavor: str
    path: str
    digest: str
    signature: list[dict[str, str]]
    metrics: dict[str, float]
    params: dict[str, Any]
    run_id: str
    task_run_id: str
    created_at: float

    @property
    def label(self) -> str:
        return f"{self.name}:v{self.version}"


@dataclass(frozen=True, slots=True)
class GateRecord:
    """The approval request a human_validation task opened: policy and what is under review."""

    id: str
    run_id: str
    task_run_id: str
    targets: tuple[str, ...]
    quorum: str | int
    allow_self_approval: bool
    require_comment_on_reject: bool
    started_by: str
    model_version_id: str | None
    model_digest: str | None
    report_digest: str | None
    report_path: str | None
    opened_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One approver's decision, or a refused attempt; append-only."""

    id: str
    gate_id: str
    actor: str
    decision: str  # "approve", "reject" or "refused"
    comment: str | None
    channel: str
    at: float
    model_digest: str | None
    report_digest: str | None


@dataclass(frozen=True, slots=True)
class UserRecord:
    """Someone who can start runs or decide gates."""

    name: str
    email: str | None
    roles: tuple[str, ...]
    active: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """An event to append to the audit log (the store chains it)."""

    event: str
    run_id: str | None
    gate_id: str | None
    actor: str | None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LinkToken:
    """What an e-mailed decision link stands for (its token is stored only as a hash)."""

    token_hash: str
    gate_id: str
    user: str
    decision: str  # "approve" or "reject"
    expires_at: float
    used_at: float | None


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    """A named prediction service and what it serves now."""

    name: str
    url: str
    port: int
    pid: int | None
    model_version_id: str | None
    state: str  # "serving" or "stopped"
    updated_at: float


class DeploymentKind(StrEnum):
    """What a deployment did to an endpoint's traffic (stored as these strings)."""

    ROLLOVER = "rollover"  # the version took all traffic (a first start too)
    CANARY = "canary"  # the version took a share of the traffic
    PROMOTE = "promote"  # the canary took all traffic
    ROLLBACK = "rollback"  # back to the previous version, by a person
    AUTO_ROLLBACK = "auto-rollback"  # back to the previous version, by the error-rate rule


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    """One change of what an endpoint serves: who, when, which approval, which kind.

    ``model_version_id`` is what the change put in service (for a rollback, the version
    returned to); ``previous_model_version_id`` is what served before it.
    """

    id: str
    endpoint: str
    model_version_id: str
    run_id: str | None
    gate_id: str | None
    deployed_by: str
    at: float
    kind: DeploymentKind = DeploymentKind.ROLLOVER
    traffic: int = 100  # percent of requests the version gets
    previous_model_version_id: str | None = None
    reason: str | None = None
    max_error_rate: float | None = None  # the rule a canary is held to until promoted
    override: str | None = None  # break-glass: why an admin served a version no gate approved


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One logged prediction of an endpoint: the input row, the output, version and latency."""

    id: str
    endpoint: str
    model_version: str
    at: float
    inputs: dict[str, Any]
    output: Any
    latency_ms: float


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """A ground-truth label for a logged prediction."""

    prediction_id: str
    label: Any
    at: float
