"""Immutable flow definitions: what a flow is, independent of where it came from."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "Catchup",
    "ChampionCheck",
    "ConditionSpec",
    "DeploySpec",
    "FlowSpec",
    "GatePolicy",
    "Overlap",
    "ParamSpec",
    "Resources",
    "ScheduleSpec",
    "TaskKind",
    "TaskSpec",
    "TriggerKind",
    "TriggerSpec",
]

ParamValue = str | int | float | bool


class TaskKind(StrEnum):
    """What a task does; ``exec`` and ``data`` run a command, the others run inside signoff."""

    EXEC = "exec"
    DATA = "data"
    SELECT = "select"
    HUMAN_VALIDATION = "human_validation"
    DEPLOY = "deploy"

    @property
    def runs_command(self) -> bool:
        """Whether an executor runs it (a command or a Python callable)."""
        return self in (TaskKind.EXEC, TaskKind.DATA)


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """A parameter: one value is a plain parameter, several values make a grid."""

    key: str
    values: tuple[ParamValue, ...]

    @property
    def is_grid(self) -> bool:
        return len(self.values) > 1


@dataclass(frozen=True, slots=True)
class Resources:
    """What one task run needs from the executor."""

    cpu: float = 1.0
    gpu: float = 0.0
    memory_mb: int | None = None
    # custom resources a cluster declares (Ray's ``resources``), e.g. (("gpu_pool", 1.0),)
    custom: tuple[tuple[str, float], ...] = ()
    # which executor runs it: "local" or "ray"; None: the flow's, else the settings' default
    executor: str | None = None


@dataclass(frozen=True, slots=True)
class ConditionSpec:
    """A selection condition (cnvrg ``conditions``): rank by a tag, with a minimum bar."""

    tag_key: str
    objective: str = "max"  # "max" or "min"
    target: float | None = None


@dataclass(frozen=True, slots=True)
class GatePolicy:
    """Who decides a human-validation gate and how many approvals it takes."""

    targets: tuple[str, ...]
    quorum: str | int = "any"  # "any", "all" or a number of distinct approvers
    timeout_seconds: int = 72 * 3600
    allow_self_approval: bool = False
    require_comment_on_reject: bool = True
    on_timeout: str = "reject"  # a timeout ends the gate `expired`; it never approves
    remind_every_seconds: int | None = None
    supersede: bool = True  # a newer run of the flow reaching its gate closes this one
    auto_approve_if: str | None = None  # the rule, as canonical JSON (see review/rules.py)


@dataclass(frozen=True, slots=True)
class DeploySpec:
    """Where a deploy task serves the approved model, and how it rolls over.

    ``traffic`` below 100 makes a canary (the ``champion`` alias moves only on promote);
    ``probation`` seconds after the switch, an error rate of the new version above
    ``max_error_rate`` (0..1) rolls it back automatically and fails the task.
    """

    endpoint: str
    port: int | None = None
    traffic: int = 100
    probation: float = 0.0
    max_error_rate: float = 0.05


@dataclass(frozen=True, slots=True)
class ChampionCheck:
    """A select task's comparison with the model in production (``compare_to: champion``)."""

    min_improvement: float = 0.0  # challenger - champion on the ranking metric, at least this
    evaluate: str | None = None  # command evaluating {{ model }} on the winner's inputs


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One node of a flow."""

    name: str
    kind: TaskKind
    command: str | None = None
    params: tuple[ParamSpec, ...] = ()
    depends_on: tuple[str, ...] = ()
    resources: Resources = field(default_factory=Resources)
    conditions: tuple[ConditionSpec, ...] = ()
    gate: GatePolicy | None = None
    deploy: DeploySpec | None = None
    env: tuple[tuple[str, str], ...] = ()
    retries: int = 0
    retry_delay: float = 0.0  # seconds before the first retry; doubles each attempt
    timeout: float | None = None  # seconds a command may run
    cache: bool = False  # reuse an earlier identical task run's result
    call: str | None = None  # "package.module:function" for Python tasks (the SDK)
    output_dir: str | None = None  # cnvrg: a folder in the working folder collected as output
    description: str | None = None
    champion_check: ChampionCheck | None = None  # select only

    def grid(self, overrides: dict[str, ParamValue] | None = None) -> list[dict[str, ParamValue]]:
        """Every combination of this task's params, in a stable order (the task runs)."""
        overrides = overrides or {}
        keys = [p.key for p in self.params]
        value_lists: list[tuple[ParamValue, ...]] = [
            (overrides[p.key],) if p.key in overrides else p.values for p in self.params
        ]
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*value_lists)]


