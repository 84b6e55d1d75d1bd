"""What the REST API reads and writes: pydantic models, so the OpenAPI document is complete.

Response models mirror the CLI's ``--json`` documents field for field (``RunRow`` is
``signoff runs --json``, ``RunDetail`` is ``signoff show --json``, ``GateOut`` a row of
``signoff gates --json``), so a remote CLI prints what a local one prints. Each model builds
itself from domain records (``of``); queries stay in the routes' services (the Store port).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from signoff.domain.audit import AuditEntry, ChainBreak
from signoff.domain.records import (
    ArtifactRecord,
    DecisionRecord,
    DeploymentRecord,
    EndpointRecord,
    GateRecord,
    ModelVersionRecord,
    RunRecord,
    TaskRunRecord,
    UserRecord,
)
from signoff.domain.specs import FlowSpec
from signoff.domain.states import RunState
from signoff.errors import SpecIssue

__all__ = [
    "AliasMove",
    "AuditEntryOut",
    "AuditVerifyOut",
    "ChainBreakOut",
    "DecisionIn",
    "DecisionOut",
    "DecisionView",
    "DeploymentOut",
    "EndpointDetail",
    "EndpointOut",
    "ErrorOut",
    "FlowDetail",
    "FlowSummary",
    "FlowValidation",
    "GateOut",
    "ModelDetail",
    "ModelSummary",
    "ModelVersionOut",
    "OutputFingerprint",
    "LoginIn",
    "LoginOut",
    "PrincipalOut",
    "Role",
    "RunCancel",
    "RunCreate",
    "RunDetail",
    "RunGate",
    "RunRow",
    "RunSummary",
    "SpecIssueOut",
    "SpecProblem",
    "TaskRunOut",
    "UserCreate",
    "UserOut",
]

Role = Literal["admin", "editor", "approver", "viewer"]
"""The roles a user may hold (the same four ``signoff users add --role`` accepts)."""

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
# no NUL characters anywhere a value is stored: PostgreSQL text cannot hold them
ParamKey = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
ParamIn = (
    bool
    | int
    | FiniteFloat
    | Annotated[str, StringConstraints(max_length=10_000, pattern=r"^[^\x00]*$")]
)
Comment = Annotated[str, StringConstraints(max_length=4000, pattern=r"^[^\x00]*$")]


def _finite(values: dict[str, float]) -> dict[str, float | None]:
    """Metrics as JSON allows them: a non-finite value (a diverged loss) becomes null."""
    return {k: (v if math.isfinite(v) else None) for k, v in values.items()}


# ---------------------------------------------------------------------------- errors
class ErrorOut(BaseModel):
    """Every error: a status code and one reason."""

    detail: str


class SpecIssueOut(BaseModel):
    """One problem in a flow file, where it is and what is wrong."""

    file: str
    line: int
    column: int
    field: str
    message: str

    @classmethod
    def of(cls, issue: SpecIssue) -> SpecIssueOut:
        return cls(
            file=issue.file,
            line=issue.line,
            column=issue.column,
            field=issue.field,
            message=issue.message,
        )


class SpecProblem(BaseModel):
    """A flow that does not validate (422): the reason and every issue found in one pass."""

    detail: str
    issues: list[SpecIssueOut] = Field(
        default_factory=list, description="empty when the request itself was malformed"
    )


# ----------------------------------------------------------------------------- flows
class FlowValidation(BaseModel):
    """A valid flow: its name, content hash, canonical spec, and any warnings."""

    valid: Literal[True] = True
    name: str
    spec_hash: str
    tasks: int
    spec: dict[str, Any]
    warnings: list[SpecIssueOut]

    @classmethod
    def of(cls, spec: FlowSpec, warnings: tuple[SpecIssue, ...]) -> FlowValidation:
        return cls(
            name=spec.name,
            spec_hash=spec.spec_hash,
            tasks=len(spec.tasks),
            spec=json.loads(spec.canonical_json()),
            warnings=[SpecIssueOut.of(w) for w in warnings],
        )


class FlowSummary(BaseModel):
    """A flow that has runs: its latest version (spec hash) and its latest run."""

    name: str
    latest_hash: str
    runs: int = Field(description="runs among the most recent ones the server looked at")
    last_run_id: str
    last_run_at: float
    last_state: RunState


class RunRow(BaseModel):
    """One run in a list (``signoff runs --json``)."""

    run_id: str
    flow: str
    state: RunState
    started_by: str
    created_at: float
    ended_at: float | None
    reason: str | None

    @classmethod
    def fields_of(cls, run: RunRecord) -> dict[str, Any]:
        return {
            "run_id": run.id,
            "flow": run.flow_name,
            "state": run.state,
            "started_by": run.started_by,
            "created_at": run.created_at,
            "ended_at": run.ended_at,
            "reason": run.reason,
        }

    @classmethod
    def of(cls, run: RunRecord) -> RunRow:
        return cls(**cls.fields_of(run))


class FlowDetail(BaseModel):
    """A flow: its latest version's canonical spec and its recent runs."""

    name: str
    latest_hash: str
    spec: dict[str, Any]
    recent_runs: list[RunRow]


