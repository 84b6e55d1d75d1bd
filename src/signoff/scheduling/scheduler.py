"""The scheduler: fires due scheduled times and trigger rules, each once, and starts runs.

One :meth:`Scheduler.tick` does three things, each safe to repeat and to run from several
processes at once (PostgreSQL):

1. **Record due times.** For every schedule whose ``next_at`` has come, the due times are
   split by the catch-up policy and recorded as firings (``pending`` or ``missed``) in the
   same transaction that moves ``next_at`` on with a compare-and-set. Only one scheduler
   wins that compare-and-set; the firing keys (``schedule:FLOW@TIME``) are unique anyway.
2. **Start open firings.** A pending firing is claimed (compare-and-set to ``starting``),
   the overlap policy is applied, the run is started with the firing's key and evidence in
   its facts, and the firing is marked ``started``. A scheduler that dies between claiming
   and marking leaves the firing ``starting``: the next one claims it again, finds the run
   by its key if it was created, and starts it only if it was not.
3. **Judge trigger rules** that are due (every ``every`` seconds) and fire those that hold,
   once per firing: not while a run the rule started is going, not twice within the rule's
   window, not while the flow has any run going.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from signoff.domain.ports import (
    Claim,
    Clock,
    EndpointRunner,
    FiringRecord,
    FiringState,
    RunStarter,
    ScheduleRecord,
)
from signoff.domain.records import RunRecord
from signoff.domain.specs import Overlap, TriggerKind, TriggerSpec
from signoff.errors import ConflictError, SignoffError
from signoff.scheduling.book import ScheduleBook, SchedulerStore, at_utc, rule_of
from signoff.scheduling.cron import fire_times, next_fire_times, zone
from signoff.scheduling.policies import OverlapAction, overlap_action, plan_catchup
from signoff.scheduling.triggers import judge, utc_text
from signoff.spec import load_flow

__all__ = [
    "SCHEDULER_ACTOR",
    "Scheduler",
    "TickReport",
    "TriggerEvaluation",
    "TriggerRefusedError",
    "schedule_key",
]

log = logging.getLogger("signoff.scheduling")

SCHEDULER_ACTOR = "signoff:scheduler"
"""Who starts scheduled and triggered runs (and cancels superseded ones)."""

_MAX_DUE = 1000  # scheduled times handled per schedule and tick (the rest next tick)
_OPEN_BATCH = 500
_STARTED = (FiringState.STARTING,)


class TriggerRefusedError(SignoffError):
    """A trigger call that the flow does not accept (no webhook trigger, or paused)."""


@dataclass
class TriggerEvaluation:
    """One rule judged at one moment, and what came of it."""

    flow: str
    trigger_id: str
    kind: str
    rule: str
    holds: bool | None
    note: str
    evidence: dict[str, Any] = field(default_factory=dict)
    firing: str | None = None  # the key of the firing it recorded
    run_id: str | None = None


@dataclass
class TickReport:
    """What one tick did."""

    recorded: list[FiringRecord] = field(default_factory=list)
    started: list[tuple[str, str]] = field(default_factory=list)  # (firing key, run id)
    skipped: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (firing key, reason)
    evaluations: list[TriggerEvaluation] = field(default_factory=list)

    @property
    def run_ids(self) -> list[str]:
        """The runs this tick started."""
        return [run_id for _, run_id in self.started]


def schedule_key(flow: str, at: datetime) -> str:
    """The unique key of a scheduled time: ``schedule:FLOW@2026-03-30T01:00:00Z``."""
    return f"schedule:{flow}@{at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"


def _owner(role: str) -> str:
    return f"{role}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Scheduler(ScheduleBook):
    """Schedules and triggers over a store; runs are started through ``starter``.

    ``grace``: how old a scheduled time may be and still count as on time (at least the
    tick interval). ``stale_after``: a ``starting`` claim older than this is taken over.
    ``exclusive``: this scheduler holds the SQLite lock, so a claim left by another
    scheduler loop is taken over at once (that loop is gone). ``after_start`` is called with
    each run started (e.g. to drive it at once).
    """

    def __init__(
        self,
        store: SchedulerStore,
        starter: RunStarter,
        clock: Clock,
        *,
        endpoints: EndpointRunner | None = None,
        role: str = "scheduler",
        grace: float = 60.0,
        stale_after: float = 120.0,
        exclusive: bool = False,
        after_start: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(store, clock)
        self.starter = starter
        self.endpoints = endpoints
        self.owner = _owner(role)
        self.grace = grace
        self.stale_after = stale_after
        self.exclusive = exclusive
        self.after_start = after_start

    # ------------------------------------------------------------------------- tick
    def tick(self, now: float | None = None) -> TickReport:
        """Record due scheduled times, start open firings, judge due trigger rules."""
        now = self.clock.now() if now is None else now
        report = TickReport()
        for record in self.store.list_schedules():
            if not record.paused and record.cron is not None:
                try:
                    report.recorded.extend(self.record_due(record, now))
                except (SignoffError, ValueError, LookupError) as exc:  # one bad row, not all
                    log.warning("schedule of %s: %s", record.flow, exc)
        self.start_open(now, report)
        report.evaluations = self.evaluate_triggers(now, report=report)
        return report

    def record_due(self, record: ScheduleRecord, now: float) -> list[FiringRecord]:
        """Record the schedule's due times (fire or missed) and move ``next_at`` on."""
        rule = rule_of(record)
        assert rule is not None
        if record.next_at is None or record.next_at > now:
            if record.next_at is None:
                self._advance(record, self._next_after(rule, now), [], now)
            return []
        after = at_utc(record.next_at) - timedelta(microseconds=1)
        due = fire_times(rule.cron, rule.timezone, after=after, until=at_utc(now), limit=_MAX_DUE)
        if not due:  # next_at is no fire time of this line (it changed): start again from now
            self._advance(record, self._next_after(rule, now), [], now)
            return []
        plan = plan_catchup(
            due, now=at_utc(now), catchup=record.catchup, grace=timedelta(seconds=self.grace)
        )
        following = next_fire_times(rule.cron, rule.timezone, after=due[-1], n=1)
        firings = [
            self._schedule_firing(record, t, FiringState.PENDING, now, None) for t in plan.fire
        ] + [
            self._schedule_firing(
                record,
                t,
                FiringState.MISSED,
                now,
                f"missed: no scheduler was running then (catchup: {record.catchup.value})",
            )
            for t in plan.missed
        ]
        firings.sort(key=lambda f: f.scheduled_at or 0.0)
        next_at = following[0].timestamp() if following else None
        return self._advance(record, next_at, firings, now)

    def _advance(
        self, record: ScheduleRecord, next_at: float | None, firings: list[FiringRecord], now: float
    ) -> list[FiringRecord]:
        try:
            return self.store.advance_schedule(
                record.flow,
                expected_next_at=record.next_at,
                next_at=next_at,
                firings=firings,
                at=now,
            )
        except ConflictError:  # another scheduler handled these times
            return []

    @staticmethod
    def _schedule_firing(
        record: ScheduleRecord, at: datetime, state: FiringState, now: float, reason: str | None
    ) -> FiringRecord:
        local = at.astimezone(zone(record.timezone))
        return FiringRecord(
            key=schedule_key(record.flow, at),
            flow=record.flow,
            kind="schedule",
            state=state,
            fired_at=now,
            scheduled_at=at.timestamp(),
            reason=reason,
            evidence={
                "cron": record.cron,
                "timezone": record.timezone,
                "scheduled_for": utc_text(at.timestamp()),
                "scheduled_for_local": local.isoformat(),
                "catchup": record.catchup.value,
                "overlap": record.overlap.value,
            },
        )

    # ------------------------------------------------------------- starting firings
    def start_open(self, now: float, report: TickReport | None = None) -> TickReport:
        """Start every open firing whose turn it is (oldest first)."""
        report = report if report is not None else TickReport()
        open_firings = self.store.list_firings(
            states=(FiringState.PENDING, FiringState.QUEUED, FiringState.STARTING),
            oldest_first=True,
            limit=_OPEN_BATCH,
        )
        records = {r.flow: r for r in self.store.list_schedules()}
        for firing in open_firings:
            record = records.get(firing.flow)
            if record is not None and record.paused:
                continue
            self._start(firing, record, now, report)
        return report

    def _stale_before(self, firing: FiringRecord, now: float) -> float:
        mine = (firing.owner or "").startswith("scheduler@")
        if self.exclusive and mine and firing.kind != "webhook":
            return math.inf  # the only scheduler loop on this database is this one
        return now - self.stale_after

    def _start(
        self, firing: FiringRecord, record: ScheduleRecord | None, now: float, report: TickReport
    ) -> str | None:
        """Claim one firing, apply the overlap policy, start its run; the run id or None."""
        stale_before = self._stale_before(firing, now)
        if record is None and firing.state is not FiringState.STARTING:
            why = f"flow {firing.flow} is no longer scheduled"
            self.store.settle_firing(
                firing.key, FiringState.FAILED, reason=why, from_states=(firing.state,)
            )
            report.failed.append((firing.key, why))
            return None
        policy = record.overlap if record is not None else Overlap.SKIP
        if firing.kind == "webhook":
            claim = self._claim(firing, now, stale_before, require_idle=False)
        elif firing.kind == "schedule":
            claim = self._claim(
                firing, now, stale_before, require_idle=policy is not Overlap.SUPERSEDE
            )
            if claim.outcome == "busy":
                self._busy(firing, overlap_action(policy, busy=True), report)
                return None
        else:  # a trigger waits until its flow has no run going
            claim = self._claim(firing, now, stale_before, require_idle=True)
        if claim.outcome != "claimed":
            return None
        run_id = self.store.run_of_firing(firing.flow, firing.key) if claim.recovered else None
        if run_id is None:
            if firing.kind == "schedule" and policy is Overlap.SUPERSEDE:
                self._supersede(firing)
            try:
                run_id = self._start_run(firing, record).id
            except (SignoffError, OSError) as exc:
                self.store.settle_firing(
                    firing.key, FiringState.FAILED, reason=str(exc), from_states=_STARTED
                )
                report.failed.append((firing.key, str(exc)))
                return None
        self.store.settle_firing(
            firing.key, FiringState.STARTED, run_id=run_id, from_states=_STARTED
        )
        report.started.append((firing.key, run_id))
        if self.after_start is not None:
            self.after_start(run_id)
        return run_id

    def _claim(
        self, firing: FiringRecord, now: float, stale_before: float, *, require_idle: bool
    ) -> Claim:
        return self.store.claim_firing(
            firing.key,
            owner=self.owner,
            now=now,
            stale_before=stale_before,
            require_idle=require_idle,
        )

    def _busy(self, firing: FiringRecord, action: OverlapAction, report: TickReport) -> None:
        """A scheduled time whose flow is busy: skip it, or let it wait in the queue."""
        active = self.store.active_run_ids(firing.flow)
        going = f"run {active[0]} of the flow was still going" if active else "a run was starting"
        open_states = (FiringState.PENDING, FiringState.QUEUED)
        if action is OverlapAction.SKIP:
            why = f"skipped: {going} (overlap: skip)"
            if self.store.settle_firing(
                firing.key, FiringState.SKIPPED, reason=why, from_states=open_states
            ):
                report.skipped.append(firing.key)
        elif action is OverlapAction.QUEUE and firing.state is FiringState.PENDING:
            why = f"queued: {going} (overlap: queue)"
            if self.store.settle_firing(
                firing.key, FiringState.QUEUED, reason=why, from_states=open_states[:1]
            ):
                report.queued.append(firing.key)

    def _supersede(self, firing: FiringRecord) -> None:
        when = (firing.evidence or {}).get("scheduled_for", utc_text(firing.fired_at))
        for run_id in self.store.active_run_ids(firing.flow):
            with contextlib.suppress(ConflictError):  # it ended meanwhile
                self.starter.cancel(
                    run_id, actor=SCHEDULER_ACTOR, reason=f"superseded by the run due {when}"
                )

    def _start_run(self, firing: FiringRecord, record: ScheduleRecord | None) -> RunRecord:
        if record is None:
            raise SignoffError(f"flow {firing.flow} is no longer scheduled")
        loaded = load_flow(record.flow_path)
        if loaded.spec.name != firing.flow:
            raise SignoffError(
                f"{record.flow_path} now defines flow {loaded.spec.name}, not {firing.flow}"
            )
        facts: dict[str, Any] = {
            "key": firing.key,
            "kind": firing.kind,
            "fired_at": utc_text(firing.fired_at),
            "evidence": firing.evidence,
        }
        if firing.scheduled_at is not None:
            facts["scheduled_for"] = utc_text(firing.scheduled_at)
        if firing.trigger_id is not None:
            facts["trigger_id"] = firing.trigger_id
        requested_by = firing.evidence.get("requested_by")
        return self.starter.start_run(
            loaded.spec,
            base_dir=loaded.base_dir,
            source=Path(record.flow_path).read_text(encoding="utf-8"),
            started_by=str(requested_by) if requested_by else SCHEDULER_ACTOR,
            trigger=facts,
        )

    # ----------------------------------------------------------------------- triggers
    def evaluate_triggers(
        self,
        now: float | None = None,
        *,
        fire: bool = True,
        force: bool = False,
        report: TickReport | None = None,
    ) -> list[TriggerEvaluation]:
        """Judge the rules that are due (all of them with ``force``); fire what holds.

        With ``fire=False`` nothing is recorded or started and no rule's memory changes:
        a look at what the rules say now.
        """
        now = self.clock.now() if now is None else now
        report = report if report is not None else TickReport()
        found: list[TriggerEvaluation] = []
        for record in self.store.list_schedules():
            if record.paused:
                continue
            for trigger in record.triggers:
                if trigger.kind is TriggerKind.WEBHOOK:
                    continue
                memory = dict(record.trigger_state.get(trigger.id) or {})
                last = memory.get("evaluated_at")
                due = last is None or now - float(last) >= (trigger.every_seconds or 0.0)
                if not (force or due):
                    continue
                try:
                    found.append(self._evaluate(record, trigger, memory, now, fire, report))
                except Exception as exc:  # a rule that breaks must not stop the others
                    log.warning("rule %s of %s: %s", trigger.id, record.flow, exc)
                    found.append(
                        TriggerEvaluation(
                            flow=record.flow,
                            trigger_id=trigger.id,
                            kind=trigger.kind.value,
                            rule=trigger.describe(),
                            holds=None,
                            note=f"could not judge: {type(exc).__name__}: {exc}",
                        )
                    )
        return found

    def _evaluate(
        self,
        record: ScheduleRecord,
        trigger: TriggerSpec,
        memory: dict[str, Any],
        now: float,
        fire: bool,
        report: TickReport,
    ) -> TriggerEvaluation:
        verdict = judge(
            trigger,
            store=self.store,
            now=now,
            memory=memory,
            base_dir=Path(record.flow_path).parent,
            endpoints=self.endpoints,
        )
        evaluation = TriggerEvaluation(
            flow=record.flow,
            trigger_id=trigger.id,
            kind=trigger.kind.value,
            rule=trigger.describe(),
            holds=verdict.holds,
            note=verdict.note,
            evidence=verdict.evidence,
        )
        if not fire:
            return evaluation
        remembered = {**memory, "evaluated_at": now, "holds": verdict.holds, "note": verdict.note}
        # a data rule moves its baseline only when the change it saw has fired
        if verdict.memory is not None and not (trigger.kind is TriggerKind.DATA and verdict.holds):
            remembered.update(verdict.memory)
        if verdict.holds:
            fired = self._fire_trigger(record, trigger, verdict.evidence, now, evaluation, report)
            if fired and verdict.memory is not None:
                remembered.update(verdict.memory)
        self.store.set_trigger_state(record.flow, trigger.id, remembered)
        return evaluation

    def _fire_trigger(
        self,
        record: ScheduleRecord,
        trigger: TriggerSpec,
        evidence: dict[str, Any],
        now: float,
        evaluation: TriggerEvaluation,
        report: TickReport,
    ) -> bool:
        previous = self.store.list_firings(flow=record.flow, trigger_id=trigger.id, limit=1)
        last = previous[0] if previous else None
        wait = self._cool_down(record, trigger, last, now)
        if wait:
            evaluation.note += f"; not fired: {wait}"
            return False
        sequence = int(last.key.rsplit("#", 1)[-1]) + 1 if last else 1
        firing = FiringRecord(
            key=f"trigger:{record.flow}#{trigger.id}#{sequence}",
            flow=record.flow,
            kind=trigger.kind.value,
            state=FiringState.PENDING,
            fired_at=now,
            trigger_id=trigger.id,
            evidence={"trigger_id": trigger.id, **evidence},
        )
        if not self.store.add_firing(firing):
            evaluation.note += "; not fired: another scheduler fired it"
            return False
        evaluation.firing = firing.key
        evaluation.run_id = self._start(firing, record, now, report)
        return True

    def _cool_down(
        self, record: ScheduleRecord, trigger: TriggerSpec, last: FiringRecord | None, now: float
    ) -> str | None:
        """Why the rule may not fire now, or None."""
        if last is not None:
            if last.state.is_open:
                return f"its firing {last.key} has not started yet"
            if last.run_id is not None:
                run = self.store.get_run(last.run_id)
                if not run.state.is_terminal:
                    return f"run {run.id} it started is {run.state.value}"
            window = trigger.window_seconds or 0.0
            if trigger.kind is not TriggerKind.DATA and now - last.fired_at < window:
                return f"it fired at {utc_text(last.fired_at)}, within its window"
        active = self.store.active_run_ids(record.flow)
        if active:
            return f"run {active[0]} of the flow is going"
        return None

    # ------------------------------------------------------------------------ webhook
    def fire_webhook(
        self, flow: str, *, requested_by: str, idempotency_key: str | None = None
    ) -> tuple[FiringRecord, bool]:
        """Start a run of a registered flow with a webhook trigger; once per idempotency key.

        Returns the firing (``started`` with its run, or ``failed`` with the reason) and
        whether this call recorded it (False: the key was used before; that firing returns).
        """
        record = self._schedule(flow)
        if not any(t.kind is TriggerKind.WEBHOOK for t in record.triggers):
            raise TriggerRefusedError(
                f"flow {flow} does not accept webhook calls: add '{{on: webhook}}' to its triggers"
            )
        if record.paused:
            raise TriggerRefusedError(f"flow {flow} is paused (signoff schedule resume {flow})")
        now = self.clock.now()
        key = f"webhook:{flow}#{idempotency_key or uuid.uuid4().hex}"
        firing = FiringRecord(
            key=key,
            flow=flow,
            kind="webhook",
            state=FiringState.PENDING,
            fired_at=now,
            evidence={"requested_by": requested_by, "idempotency_key": idempotency_key},
        )
        created = self.store.add_firing(firing)
        if created:
            self._start(firing, record, now, TickReport())
        found = self.store.get_firing(key)
        assert found is not None
        return found, created
