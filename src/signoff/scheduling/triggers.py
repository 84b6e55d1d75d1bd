"""Judging trigger rules: drift, quality and error rate of an endpoint, and changed data.

Each judge looks at the store (and, for the error rate, at the endpoint process) at one
moment ``now`` and returns a :class:`Verdict`: whether the rule holds (``None`` when it
cannot be judged yet: too few events, no model served, no training sample), the evidence
that goes into the run it starts, and what the rule remembers until next time.

Decay rules only count events of the version the endpoint serves now, in the last
``window`` seconds: after a rollover the new version is judged on its own events.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from signoff.domain.ports import (
    EndpointRunner,
    EndpointStore,
    ModelStore,
    PredictionStore,
    ScheduleStore,
)
from signoff.domain.records import ModelVersionRecord
from signoff.domain.specs import TriggerKind, TriggerSpec
from signoff.errors import SignoffError
from signoff.scheduling.data_watch import changes, snapshot
from signoff.stats.drift import TrainingSample, ks_statistic, load_training_sample, psi
from signoff.stats.quality import quality_metric

__all__ = ["TriggerStore", "Verdict", "judge", "utc_text"]


class TriggerStore(ScheduleStore, EndpointStore, ModelStore, PredictionStore, Protocol):
    """The store roles rules are judged on: schedules, endpoints, models, the prediction log."""


_MAX_EVENTS = 10_000  # the newest events of a window that are judged
_MAX_SAMPLES = 500  # error-rate counter samples a rule keeps


@dataclass(frozen=True)
class Verdict:
    """The outcome of judging one rule at one moment."""

    holds: bool | None  # None: not judged (the note says why)
    evidence: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    memory: dict[str, Any] | None = None  # what the rule remembers; None: unchanged


def utc_text(at: float) -> str:
    """Seconds since the epoch as ``2026-03-30T01:00:00Z``."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def judge(
    trigger: TriggerSpec,
    *,
    store: TriggerStore,
    now: float,
    memory: Mapping[str, Any],
    base_dir: Path,
    endpoints: EndpointRunner | None = None,
) -> Verdict:
    """Judge one rule now; raises nothing for a rule that cannot be judged (see ``note``)."""
    try:
        if trigger.kind is TriggerKind.DATA:
            return _judge_data(trigger, memory, base_dir)
        served = _served_model(store, trigger)
        if isinstance(served, str):
            return Verdict(None, note=served)
        if trigger.kind is TriggerKind.DRIFT:
            return _judge_drift(trigger, store, served, now)
        if trigger.kind is TriggerKind.QUALITY:
            return _judge_quality(trigger, store, served, now)
        if trigger.kind is TriggerKind.ERROR_RATE:
            return _judge_error_rate(trigger, store, served, now, memory, endpoints)
    except SignoffError as exc:
        return Verdict(None, note=str(exc))
    return Verdict(None, note=f"{trigger.kind.value} triggers are not judged on a schedule")


def _served_model(store: TriggerStore, trigger: TriggerSpec) -> ModelVersionRecord | str:
    """The model version the rule's endpoint serves, or why there is none."""
    name = trigger.endpoint or ""
    endpoint = store.get_endpoint(name)
    if endpoint is None:
        return f"no endpoint {name!r} yet"
    if endpoint.model_version_id is None or endpoint.state != "serving":
        return f"endpoint {name} serves no model"
    return store.get_model_version(endpoint.model_version_id)


def _window(trigger: TriggerSpec, now: float) -> tuple[float, float]:
    return now - (trigger.window_seconds or 0.0), now


def _base_evidence(
    trigger: TriggerSpec, model: ModelVersionRecord, now: float, events: int
) -> dict[str, Any]:
    since, until = _window(trigger, now)
    return {
        "rule": trigger.describe(),
        "endpoint": trigger.endpoint,
        "model_version": model.label,
        "window": {"from": utc_text(since), "to": utc_text(until)},
        "events": events,
        "min_events": trigger.min_events,
    }


# ------------------------------------------------------------------------- drift
def _judge_drift(
    trigger: TriggerSpec, store: TriggerStore, model: ModelVersionRecord, now: float
) -> Verdict:
    sample = load_training_sample(Path(model.path))
    if sample is None:
        return Verdict(
            None,
            note=f"model {model.label} has no training sample (log it with "
            "log_model(..., training_data=...))",
        )
    since, until = _window(trigger, now)
    logged = store.predictions_between(
        trigger.endpoint or "",
        since=since,
        until=until,
        model_version=model.label,
        limit=_MAX_EVENTS,
    )
    evidence = _base_evidence(trigger, model, now, len(logged))
    if len(logged) < (trigger.min_events or 1):
        return Verdict(None, evidence, f"{len(logged)} of {trigger.min_events} events so far")
    names = trigger.features or sample.feature_names
    unknown = [n for n in names if n not in sample.feature_names]
    features = [_feature_drift(trigger, sample, n, logged) for n in names if n not in unknown]
    measured = [f for f in features if f is not None]
    drifted = [f["name"] for f in measured if f["over"]]
    evidence.update(
        metric=trigger.metric,
        threshold=trigger.threshold,
        features=measured,
        drifted=drifted,
        reference_rows=int(sample.X.shape[0]),
    )
    if unknown:
        evidence["unknown_features"] = unknown
    if not measured:
        return Verdict(None, evidence, "no feature of the training sample was logged")
    note = f"drift on {', '.join(drifted)}" if drifted else "no feature over the threshold"
    return Verdict(bool(drifted), evidence, note)


