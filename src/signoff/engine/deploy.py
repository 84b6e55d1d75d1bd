"""The deploy task: serve the approved model on an endpoint, refusing any other digest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from signoff.domain.ports import Clock, EndpointRunner, Store
from signoff.domain.records import (
    DeploymentRecord,
    EndpointRecord,
    GateRecord,
    RunRecord,
    TaskRunRecord,
)
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
    home: Path,
    run: RunRecord,
    spec: FlowSpec,
    task: TaskSpec,
    tr: TaskRunRecord,
    new_id: Callable[[], str],
) -> dict[str, Any]:
    """Serve the approved model on the task's endpoint; refuse any other digest."""
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
    if actual != model.digest:
        raise IntegrityError(f"model {model.label} changed on disk since it was registered")
    existing = store.get_endpoint(target.endpoint)
    port = target.port or (existing.port if existing else None)
    if existing and existing.pid and runner.is_alive(existing.pid):
        runner.stop(existing.pid)
    started = runner.start(target.endpoint, Path(model.path), model.digest, model.label, port)
    now = clock.now()
    store.save_endpoint(
        EndpointRecord(
            name=target.endpoint,
            url=started.url,
            port=started.port,
            pid=started.pid,
            model_version_id=model.id,
            state="serving",
            updated_at=now,
        )
    )
    store.add_deployment(
        DeploymentRecord(
            id=new_id(),
            endpoint=target.endpoint,
            model_version_id=model.id,
            run_id=run.id,
            gate_id=gate.id if gate else None,
            deployed_by=run.started_by,
            at=now,
        )
    )
    approvers = ""
    if gate is not None:
        who = sorted({d.actor for d in store.list_decisions(gate.id) if d.decision == "approve"})
        approvers = f", approved by {', '.join(who)}"
    store.set_alias(
        model.name,
        "champion",
        model.id,
        actor=run.started_by,
        at=now,
        reason=f"deployed to {target.endpoint} by run {run.id}{approvers}",
    )
    return {
        "endpoint": target.endpoint,
        "url": started.url,
        "model_version_id": model.id,
        "model_version": model.label,
        "digest": model.digest,
    }


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
