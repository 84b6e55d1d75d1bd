"""Store part for schedules and triggers: schedule rows, firings under unique keys, and the
prediction-log queries that decay rules are judged on.

Exactly once: a scheduled time is recorded as a firing in the same transaction that moves the
schedule's ``next_at`` on with a compare-and-set, so of two schedulers (or a scheduler and its
restart) only one records it; a firing's run is started only by the scheduler that claimed
the firing (another compare-and-set). A firing left ``starting`` by a scheduler that died is
claimed again, and its run is looked up by the firing's key before a new one is started.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from signoff.domain.ports_schedules import Claim, FiringRecord, FiringState, ScheduleRecord
from signoff.domain.records import PredictionRecord
from signoff.domain.states import RunState
from signoff.errors import ConflictError, NotFoundError
from signoff.store import _rows as rows
from signoff.store import _schedule_tables as s
from signoff.store import _tables as t
from signoff.store._base import SqlBase

__all__ = ["SchedulingStore"]

_ACTIVE_RUN_STATES = (
    RunState.QUEUED.value,
    RunState.RUNNING.value,
    RunState.WAITING_FOR_APPROVAL.value,
)
_CLAIMABLE = (FiringState.PENDING.value, FiringState.QUEUED.value)
_RUN_LOOKUP_LIMIT = 500


class SchedulingStore(SqlBase):
    """Schedules, firings, trigger memory, and windows of logged predictions and labels."""

    # -------------------------------------------------------------------- schedules
    def save_schedule(self, schedule: ScheduleRecord) -> None:
        """Insert or replace a flow's schedule row (``created_at`` of an existing row stays)."""
        values = _schedule_values(schedule)
        with self._tx() as conn:
            exists = conn.execute(
                sa.select(s.schedules.c.flow).where(s.schedules.c.flow == schedule.flow)
            ).first()
            if exists is None:
                conn.execute(s.schedules.insert().values(**values))
            else:
                values.pop("created_at")
                conn.execute(
                    s.schedules.update().where(s.schedules.c.flow == schedule.flow).values(**values)
                )

    def get_schedule(self, flow: str) -> ScheduleRecord | None:
        """The schedule row of a flow, if it has one."""
        found = self._all(sa.select(s.schedules).where(s.schedules.c.flow == flow))
        return rows.SCHEDULE(found[0]) if found else None

    def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule row, by flow name."""
        return rows.SCHEDULE.many(self._all(sa.select(s.schedules).order_by(s.schedules.c.flow)))

    def remove_schedule(self, flow: str) -> bool:
        """Forget a flow's schedule and triggers (its firings stay as history)."""
        with self._tx() as conn:
            res = conn.execute(s.schedules.delete().where(s.schedules.c.flow == flow))
            return bool(res.rowcount)

    def set_paused(self, flow: str, paused: bool, *, next_at: float | None, at: float) -> None:
        """Pause or resume a schedule; ``next_at`` is where it resumes."""
        with self._tx() as conn:
            res = conn.execute(
                s.schedules.update()
                .where(s.schedules.c.flow == flow)
                .values(paused=paused, next_at=next_at, updated_at=at)
            )
            if res.rowcount != 1:
                raise NotFoundError(f"no schedule for flow {flow!r}")

    def advance_schedule(
        self,
        flow: str,
        *,
        expected_next_at: float | None,
        next_at: float | None,
        firings: Sequence[FiringRecord],
        at: float,
    ) -> list[FiringRecord]:
        """Move ``next_at`` on (compare-and-set) and record the firings, in one transaction.

        Returns the firings recorded (a key that exists already is left alone). Raises
        :class:`ConflictError` when ``next_at`` is no longer ``expected_next_at``: another
        scheduler handled these times.
        """
        with self._tx() as conn:
            current = s.schedules.c.next_at
            same = current.is_(None) if expected_next_at is None else current == expected_next_at
            res = conn.execute(
                s.schedules.update()
                .where(s.schedules.c.flow == flow, same)
                .values(next_at=next_at, updated_at=at)
            )
            if res.rowcount != 1:
                raise ConflictError(f"the schedule of {flow} was advanced by another scheduler")
            return [f for f in firings if _insert_firing(conn, f)]

    # ---------------------------------------------------------------------- firings
    def add_firing(self, firing: FiringRecord) -> bool:
        """Record a firing; False when its key exists already (it fired before)."""
        with self._tx() as conn:
            return _insert_firing(conn, firing)

    def get_firing(self, key: str) -> FiringRecord | None:
        """One firing by its key."""
        found = self._all(sa.select(s.firings).where(s.firings.c.key == key))
        return rows.FIRING(found[0]) if found else None

    def list_firings(
        self,
        *,
        flow: str | None = None,
        states: Sequence[FiringState] | None = None,
        trigger_id: str | None = None,
        limit: int = 100,
        oldest_first: bool = False,
    ) -> list[FiringRecord]:
        """Firings, newest first (or oldest first), optionally of one flow, state or rule."""
        when = sa.func.coalesce(s.firings.c.scheduled_at, s.firings.c.fired_at)
        q = sa.select(s.firings)
        if flow is not None:
            q = q.where(s.firings.c.flow == flow)
        if states is not None:
            q = q.where(s.firings.c.state.in_([x.value for x in states]))
        if trigger_id is not None:
            q = q.where(s.firings.c.trigger_id == trigger_id)
        order = (when.asc(), s.firings.c.key.asc()) if oldest_first else (when.desc(),)
        return rows.FIRING.many(self._all(q.order_by(*order).limit(limit)))

    def claim_firing(
        self, key: str, *, owner: str, now: float, stale_before: float, require_idle: bool
    ) -> Claim:
        """Take a firing to start its run (compare-and-set ``-> starting``).

        Claimable: ``pending`` or ``queued`` firings, and ``starting`` ones whose claim is
        older than ``stale_before`` (their scheduler stopped; ``recovered`` is then true).
        With ``require_idle``, a pending or queued firing is ``busy`` while its flow has a run
        going or another of its firings is being started; the check and the claim are one
        transaction, serialized per flow.
        """
        with self._tx() as conn:
            row = conn.execute(sa.select(s.firings).where(s.firings.c.key == key)).first()
            if row is None:
                return Claim("gone")
            firing = rows.FIRING(row)
            # one claim at a time per flow (PostgreSQL; SQLite writers are serialized anyway)
            conn.execute(
                sa.select(s.schedules.c.flow)
                .where(s.schedules.c.flow == firing.flow)
                .with_for_update()
            )
            stale = firing.state is FiringState.STARTING and (
                firing.claimed_at is None or firing.claimed_at < stale_before
            )
            if firing.state.value not in _CLAIMABLE and not stale:
                return Claim("gone", firing)
            if require_idle and not stale and _flow_busy(conn, firing.flow, key, stale_before):
                return Claim("busy", firing)
            res = conn.execute(
                s.firings.update()
                .where(s.firings.c.key == key, s.firings.c.state == firing.state.value)
                .values(state=FiringState.STARTING.value, owner=owner, claimed_at=now)
            )
            if res.rowcount != 1:
                return Claim("gone", firing)
            claimed = rows.FIRING(
                conn.execute(sa.select(s.firings).where(s.firings.c.key == key)).one()
            )
            return Claim("claimed", claimed, recovered=stale)

    def settle_firing(
        self,
        key: str,
        state: FiringState,
        *,
        run_id: str | None = None,
        reason: str | None = None,
        from_states: Sequence[FiringState] = (),
    ) -> bool:
        """Set a firing's state (and run); with ``from_states``, only from one of them."""
        values: dict[str, Any] = {"state": state.value, "reason": reason}
        if run_id is not None:
            values["run_id"] = run_id
        with self._tx() as conn:
            q = s.firings.update().where(s.firings.c.key == key)
            if from_states:
                q = q.where(s.firings.c.state.in_([x.value for x in from_states]))
            return bool(conn.execute(q.values(**values)).rowcount)

    def run_of_firing(self, flow: str, key: str) -> str | None:
        """The run a firing started, found by the key in its facts (after a crash)."""
        q = (
            sa.select(t.runs.c.id, t.runs.c.facts)
            .where(t.runs.c.flow_name == flow)
            .order_by(t.runs.c.created_at.desc())
            .limit(_RUN_LOOKUP_LIMIT)
        )
        for row in self._all(q):
            facts = row.facts if isinstance(row.facts, dict) else json.loads(row.facts or "{}")
            trigger = facts.get("trigger") if isinstance(facts, dict) else None
            if isinstance(trigger, dict) and trigger.get("key") == key:
                return str(row.id)
        return None

    def active_run_ids(self, flow: str) -> list[str]:
        """Runs of a flow that have not ended (queued, running, waiting), oldest first."""
        q = (
            sa.select(t.runs.c.id)
            .where(t.runs.c.flow_name == flow, t.runs.c.state.in_(_ACTIVE_RUN_STATES))
            .order_by(t.runs.c.created_at)
        )
        return [r.id for r in self._all(q)]

    def set_trigger_state(self, flow: str, trigger_id: str, state: dict[str, Any]) -> None:
        """Replace what one trigger remembers between evaluations."""
        with self._tx() as conn:
            row = conn.execute(
                sa.select(s.schedules.c.trigger_state)
                .where(s.schedules.c.flow == flow)
                .with_for_update()
            ).first()
            if row is None:
                raise NotFoundError(f"no schedule for flow {flow!r}")
            memory = dict(row.trigger_state or {})
            memory[trigger_id] = state
            conn.execute(
                s.schedules.update().where(s.schedules.c.flow == flow).values(trigger_state=memory)
            )

    # -------------------------------------------------------------- prediction log
    def predictions_between(
        self,
        endpoint: str,
        *,
        since: float,
        until: float,
        model_version: str | None = None,
        limit: int = 10_000,
    ) -> list[PredictionRecord]:
        """Logged predictions of an endpoint in ``[since, until]``, newest first."""
        p = t.predictions
        q = sa.select(p).where(p.c.endpoint == endpoint, p.c.at >= since, p.c.at <= until)
        if model_version is not None:
            q = q.where(p.c.model_version == model_version)
        q = q.order_by(p.c.at.desc()).limit(limit)
        return rows.PREDICTION.many(self._all(q))

    def labelled_predictions(
        self,
        endpoint: str,
        *,
        since: float,
        until: float,
        model_version: str | None = None,
        limit: int = 10_000,
    ) -> list[tuple[PredictionRecord, Any]]:
        """Logged predictions in ``[since, until]`` with their latest feedback label."""
        p, f = t.predictions, t.feedback
        q = (
            sa.select(p, f.c.label.label("feedback_label"), f.c.id.label("feedback_id"))
            .join(f, f.c.prediction_id == p.c.id)
            .where(p.c.endpoint == endpoint, p.c.at >= since, p.c.at <= until)
        )
        if model_version is not None:
            q = q.where(p.c.model_version == model_version)
        q = q.order_by(p.c.at.desc(), f.c.id.desc()).limit(limit * 2)
        found: dict[str, tuple[PredictionRecord, Any]] = {}
        for row in self._all(q):
            if row.id not in found:  # rows come latest label first
                found[row.id] = (rows.PREDICTION(row), row.feedback_label)
        return list(found.values())[:limit]

    # ------------------------------------------------------------------------ lock
    def scheduler_lock_path(self) -> Path | None:
        """The lock file beside a SQLite database (one scheduler per file); None otherwise."""
        url = self.engine.url
        if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
            return None
        return Path(url.database).resolve().with_name(Path(url.database).name + ".scheduler.lock")