# ------------------------------------------------------------------------------ runs
class RunCreate(BaseModel):
    """Start a run: a flow file's text, or the name of a flow to run again.

    ``{flow: NAME}`` re-runs the latest stored version of the flow with the code snapshot of
    its latest run. ``base_dir`` is a folder on the server whose files the run snapshots
    (commands run beside them); without it a run from ``flow_yaml`` has no code folder.
    """

    model_config = ConfigDict(extra="forbid")

    flow_yaml: str | None = Field(default=None, max_length=1_000_000)
    flow: str | None = Field(default=None, min_length=1, max_length=200)
    params: dict[ParamKey, ParamIn] = Field(default_factory=dict, max_length=200)
    base_dir: str | None = Field(default=None, min_length=1, max_length=4096)

    @model_validator(mode="after")
    def _one_source(self) -> RunCreate:
        if (self.flow_yaml is None) == (self.flow is None):
            raise ValueError(
                "give exactly one of flow_yaml (the flow file's text) or flow (a name)"
            )
        if self.flow is not None and self.base_dir is not None:
            raise ValueError("base_dir goes with flow_yaml; a re-run uses its flow's snapshot")
        return self


class RunCancel(BaseModel):
    """Why a run is cancelled (optional)."""

    model_config = ConfigDict(extra="forbid")

    reason: Comment | None = None


class DecisionView(BaseModel):
    """One recorded decision on a gate (or a refused attempt)."""

    actor: str
    decision: str
    comment: str | None
    channel: str
    at: float

    @classmethod
    def of(cls, d: DecisionRecord) -> DecisionView:
        return cls(
            actor=d.actor, decision=d.decision, comment=d.comment, channel=d.channel, at=d.at
        )


def _gate_fields(
    gate: GateRecord, tr: TaskRunRecord, decisions: list[DecisionRecord]
) -> dict[str, Any]:
    return {
        "gate_id": gate.id,
        "task": tr.task_name,
        "state": tr.state.value,
        "targets": list(gate.targets),
        "quorum": gate.quorum,
        "model_version_id": gate.model_version_id,
        "model_digest": gate.model_digest,
        "report": gate.report_path,
        "report_html": str(Path(gate.report_path).with_suffix(".html"))
        if gate.report_path
        else None,
        "report_digest": gate.report_digest,
        "opened_at": gate.opened_at,
        "expires_at": gate.expires_at,
        "decisions": [DecisionView.of(d) for d in decisions],
    }


class RunGate(BaseModel):
    """A gate of a run, as ``signoff show --json`` lists it."""

    gate_id: str
    task: str
    state: str
    targets: list[str]
    quorum: str | int
    model_version_id: str | None
    model_digest: str | None
    report: str | None = Field(description="the review report (JSON) on the server")
    report_html: str | None
    report_digest: str | None
    opened_at: float
    expires_at: float
    decisions: list[DecisionView]

    @classmethod
    def of(cls, gate: GateRecord, tr: TaskRunRecord, decisions: list[DecisionRecord]) -> RunGate:
        return cls(**_gate_fields(gate, tr, decisions))


class GateOut(BaseModel):
    """A gate with its run, policy and decisions (a row of ``signoff gates --json``, and
    ``required``: how many approvals the policy needs)."""

    run_id: str
    flow: str
    gate_id: str
    task: str
    state: str
    targets: list[str]
    quorum: str | int
    model_version_id: str | None
    model_digest: str | None
    report: str | None
    report_html: str | None
    report_digest: str | None
    opened_at: float
    expires_at: float
    decisions: list[DecisionView]
    required: int

    @classmethod
    def of(
        cls,
        run: RunRecord,
        gate: GateRecord,
        tr: TaskRunRecord,
        decisions: list[DecisionRecord],
        required: int,
    ) -> GateOut:
        return cls(
            run_id=run.id,
            flow=run.flow_name,
            required=required,
            **_gate_fields(gate, tr, decisions),
        )


