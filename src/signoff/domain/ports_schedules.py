"""The schedules role of the store port: schedule rows, firings and what triggers remember."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from signoff.domain.specs import Catchup, Overlap, TriggerSpec

__all__ = ["Claim", "FiringRecord", "FiringState", "ScheduleRecord", "ScheduleStore"]


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


class ScheduleStore(Protocol):
    """Schedules, firings under unique keys, trigger memory, and the runs firings started."""

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
    def scheduler_lock_path(self) -> Path | None: ...