# ------------------------------------------------------------------------ helpers
def _flow_busy(conn: Connection, flow: str, key: str, stale_before: float) -> bool:
    """Whether the flow has a run going, or another firing of it is being started now."""
    running = conn.execute(
        sa.select(t.runs.c.id)
        .where(t.runs.c.flow_name == flow, t.runs.c.state.in_(_ACTIVE_RUN_STATES))
        .limit(1)
    ).first()
    if running is not None:
        return True
    starting = conn.execute(
        sa.select(s.firings.c.key)
        .where(
            s.firings.c.flow == flow,
            s.firings.c.key != key,
            s.firings.c.state == FiringState.STARTING.value,
            s.firings.c.claimed_at >= stale_before,
        )
        .limit(1)
    ).first()
    return starting is not None


def _insert_firing(conn: Connection, firing: FiringRecord) -> bool:
    """INSERT ... ON CONFLICT (key) DO NOTHING; True when the row was written."""
    values = _firing_values(firing)
    dialect: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(s.firings).values(**values).on_conflict_do_nothing()
    return conn.execute(stmt.returning(s.firings.c.key)).first() is not None


def _firing_values(firing: FiringRecord) -> dict[str, Any]:
    values = asdict(firing)
    values["state"] = firing.state.value
    return values


def _schedule_values(schedule: ScheduleRecord) -> dict[str, Any]:
    cli = set(schedule.cli_trigger_ids)
    return {
        "flow": schedule.flow,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "catchup": schedule.catchup.value,
        "overlap": schedule.overlap.value,
        "paused": schedule.paused,
        "next_at": schedule.next_at,
        "flow_path": schedule.flow_path,
        "spec_hash": schedule.spec_hash,
        "triggers": [
            {"origin": "cli" if tr.id in cli else "file", **json.loads(json.dumps(asdict(tr)))}
            for tr in schedule.triggers
        ],
        "trigger_state": dict(schedule.trigger_state),
        "created_at": schedule.created_at,
        "updated_at": schedule.updated_at,
    }