class Catchup(StrEnum):
    """Which scheduled times a scheduler that was down fires when it comes back."""

    NONE = "none"  # none of the missed times (only times due within the grace period)
    LATEST = "latest"  # the latest missed time
    ALL = "all"  # every missed time, oldest first


class Overlap(StrEnum):
    """What a scheduled time does while an earlier run of the flow is still going."""

    SKIP = "skip"  # the time is recorded as skipped
    QUEUE = "queue"  # the time waits and starts when the earlier run ends
    SUPERSEDE = "supersede"  # the earlier run is cancelled, the new one starts


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """When a flow starts by itself: a cron line read in an IANA time zone, and its policies.

    ``cron`` has five fields (``minute hour day month weekday``), or six with seconds last.
    """

    cron: str
    timezone: str = "UTC"
    catchup: Catchup = Catchup.NONE
    overlap: Overlap = Overlap.SKIP

    @staticmethod
    def from_dict(data: dict[str, Any]) -> ScheduleSpec:
        """Rebuild a schedule stored with ``asdict``."""
        return ScheduleSpec(
            cron=data["cron"],
            timezone=data.get("timezone", "UTC"),
            catchup=Catchup(data.get("catchup", Catchup.NONE)),
            overlap=Overlap(data.get("overlap", Overlap.SKIP)),
        )


class TriggerKind(StrEnum):
    """What a trigger watches."""

    DRIFT = "drift"  # logged inputs of an endpoint against its model's training data
    QUALITY = "quality"  # a metric of an endpoint's predictions against feedback labels
    ERROR_RATE = "error_rate"  # the share of an endpoint's requests its model failed
    DATA = "data"  # the contents of a path (a folder or a file)
    WEBHOOK = "webhook"  # an authenticated POST /api/v1/flows/NAME/trigger


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    """A rule that starts its flow: a decay rule on an endpoint, new data, or a webhook.

    Decay rules (``drift``, ``quality``, ``error_rate``) are judged over the last ``window``
    seconds of an endpoint's events, once at least ``min_events`` of them are there, every
    ``every`` seconds. ``threshold`` is drift's bound (the rule holds above it); ``below`` and
    ``above`` bound a quality metric or the error rate.
    """

    kind: TriggerKind
    endpoint: str | None = None
    metric: str | None = None  # drift: psi | ks; quality: accuracy | auc | rmse | ndcg
    threshold: float | None = None
    below: float | None = None
    above: float | None = None
    features: tuple[str, ...] = ()  # drift: only these features (default: all)
    min_events: int | None = None
    window_seconds: float | None = None
    every_seconds: float | None = None
    path: str | None = None  # data: a local path or an fsspec URL
    group_by: str | None = None  # quality ndcg: the input feature that groups a ranking
    k: int | None = None  # quality ndcg: cut-off

    @staticmethod
    def from_dict(data: dict[str, Any]) -> TriggerSpec:
        """Rebuild a trigger stored with ``asdict`` (in a flow's spec or a schedule row)."""
        known = {k: v for k, v in data.items() if k in TriggerSpec.__dataclass_fields__}
        known["kind"] = TriggerKind(data["kind"])
        known["features"] = tuple(data.get("features") or ())
        return TriggerSpec(**known)

    @property
    def id(self) -> str:
        """A short stable name of the rule (a digest of its content)."""
        body = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"), default=str)
        return f"{self.kind.value}-{hashlib.sha256(body.encode()).hexdigest()[:8]}"

    def describe(self) -> str:
        """The rule in one line, e.g. ``drift psi > 0.2 on churn over 7d (>= 200 events)``."""
        if self.kind is TriggerKind.WEBHOOK:
            return "webhook POST /api/v1/flows/NAME/trigger"
        if self.kind is TriggerKind.DATA:
            return f"data changed at {self.path} (checked every {_span(self.every_seconds)})"
        if self.kind is TriggerKind.DRIFT:
            rule = f"drift {self.metric} > {self.threshold:g}" if self.threshold is not None else ""
            if self.features:
                rule += f" on any of {', '.join(self.features)}"
        elif self.kind is TriggerKind.QUALITY:
            bound = f"< {self.below:g}" if self.below is not None else f"> {self.above:g}"
            rule = f"quality {self.metric} {bound}"
        else:
            rule = f"error rate > {self.above:g}" if self.above is not None else "error rate"
        return (
            f"{rule} on endpoint {self.endpoint} over {_span(self.window_seconds)} "
            f"(>= {self.min_events} events)"
        )


