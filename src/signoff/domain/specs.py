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
    "ChampionCheck",
    "ConditionSpec",
    "DeploySpec",
    "FlowSpec",
    "GatePolicy",
    "ParamSpec",
    "Resources",
    "TaskKind",
    "TaskSpec",
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


@dataclass(frozen=True)
class FlowSpec:
    """A named DAG of tasks; its content hash pins what a run executed."""

    name: str
    tasks: tuple[TaskSpec, ...]
    params: tuple[ParamSpec, ...] = ()
    schedule: str | None = None
    description: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()  # version, author, tags, ... (cnvrg headers)

    def task(self, name: str) -> TaskSpec:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)

    def downstream(self, name: str) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks if name in t.depends_on)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

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
                    resources=Resources(**t["resources"]),
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
        )
