"""Deployments: the deploy task, and the rollover, canary, promote and rollback behind it.

What was approved is what ships: the model folder's digest is recomputed and compared with
the approval's (and the registry's) before anything is loaded, and the endpoint checks it
again before it reads the files. A first deploy starts the endpoint process; later ones roll
over inside it (load beside, warm up, switch, keep the previous version loaded). Every change
is recorded (who, when, which approval, which kind); the ``champion`` alias follows what
serves all traffic, never a canary and never a version that was rolled back.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signoff import failpoints
from signoff.domain.ports import Clock, EndpointRunner, RolloverResult, Store
from signoff.domain.records import (
    AuditEvent,
    DeploymentKind,
    DeploymentRecord,
    EndpointRecord,
    GateRecord,
    ModelVersionRecord,
    RunRecord,
    TaskRunRecord,
)
from signoff.domain.specs import FlowSpec, TaskKind, TaskSpec
from signoff.domain.states import TaskRunState
from signoff.engine.builtin import model_under_review
from signoff.errors import ExecutionError, IntegrityError, NotFoundError, SignoffError
from signoff.registry.flavors import folder_digest

__all__ = [
    "Deployer",
    "approval_of",
    "deploy",
    "resolve_model_version",
    "why_unapproved",
]

_SETS_SERVING = (DeploymentKind.ROLLOVER, DeploymentKind.PROMOTE, DeploymentKind.ROLLBACK)
_LABEL = re.compile(r"^(?P<name>.+):v?(?P<version>\d+)$")


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


@dataclass
class Deployer:
    """Changes what an endpoint serves and records each change; one method per operation."""

    store: Store
    clock: Clock
    runner: EndpointRunner
    new_id: Callable[[], str]

    def deploy_version(
        self,
        endpoint: str,
        model: ModelVersionRecord,
        *,
        actor: str,
        traffic: int = 100,
        probation: float = 0.0,
        max_error_rate: float = 0.05,
        port: int | None = None,
        run_id: str | None = None,
        gate_id: str | None = None,
        why: str | None = None,
        digest: str | None = None,
        heartbeat: Callable[[], None] | None = None,
        override: str | None = None,
    ) -> dict[str, Any]:
        """Serve ``model`` on ``endpoint``: start the process, or roll over (or canary) in it.

        ``override`` is an admin's stated reason for serving a version no gate approved
        (``signoff deploy --break-glass``); the deployment and its audit entry carry it.

        Refuses a model whose files do not have the registered digest. A version that does
        not load or fails its warm-up gets no traffic (the error says why); one that fails
        more than ``max_error_rate`` of its requests during ``probation`` seconds is rolled
        back, recorded as such, and the error says why. The alias stays where it was.
        """
        if not 0 < traffic <= 100:
            raise SignoffError(f"traffic must be a percent between 1 and 100, not {traffic}")
        _check_files(model, digest)
        failpoints.reached("deploy.before_start")
        existing = self.store.get_endpoint(endpoint)
        live = self._live(existing) or self._orphan(endpoint, existing)
        previous_id = existing.model_version_id if existing else None
        if previous_id == model.id:
            traffic = 100  # the version serves already: nothing to share traffic with
        note = None
        if live is None:
            if traffic < 100 and previous_id is not None:
                note = "the endpoint was not running: the new version takes all traffic"
            began = time.monotonic()
            started = self.runner.start(
                endpoint,
                Path(model.path),
                model.digest,
                model.label,
                port or (existing.port if existing else None),
            )
            failpoints.reached("deploy.after_start")
            url, port_ = str(started.url), int(started.port)
            pid: int | None = int(started.pid)
            result = RolloverResult(model.label, None, {model.label: 100}, time.monotonic() - began)
            traffic = 100
        else:
            url, port_, pid = live.url, live.port, live.pid
            result = self._already_switched(endpoint, url, model, traffic) or self.runner.rollover(
                endpoint,
                url,
                Path(model.path),
                model.digest,
                model.label,
                traffic=traffic,
                probation_seconds=probation,
                max_error_rate=max_error_rate,
                heartbeat=heartbeat,
            )
        kind = DeploymentKind.CANARY if traffic < 100 else DeploymentKind.ROLLOVER
        self._record(
            endpoint,
            model.id,
            actor,
            kind,
            traffic=traffic,
            previous=previous_id if previous_id != model.id else None,
            run_id=run_id,
            gate_id=gate_id,
            reason=note or why,
            max_error_rate=max_error_rate if kind is DeploymentKind.CANARY else None,
            override=override,
        )
        if result.rolled_back and previous_id is not None:
            self._record(
                endpoint,
                previous_id,
                "signoff",
                DeploymentKind.AUTO_ROLLBACK,
                previous=model.id,
                run_id=run_id,
                gate_id=gate_id,
                reason=result.reason,
            )
            raise SignoffError(f"rolled back automatically: {result.reason}")
        serving = model.id if kind is DeploymentKind.ROLLOVER else previous_id
        self._save_endpoint(endpoint, url, port_, pid, serving)
        if kind is DeploymentKind.ROLLOVER:
            self.store.set_alias(
                model.name,
                "champion",
                model.id,
                actor=actor,
                at=self.clock.now(),
                reason=why or f"deployed to {endpoint} by {actor}",
            )
        self._check_serving(endpoint, url, model, traffic)
        return _summary(self.store, endpoint, url, model, kind, result, previous_id)

    def _orphan(self, endpoint: str, existing: EndpointRecord | None) -> EndpointRecord | None:
        """An endpoint process that runs but is not (or not so) recorded: adopt it.

        A driver killed after starting a process and before recording it leaves one behind;
        the deploy run again must use it, not start a second on another port.
        """
        found = self.runner.find(endpoint)
        if found is None:
            return None
        return EndpointRecord(
            name=endpoint,
            url=str(found.url),
            port=int(found.port),
            pid=int(found.pid),
            model_version_id=existing.model_version_id if existing else None,
            state="serving",
            updated_at=self.clock.now(),
        )

    def _already_switched(
        self, endpoint: str, url: str, model: ModelVersionRecord, traffic: int
    ) -> RolloverResult | None:
        """What a switch did if it already happened (a crash after it, before its record)."""
        state = self.runner.state(endpoint, url)
        mine = state.version(model.label)
        if mine is None or mine.digest != model.digest or mine.traffic != traffic:
            return None
        others = [v.model_version for v in state.versions if v.model_version != model.label]
        return RolloverResult(model.label, others[0] if others else None, state.traffic, 0.0)

    def _check_serving(
        self, endpoint: str, url: str, model: ModelVersionRecord, traffic: int
    ) -> None:
        """The endpoint itself must report the model's digest with its share of traffic."""
        mine = self.runner.state(endpoint, url).version(model.label)
        if mine is None or mine.digest != model.digest or mine.traffic != traffic:
            seen = "not loaded" if mine is None else f"{mine.traffic}% at {mine.digest[:12]}…"
            raise ExecutionError(
                f"endpoint {endpoint} does not serve {model.label} ({model.digest[:12]}…) "
                f"with {traffic}% of traffic: it reports {seen}"
            )

    def promote(self, endpoint: str, *, actor: str) -> dict[str, Any]:
        """Give the endpoint's canary all traffic, unless it broke its error-rate rule."""
        live, canary = self._canary(endpoint)
        model = self.store.get_model_version(canary.model_version_id)
        state = self.runner.state(endpoint, live.url).version(model.label)
        if state is None or state.traffic == 0:
            raise SignoffError(
                f"the canary {model.label} is not in traffic on {endpoint} (was the endpoint "
                "restarted?); deploy it again"
            )
        rule = canary.max_error_rate
        if rule is not None and state.requests and state.errors / state.requests > rule:
            reason = (
                f"the canary {model.label} failed {state.errors} of {state.requests} requests "
                f"({state.errors / state.requests:.0%}), above the {rule:.0%} allowed"
            )
            kind = DeploymentKind.AUTO_ROLLBACK
            self._abort_canary(endpoint, live, model, kind, "signoff", reason)
            raise SignoffError(f"not promoted, canary aborted: {reason}")
        result = self.runner.rollover(
            endpoint, live.url, Path(model.path), model.digest, model.label, traffic=100
        )
        self._record(
            endpoint,
            model.id,
            actor,
            DeploymentKind.PROMOTE,
            previous=live.model_version_id,
            run_id=canary.run_id,
            gate_id=canary.gate_id,
            reason=f"canary promoted by {actor}",
        )
        self._save_endpoint(endpoint, live.url, live.port, live.pid, model.id)
        self.store.set_alias(
            model.name,
            "champion",
            model.id,
            actor=actor,
            at=self.clock.now(),
            reason=f"promoted on {endpoint} by {actor}",
        )
        previous = live.model_version_id
        return _summary(
            self.store, endpoint, live.url, model, DeploymentKind.PROMOTE, result, previous
        )

    def rollback(self, endpoint: str, *, actor: str) -> dict[str, Any]:
        """Return the endpoint to the version it served before (or abort its canary)."""
        existing = self.store.get_endpoint(endpoint)
        if existing is None:
            raise NotFoundError(f"no endpoint {endpoint!r}")
        live = self._live(existing)
        rows = self.store.list_deployments(endpoint)
        if live is not None and rows and rows[-1].kind is DeploymentKind.CANARY:
            model = self.store.get_model_version(rows[-1].model_version_id)
            why = f"canary {model.label} aborted by {actor}"
            result = self._abort_canary(endpoint, live, model, DeploymentKind.ROLLBACK, actor, why)
            stable = self.store.get_model_version(live.model_version_id or "")
            kind = DeploymentKind.ROLLBACK
            return _summary(self.store, endpoint, live.url, stable, kind, result, model.id)
        target_id = _rollback_target(rows, existing.model_version_id)
        if target_id is None:
            raise SignoffError(f"endpoint {endpoint} has no previous version to return to")
        model = self.store.get_model_version(target_id)
        _check_files(model, None)
        if live is None:
            began = time.monotonic()
            started = self.runner.start(
                endpoint, Path(model.path), model.digest, model.label, existing.port
            )
            url, port = str(started.url), int(started.port)
            pid: int | None = int(started.pid)
            result = RolloverResult(model.label, None, {model.label: 100}, time.monotonic() - began)
        else:
            url, port, pid = live.url, live.port, live.pid
            result = self.runner.rollover(
                endpoint, url, Path(model.path), model.digest, model.label, traffic=100
            )
        self._record(
            endpoint,
            model.id,
            actor,
            DeploymentKind.ROLLBACK,
            previous=existing.model_version_id,
            gate_id=_gate_of(rows, model.id),
            reason=f"rolled back by {actor}",
        )
        self._save_endpoint(endpoint, url, port, pid, model.id)
        self.store.set_alias(
            model.name,
            "champion",
            model.id,
            actor=actor,
            at=self.clock.now(),
            reason=f"rolled back on {endpoint} by {actor}",
        )
        previous = existing.model_version_id
        return _summary(self.store, endpoint, url, model, DeploymentKind.ROLLBACK, result, previous)

    # ------------------------------------------------------------------ internals
    def _live(self, existing: EndpointRecord | None) -> EndpointRecord | None:
        if existing is None or existing.pid is None or existing.state == "stopped":
            return None
        return existing if self.runner.is_alive(existing.pid) else None

    def _canary(self, endpoint: str) -> tuple[EndpointRecord, DeploymentRecord]:
        existing = self.store.get_endpoint(endpoint)
        if existing is None:
            raise NotFoundError(f"no endpoint {endpoint!r}")
        rows = self.store.list_deployments(endpoint)
        if not rows or rows[-1].kind is not DeploymentKind.CANARY:
            raise SignoffError(f"endpoint {endpoint} has no canary to promote")
        live = self._live(existing)
        if live is None:
            raise SignoffError(f"endpoint {endpoint} is not running; deploy the canary again")
        return live, rows[-1]

    def _abort_canary(
        self,
        endpoint: str,
        live: EndpointRecord,
        canary: ModelVersionRecord,
        kind: DeploymentKind,
        actor: str,
        reason: str,
    ) -> RolloverResult:
        stable = self.store.get_model_version(live.model_version_id or "")
        began = time.monotonic()
        self.runner.set_traffic(endpoint, live.url, {stable.label: 100})
        seconds = time.monotonic() - began
        self.runner.unload(endpoint, live.url, canary.label)
        self._record(
            endpoint,
            stable.id,
            actor,
            kind,
            previous=canary.id,
            reason=reason,
        )
        self._save_endpoint(endpoint, live.url, live.port, live.pid, stable.id)
        return RolloverResult(stable.label, canary.label, {stable.label: 100}, seconds)

    def _record(
        self,
        endpoint: str,
        model_version_id: str,
        actor: str,
        kind: DeploymentKind,
        *,
        traffic: int = 100,
        previous: str | None = None,
        run_id: str | None = None,
        gate_id: str | None = None,
        reason: str | None = None,
        max_error_rate: float | None = None,
        override: str | None = None,
    ) -> None:
        rows = self.store.list_deployments(endpoint) if run_id else []
        if rows and (rows[-1].run_id, rows[-1].model_version_id, rows[-1].kind) == (
            run_id,
            model_version_id,
            kind,
        ):
            return  # the same task run deploying again after a crash: recorded already
        deployment = DeploymentRecord(
            id=self.new_id(),
            endpoint=endpoint,
            model_version_id=model_version_id,
            run_id=run_id,
            gate_id=gate_id,
            deployed_by=actor,
            at=self.clock.now(),
            kind=kind,
            traffic=traffic,
            previous_model_version_id=previous,
            reason=reason,
            max_error_rate=max_error_rate,
            override=override,
        )
        self.store.add_deployment(deployment)
        data = {
            "deployment_id": deployment.id,
            "endpoint": endpoint,
            "kind": kind.value,
            "model_version_id": model_version_id,
            "previous_model_version_id": previous,
            "traffic": traffic,
            "reason": reason,
        }
        events = [AuditEvent("deployed", run_id, gate_id, actor, data)]
        if override is not None:
            data["override"] = override
            glass = {**data, "digest": self.store.get_model_version(model_version_id).digest}
            events.append(AuditEvent("break_glass", run_id, gate_id, actor, glass))
        self.store.append_audit(events, at=deployment.at)

    def _save_endpoint(
        self, endpoint: str, url: str, port: int, pid: int | None, model_version_id: str | None
    ) -> None:
        self.store.save_endpoint(
            EndpointRecord(
                name=endpoint,
                url=url,
                port=port,
                pid=pid,
                model_version_id=model_version_id,
                state="serving",
                updated_at=self.clock.now(),
            )
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


def resolve_model_version(store: Store, ref: str) -> ModelVersionRecord:
    """A model version by id, ``name:vN`` / ``name:N``, or ``name@alias`` (e.g. champion)."""
    if "@" in ref:
        name, _, alias = ref.partition("@")
        version_id = store.aliases(name).get(alias)
        if version_id is None:
            raise NotFoundError(f"model {name} has no alias {alias!r}")
        return store.get_model_version(version_id)
    match = _LABEL.match(ref)
    if match:
        for mv in store.list_model_versions(match["name"]):
            if mv.version == int(match["version"]):
                return mv
        raise NotFoundError(f"no model version {ref}")
    try:
        return store.get_model_version(ref)
    except NotFoundError:
        raise NotFoundError(
            f"no model version {ref!r} (give an id, NAME:vN or NAME@ALIAS)"
        ) from None


def approval_of(store: Store, model: ModelVersionRecord) -> GateRecord | None:
    """The approved gate that reviewed this model version with its digest, if any."""
    for gate in store.gates_of_run(model.run_id):
        if gate.model_version_id != model.id or gate.model_digest != model.digest:
            continue
        if store.get_task_run(gate.task_run_id).state is TaskRunState.APPROVED:
            return gate
    return None


def why_unapproved(store: Store, model: ModelVersionRecord) -> str:
    """Why no gate stands behind this version: its gates and where they are, or none."""
    found = []
    for gate in store.gates_of_run(model.run_id):
        if gate.model_version_id != model.id:
            continue
        tr = store.get_task_run(gate.task_run_id)
        approvals = len({d.actor for d in store.list_decisions(gate.id) if d.decision == "approve"})
        found.append(f"gate {gate.id} of run {gate.run_id} is {tr.state} ({approvals} approval(s))")
    return "; ".join(found) or f"no gate reviewed it (run {model.run_id} had none)"


def _check_files(model: ModelVersionRecord, digest: str | None) -> None:
    actual = digest or folder_digest(Path(model.path))
    if actual != model.digest:
        raise IntegrityError(
            f"model {model.label} changed on disk since it was registered (digest "
            f"{actual[:12]}…, registered {model.digest[:12]}…); refusing to serve it"
        )


def _rollback_target(rows: list[DeploymentRecord], current: str | None) -> str | None:
    """What served before ``current`` took over (the change that put it in service)."""
    for row in reversed(rows):
        if row.kind in _SETS_SERVING and row.model_version_id == current:
            return row.previous_model_version_id
    return None


def _gate_of(rows: list[DeploymentRecord], model_version_id: str) -> str | None:
    for row in reversed(rows):
        if row.model_version_id == model_version_id and row.gate_id:
            return row.gate_id
    return None


def _summary(
    store: Store,
    endpoint: str,
    url: str,
    model: ModelVersionRecord,
    kind: DeploymentKind,
    result: RolloverResult,
    previous_id: str | None,
) -> dict[str, Any]:
    """What the task result, the CLI and ``--json`` report about one change."""
    previous = None
    if previous_id and previous_id != model.id:
        previous = store.get_model_version(previous_id).label
    return {
        "endpoint": endpoint,
        "url": url,
        "model_version_id": model.id,
        "model_version": model.label,
        "digest": model.digest,
        "kind": kind.value,
        "traffic": result.traffic,
        "previous_model_version": previous,
        "switch_seconds": round(result.seconds, 4),
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
