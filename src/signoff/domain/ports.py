"""Ports: what the services need from the outside world, as Protocols (adapters implement them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from signoff.domain.audit import AuditEntry
from signoff.domain.records import (
    ArtifactRecord,
    AuditEvent,
    DecisionRecord,
    DeploymentRecord,
    EndpointRecord,
    FeedbackRecord,
    GateRecord,
    LinkToken,
    MetricRecord,
    ModelVersionRecord,
    PredictionRecord,
    RunRecord,
    TaskOutputs,
    TaskRunRecord,
    TransitionRecord,
    UserRecord,
)
from signoff.domain.specs import Catchup, FlowSpec, Overlap, ParamValue, TriggerSpec
from signoff.domain.states import RunState, TaskRunState

from .ports_execution import Clock, Executor, TaskExecution, TaskOutcome

__all__ = [
    "Claim",
    "Clock",
    "FiringRecord",
    "FiringState",
    "RunStarter",
    "ScheduleRecord",
    "ScheduleStore",
    "Message",
    "Notifier",
    "EndpointProcessInfo",
    "EndpointRunner",
    "EndpointState",
    "Executor",
    "RolloverResult",
    "StartedEndpoint",
    "Store",
    "TaskExecution",
    "TaskOutcome",
    "VersionState",
]


@dataclass(frozen=True, slots=True)
class StartedEndpoint:
    """A serving process that answered its health check."""

    url: str
    port: int
    pid: int


EndpointProcessInfo = StartedEndpoint


@dataclass(frozen=True, slots=True)
class VersionState:
    """One model version loaded in an endpoint process: its traffic share and its counts."""

    model_version: str
    digest: str
    traffic: int  # percent of requests routed to it
    requests: int  # prediction requests answered since it was loaded
    errors: int  # of those, the ones the model failed (5xx)
    in_flight: int = 0
    model_dir: str | None = None


@dataclass(frozen=True, slots=True)
class EndpointState:
    """What an endpoint process holds: its loaded versions and the traffic split."""

    endpoint: str
    versions: tuple[VersionState, ...]

    @property
    def traffic(self) -> dict[str, int]:
        """Share (percent) per version that gets any traffic."""
        return {v.model_version: v.traffic for v in self.versions if v.traffic > 0}

    @property
    def primary(self) -> str | None:
        """The version with the largest share (the stable one during a canary)."""
        serving = [v for v in self.versions if v.traffic > 0]
        if not serving:
            return None
        return max(serving, key=lambda v: v.traffic).model_version

    def version(self, model_version: str) -> VersionState | None:
        """The loaded version with this label, if any."""
        for v in self.versions:
            if v.model_version == model_version:
                return v
        return None


@dataclass(frozen=True, slots=True)
class RolloverResult:
    """How a rollover (or canary, promote, rollback) ended.

    ``rolled_back`` is true when the new version got traffic and the error-rate rule took it
    away again; ``reason`` then says why. ``seconds`` runs from the call to the moment the
    new version received its share of the traffic.
    """

    model_version: str
    previous: str | None
    traffic: dict[str, int]
    seconds: float
    rolled_back: bool = False
    reason: str | None = None
    requests: int = 0  # answered by the new version during probation
    errors: int = 0


class EndpointRunner(Protocol):
    """Starts and stops the processes that serve models, and swaps models inside them.

    An endpoint process holds several loaded versions and a traffic split; ``rollover``
    loads a version beside the serving one (digest check, warm-up), switches traffic to it,
    watches its error rate for ``probation_seconds``, and rolls back automatically when it
    exceeds ``max_error_rate`` (``heartbeat``, if given, is called every few tenths of a
    second meanwhile). Failures to load raise :class:`signoff.errors.ExecutionError` with the
    endpoint's reason; the serving version is then untouched.
    """

    def start(
        self, name: str, model_dir: Path, digest: str, model_version: str, port: int | None
    ) -> Any: ...

    def stop(self, pid: int, timeout: float = 10.0) -> None: ...

    def is_alive(self, pid: int) -> bool: ...

    def find(self, name: str) -> Any | None: ...

    def load(
        self, name: str, url: str, model_dir: Path, digest: str, model_version: str
    ) -> None: ...

    def set_traffic(self, name: str, url: str, traffic: Mapping[str, int]) -> None: ...

    def unload(self, name: str, url: str, model_version: str) -> None: ...

    def state(self, name: str, url: str) -> EndpointState: ...

    def rollover(
        self,
        name: str,
        url: str,
        model_dir: Path,
        digest: str,
        model_version: str,
        *,
        traffic: int = 100,
        probation_seconds: float = 0.0,
        max_error_rate: float = 0.05,
        heartbeat: Callable[[], None] | None = None,
    ) -> RolloverResult: ...


@dataclass(frozen=True, slots=True)
class Message:
    """A notification to one person: subject, plain text, HTML, and where it goes."""

    to_user: str
    to_address: str | None
    subject: str
    text: str
    html: str
    key: str  # idempotency key: the same key is sent at most once


class Notifier(Protocol):
    """Delivers messages (SMTP, the local outbox, a webhook).

    ``personal``: whether only the addressee reads what is sent (e-mail). Only a personal
    notifier is given a person's signed decision links; a shared one (a team channel) gets
    one notice per gate event with the review page's address, where readers sign in.
    """

    channel: str
    personal: bool

    def send(self, message: Message) -> str:
        """Deliver; return a short note (message id, file path). Raise on failure."""
        ...


class Store(Protocol):
    """Durable state: the only source of truth for flows, runs, gates, models and endpoints."""

    # flows and runs
    def save_flow(self, spec: FlowSpec, source: str | None) -> None: ...
    def get_flow(self, flow_hash: str) -> FlowSpec: ...
    def create_run(self, run: RunRecord, task_runs: Sequence[TaskRunRecord]) -> None: ...
    def get_run(self, run_id: str) -> RunRecord: ...
    def list_runs(self, limit: int = 50) -> list[RunRecord]: ...
    def get_task_run(self, task_run_id: str) -> TaskRunRecord: ...
    def list_task_runs(self, run_id: str) -> list[TaskRunRecord]: ...
    def list_transitions(self, run_id: str) -> list[TransitionRecord]: ...

    # the one door for state changes (compare-and-set + transition row, one transaction)
    def transition_run(
        self,
        run: RunRecord,
        new: RunState,
        *,
        at: float,
        reason: str | None = None,
        actor: str | None = None,
    ) -> RunRecord: ...
    def transition_task_run(
        self,
        task_run: TaskRunRecord,
        new: TaskRunState,
        *,
        at: float,
        reason: str | None = None,
        actor: str | None = None,
        changes: Mapping[str, Any] | None = None,
        via: Sequence[TaskRunState] = (),
        outputs: TaskOutputs | None = None,
    ) -> TaskRunRecord: ...

    # leases: one process drives a run at a time
    def claim_run(self, run_id: str, owner: str, *, now: float, ttl: float) -> str | None: ...
    def release_run(self, run_id: str, owner: str) -> None: ...
    def lease_of(self, run_id: str) -> tuple[str | None, float | None]: ...

    # tracking
    def record_outputs(
        self,
        task_run_id: str,
        *,
        params: Mapping[str, Any],
        metrics: Sequence[MetricRecord],
        tags: Mapping[str, str],
    ) -> None: ...
    def list_metrics(self, task_run_ids: Sequence[str]) -> list[MetricRecord]: ...
    def logged_params(self, task_run_id: str) -> dict[str, Any]: ...
    def logged_tags(self, task_run_id: str) -> dict[str, str]: ...
    def list_artifacts(self, task_run_id: str) -> list[ArtifactRecord]: ...
    def find_cached(self, cache_key: str) -> TaskRunRecord | None: ...

    # registry
    def add_model_version(self, record: ModelVersionRecord) -> ModelVersionRecord: ...
    def next_model_version(self, name: str) -> int: ...
    def get_model_version(self, model_version_id: str) -> ModelVersionRecord: ...
    def model_versions_of(self, task_run_id: str) -> list[ModelVersionRecord]: ...
    def list_model_versions(self, name: str | None = None) -> list[ModelVersionRecord]: ...
    def set_alias(
        self, name: str, alias: str, model_version_id: str, *, actor: str, at: float, reason: str
    ) -> None: ...
    def aliases(self, name: str) -> dict[str, str]: ...
    def alias_history(self, name: str) -> list[dict[str, Any]]: ...

    # gates
    def open_gate(
        self,
        gate: GateRecord,
        task_run: TaskRunRecord,
        *,
        at: float,
        policy: dict[str, Any] | None = None,
        audit: Sequence[AuditEvent] = (),
    ) -> TaskRunRecord: ...
    def waiting_gates(self) -> list[GateRecord]: ...
    def close_gate(
        self,
        task_run: TaskRunRecord,
        new_state: TaskRunState,
        run: RunRecord,
        run_state: RunState | None,
        *,
        at: float,
        reason: str,
        actor: str | None,
        audit: Sequence[AuditEvent] = (),
    ) -> None: ...
    def gate_policy(self, gate_id: str) -> dict[str, Any]: ...
    def set_reminded(self, gate_id: str, at: float) -> None: ...
    def mark_gate_announced(self, gate_id: str, at: float) -> None: ...
    def get_gate(self, gate_id: str) -> GateRecord: ...
    def gate_of_task_run(self, task_run_id: str) -> GateRecord | None: ...
    def gates_of_run(self, run_id: str) -> list[GateRecord]: ...
    def list_decisions(self, gate_id: str) -> list[DecisionRecord]: ...
    def all_decisions(self) -> list[DecisionRecord]: ...
    def add_decision(
        self,
        decision: DecisionRecord,
        task_run: TaskRunRecord,
        new_state: TaskRunState | None,
        *,
        reason: str | None = None,
        audit: Sequence[AuditEvent] = (),
        link_token_hash: str | None = None,
    ) -> TaskRunRecord: ...
    def add_refusal(self, decision: DecisionRecord, audit: Sequence[AuditEvent] = ()) -> None: ...

    # people, tokens, audit, notifications
    def add_user(self, user: UserRecord, password_hash: str | None = None) -> None: ...
    def get_user(self, name: str) -> UserRecord | None: ...
    def list_users(self) -> list[UserRecord]: ...
    def groups(self) -> dict[str, list[str]]: ...
    def set_group(self, group: str, members: Sequence[str]) -> None: ...
    def add_link_tokens(self, tokens: Sequence[LinkToken]) -> None: ...
    def link_token(self, token_hash: str) -> LinkToken | None: ...
    def append_audit(self, events: Sequence[AuditEvent], *, at: float) -> None: ...
    def list_audit(self, run_id: str | None = None) -> list[AuditEntry]: ...
    def claim_notification(
        self,
        *,
        key: str,
        gate_id: str,
        user: str,
        kind: str,
        channel: str,
        at: float,
        detail: str | None = None,
        retake_unsent: bool = False,
    ) -> bool: ...
    def release_notification(self, key: str) -> None: ...
    def mark_notification_sent(self, key: str, at: float) -> None: ...
    def notifications_of(self, gate_id: str) -> list[dict[str, Any]]: ...

    # endpoints
    def get_endpoint(self, name: str) -> EndpointRecord | None: ...
    def list_endpoints(self) -> list[EndpointRecord]: ...
    def save_endpoint(self, endpoint: EndpointRecord) -> None: ...
    def add_deployment(self, deployment: DeploymentRecord) -> None: ...
    def list_deployments(self, endpoint: str) -> list[DeploymentRecord]: ...

    # prediction log and feedback (written by endpoint processes)
    def add_predictions(self, predictions: Sequence[PredictionRecord]) -> None: ...
    def list_predictions(self, endpoint: str, limit: int = 100) -> list[PredictionRecord]: ...
    def add_feedback(self, feedback: FeedbackRecord) -> None: ...
    def list_feedback(self, prediction_ids: Sequence[str]) -> list[FeedbackRecord]: ...


@dataclass(frozen=True, slots=True)
class WebSession:
    """A signed-in browser as the store keeps it: the hash of its id, never the id itself."""

    id_hash: str
    user: str
    created_at: float
    last_seen_at: float
    client: str | None


class SessionStore(Protocol):
    """Web sign-in state shared by every server process: sessions and failed logins."""

    def add_web_session(
        self, id_hash: str, user: str, *, at: float, client: str | None
    ) -> None: ...
    def web_session(self, id_hash: str) -> WebSession | None: ...
    def touch_web_session(self, id_hash: str, at: float) -> None: ...
    def delete_web_session(self, id_hash: str) -> None: ...
    def delete_web_sessions(
        self,
        *,
        user: str | None = None,
        idle_before: float | None = None,
        created_before: float | None = None,
    ) -> int: ...
    def add_login_failure(
        self, user: str, client: str, at: float, *, forget_before: float | None = None
    ) -> None: ...
    def count_login_failures(self, *, user: str, client: str, since: float) -> tuple[int, int]: ...
    def clear_login_failures(self, user: str, *, before: float | None = None) -> None: ...


__all__ += ["SessionStore", "WebSession"]


# ----------------------------------------------------------------- schedules and triggers


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A flow the scheduler knows: its cron line (if any), policies, triggers and flow file.

    ``next_at`` is the next scheduled time not yet handled (seconds since the epoch);
    ``cli_trigger_ids`` names the triggers added with the CLI (the others come from the
    flow file and are replaced when the file is added again); ``trigger_state`` keeps what
    triggers remember between evaluations (data fingerprints, error-rate samples).
    """

    flow: str
    cron: str | None
    timezone: str
    catchup: Catchup
    overlap: Overlap
    paused: bool
    next_at: float | None
    flow_path: str
    spec_hash: str
    created_at: float
    updated_at: float
    triggers: tuple[TriggerSpec, ...] = ()
    cli_trigger_ids: tuple[str, ...] = ()
    trigger_state: dict[str, Any] = field(default_factory=dict)


