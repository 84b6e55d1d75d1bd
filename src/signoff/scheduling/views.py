"""Plain-data views of schedules, firings and rule evaluations (for the CLI and the web UI).

``schedule_view`` is what a page listing schedules needs: the cron line, its time zone and
policies, whether it is paused, the next fire times (UTC and local), and the rules.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from signoff.domain.ports import FiringRecord, ScheduleRecord
from signoff.scheduling.cron import next_fire_times, zone
from signoff.scheduling.scheduler import TriggerEvaluation
from signoff.scheduling.triggers import utc_text

__all__ = ["evaluation_view", "firing_view", "next_fire_times_of", "schedule_view"]


def next_fire_times_of(record: ScheduleRecord, *, now: float, n: int = 3) -> list[datetime]:
    """A schedule's next ``n`` fire times (aware, UTC); none for a trigger-only flow.

    A paused schedule shows the times it would fire from ``now`` once resumed.
    """
    if record.cron is None:
        return []
    start = now
    if record.next_at is not None and not record.paused and record.next_at > now:
        start = record.next_at - 1e-6  # a due time not yet handled is still upcoming
    after = datetime.fromtimestamp(start, UTC)
    return next_fire_times(record.cron, record.timezone, after=after, n=n)


def schedule_view(record: ScheduleRecord, *, now: float, n: int = 3) -> dict[str, Any]:
    """One schedule as plain data, with its next ``n`` fire times."""
    tz = zone(record.timezone)
    upcoming = next_fire_times_of(record, now=now, n=n)
    return {
        "flow": record.flow,
        "cron": record.cron,
        "timezone": record.timezone,
        "catchup": record.catchup.value,
        "overlap": record.overlap.value,
        "paused": record.paused,
        "next": [utc_text(t.timestamp()) for t in upcoming],
        "next_local": [t.astimezone(tz).isoformat() for t in upcoming],
        "flow_path": record.flow_path,
        "spec_hash": record.spec_hash,
        "triggers": [
            {
                "id": t.id,
                "on": t.kind.value,
                "rule": t.describe(),
                "origin": "cli" if t.id in record.cli_trigger_ids else "file",
                "last": {
                    k: v
                    for k, v in (record.trigger_state.get(t.id) or {}).items()
                    if k in ("evaluated_at", "holds", "note")
                },
            }
            for t in record.triggers
        ],
    }


def firing_view(firing: FiringRecord) -> dict[str, Any]:
    """One firing as plain data (times as UTC text)."""
    return {
        "key": firing.key,
        "flow": firing.flow,
        "kind": firing.kind,
        "state": firing.state.value,
        "scheduled_for": utc_text(firing.scheduled_at) if firing.scheduled_at else None,
        "fired_at": utc_text(firing.fired_at),
        "run_id": firing.run_id,
        "trigger_id": firing.trigger_id,
        "reason": firing.reason,
        "evidence": firing.evidence,
    }


def evaluation_view(evaluation: TriggerEvaluation) -> dict[str, Any]:
    """One rule evaluation as plain data."""
    return asdict(evaluation)
