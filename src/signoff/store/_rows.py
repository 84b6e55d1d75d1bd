"""How each table's rows become domain records (one :class:`RecordMap` per record type)."""

from __future__ import annotations

from typing import Any

from signoff.domain.audit import AuditEntry
from signoff.domain.ports_schedules import FiringRecord, FiringState, ScheduleRecord
from signoff.domain.ports_store import WebSession
from signoff.domain.records import (
    ArtifactRecord,
    DecisionRecord,
    DeploymentKind,
    DeploymentRecord,
    EndpointRecord,
    FeedbackRecord,
    GateRecord,
    LinkToken,
    MetricRecord,
    ModelVersionRecord,
    PredictionRecord,
    RunRecord,
    TaskRunRecord,
    TransitionRecord,
    UserRecord,
)
from signoff.domain.specs import Catchup, Overlap, TaskKind, TriggerSpec
from signoff.domain.states import RunState, TaskRunState
from signoff.store._mapping import RecordMap, as_dict, as_list, as_tuple

__all__ = [
    "ARTIFACT",
    "AUDIT_ENTRY",
    "DECISION",
    "DEPLOYMENT",
    "ENDPOINT",
    "FEEDBACK",
    "FIRING",
    "GATE",
    "LINK_TOKEN",
    "METRIC",
    "MODEL_VERSION",
    "PREDICTION",
    "RUN",
    "SCHEDULE",
    "TASK_RUN",
    "TRANSITION",
    "USER",
    "WEB_SESSION",
]


def _quorum(value: str | int) -> str | int:
    """Quorum is stored as text: ``any``, ``all`` or a number."""
    return int(value) if isinstance(value, str) and value.isdigit() else value


def _triggers(stored: Any) -> tuple[TriggerSpec, ...]:
    return tuple(TriggerSpec.from_dict(d) for d in stored or [])


def _cli_trigger_ids(stored: Any) -> tuple[str, ...]:
    """The ids of the triggers added with the CLI (stored with ``origin: cli``)."""
    items = list(stored or [])
    specs = _triggers(items)
    return tuple(tr.id for tr, d in zip(specs, items, strict=True) if d.get("origin") == "cli")


RUN = RecordMap(RunRecord, convert={"state": RunState, "params": as_dict, "facts": as_dict})
TASK_RUN = RecordMap(
    TaskRunRecord,
    columns={"index": "idx"},
    convert={"kind": TaskKind, "state": TaskRunState, "params": as_dict, "result": as_dict},
)
TRANSITION = RecordMap(TransitionRecord)
METRIC = RecordMap(MetricRecord)
ARTIFACT = RecordMap(ArtifactRecord)
GATE = RecordMap(GateRecord, convert={"targets": as_tuple, "quorum": _quorum})
DECISION = RecordMap(DecisionRecord)
MODEL_VERSION = RecordMap(
    ModelVersionRecord, convert={"signature": as_list, "metrics": as_dict, "params": as_dict}
)
ENDPOINT = RecordMap(EndpointRecord)
DEPLOYMENT = RecordMap(DeploymentRecord, convert={"kind": DeploymentKind})
PREDICTION = RecordMap(PredictionRecord)
FEEDBACK = RecordMap(FeedbackRecord)
USER = RecordMap(UserRecord, convert={"roles": as_tuple, "active": bool})
LINK_TOKEN = RecordMap(LinkToken, columns={"user": "user_name"})
AUDIT_ENTRY = RecordMap(AuditEntry, convert={"data": as_dict})
WEB_SESSION = RecordMap(WebSession, columns={"user": "user_name"})
FIRING = RecordMap(FiringRecord, convert={"state": FiringState, "evidence": as_dict})
SCHEDULE = RecordMap(
    ScheduleRecord,
    columns={"cli_trigger_ids": "triggers"},
    convert={
        "catchup": Catchup,
        "overlap": Overlap,
        "paused": bool,
        "triggers": _triggers,
        "cli_trigger_ids": _cli_trigger_ids,
        "trigger_state": as_dict,
    },
)