class FiringState(StrEnum):
    """Where one firing (a scheduled time, a trigger firing, a webhook call) is."""

    PENDING = "pending"  # recorded; its run is not started yet
    STARTING = "starting"  # a scheduler claimed it and is starting its run
    STARTED = "started"  # its run exists (run_id)
    QUEUED = "queued"  # waits for the flow's earlier run to end (overlap: queue)
    SKIPPED = "skipped"  # not run: an earlier run was still going (overlap: skip)
    MISSED = "missed"  # not run: the scheduler was down at that time (catchup)
    FAILED = "failed"  # its run could not be started (reason)

    @property
    def is_open(self) -> bool:
        """Whether a scheduler still has to act on it."""
        return self in (FiringState.PENDING, FiringState.STARTING, FiringState.QUEUED)


@dataclass(frozen=True, slots=True)
class FiringRecord:
    """One reason to start a flow, recorded under a unique key before its run is started.

    Keys: ``schedule:FLOW@TIME`` (a scheduled time, UTC), ``trigger:FLOW#RULE#N`` (the n-th
    firing of a rule), ``webhook:FLOW#KEY`` (an API call).
    """

    key: str
    flow: str
    kind: str  # "schedule", a trigger kind, or "webhook"
    state: FiringState
    fired_at: float
    scheduled_at: float | None = None
    trigger_id: str | None = None
    run_id: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    owner: str | None = None
    claimed_at: float | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of claiming a firing: ``claimed`` (with the firing), ``busy`` or ``gone``.

    ``busy``: the flow has a run going, or another firing of it is being started;
    ``gone``: another scheduler took it, or it is no longer open.
    """

    outcome: str
    firing: FiringRecord | None = None
    recovered: bool = False  # it was left `starting` by a scheduler that stopped


class RunStarter(Protocol):
    """Starts and cancels runs (the engine)."""

    def start_run(
        self,
        spec: FlowSpec,
        *,
        base_dir: Path | None,
        source: str | None = None,
        params: Mapping[str, ParamValue] | None = None,
        started_by: str,
        reproduces: str | None = None,
        trigger: Mapping[str, Any] | None = None,
    ) -> RunRecord: ...

    def cancel(self, run_id: str, *, actor: str, reason: str | None = None) -> RunRecord: ...


class ScheduleStore(Store, Protocol):
    """The store as the scheduler needs it: schedules, firings and the prediction log."""

    def save_schedule(self, schedule: ScheduleRecord) -> None: ...
    def get_schedule(self, flow: str) -> ScheduleRecord | None: ...
    def list_schedules(self) -> list[ScheduleRecord]: ...
    def remove_schedule(self, flow: str) -> bool: ...
    def set_paused(self, flow: str, paused: bool, *, next_at: float | None, at: float) -> None: ...
    def advance_schedule(
        self,
        flow: str,
        *,
        expected_next_at: float | None,
        next_at: float | None,
        firings: Sequence[FiringRecord],
        at: float,
    ) -> list[FiringRecord]: ...
    def add_firing(self, firing: FiringRecord) -> bool: ...
    def get_firing(self, key: str) -> FiringRecord | None: ...
    def list_firings(
        self,
        *,
        flow: str | None = None,
        states: Sequence[FiringState] | None = None,
        trigger_id: str | None = None,
        limit: int = 100,
        oldest_first: bool = False,
    ) -> list[FiringRecord]: ...
    def claim_firing(
        self, key: str, *, owner: str, now: float, stale_before: float, require_idle: bool
    ) -> Claim: ...
    def settle_firing(
        self,
        key: str,
        state: FiringState,
        *,
        run_id: str | None = None,
        reason: str | None = None,
        from_states: Sequence[FiringState] = (),
    ) -> bool: ...
    def run_of_firing(self, flow: str, key: str) -> str | None: ...
    def active_run_ids(self, flow: str) -> list[str]: ...
    def set_trigger_state(self, flow: str, trigger_id: str, state: dict[str, Any]) -> None: ...
    def predictions_between(
        self,
        endpoint: str,
        *,
        since: float,
        until: float,
        model_version: str | None = None,
        limit: int = 10_000,
    ) -> list[PredictionRecord]: ...
    def labelled_predictions(
        self,
        endpoint: str,
        *,
        since: float,
        until: float,
        model_version: str | None = None,
        limit: int = 10_000,
    ) -> list[tuple[PredictionRecord, Any]]: ...
    def scheduler_lock_path(self) -> Path | None: ...
