"""Store part for flows, runs and task runs: the one door for their states, and leases.

Every state change goes through :meth:`RunsStore.transition_run` or
:meth:`RunsStore.transition_task_run` (or a gate decision): the transition table is checked,
the row is updated with a compare-and-set on ``(state, version)``, and a transition row is
appended, all in one transaction. Zero rows updated means someone else won: ConflictError.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from signoff.domain.records import RunRecord, TaskOutputs, TaskRunRecord, TransitionRecord
from signoff.domain.specs import FlowSpec, TaskKind
from signoff.domain.states import (
    RunState,
    TaskRunState,
    check_run_transition,
    check_task_transition,
)
from signoff.errors import ConflictError
from signoff.store import _rows as rows
from signoff.store import _tables as t
from signoff.store._tracking import TrackingStore, write_outputs

__all__ = ["RunsStore", "like_prefix"]

_TASK_RUN_CHANGES = {
    "exit_code",
    "started_at",
    "ended_at",
    "reason",
    "result",
    "work_dir",
    "not_before",
    "cache_key",
}
_LIKE_ESCAPE = "\\"


def like_prefix(prefix: str) -> str:
    """A LIKE pattern matching strings that start with ``prefix`` taken literally."""
    for special in (_LIKE_ESCAPE, "%", "_"):
        prefix = prefix.replace(special, _LIKE_ESCAPE + special)
    return prefix + "%"


class RunsStore(TrackingStore):
    """Flows, runs, task runs, transitions and run leases (task outputs come with them)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._json_columns = frozenset(
            c.name for c in t.task_runs.columns if isinstance(c.type, sa.JSON)
        )

    # ----------------------------------------------------------------- flows and runs
    def save_flow(self, spec: FlowSpec, source: str | None) -> None:
        with self._tx() as conn:
            exists = conn.execute(
                sa.select(t.flows.c.hash).where(t.flows.c.hash == spec.spec_hash)
            ).first()
            if exists is None:
                conn.execute(
                    t.flows.insert().values(
                        hash=spec.spec_hash,
                        name=spec.name,
                        spec=json.loads(spec.canonical_json()),
                        source=source,
                    )
                )

    def get_flow(self, flow_hash: str) -> FlowSpec:
        row = self._one(sa.select(t.flows).where(t.flows.c.hash == flow_hash), "flow")
        return FlowSpec.from_dict(row._mapping["spec"])

    def create_run(self, run: RunRecord, task_runs: Sequence[TaskRunRecord]) -> None:
        with self._tx() as conn:
            conn.execute(t.runs.insert().values(**_run_values(run)))
            conn.execute(
                t.transitions.insert().values(
                    run_id=run.id,
                    entity="run",
                    entity_id=run.id,
                    from_state=None,
                    to_state=run.state.value,
                    at=run.created_at,
                    reason="created",
                    actor=run.started_by,
                )
            )
            if task_runs:
                conn.execute(t.task_runs.insert(), [_task_run_values(tr) for tr in task_runs])

    def get_run(self, run_id: str) -> RunRecord:
        """The run with exactly this id (see :meth:`runs_by_prefix` for what users type)."""
        return rows.RUN(
            self._one(sa.select(t.runs).where(t.runs.c.id == run_id), f"run {run_id!r}")
        )

    def runs_by_prefix(self, prefix: str, limit: int = 2) -> list[RunRecord]:
        """Runs whose id starts with ``prefix``; ``%`` and ``_`` in it match only themselves."""
        q = (
            sa.select(t.runs)
            .where(t.runs.c.id.like(like_prefix(prefix), escape=_LIKE_ESCAPE))
            .order_by(t.runs.c.id)
            .limit(limit)
        )
        return rows.RUN.many(self._all(q))

    def list_runs(self, limit: int = 50) -> list[RunRecord]:
        q = sa.select(t.runs).order_by(t.runs.c.created_at.desc()).limit(limit)
        return rows.RUN.many(self._all(q))

    def runs_in_states(self, states: Sequence[RunState]) -> list[RunRecord]:
        """Every run in one of ``states``, oldest first (an indexed query, not a scan)."""
        q = (
            sa.select(t.runs)
            .where(t.runs.c.state.in_([s.value for s in states]))
            .order_by(t.runs.c.created_at, t.runs.c.id)
        )
        return rows.RUN.many(self._all(q))

    def get_task_run(self, task_run_id: str) -> TaskRunRecord:
        q = sa.select(t.task_runs).where(t.task_runs.c.id == task_run_id)
        return rows.TASK_RUN(self._one(q, f"task run {task_run_id}"))

    def list_task_runs(self, run_id: str) -> list[TaskRunRecord]:
        q = (
            sa.select(t.task_runs)
            .where(t.task_runs.c.run_id == run_id)
            .order_by(t.task_runs.c.created_at, t.task_runs.c.task_name, t.task_runs.c.idx)
        )
        return rows.TASK_RUN.many(self._all(q))

    def list_transitions(self, run_id: str) -> list[TransitionRecord]:
        q = (
            sa.select(t.transitions)
            .where(t.transitions.c.run_id == run_id)
            .order_by(t.transitions.c.id)
        )
        return rows.TRANSITION.many(self._all(q))

    # ------------------------------------------------------------- the one door for state
    def transition_run(
        self,
        run: RunRecord,
        new: RunState,
        *,
        at: float,
        reason: str | None = None,
        actor: str | None = None,
    ) -> RunRecord:
        with self._tx() as conn:
            return self._transition_run_in(conn, run, new, at, reason, actor)

    def _transition_run_in(
        self,
        conn: Connection,
        run: RunRecord,
        new: RunState,
        at: float,
        reason: str | None,
        actor: str | None,
    ) -> RunRecord:
        check_run_transition(run.state, new)
        values: dict[str, Any] = {"state": new.value, "version": run.version + 1, "updated_at": at}
        if new.is_terminal:
            values["ended_at"] = at
        if reason is not None:
            values["reason"] = reason
        res = conn.execute(
            t.runs.update()
            .where(
                t.runs.c.id == run.id,
                t.runs.c.state == run.state.value,
                t.runs.c.version == run.version,
            )
            .values(**values)
        )
        if res.rowcount != 1:
            raise ConflictError(f"run {run.id} changed meanwhile; {new} not applied")
        self._append_transition(conn, run.id, "run", run.id, run.state, new, at, reason, actor)
        return dataclasses.replace(
            run,
            state=new,
            version=run.version + 1,
            updated_at=at,
            ended_at=at if new.is_terminal else run.ended_at,
            reason=reason if reason is not None else run.reason,
        )

    def transition_task_run(
        self,
        task_run: TaskRunRecord,
        new: TaskRunState,
        *,
        at: float,
        reason: str | None = None,
        actor: str | None = None,
        changes: Mapping[str, Any] | None = None,
        via: Sequence[TaskRunState] = (),
        outputs: TaskOutputs | None = None,
    ) -> TaskRunRecord:
        """Move a task run to ``new`` (through the states in ``via`` first), in one transaction.

        ``outputs`` (what a finished task logged and produced) are written in the same
        transaction, so a task run is never ``succeeded`` without its outputs, nor the reverse.
        """
        for attempt in range(3):
            try:
                with self._tx() as conn:
                    if outputs is not None:
                        # Only a task run's first attempt can have nothing to replace.
                        first = task_run.attempt <= 1 and not task_run.result.get("lost")
                        write_outputs(conn, task_run.id, outputs, replace=not first)
                    return self._transition_task_run(
                        conn, task_run, new, at, reason, actor, changes, via=via
                    )
            except sa.exc.IntegrityError:
                if outputs is None or not outputs.models or attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _transition_task_run(
        self,
        conn: Connection,
        task_run: TaskRunRecord,
        new: TaskRunState,
        at: float,
        reason: str | None,
        actor: str | None,
        changes: Mapping[str, Any] | None,
        *,
        via: Sequence[TaskRunState] = (),
    ) -> TaskRunRecord:
        is_gate = task_run.kind is TaskKind.HUMAN_VALIDATION
        path = [task_run.state, *via, new]
        for old, nxt in itertools.pairwise(path):
            check_task_transition(old, nxt, is_gate=is_gate)
        changes = dict(changes or {})
        unknown = set(changes) - _TASK_RUN_CHANGES
        if unknown:
            raise ValueError(f"cannot change {sorted(unknown)} of a task run")
        starts = sum(1 for st in path[1:] if st is TaskRunState.RUNNING)
        attempt = task_run.attempt + starts
        version = task_run.version + len(path) - 1
        if reason is not None:
            changes["reason"] = reason
        params = {
            "b_id": task_run.id,
            "b_state": task_run.state.value,
            "b_version": task_run.version,
            "state": new.value,
            "version": version,
            "attempt": attempt,
            **changes,
        }
        named = conn.dialect.name == "sqlite"  # pysqlite takes :name; psycopg %(name)s
        sql = _task_run_cas_sql(frozenset(changes), named)
        res = conn.exec_driver_sql(sql, _driver_params(params, self._json_columns))
        if res.rowcount != 1:
            raise ConflictError(f"task run {task_run.label} changed meanwhile; {new} not applied")
        rows = [
            {
                "run_id": task_run.run_id,
                "entity": "task_run",
                "entity_id": task_run.id,
                "from_state": old.value,
                "to_state": nxt.value,
                "at": at,
                "reason": reason if nxt is new else None,
                "actor": actor,
            }
            for old, nxt in itertools.pairwise(path)
        ]
        conn.exec_driver_sql(_transition_insert_sql(named), rows)
        return dataclasses.replace(task_run, state=new, version=version, attempt=attempt, **changes)

    @staticmethod
    def _append_transition(
        conn: Connection,
        run_id: str,
        entity: str,
        entity_id: str,
        old: str,
        new: str,
        at: float,
        reason: str | None,
        actor: str | None,
    ) -> None:
        conn.execute(
            t.transitions.insert().values(
                run_id=run_id,
                entity=entity,
                entity_id=entity_id,
                from_state=str(old),
                to_state=str(new),
                at=at,
                reason=reason,
                actor=actor,
            )
        )

    # ------------------------------------------------------------------------ leases
    def claim_run(self, run_id: str, owner: str, *, now: float, ttl: float) -> str | None:
        """Take (or renew) the lease to drive a run; return the current holder when refused."""
        with self._tx() as conn:
            res = conn.execute(
                t.runs.update()
                .where(
                    t.runs.c.id == run_id,
                    sa.or_(
                        t.runs.c.lease_owner.is_(None),
                        t.runs.c.lease_owner == owner,
                        t.runs.c.lease_expires_at < now,
                    ),
                )
                .values(lease_owner=owner, lease_expires_at=now + ttl)
            )
            if res.rowcount == 1:
                return None
            holder = conn.execute(
                sa.select(t.runs.c.lease_owner).where(t.runs.c.id == run_id)
            ).scalar()
        return str(holder)

    def release_run(self, run_id: str, owner: str) -> None:
        """Give the lease up (a clean exit); an expired lease needs no release."""
        with self._tx() as conn:
            conn.execute(
                t.runs.update()
                .where(t.runs.c.id == run_id, t.runs.c.lease_owner == owner)
                .values(lease_owner=None, lease_expires_at=None)
            )

    def lease_of(self, run_id: str) -> tuple[str | None, float | None]:
        row = self._one(
            sa.select(t.runs.c.lease_owner, t.runs.c.lease_expires_at).where(t.runs.c.id == run_id),
            f"run {run_id}",
        )
        return row.lease_owner, row.lease_expires_at


