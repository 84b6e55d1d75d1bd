"""The read models: what ``--json`` prints and what the REST API answers, one definition each.

Every model is frozen. The field names, their order and their types are the public JSON of
signoff (the CLI's documents and the OpenAPI document of ``/api/v1``): never rename one.
Metrics are ``float | None``: JSON has no NaN, so a non-finite value (a diverged loss) is null.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from signoff.domain.states import RunState

__all__ = [
    "AliasMove",
    "AuditEntryOut",
    "AuditVerifyOut",
    "ChainBreakOut",
    "CompareColumn",
    "DecisionOut",
    "DecisionView",
    "DeploymentOut",
    "EndpointDetail",
    "EndpointOut",
    "FlowDetail",
    "FlowSummary",
    "FlowValidation",
    "GateOut",
    "GateRow",
    "HistoryRow",
    "ModelDetail",
    "ModelRow",
    "ModelSummary",
    "ModelVersionOut",
    "OutputFingerprint",
    "PrincipalOut",
    "RunDetail",
    "RunGate",
    "RunRow",
    "RunSummary",
    "SpecIssueOut",
    "TaskRunOut",
    "UserOut",
    "UserRow",
    "View",
]


class View(BaseModel):
    """A read model: frozen, built from records, dumped as JSON."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())


# ----------------------------------------------------------------------------- flows
class SpecIssueOut(View):
    """One problem in a flow file, where it is and what is wrong."""

    file: str
    line: int
    column: int
    field: str
    message: str


class FlowValidation(View):
    """A valid flow: its name, content hash, canonical spec, and any warnings."""

    valid: Literal[True] = True
    name: str
    spec_hash: str
    tasks: int
    spec: dict[str, Any]
    warnings: list[SpecIssueOut]


class FlowSummary(View):
    """A flow that has runs: its latest version (spec hash) and its latest run."""

    name: str
    latest_hash: str
    runs: int = Field(description="runs among the most recent ones the server looked at")
    last_run_id: str
    last_run_at: float
    last_state: RunState


class RunRow(View):
    """One run in a list (``signoff runs --json``)."""

    run_id: str
    flow: str
    state: RunState
    started_by: str
    created_at: float
    ended_at: float | None
    reason: str | None


class FlowDetail(View):
    """A flow: its latest version's canonical spec and its recent runs."""

    name: str
    latest_hash: str
    spec: dict[str, Any]
    recent_runs: list[RunRow]


# ------------------------------------------------------------------------------ runs
class DecisionView(View):
    """One recorded decision on a gate (or a refused attempt)."""

    actor: str
    decision: str
    comment: str | None
    channel: str
    at: float


class RunGate(View):
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


class _OfRun(View):
    """The run a gate belongs to (first in a gate row)."""

    run_id: str
    flow: str


class GateRow(RunGate, _OfRun):
    """A gate waiting for a decision, with its run (a row of ``signoff gates --json``)."""


class GateOut(GateRow):
    """A gate with its run, policy and decisions (a row of ``signoff gates --json``, and
    ``required``: how many approvals the policy needs)."""

    required: int


class RunSummary(RunRow):
    """The short form of a run (``signoff run --json``): its open gate and deployments."""

    gate: RunGate | None
    deployments: list[dict[str, Any]]


class OutputFingerprint(View):
    """What a task run produced: its files' combined sha256, how many, how many bytes."""

    digest: str
    files: int
    bytes: int


class TaskRunOut(View):
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
    executor: str | None = Field(
        default=None, description="which executor ran it (local, ray); null before it ended"
    )
    node: str | None = Field(
        default=None, description="the machine (or Ray node) it ran on; null before it ended"
    )
    outputs: OutputFingerprint | None = Field(description="null for tasks that run no command")
    inputs: dict[str, OutputFingerprint] = Field(
        description="upstream task label -> the fingerprint of what it produced"
    )
    result: dict[str, Any]


class RunDetail(RunRow):
    """Everything ``signoff show --json`` tells: the run, each task run, its gates."""

    flow_hash: str
    params: dict[str, Any]
    work_dir: str
    facts: dict[str, Any] = Field(description="code version, environment, seeds it ran with")
    tasks: list[TaskRunOut]
    gates: list[RunGate]


class DecisionOut(View):
    """What a decision did."""

    gate_id: str
    run_id: str
    decision: str
    gate_state: str
    approvals: int
    required: int


class CompareColumn(View):
    """One task run side by side with others (``signoff compare --json``)."""

    column: str
    task_run_id: str
    run_id: str
    state: str
    params: dict[str, Any]
    metrics: dict[str, float | None]


# ---------------------------------------------------------------------------- models
class ModelVersionOut(View):
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


class ModelRow(View):
    """A model version in ``signoff models --json``."""

    id: str
    name: str
    version: int
    label: str
    flavor: str
    aliases: list[str]
    metrics: dict[str, float | None]
    run_id: str
    digest: str


class ModelSummary(View):
    """A model name: how many versions, the latest, and where its aliases point."""

    name: str
    versions: int
    latest: str
    aliases: dict[str, str] = Field(description="alias -> model version label")


class AliasMove(View):
    """One move of an alias: to which version, by whom, when and why."""

    alias: str
    model_version_id: str
    model_version: str | None
    actor: str
    at: float
    reason: str


class ModelDetail(View):
    """A model: every version, its aliases (alias -> label) and their history."""

    name: str
    aliases: dict[str, str]
    versions: list[ModelVersionOut]
    alias_history: list[AliasMove]


# ------------------------------------------------------------------------- endpoints
class EndpointOut(View):
    """A prediction endpoint: where it listens, whether it serves, which model version."""

    name: str
    url: str
    state: str
    pid: int | None
    model_version: str | None
    model_version_id: str | None
    digest: str | None
    updated_at: float


class DeploymentOut(View):
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


class EndpointDetail(EndpointOut):
    """An endpoint and its deployments, oldest first."""

    deployments: list[DeploymentOut]


class HistoryRow(View):
    """One deployment in ``signoff endpoints history --json``, with its approvers."""

    id: str
    at: float
    kind: str
    model_version: str | None
    model_version_id: str
    traffic: int
    previous_model_version: str | None
    deployed_by: str
    run_id: str | None
    gate_id: str | None
    approved_by: list[str]
    reason: str | None
    override: str | None


# ----------------------------------------------------------------------------- users
class UserOut(View):
    """Someone who starts runs or decides gates."""

    name: str
    email: str | None
    roles: list[str]
    active: bool
    created_at: float


class UserRow(View):
    """A user in ``signoff users list --json``."""

    name: str
    email: str | None
    roles: list[str]
    active: bool


class PrincipalOut(View):
    """Who the request's token acts as, and what it may do."""

    user: str
    scopes: list[str]
    roles: list[str]


# ----------------------------------------------------------------------------- audit
class AuditEntryOut(View):
    """One entry of the hash-chained audit log."""

    seq: int
    at: float
    event: str
    run_id: str | None
    gate_id: str | None
    actor: str | None
    data: dict[str, Any]
    hash: str


class ChainBreakOut(View):
    """An audit entry that was edited, deleted or moved."""

    seq: int
    reason: str


class AuditVerifyOut(View):
    """The audit log checked (``signoff audit verify --json``): chain, checkpoints, decisions."""

    entries: int
    intact: bool
    checkpoints: int
    checkpoints_verified: int
    decisions: int
    decisions_matched: int
    summary: str
    breaks: list[ChainBreakOut]