class RunSummary(RunRow):
    """The short form of a run (``signoff run --json``): its open gate and deployments."""

    gate: RunGate | None
    deployments: list[dict[str, Any]]


class OutputFingerprint(BaseModel):
    """What a task run produced: its files' combined sha256, how many, how many bytes."""

    digest: str
    files: int
    bytes: int

    @classmethod
    def of(cls, artifacts: list[ArtifactRecord]) -> OutputFingerprint:
        h = hashlib.sha256()
        for a in sorted(artifacts, key=lambda a: a.path):
            h.update(f"{a.path}\0{a.sha256}\0".encode())
        return cls(digest=h.hexdigest(), files=len(artifacts), bytes=sum(a.size for a in artifacts))


class TaskRunOut(BaseModel):
    """One task run: state, params (given and logged), final metrics, data in and out."""

    task_run_id: str
    task: str
    label: str
    kind: str
    state: str
    attempt: int
    params: dict[str, Any]
    logged_params: dict[str, Any]
    metrics: dict[str, float | None]
    reason: str | None
    started_at: float | None
    ended_at: float | None
    duration_seconds: float | None
    work_dir: str
    outputs: OutputFingerprint | None = Field(description="null for tasks that run no command")
    inputs: dict[str, OutputFingerprint] = Field(
        description="upstream task label -> the fingerprint of what it produced"
    )
    result: dict[str, Any]

    @classmethod
    def of(
        cls,
        tr: TaskRunRecord,
        *,
        metrics: dict[str, float],
        logged_params: dict[str, Any],
        outputs: OutputFingerprint | None,
        inputs: dict[str, OutputFingerprint],
    ) -> TaskRunOut:
        ran = tr.started_at is not None and tr.ended_at is not None
        return cls(
            task_run_id=tr.id,
            task=tr.task_name,
            label=tr.label,
            kind=tr.kind.value,
            state=tr.state.value,
            attempt=tr.attempt,
            params=tr.params,
            logged_params=logged_params,
            metrics=_finite(metrics),
            reason=tr.reason,
            started_at=tr.started_at,
            ended_at=tr.ended_at,
            duration_seconds=(tr.ended_at or 0.0) - (tr.started_at or 0.0) if ran else None,
            work_dir=tr.work_dir,
            outputs=outputs,
            inputs=inputs,
            result=tr.result,
        )


class RunDetail(RunRow):
    """Everything ``signoff show --json`` tells: the run, each task run, its gates."""

    flow_hash: str
    params: dict[str, Any]
    work_dir: str
    facts: dict[str, Any] = Field(description="code version, environment, seeds it ran with")
    tasks: list[TaskRunOut]
    gates: list[RunGate]