# The hot path (two transitions per task run) skips statement compilation: plain SQL, built
# once per shape, with the driver's own named parameters (sqlite ":x", psycopg "%(x)s").
def _ph(name: str, named: bool) -> str:
    return f":{name}" if named else f"%({name})s"


@functools.cache
def _task_run_cas_sql(changed: frozenset[str], named: bool) -> str:
    """The compare-and-set UPDATE of a task run, for one set of changed columns."""
    cols = ("state", "version", "attempt", *sorted(changed))
    sets = ", ".join(f"{c} = {_ph(c, named)}" for c in cols)
    return (
        f"UPDATE task_runs SET {sets} WHERE id = {_ph('b_id', named)} "
        f"AND state = {_ph('b_state', named)} AND version = {_ph('b_version', named)}"
    )


@functools.cache
def _transition_insert_sql(named: bool) -> str:
    cols = ("run_id", "entity", "entity_id", "from_state", "to_state", "at", "reason", "actor")
    values = ", ".join(_ph(c, named) for c in cols)
    return f"INSERT INTO transitions ({', '.join(cols)}) VALUES ({values})"


def _driver_params(params: dict[str, Any], json_columns: frozenset[str]) -> dict[str, Any]:
    """Values as the driver takes them (JSON columns serialized)."""
    return {k: json.dumps(v) if k in json_columns else v for k, v in params.items()}


def _run_values(run: RunRecord) -> dict[str, Any]:
    values = dataclasses.asdict(run)
    values["lease_owner"] = None
    values["state"] = run.state.value
    return values


def _task_run_values(tr: TaskRunRecord) -> dict[str, Any]:
    values = dataclasses.asdict(tr)
    values["idx"] = values.pop("index")
    values["state"] = tr.state.value
    values["kind"] = tr.kind.value
    return values
