"""SqlStore: the Store port on SQLAlchemy Core, for SQLite and PostgreSQL alike.

Every state change goes through :meth:`SqlStore.transition_run` or
:meth:`SqlStore.transition_task_run` (or a gate decision): the transition table is checked,
the row is updated with a compare-and-set on ``(state, version)``, and a transition row is
appended, all in one transaction. Zero rows updated means someone else won: ConflictError.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import json
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, Row

from signoff.domain.records import (
    ArtifactRecord,
    AuditEvent,
    DecisionRecord,
    GateRecord,
    MetricRecord,
    RunRecord,
    TaskOutputs,
    TaskRunRecord,
    TransitionRecord,
)
from signoff.domain.specs import FlowSpec, TaskKind
from signoff.domain.states import (
    RunState,
    TaskRunState,
    check_run_transition,
    check_task_transition,
)
from signoff.errors import ConflictError, NotFoundError
from signoff.store import _tables as t
from signoff.store._base import WRITE as _WRITE
from signoff.store._governance import GovernanceStore
from signoff.store._registry import RegistryStore
from signoff.store._scheduling import SchedulingStore
from signoff.store._sessions import SqlSessionStore

__all__ = ["SqlStore", "create_sql_engine", "open_store"]

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


def create_sql_engine(url: str) -> Engine:
    """An engine tuned per backend: SQLite in WAL mode with immediate write transactions."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # A writing transaction takes the lock up front (IMMEDIATE): two writers never
            # deadlock on a lock upgrade. Reads stay deferred and never wait for a writer (WAL).
            write = conn.info.get(_WRITE, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return sa.create_engine(url, pool_pre_ping=True)


def open_store(url: str, *, migrate: bool = True) -> SqlStore:
    """Open (and by default migrate to the latest schema) the store at ``url``.

    A SQLite file holds sessions, decisions and personal data: it is created 0600 before
    SQLAlchemy opens it (SQLite gives its ``-wal`` and ``-shm`` files the same mode), and an
    existing one this user owns, with those two files, loses its group and world bits.
    """
    parsed = sa.engine.make_url(url)
    in_file = parsed.database not in (None, "", ":memory:") and not parsed.query.get("uri")
    if parsed.get_backend_name() == "sqlite" and in_file:
        db = Path(str(parsed.database))
        db.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(db, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            with contextlib.suppress(FileNotFoundError):
                info = path.stat()
                if info.st_uid == os.geteuid() and info.st_mode & 0o077:
                    path.chmod(stat.S_IMODE(info.st_mode) & ~0o077)
    engine = create_sql_engine(url)
    if migrate:
        from signoff.store.migrate import upgrade

        upgrade(engine)
    return SqlStore(engine)


def _run(row: Row[Any]) -> RunRecord:
    m = row._mapping
    return RunRecord(
        id=m["id"],
        flow_name=m["flow_name"],
        flow_hash=m["flow_hash"],
        state=RunState(m["state"]),
        version=m["version"],
        params=dict(m["params"]),
        started_by=m["started_by"],
        work_dir=m["work_dir"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        ended_at=m["ended_at"],
        reason=m["reason"],
        facts=dict(m["facts"] or {}),
    )


def _task_run(row: Row[Any]) -> TaskRunRecord:
    m = row._mapping
    return TaskRunRecord(
        id=m["id"],
        run_id=m["run_id"],
        task_name=m["task_name"],
        index=m["idx"],
        kind=TaskKind(m["kind"]),
        params=dict(m["params"]),
        state=TaskRunState(m["state"]),
        version=m["version"],
        attempt=m["attempt"],
        work_dir=m["work_dir"],
        created_at=m["created_at"],
        started_at=m["started_at"],
        ended_at=m["ended_at"],
        exit_code=m["exit_code"],
        reason=m["reason"],
        result=dict(m["result"]),
        not_before=m["not_before"],
        cache_key=m["cache_key"],
    )


def _gate(row: Row[Any]) -> GateRecord:
    m = row._mapping
    quorum: str | int = m["quorum"]
    if isinstance(quorum, str) and quorum.isdigit():
        quorum = int(quorum)
    return GateRecord(
        id=m["id"],
        run_id=m["run_id"],
        task_run_id=m["task_run_id"],
        targets=tuple(m["targets"]),
        quorum=quorum,
        allow_self_approval=m["allow_self_approval"],
        require_comment_on_reject=m["require_comment_on_reject"],
        started_by=m["started_by"],
        model_version_id=m["model_version_id"],
        model_digest=m["model_digest"],
        report_digest=m["report_digest"],
        report_path=m["report_path"],
        opened_at=m["opened_at"],
        expires_at=m["expires_at"],
    )


def _decision(row: Row[Any]) -> DecisionRecord:
    m = row._mapping
    return DecisionRecord(
        id=m["id"],
        gate_id=m["gate_id"],
        actor=m["actor"],
        decision=m["decision"],
        comment=m["comment"],
        channel=m["channel"],
        at=m["at"],
        model_digest=m["model_digest"],
        report_digest=m["report_digest"],
    )


class SqlStore(RegistryStore, GovernanceStore, SqlSessionStore, SchedulingStore):
    """The Store port on a SQLAlchemy engine."""

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
        exact = self._all(sa.select(t.runs).where(t.runs.c.id == run_id))
        if exact:
            return _run(exact[0])
        rows = self._all(sa.select(t.runs).where(t.runs.c.id.startswith(run_id)).limit(2))
        if not rows:
            raise NotFoundError(f"no run {run_id!r}")
        if len(rows) > 1:
            raise NotFoundError(f"run id prefix {run_id!r} is ambiguous")
        return _run(rows[0])

    def list_runs(self, limit: int = 50) -> list[RunRecord]:
        q = sa.select(t.runs).order_by(t.runs.c.created_at.desc()).limit(limit)
        return [_run(r) for r in self._all(q)]

    def get_task_run(self, task_run_id: str) -> TaskRunRecord:
        q = sa.select(t.task_runs).where(t.task_runs.c.id == task_run_id)
        return _task_run(self._one(q, f"task run {task_run_id}"))

    def list_task_runs(self, run_id: str) -> list[TaskRunRecord]:
        q = (
            sa.select(t.task_runs)
            .where(t.task_runs.c.run_id == run_id)
            .order_by(t.task_runs.c.created_at, t.task_runs.c.task_name, t.task_runs.c.idx)
        )
        return [_task_run(r) for r in self._all(q)]

    def list_transitions(self, run_id: str) -> list[TransitionRecord]:
        q = (
            sa.select(t.transitions)
            .where(t.transitions.c.run_id == run_id)
            .order_by(t.transitions.c.id)
        )
        return [
            TransitionRecord(
                entity=r.entity,
                entity_id=r.entity_id,
                from_state=r.from_state,
                to_state=r.to_state,
                at=r.at,
                reason=r.reason,
                actor=r.actor,
            )
            for r in self._all(q)
        ]

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
                        self._write_outputs(conn, task_run.id, outputs, replace=not first)
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

    # ---------------------------------------------------------------------- tracking
    def record_outputs(
        self,
        task_run_id: str,
        *,
        params: Mapping[str, Any],
        metrics: Sequence[MetricRecord],
        tags: Mapping[str, str],
    ) -> None:
        outputs = TaskOutputs(params=dict(params), metrics=list(metrics), tags=dict(tags))
        with self._tx() as conn:
            self._write_outputs(conn, task_run_id, outputs)

    @staticmethod
    def _write_outputs(
        conn: Connection, task_run_id: str, outputs: TaskOutputs, *, replace: bool = True
    ) -> None:
        if replace:  # a retried or re-run task replaces what an earlier attempt wrote
            conn.execute(t.logged.delete().where(t.logged.c.task_run_id == task_run_id))
            conn.execute(t.metrics.delete().where(t.metrics.c.task_run_id == task_run_id))
            conn.execute(t.artifacts.delete().where(t.artifacts.c.task_run_id == task_run_id))
        rows = [
            {"task_run_id": task_run_id, "kind": "param", "key": k, "value": v}
            for k, v in outputs.params.items()
        ] + [
            {"task_run_id": task_run_id, "kind": "tag", "key": k, "value": v}
            for k, v in outputs.tags.items()
        ]
        if rows:
            conn.execute(t.logged.insert(), rows)
        if outputs.metrics:
            conn.execute(
                t.metrics.insert(),
                [
                    {
                        "task_run_id": task_run_id,
                        "key": m.key,
                        "value": m.value,
                        "step": m.step,
                        "at": m.at,
                    }
                    for m in outputs.metrics
                ],
            )
        if outputs.artifacts:
            conn.execute(t.artifacts.insert(), [dataclasses.asdict(a) for a in outputs.artifacts])
        for model in outputs.models:
            # Numbered here, inside the writing transaction, so concurrent runs never collide
            # on SQLite (one writer) and retry on PostgreSQL (unique name+version).
            current = conn.execute(
                sa.select(sa.func.max(t.model_versions.c.version)).where(
                    t.model_versions.c.name == model.name
                )
            ).scalar()
            values = dataclasses.asdict(model)
            values["version"] = int(current or 0) + 1
            conn.execute(t.model_versions.insert().values(**values))

    def list_artifacts(self, task_run_id: str) -> list[ArtifactRecord]:
        q = (
            sa.select(t.artifacts)
            .where(t.artifacts.c.task_run_id == task_run_id)
            .order_by(t.artifacts.c.path)
        )
        return [ArtifactRecord(r.task_run_id, r.path, r.sha256, r.size) for r in self._all(q)]

    def find_cached(self, cache_key: str) -> TaskRunRecord | None:
        """The latest succeeded task run with this cache key, if any."""
        q = (
            sa.select(t.task_runs)
            .where(
                t.task_runs.c.cache_key == cache_key,
                t.task_runs.c.state == TaskRunState.SUCCEEDED.value,
            )
            .order_by(t.task_runs.c.ended_at.desc())
            .limit(1)
        )
        rows = self._all(q)
        return _task_run(rows[0]) if rows else None

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

    def list_metrics(self, task_run_ids: Sequence[str]) -> list[MetricRecord]:
        if not task_run_ids:
            return []
        q = (
            sa.select(t.metrics)
            .where(t.metrics.c.task_run_id.in_(list(task_run_ids)))
            .order_by(t.metrics.c.id)
        )
        return [MetricRecord(r.task_run_id, r.key, r.value, r.step, r.at) for r in self._all(q)]

    def _logged(self, task_run_id: str, kind: str) -> dict[str, Any]:
        q = sa.select(t.logged).where(
            t.logged.c.task_run_id == task_run_id, t.logged.c.kind == kind
        )
        return {r.key: r.value for r in self._all(q)}

    def logged_params(self, task_run_id: str) -> dict[str, Any]:
        return self._logged(task_run_id, "param")

    def logged_tags(self, task_run_id: str) -> dict[str, str]:
        return {k: str(v) for k, v in self._logged(task_run_id, "tag").items()}

    # ------------------------------------------------------------------------- gates
    def open_gate(
        self,
        gate: GateRecord,
        task_run: TaskRunRecord,
        *,
        at: float,
        policy: dict[str, Any] | None = None,
        audit: Sequence[AuditEvent] = (),
    ) -> TaskRunRecord:
        """Record the gate and its policy, move its task run to waiting, audit: one transaction."""
        values = dataclasses.asdict(gate)
        values["targets"] = list(gate.targets)
        values["quorum"] = str(gate.quorum)
        with self._tx() as conn:
            conn.execute(t.gates.insert().values(**values))
            self._save_gate_policy(conn, gate.id, policy or {})
            moved = self._transition_task_run(
                conn, task_run, TaskRunState.WAITING_FOR_APPROVAL, at, "gate opened", None, None
            )
            self._append_audit(conn, at, audit)
            return moved

    def waiting_gates(self) -> list[GateRecord]:
        """Every gate whose task run waits for a decision (for the timers)."""
        q = (
            sa.select(t.gates)
            .join(t.task_runs, t.task_runs.c.id == t.gates.c.task_run_id)
            .where(t.task_runs.c.state == TaskRunState.WAITING_FOR_APPROVAL.value)
            .order_by(t.gates.c.opened_at)
        )
        return [_gate(r) for r in self._all(q)]

    def close_gate(
        self,
        task_run: TaskRunRecord,
        new_state: TaskRunState,
        run: RunRecord,
        run_state: RunState | None,
        *,
        at: float,
        reason: str,
        actor: str | None,
        audit: Sequence[AuditEvent] = (),
    ) -> None:
        """End a gate without a decision (expired, superseded, cancelled) and its run, audited."""
        with self._tx() as conn:
            self._transition_task_run(conn, task_run, new_state, at, reason, actor, None)
            if run_state is not None:
                self._transition_run_in(conn, run, run_state, at, reason, actor)
            self._append_audit(conn, at, audit)

    def get_gate(self, gate_id: str) -> GateRecord:
        return _gate(self._one(sa.select(t.gates).where(t.gates.c.id == gate_id), "gate"))

    def gate_of_task_run(self, task_run_id: str) -> GateRecord | None:
        rows = self._all(sa.select(t.gates).where(t.gates.c.task_run_id == task_run_id))
        return _gate(rows[0]) if rows else None

    def gates_of_run(self, run_id: str) -> list[GateRecord]:
        q = sa.select(t.gates).where(t.gates.c.run_id == run_id).order_by(t.gates.c.opened_at)
        return [_gate(r) for r in self._all(q)]

    def list_decisions(self, gate_id: str) -> list[DecisionRecord]:
        q = sa.select(t.decisions).where(t.decisions.c.gate_id == gate_id)
        return [_decision(r) for r in self._all(q.order_by(t.decisions.c.seq))]

    def all_decisions(self) -> list[DecisionRecord]:
        """Every decision and refusal of every gate, oldest first (for ``audit verify``)."""
        return [_decision(r) for r in self._all(sa.select(t.decisions).order_by(t.decisions.c.seq))]

    def add_decision(
        self,
        decision: DecisionRecord,
        task_run: TaskRunRecord,
        new_state: TaskRunState | None,
        *,
        reason: str | None = None,
        audit: Sequence[AuditEvent] = (),
        link_token_hash: str | None = None,
    ) -> TaskRunRecord:
        """Append a decision; the gate's task run is compare-and-set in the same transaction.

        The audit entry and (for an e-mailed link) the link's single use are written in that
        transaction too: a decision whose audit entry cannot be written does not happen.

        Even a decision that does not settle the gate bumps the task run's version, so two
        decisions computed from the same view cannot both count: the second one conflicts.
        """
        with self._tx() as conn:
            if new_state is None:
                res = conn.execute(
                    t.task_runs.update()
                    .where(
                        t.task_runs.c.id == task_run.id,
                        t.task_runs.c.state == task_run.state.value,
                        t.task_runs.c.version == task_run.version,
                    )
                    .values(version=task_run.version + 1)
                )
                if res.rowcount != 1:
                    raise ConflictError("the gate changed meanwhile")
                updated = dataclasses.replace(task_run, version=task_run.version + 1)
            else:
                updated = self._transition_task_run(
                    conn, task_run, new_state, decision.at, reason, decision.actor, None
                )
            conn.execute(t.decisions.insert().values(**dataclasses.asdict(decision)))
            if link_token_hash is not None:
                self._use_link_token(conn, link_token_hash, decision.at)
            self._append_audit(conn, decision.at, audit)
        return updated

    def add_refusal(self, decision: DecisionRecord, audit: Sequence[AuditEvent] = ()) -> None:
        with self._tx() as conn:
            conn.execute(t.decisions.insert().values(**dataclasses.asdict(decision)))
            self._append_audit(conn, decision.at, audit)


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