# ----------------------------------------------------------------------------- gates
class DecisionIn(BaseModel):
    """A decision on a gate."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    comment: Comment | None = None


class DecisionOut(BaseModel):
    """What a decision did."""

    gate_id: str
    run_id: str
    decision: str
    gate_state: str
    approvals: int
    required: int


# ---------------------------------------------------------------------------- models
class ModelVersionOut(BaseModel):
    """A registered model version: files digest, flavor, signature, metrics, lineage."""

    id: str
    name: str
    version: int
    label: str
    flavor: str
    aliases: list[str]
    digest: str
    signature: list[dict[str, str]]
    metrics: dict[str, float | None]
    params: dict[str, Any]
    run_id: str
    task_run_id: str
    created_at: float

    @classmethod
    def of(cls, mv: ModelVersionRecord, aliases: dict[str, str]) -> ModelVersionOut:
        return cls(
            id=mv.id,
            name=mv.name,
            version=mv.version,
            label=mv.label,
            flavor=mv.flavor,
            aliases=sorted(a for a, v in aliases.items() if v == mv.id),
            digest=mv.digest,
            signature=mv.signature,
            metrics=_finite(mv.metrics),
            params=mv.params,
            run_id=mv.run_id,
            task_run_id=mv.task_run_id,
            created_at=mv.created_at,
        )


class ModelSummary(BaseModel):
    """A model name: how many versions, the latest, and where its aliases point."""

    name: str
    versions: int
    latest: str
    aliases: dict[str, str] = Field(description="alias -> model version label")


class AliasMove(BaseModel):
    """One move of an alias: to which version, by whom, when and why."""

    alias: str
    model_version_id: str
    model_version: str | None
    actor: str
    at: float
    reason: str


class ModelDetail(BaseModel):
    """A model: every version, its aliases (alias -> label) and their history."""

    name: str
    aliases: dict[str, str]
    versions: list[ModelVersionOut]
    alias_history: list[AliasMove]


# ------------------------------------------------------------------------- endpoints
class EndpointOut(BaseModel):
    """A prediction endpoint: where it listens, whether it serves, which model version."""

    name: str
    url: str
    state: str
    pid: int | None
    model_version: str | None
    model_version_id: str | None
    digest: str | None
    updated_at: float

    @classmethod
    def fields_of(
        cls, ep: EndpointRecord, model: ModelVersionRecord | None, alive: bool
    ) -> dict[str, Any]:
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


class DeploymentOut(BaseModel):
    """One change of what an endpoint serves, with the approval it shipped under."""

    id: str
    kind: str
    model_version_id: str
    model_version: str | None
    previous_model_version_id: str | None
    traffic: int
    run_id: str | None
    gate_id: str | None
    deployed_by: str
    at: float
    reason: str | None
    max_error_rate: float | None
    override: str | None = Field(
        default=None, description="break-glass: why an admin served a version no gate approved"
    )

    @classmethod
    def of(cls, d: DeploymentRecord, labels: dict[str, str]) -> DeploymentOut:
        return cls(
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


class EndpointDetail(EndpointOut):
    """An endpoint and its deployments, oldest first."""

    deployments: list[DeploymentOut]


# ----------------------------------------------------------------------------- users
class UserOut(BaseModel):
    """Someone who starts runs or decides gates."""

    name: str
    email: str | None
    roles: list[str]
    active: bool
    created_at: float

    @classmethod
    def of(cls, user: UserRecord) -> UserOut:
        return cls(
            name=user.name,
            email=user.email,
            roles=list(user.roles),
            active=user.active,
            created_at=user.created_at,
        )


class UserCreate(BaseModel):
    """A new user (passwords for the web UI are set from the command line)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    ]
    email: (
        Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s\x00]+@[^@\s\x00]+$")]
        | None
    ) = None
    roles: list[Role] = Field(default=["approver"], min_length=1, max_length=4)


class PrincipalOut(BaseModel):
    """Who the request's token acts as, and what it may do."""

    user: str
    scopes: list[str]
    roles: list[str]


class LoginIn(BaseModel):
    """A name and password exchanged for a token (``signoff login`` against a server)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)
    scopes: list[Annotated[str, Field(max_length=20)]] | None = Field(
        default=None, max_length=10, description="default: all the user's roles allow"
    )
    days: float = Field(default=30.0, gt=0, le=365, description="the token's lifetime")


class LoginOut(BaseModel):
    """A new token (shown once) and what it allows."""

    user: str
    token: str
    scopes: list[str]
    expires_at: float


# ----------------------------------------------------------------------------- audit
class AuditEntryOut(BaseModel):
    """One entry of the hash-chained audit log."""

    seq: int
    at: float
    event: str
    run_id: str | None
    gate_id: str | None
    actor: str | None
    data: dict[str, Any]
    hash: str

    @classmethod
    def of(cls, e: AuditEntry) -> AuditEntryOut:
        return cls(
            seq=e.seq,
            at=e.at,
            event=e.event,
            run_id=e.run_id,
            gate_id=e.gate_id,
            actor=e.actor,
            data=e.data,
            hash=e.hash,
        )


class ChainBreakOut(BaseModel):
    """An audit entry that was edited, deleted or moved."""

    seq: int
    reason: str

    @classmethod
    def of(cls, b: ChainBreak) -> ChainBreakOut:
        return cls(seq=b.seq, reason=b.reason)


class AuditVerifyOut(BaseModel):
    """The audit log checked (``signoff audit verify --json``): chain, checkpoints, decisions."""

    entries: int
    intact: bool
    checkpoints: int
    checkpoints_verified: int
    decisions: int
    decisions_matched: int
    summary: str
    breaks: list[ChainBreakOut]
