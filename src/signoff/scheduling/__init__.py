"""Schedules and triggers: what starts runs besides a person.

Cron lines in IANA time zones (``cron``), the catch-up and overlap policies (``policies``),
the scheduler that fires each scheduled time and trigger firing once (``scheduler``), trigger
rules judged on an endpoint's logged predictions, labels and errors or on a path's contents
(``triggers``), the single-scheduler lock of SQLite (``lock``), and plain-data views.
"""

from __future__ import annotations

from signoff.scheduling.cron import fire_times, next_fire_times
from signoff.scheduling.lock import SchedulerLock, SchedulerLockedError
from signoff.scheduling.policies import CatchupPlan, OverlapAction, overlap_action, plan_catchup
from signoff.scheduling.scheduler import (
    SCHEDULER_ACTOR,
    Scheduler,
    TickReport,
    TriggerEvaluation,
    TriggerRefusedError,
    schedule_key,
)
from signoff.scheduling.views import (
    evaluation_view,
    firing_view,
    next_fire_times_of,
    schedule_view,
)

__all__ = [
    "SCHEDULER_ACTOR",
    "CatchupPlan",
    "OverlapAction",
    "SchedulerLock",
    "SchedulerLockedError",
    "Scheduler",
    "TickReport",
    "TriggerEvaluation",
    "TriggerRefusedError",
    "evaluation_view",
    "fire_times",
    "firing_view",
    "next_fire_times",
    "next_fire_times_of",
    "overlap_action",
    "plan_catchup",
    "schedule_key",
    "schedule_view",
]