def _span(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class FlowSpec:
    """A named DAG of tasks; its content hash pins what a run executed."""

    name: str
    tasks: tuple[TaskSpec, ...]
    params: tuple[ParamSpec, ...] = ()
    schedule: str | None = None
    description: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()  # version, author, tags, ... (cnvrg headers)
    # the schedule's time zone and policies; None when `schedule` alone says it all (UTC,
    # catchup none, overlap skip)
    schedule_spec: ScheduleSpec | None = None
    triggers: tuple[TriggerSpec, ...] = ()

    @property
    def schedule_rule(self) -> ScheduleSpec | None:
        """The schedule with its policies (defaults filled in), or None without a schedule."""
        if self.schedule_spec is not None:
            return self.schedule_spec
        return ScheduleSpec(cron=self.schedule) if self.schedule else None

    def task(self, name: str) -> TaskSpec:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)

    def downstream(self, name: str) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks if name in t.depends_on)

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data; a flow without schedule policies or triggers leaves those
        keys out, so its hash is what it was before they existed."""
        data = asdict(self)
        for task in data["tasks"]:  # fields newer than the flow hash appear only when set
            resources = task["resources"]
            for key in ("custom", "executor"):
                if not resources[key]:
                    del resources[key]
        if self.schedule_spec is None:
            del data["schedule_spec"]
        if not self.triggers:
            del data["triggers"]
        return data

    @functools.cached_property
    def _canonical(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)

    def canonical_json(self) -> str:
        """The spec as compact JSON with sorted keys (what the hash is taken of)."""
        return self._canonical

    @functools.cached_property
    def spec_hash(self) -> str:
        """sha256 of the canonical form: equal specs hash equally, wherever they came from."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    @staticmethod
    def from_dict(data: dict[str, Any]) -> FlowSpec:
        """Rebuild a spec stored with :meth:`to_dict` (the store keeps the pinned version)."""
        tasks = []
        for t in data["tasks"]:
            gate = t.get("gate")
            deploy = t.get("deploy")
            tasks.append(
                TaskSpec(
                    name=t["name"],
                    kind=TaskKind(t["kind"]),
                    command=t.get("command"),
                    params=tuple(ParamSpec(p["key"], tuple(p["values"])) for p in t["params"]),
                    depends_on=tuple(t["depends_on"]),
                    resources=_resources(t["resources"]),
                    conditions=tuple(ConditionSpec(**c) for c in t["conditions"]),
                    gate=GatePolicy(**{**gate, "targets": tuple(gate["targets"])})
                    if gate
                    else None,
                    deploy=DeploySpec(**deploy) if deploy else None,
                    env=tuple((k, v) for k, v in t.get("env", ())),
                    retries=t.get("retries", 0),
                    retry_delay=t.get("retry_delay", 0.0),
                    timeout=t.get("timeout"),
                    cache=t.get("cache", False),
                    call=t.get("call"),
                    output_dir=t.get("output_dir"),
                    description=t.get("description"),
                    champion_check=ChampionCheck(**t["champion_check"])
                    if t.get("champion_check")
                    else None,
                )
            )
        return FlowSpec(
            name=data["name"],
            tasks=tuple(tasks),
            params=tuple(ParamSpec(p["key"], tuple(p["values"])) for p in data.get("params", ())),
            schedule=data.get("schedule"),
            description=data.get("description"),
            metadata=tuple((k, v) for k, v in data.get("metadata", ())),
            schedule_spec=ScheduleSpec.from_dict(data["schedule_spec"])
            if data.get("schedule_spec")
            else None,
            triggers=tuple(TriggerSpec.from_dict(t) for t in data.get("triggers", ())),
        )


def _resources(data: dict[str, Any]) -> Resources:
    custom = tuple((str(name), float(amount)) for name, amount in data.get("custom", ()))
    return Resources(**{**data, "custom": custom})
