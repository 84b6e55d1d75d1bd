"""Schedule bookkeeping: registering flow files, their triggers, pausing and resuming.

:class:`ScheduleBook` keeps the schedule rows true; the ``Scheduler`` (built on it) fires
what they say.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from signoff.domain.ports import Clock, RunStore, ScheduleRecord
from signoff.domain.specs import Catchup, Overlap, ScheduleSpec, TriggerSpec
from signoff.errors import ConflictError, NotFoundError, SignoffError
from signoff.scheduling.cron import next_fire_times
from signoff.scheduling.triggers import TriggerStore
from signoff.spec import load_flow

__all__ = ["ScheduleBook", "SchedulerStore", "at_utc", "rule_of"]


class SchedulerStore(TriggerStore, RunStore, Protocol):
    """The store roles the scheduler uses: schedules, what rules judge, and runs."""


def at_utc(seconds: float) -> datetime:
    """Seconds since the epoch as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)


def rule_of(record: ScheduleRecord) -> ScheduleSpec | None:
    """The cron rule a schedule row holds, if it has one."""
    if record.cron is None:
        return None
    return ScheduleSpec(record.cron, record.timezone, record.catchup, record.overlap)


class ScheduleBook:
    """Schedule rows of flows: added from flow files, with CLI triggers, paused, removed."""

    def __init__(self, store: SchedulerStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    # ------------------------------------------------------------------ registering
    def add(
        self,
        path: str | Path,
        *,
        schedule: ScheduleSpec | None = None,
        now: float | None = None,
    ) -> ScheduleRecord:
        """Register (or refresh) a flow file: its schedule (or ``schedule``) and triggers.

        Triggers added with the CLI stay; the file's are replaced. ``next_at`` is kept when
        the cron line and time zone did not change, else it is the next time after now.
        """
        now = self.clock.now() if now is None else now
        loaded = load_flow(path)
        spec = loaded.spec
        rule = schedule or spec.schedule_rule
        existing = self.store.get_schedule(spec.name)
        cli = [t for t in existing.triggers if t.id in existing.cli_trigger_ids] if existing else []
        triggers = (*spec.triggers, *(t for t in cli if t not in spec.triggers))
        if rule is None and not triggers:
            raise SignoffError(
                f"flow {spec.name} has no schedule and no triggers: give --cron, or add "
                f"'schedule:' or 'triggers:' to {loaded.path}"
            )
        same_time = (
            existing is not None
            and rule is not None
            and (existing.cron, existing.timezone) == (rule.cron, rule.timezone)
            and not existing.paused
        )
        next_at = existing.next_at if same_time and existing else self._next_after(rule, now)
        record = ScheduleRecord(
            flow=spec.name,
            cron=rule.cron if rule else None,
            timezone=rule.timezone if rule else "UTC",
            catchup=rule.catchup if rule else Catchup.NONE,
            overlap=rule.overlap if rule else Overlap.SKIP,
            paused=existing.paused if existing else False,
            next_at=next_at,
            flow_path=str(loaded.path),
            spec_hash=spec.spec_hash,
            created_at=existing.created_at if existing else now,
            updated_at=now,
            triggers=triggers,
            cli_trigger_ids=tuple(t.id for t in cli if t not in spec.triggers),
            trigger_state=existing.trigger_state if existing else {},
        )
        self.store.save_schedule(record)
        return record

    def add_trigger(self, flow: str, trigger: TriggerSpec) -> ScheduleRecord:
        """Add a rule to a registered flow (it stays when the flow file is added again)."""
        record = self._schedule(flow)
        if trigger in record.triggers:
            raise ConflictError(f"flow {flow} already has trigger {trigger.id}")
        updated = replace(
            record,
            triggers=(*record.triggers, trigger),
            cli_trigger_ids=(*record.cli_trigger_ids, trigger.id),
            updated_at=self.clock.now(),
        )
        self.store.save_schedule(updated)
        return updated

    def remove_trigger(self, flow: str, trigger_id: str) -> ScheduleRecord:
        """Remove a rule by its id (``signoff triggers list`` shows them)."""
        record = self._schedule(flow)
        kept = tuple(t for t in record.triggers if t.id != trigger_id)
        if len(kept) == len(record.triggers):
            raise NotFoundError(f"flow {flow} has no trigger {trigger_id!r}")
        updated = replace(
            record,
            triggers=kept,
            cli_trigger_ids=tuple(i for i in record.cli_trigger_ids if i != trigger_id),
            updated_at=self.clock.now(),
        )
        self.store.save_schedule(updated)
        return updated

    def pause(self, flow: str) -> None:
        """Stop firing a flow (schedule and triggers) until it is resumed."""
        record = self._schedule(flow)
        self.store.set_paused(flow, True, next_at=record.next_at, at=self.clock.now())

    def resume(self, flow: str) -> ScheduleRecord:
        """Fire a flow again; the times that passed while it was paused are not run."""
        record = self._schedule(flow)
        now = self.clock.now()
        next_at = self._next_after(rule_of(record), now)
        self.store.set_paused(flow, False, next_at=next_at, at=now)
        return replace(record, paused=False, next_at=next_at)

    def remove(self, flow: str) -> None:
        """Forget a flow's schedule and triggers (its firings stay as history)."""
        if not self.store.remove_schedule(flow):
            raise NotFoundError(f"no schedule for flow {flow!r}")

    def _schedule(self, flow: str) -> ScheduleRecord:
        record = self.store.get_schedule(flow)
        if record is None:
            raise NotFoundError(
                f"no schedule for flow {flow!r} (signoff schedule add FLOW_FILE registers one)"
            )
        return record

    @staticmethod
    def _next_after(rule: ScheduleSpec | None, now: float) -> float | None:
        if rule is None:
            return None
        upcoming = next_fire_times(rule.cron, rule.timezone, after=at_utc(now), n=1)
        return upcoming[0].timestamp() if upcoming else None