def _feature_drift(
    trigger: TriggerSpec, sample: TrainingSample, name: str, logged: list[Any]
) -> dict[str, Any] | None:
    values = [_float(p.inputs.get(name)) for p in logged]
    current = np.array([v for v in values if v is not None], dtype=np.float64)
    reference = sample.column(name)
    if current.size == 0 or reference.size == 0:
        return None
    value = psi(reference, current) if trigger.metric == "psi" else ks_statistic(reference, current)
    return {
        "name": name,
        "value": round(value, 6),
        "over": value > (trigger.threshold or 0.0),
        "reference_mean": round(float(reference.mean()), 6),
        "current_mean": round(float(current.mean()), 6),
    }


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, numbers.Real) and math.isfinite(value):
        return float(value)
    return None


# ------------------------------------------------------------------------ quality
def _judge_quality(
    trigger: TriggerSpec, store: TriggerStore, model: ModelVersionRecord, now: float
) -> Verdict:
    since, until = _window(trigger, now)
    labelled = store.labelled_predictions(
        trigger.endpoint or "",
        since=since,
        until=until,
        model_version=model.label,
        limit=_MAX_EVENTS,
    )
    evidence = _base_evidence(trigger, model, now, len(labelled))
    evidence["metric"] = trigger.metric
    if len(labelled) < (trigger.min_events or 1):
        note = f"{len(labelled)} of {trigger.min_events} labelled predictions so far"
        return Verdict(None, evidence, note)
    groups: list[Hashable] | None = None
    if trigger.group_by:
        groups = [_hashable(p.inputs.get(trigger.group_by)) for p, _ in labelled]
    value = quality_metric(
        trigger.metric or "",
        [p.output for p, _ in labelled],
        [label for _, label in labelled],
        groups=groups,
        k=trigger.k,
    )
    if value is None:
        return Verdict(None, evidence, f"{trigger.metric} cannot be computed from these labels")
    if trigger.below is not None:
        side, bound, holds = "below", trigger.below, value < trigger.below
    else:
        side, bound = "above", trigger.above or 0.0
        holds = value > bound
    evidence.update(value=round(value, 6), below=trigger.below, above=trigger.above)
    note = f"{trigger.metric} {value:.4f} is {'' if holds else 'not '}{side} {bound:g}"
    return Verdict(holds, evidence, note)


def _hashable(value: Any) -> Hashable:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


# --------------------------------------------------------------------- error rate
def _judge_error_rate(
    trigger: TriggerSpec,
    store: TriggerStore,
    model: ModelVersionRecord,
    now: float,
    memory: Mapping[str, Any],
    endpoints: EndpointRunner | None,
) -> Verdict:
    if endpoints is None:
        return Verdict(None, note="no endpoint runner to read the error counters from")
    endpoint = store.get_endpoint(trigger.endpoint or "")
    assert endpoint is not None  # _served_model found it
    try:
        state = endpoints.state(endpoint.name, endpoint.url).version(model.label)
    except SignoffError as exc:
        return Verdict(None, note=f"cannot read the counters of {endpoint.name}: {exc}")
    if state is None:
        return Verdict(None, note=f"{model.label} is not loaded on {endpoint.name}")
    since, _ = _window(trigger, now)
    samples = [
        s for s in memory.get("samples", []) if s[3] == model.label and s[0] >= since and s[0] < now
    ]
    # counters count since the version was loaded; a smaller count means it was loaded again
    base = next((s for s in samples if s[1] <= state.requests and s[2] <= state.errors), None)
    requests = state.requests - (base[1] if base else 0)
    errors = state.errors - (base[2] if base else 0)
    kept = [*samples, [now, state.requests, state.errors, model.label]][-_MAX_SAMPLES:]
    evidence = _base_evidence(trigger, model, now, requests)
    since_text = utc_text(base[0]) if base else "when the version was loaded"
    evidence.update(errors=errors, above=trigger.above, counted_from=since_text)
    memory_out = {"samples": kept}
    if requests < (trigger.min_events or 1):
        note = f"{requests} of {trigger.min_events} requests so far"
        return Verdict(None, evidence, note, memory_out)
    rate = errors / requests
    evidence["error_rate"] = round(rate, 6)
    holds = rate > (trigger.above or 0.0)
    note = f"error rate {rate:.4f} is {'' if holds else 'not '}above {trigger.above:g}"
    return Verdict(holds, evidence, note, memory_out)


# ---------------------------------------------------------------------------- data
def _judge_data(trigger: TriggerSpec, memory: Mapping[str, Any], base_dir: Path) -> Verdict:
    snap = snapshot(trigger.path or "", base_dir)
    current = {"digest": snap.digest, "files": snap.files, "entries": snap.entries}
    evidence: dict[str, Any] = {
        "rule": trigger.describe(),
        "path": snap.path,
        "digest": snap.digest,
        "files": snap.files,
    }
    before = memory.get("digest")
    if before is None:
        return Verdict(False, evidence, "first look: contents recorded", current)
    if before == snap.digest:
        return Verdict(False, evidence, "unchanged")
    evidence["previous_digest"] = before
    evidence["changes"] = changes(dict(memory.get("entries") or {}), snap.entries)
    return Verdict(True, evidence, f"contents of {snap.path} changed", current)
