"""Ports: what the services need from the outside world, as Protocols (adapters implement them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from signoff.domain.records import (
    ArtifactRecord,
    DecisionRecord,
    DeploymentRecord,
    EndpointRecord,
    GateRecord,
    MetricRecord,
    ModelVersionRecord,
    RunRecord,
    TaskOutputs,
    TaskRunRecord,
    TransitionRecord,
)
from signoff.domain.specs import FlowSpec
from signoff.domain.states import RunState, TaskRunState

__all__ = [
    "Clock",
    "EndpointProcessInfo",
    "EndpointRunner",
    "Executor",
    "StartedEndpoint",
    "Store",
    "TaskExecution",
    "TaskOutcome",
]


class Clock(Protocol):
    """Where time comes from (a fake one in tests)."""

    def now(self) -> float:
        """Seconds since the epoch."""
        ...


@dataclass(frozen=True, slots=True)
class TaskExecution:
    """Everything an executor needs to run one task run's command."""

    task_run_id: str
    command: str
    work_dir: Path
    env: Mapping[str, str]
    cpu: float = 1.0
    gpu: float = 0.0
    timeout: float | None = None
    call: str | None = None  # "module:function": a Python task run in-process
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Path] = field(default_factory=dict)  # upstream name -> its output folder


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    """How a task run's command ended."""

    task_run_id: str
    exit_code: int
    error: str | None = None  # set when the command could not even start


class Executor(Protocol):
    """Runs task commands; ``submit`` returns at once, ``wait_any`` blocks for finished ones."""

    @property
    def capacity(self) -> int:
        """How many slots (cores' worth of tasks) run at the same time."""
        ...

    def slots_needed(self, cpu: float) -> int: ...

    def free_slots(self) -> int: ...

    def in_flight(self) -> int: ...

    def submit(self, execution: TaskExecution) -> None: ...

    def wait_any(self, timeout: float | None = None) -> list[TaskOutcome]: ...

    def cancel(self, task_run_id: str) -> None: ...

    def shutdown(self) -> None: ...


@dataclass(frozen=True, slots=True)
class StartedEndpoint:
    """A serving process that answered its health check."""

    url: str
    port: int
    pid: int


EndpointProcessInfo = StartedEndpoint


class EndpointRunner(Protocol):
    """Starts and stops the processes that serve models."""

    def start(
        self, name: str, model_dir: Path, digest: str, model_version: str, port: int | None
    ) -> Any: ...

    def stop(self, pid: int, timeout: float = 10.0) -> None: ...

    def is_alive(self, pid: int) -> bool: ...


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
        self, gate: GateRecord, task_run: TaskRunRecord, *, at: float
    ) -> TaskRunRecord: ...
    def get_gate(self, gate_id: str) -> GateRecord: ...
    def gate_of_task_run(self, task_run_id: str) -> GateRecord | None: ...
    def gates_of_run(self, run_id: str) -> list[GateRecord]: ...
    def list_decisions(self, gate_id: str) -> list[DecisionRecord]: ...
    def add_decision(
        self,
        decision: DecisionRecord,
        task_run: TaskRunRecord,
        new_state: TaskRunState | None,
        *,
        reason: str | None = None,
    ) -> TaskRunRecord: ...
    def add_refusal(self, decision: DecisionRecord) -> None: ...

    # endpoints
    def get_endpoint(self, name: str) -> EndpointRecord | None: ...
    def list_endpoints(self) -> list[EndpointRecord]: ...
    def save_endpoint(self, endpoint: EndpointRecord) -> None: ...
    def add_deployment(self, deployment: DeploymentRecord) -> None: ...
    def list_deployments(self, endpoint: str) -> list[DeploymentRecord]: ...
