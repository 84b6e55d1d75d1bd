"""The store port, one role at a time: each consumer asks for the roles it uses.

``Store`` is the union of every role (what ``SqlStore`` implements); services and routes are
typed against the narrow roles (``RunStore``, ``GateStore``, ``ModelStore``, ...) they need.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from signoff.domain.audit import AuditEntry
from signoff.domain.ports_schedules import ScheduleStore
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
from signoff.domain.specs import FlowSpec
from signoff.domain.states import RunState, TaskRunState

__all__ = [
    "AccountStore",
    "EndpointStore",
    "GateStore",
    "ModelStore",
    "PredictionStore",
    "RunStore",
    "SessionStore",
    "Store",
    "WebSession",
]


class RunStore(Protocol):
    """Flows, runs, task runs and their transitions, leases, task outputs and the cache."""

    # flows and runs
    def save_flow(self, spec: FlowSpec, source: str | None) -> None: ...
    def get_flow(self, flow_hash: str) -> FlowSpec: ...
    def create_run(self, run: RunRecord, task_runs: Sequence[TaskRunRecord]) -> None: ...
    def get_run(self, run_id: str) -> RunRecord:
        """The run with exactly this id (NotFoundError otherwise)."""
        ...

    def runs_by_prefix(self, prefix: str, limit: int = 2) -> list[RunRecord]:
        """Runs whose id starts with ``prefix`` (taken literally), at most ``limit``."""
        ...

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


class GateStore(Protocol):
    """Gates and their decisions, link tokens, the audit chain and notifications."""

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
    def runs_with_decided_gates(self) -> list[str]:
        """Runs waiting at a gate that also have a gate already decided (several gates)."""
        ...

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

    # link tokens, audit, notifications
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


class AccountStore(Protocol):
    """People: users, groups, password hashes and API tokens."""

    def add_user(self, user: UserRecord, password_hash: str | None = None) -> None: ...
    def get_user(self, name: str) -> UserRecord | None: ...
    def list_users(self) -> list[UserRecord]: ...
    def update_user(self, name: str, **changes: Any) -> None: ...
    def has_password_users(self) -> bool: ...
    def password_hash(self, name: str) -> str | None: ...
    def set_password_hash(self, name: str, password_hash: str) -> None: ...
    def groups(self) -> dict[str, list[str]]: ...
    def set_group(self, group: str, members: Sequence[str]) -> None: ...
    def add_api_token(
        self,
        *,
        prefix: str,
        token_hash: str,
        user: str,
        scopes: Sequence[str],
        created_at: float,
        expires_at: float | None,
    ) -> None: ...
    def api_token(self, prefix: str) -> dict[str, Any] | None: ...
    def api_tokens_of(self, user: str) -> list[dict[str, Any]]: ...
    def revoke_api_token(self, prefix: str, at: float) -> None: ...


class ModelStore(Protocol):
    """The model registry: versions and their aliases (``champion``, ``challenger``)."""

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


class EndpointStore(Protocol):
    """Serving endpoints and the history of their deployments."""

    def get_endpoint(self, name: str) -> EndpointRecord | None: ...
    def list_endpoints(self) -> list[EndpointRecord]: ...
    def save_endpoint(self, endpoint: EndpointRecord) -> None: ...
    def add_deployment(self, deployment: DeploymentRecord) -> None: ...
    def list_deployments(self, endpoint: str) -> list[DeploymentRecord]: ...


class PredictionStore(Protocol):
    """The prediction log and its feedback labels (written by endpoint processes)."""

    def add_predictions(self, predictions: Sequence[PredictionRecord]) -> None: ...
    def list_predictions(self, endpoint: str, limit: int = 100) -> list[PredictionRecord]: ...
    def add_feedback(self, feedback: FeedbackRecord) -> None: ...
    def list_feedback(self, prediction_ids: Sequence[str]) -> list[FeedbackRecord]: ...
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


class Store(
    RunStore,
    GateStore,
    AccountStore,
    ModelStore,
    EndpointStore,
    PredictionStore,
    ScheduleStore,
    SessionStore,
    Protocol,
):
    """Durable state: the only source of truth for flows, runs, gates, models and endpoints."""

    @property
    def url(self) -> str:
        """Where the store lives (a database URL, its password hidden)."""
        ...

    def close(self) -> None: ...
