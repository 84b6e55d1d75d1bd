"""Store part for gates and their decisions: opening, deciding and closing a gate, each one
transaction with its task run's compare-and-set and its audit entries."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from signoff.domain.records import AuditEvent, DecisionRecord, GateRecord, RunRecord, TaskRunRecord
from signoff.domain.states import RunState, TaskRunState
from signoff.errors import ConflictError
from signoff.store import _rows as rows
from signoff.store import _tables as t
from signoff.store._governance import GovernanceStore
from signoff.store._runs import RunsStore

__all__ = ["GatesStore"]


class GatesStore(RunsStore, GovernanceStore):
    """Gates, decisions and refusals (on top of runs and the audit chain)."""

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
        return rows.GATE.many(self._all(q))

    def runs_with_decided_gates(self) -> list[str]:
        """Waiting runs with a gate decided while another is open: the decided one may have
        let tasks become ready, which only a driver moves."""
        decided = [
            s.value for s in (TaskRunState.APPROVED, TaskRunState.REJECTED, TaskRunState.EXPIRED)
        ]
        q = (
            sa.select(t.task_runs.c.run_id)
            .distinct()
            .join(t.runs, t.runs.c.id == t.task_runs.c.run_id)
            .join(t.gates, t.gates.c.task_run_id == t.task_runs.c.id)
            .where(t.runs.c.state == RunState.WAITING_FOR_APPROVAL.value)
            .where(t.task_runs.c.state.in_(decided))
        )
        return sorted(str(row[0]) for row in self._all(q))

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
        return rows.GATE(self._one(sa.select(t.gates).where(t.gates.c.id == gate_id), "gate"))

    def gate_of_task_run(self, task_run_id: str) -> GateRecord | None:
        found = self._all(sa.select(t.gates).where(t.gates.c.task_run_id == task_run_id))
        return rows.GATE(found[0]) if found else None

    def gates_of_run(self, run_id: str) -> list[GateRecord]:
        q = sa.select(t.gates).where(t.gates.c.run_id == run_id).order_by(t.gates.c.opened_at)
        return rows.GATE.many(self._all(q))

    def list_decisions(self, gate_id: str) -> list[DecisionRecord]:
        q = sa.select(t.decisions).where(t.decisions.c.gate_id == gate_id)
        return rows.DECISION.many(self._all(q.order_by(t.decisions.c.seq)))

    def all_decisions(self) -> list[DecisionRecord]:
        """Every decision and refusal of every gate, oldest first (for ``audit verify``)."""
        return rows.DECISION.many(self._all(sa.select(t.decisions).order_by(t.decisions.c.seq)))

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
