"""Ports: what the services need from the outside world, as Protocols (adapters implement them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from signoff.domain.ports_schedules import (
    Claim,
    FiringRecord,
    FiringState,
    ScheduleRecord,
    ScheduleStore,
)
from signoff.domain.ports_store import (
    AccountStore,
    EndpointStore,
    GateStore,
    ModelStore,
    PredictionStore,
    RunStore,
    SessionStore,
    Store,
    WebSession,
)
from signoff.domain.records import RunRecord
from signoff.domain.specs import FlowSpec, ParamValue

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
    "Rollout",
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


@dataclass(frozen=True, slots=True)
class Rollout:
    """A version an endpoint rolls over to, and how.

    ``traffic`` below 100 is a canary (the serving version keeps the rest). During
    ``probation_seconds`` after the switch, an error rate of the new version above
    ``max_error_rate`` sends all traffic back to the version that served before.
    """

    model_dir: Path
    digest: str
    model_version: str
    traffic: int = 100
    probation_seconds: float = 0.0
    max_error_rate: float = 0.05


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
        self, name: str, url: str, rollout: Rollout, heartbeat: Callable[[], None] | None = None
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


__all__ += [
    "AccountStore",
    "EndpointStore",
    "GateStore",
    "ModelStore",
    "PredictionStore",
    "RunStore",
    "SessionStore",
    "WebSession",
]


# ----------------------------------------------------------------- schedules and triggers


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
