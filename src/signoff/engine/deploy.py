"""The deploy task: serve the approved model on the task's endpoint, and nothing else.

The deployment itself (rollover, canary, records) is :class:`signoff.deployment.Deployer`'s;
this module finds what the run may deploy: the model its gate approved, with the digest the
approvers saw, and keeps the run's lease alive while a new version is on probation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from signoff.deployment import Deployer
from signoff.domain.ports import Clock, EndpointRunner, Store
from signoff.domain.records import GateRecord, RunRecord, TaskRunRecord
from signoff.domain.specs import FlowSpec, TaskKind, TaskSpec
from signoff.domain.states import TaskRunState
from signoff.engine.builtin import model_under_review
from signoff.errors import IntegrityError, SignoffError
from signoff.registry.flavors import folder_digest

__all__ = ["deploy"]


def deploy(
    store: Store,
    clock: Clock,
    runner: EndpointRunner,
    run: RunRecord,
    spec: FlowSpec,
    task: TaskSpec,
    tr: TaskRunRecord,
    new_id: Callable[[], str],
) -> dict[str, Any]:
    """The deploy task: serve the approved model on the task's endpoint, and nothing else."""
    target = task.deploy
    if target is None:  # pragma: no cover - the loader guarantees it
        raise SignoffError(f"task {task.name} names no endpoint")
    gate = _approved_gate(store, spec, task, run.id)
    model_id = gate.model_version_id if gate else model_under_review(store, spec, task, run.id)
    if model_id is None:
        raise SignoffError("nothing to deploy: no upstream task registered a model")
    model = store.get_model_version(model_id)
    actual = folder_digest(Path(model.path))
    if gate is not None and actual != gate.model_digest:
        raise IntegrityError(
            f"model {model.label} on disk has digest {actual[:12]}…, but the approval was for "
            f"{(gate.model_digest or '')[:12]}…; a changed model needs a new approval"
        )
    approvers = ""
    if gate is not None:
        who = sorted({d.actor for d in store.list_decisions(gate.id) if d.decision == "approve"})
        approvers = f", approved by {', '.join(who)}"
    deployer = Deployer(store, clock, runner, new_id)
    return deployer.deploy_version(
        target.endpoint,
        model,
        actor=run.started_by,
        traffic=target.traffic,
        probation=target.probation,
        max_error_rate=target.max_error_rate,
        port=target.port,
        run_id=run.id,
        gate_id=gate.id if gate else None,
        why=f"deployed to {target.endpoint} by run {run.id}{approvers}",
        digest=actual,
        heartbeat=_lease_keeper(store, clock, run.id),
    )


def _lease_keeper(store: Store, clock: Clock, run_id: str) -> Callable[[], None] | None:
    """Renews the run's lease while a deploy watches a new version (probation may be long).

    The driving process holds the lease and renewed it just before running this task; the
    renewal keeps the same owner and the same length, at most once every third of it.
    """
    owner, expires = store.lease_of(run_id)
    if owner is None or expires is None:
        return None
    ttl = max(expires - clock.now(), 1.0)
    renewed = [clock.now()]

    def renew() -> None:
        now = clock.now()
        if now - renewed[0] >= ttl / 3:
            store.claim_run(run_id, owner, now=now, ttl=ttl)
            renewed[0] = now

    return renew


def _approved_gate(store: Store, spec: FlowSpec, task: TaskSpec, run_id: str) -> GateRecord | None:
    trs = {tr.task_name: tr for tr in store.list_task_runs(run_id)}
    frontier = list(task.depends_on)
    seen: set[str] = set()
    while frontier:
        name = frontier.pop(0)
        if name in seen:
            continue
        seen.add(name)
        up = trs.get(name)
        if up is not None and up.kind is TaskKind.HUMAN_VALIDATION:
            if up.state is not TaskRunState.APPROVED:
                raise SignoffError(f"gate {name} is {up.state}, not approved")
            return store.gate_of_task_run(up.id)
        frontier.extend(spec.task(name).depends_on)
    return None
