"""Deployer: changes what an endpoint serves, and records each change.

What was approved is what ships: the model folder's digest is recomputed and compared with the
registry's before anything is loaded, and the endpoint checks it again before it reads the
files. A first deploy starts the endpoint process; later ones roll over inside it (load beside,
warm up, switch, keep the previous version loaded). Every change is recorded (who, when, which
approval, which kind); the ``champion`` alias follows what serves all traffic, never a canary
and never a version that was rolled back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signoff import failpoints
from signoff.deployment.lookup import check_files, gate_of, rollback_target, summary
from signoff.domain.ports import Clock, EndpointRunner, Rollout, RolloverResult, Store
from signoff.domain.records import (
    AuditEvent,
    DeploymentKind,
    DeploymentRecord,
    EndpointRecord,
    ModelVersionRecord,
)
from signoff.errors import ExecutionError, NotFoundError, SignoffError

__all__ = ["Deployer"]


@dataclass(frozen=True, slots=True)
class _Place:
    """Where an endpoint process answers."""

    url: str
    port: int
    pid: int | None


@dataclass(frozen=True, slots=True)
class _Change:
    """Who asked for a deploy, for what, and why (carried into its records)."""

    actor: str
    run_id: str | None
    gate_id: str | None
    why: str | None


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
        check_files(model, digest)
        failpoints.reached("deploy.before_start")
        change = _Change(actor, run_id, gate_id, why)
        existing = self.store.get_endpoint(endpoint)
        live = self._live(existing) or self._orphan(endpoint, existing)
        previous_id = existing.model_version_id if existing else None
        if previous_id == model.id:
            traffic = 100  # the version serves already: nothing to share traffic with
        note = None
        if live is None:
            if traffic < 100 and previous_id is not None:
                note = "the endpoint was not running: the new version takes all traffic"
            place, result = self._start(
                endpoint, model, port or (existing.port if existing else None)
            )
            failpoints.reached("deploy.after_start")
            traffic = 100
        else:
            place = _Place(live.url, live.port, live.pid)
            rules = (probation, max_error_rate, heartbeat)
            result = self._switch(endpoint, place.url, model, traffic, rules)
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
        self._settle(endpoint, place, model, kind, result, previous_id, change)
        self._check_serving(endpoint, place.url, model, traffic)
        return summary(self.store, endpoint, place.url, model, kind, result, previous_id)

    def _settle(
        self,
        endpoint: str,
        place: _Place,
        model: ModelVersionRecord,
        kind: DeploymentKind,
        result: RolloverResult,
        previous_id: str | None,
        change: _Change,
    ) -> None:
        """After a switch: record an automatic rollback, or save the endpoint and the alias."""
        if result.rolled_back and previous_id is not None:
            self._record(
                endpoint,
                previous_id,
                "signoff",
                DeploymentKind.AUTO_ROLLBACK,
                previous=model.id,
                run_id=change.run_id,
                gate_id=change.gate_id,
                reason=result.reason,
            )
            raise SignoffError(f"rolled back automatically: {result.reason}")
        serving = model.id if kind is DeploymentKind.ROLLOVER else previous_id
        self._save_endpoint(endpoint, place, serving)
        if kind is DeploymentKind.ROLLOVER:
            self._set_champion(
                model, change.actor, change.why or f"deployed to {endpoint} by {change.actor}"
            )

    def _switch(
        self,
        endpoint: str,
        url: str,
        model: ModelVersionRecord,
        traffic: int,
        rules: tuple[float, float, Callable[[], None] | None],
    ) -> RolloverResult:
        """Roll over inside the running process, unless that switch happened already."""
        switched = self._already_switched(endpoint, url, model, traffic)
        if switched is not None:
            return switched
        probation, max_error_rate, heartbeat = rules
        rollout = Rollout(
            Path(model.path), model.digest, model.label, traffic, probation, max_error_rate
        )
        return self.runner.rollover(endpoint, url, rollout, heartbeat)

    def _start(
        self, endpoint: str, model: ModelVersionRecord, port: int | None
    ) -> tuple[_Place, RolloverResult]:
        """Start the endpoint's process serving ``model`` alone."""
        began = self.clock.now()
        started = self.runner.start(endpoint, Path(model.path), model.digest, model.label, port)
        place = _Place(str(started.url), int(started.port), int(started.pid))
        seconds = self.clock.now() - began
        return place, RolloverResult(model.label, None, {model.label: 100}, seconds)

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
        result = self.runner.rollover(endpoint, live.url, _whole(model))
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
        self._save_endpoint(endpoint, _Place(live.url, live.port, live.pid), model.id)
        self._set_champion(model, actor, f"promoted on {endpoint} by {actor}")
        previous = live.model_version_id
        return summary(
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
            return summary(self.store, endpoint, live.url, stable, kind, result, model.id)
        target_id = rollback_target(rows, existing.model_version_id)
        if target_id is None:
            raise SignoffError(f"endpoint {endpoint} has no previous version to return to")
        model = self.store.get_model_version(target_id)
        check_files(model, None)
        if live is None:
            place, result = self._start(endpoint, model, existing.port)
        else:
            place = _Place(live.url, live.port, live.pid)
            result = self.runner.rollover(endpoint, place.url, _whole(model))
        self._record(
            endpoint,
            model.id,
            actor,
            DeploymentKind.ROLLBACK,
            previous=existing.model_version_id,
            gate_id=gate_of(rows, model.id),
            reason=f"rolled back by {actor}",
        )
        self._save_endpoint(endpoint, place, model.id)
        self._set_champion(model, actor, f"rolled back on {endpoint} by {actor}")
        previous = existing.model_version_id
        kind = DeploymentKind.ROLLBACK
        return summary(self.store, endpoint, place.url, model, kind, result, previous)

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
        began = self.clock.now()
        self.runner.set_traffic(endpoint, live.url, {stable.label: 100})
        seconds = self.clock.now() - began
        self.runner.unload(endpoint, live.url, canary.label)
        self._record(endpoint, stable.id, actor, kind, previous=canary.id, reason=reason)
        self._save_endpoint(endpoint, _Place(live.url, live.port, live.pid), stable.id)
        return RolloverResult(stable.label, canary.label, {stable.label: 100}, seconds)

    def _set_champion(self, model: ModelVersionRecord, actor: str, reason: str) -> None:
        self.store.set_alias(
            model.name, "champion", model.id, actor=actor, at=self.clock.now(), reason=reason
        )

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
        self._audit(deployment)

    def _audit(self, deployment: DeploymentRecord) -> None:
        """The deployment's audit entry, and a break-glass one when an override forced it."""
        data = {
            "deployment_id": deployment.id,
            "endpoint": deployment.endpoint,
            "kind": deployment.kind.value,
            "model_version_id": deployment.model_version_id,
            "previous_model_version_id": deployment.previous_model_version_id,
            "traffic": deployment.traffic,
            "reason": deployment.reason,
        }
        run_id, gate_id, actor = deployment.run_id, deployment.gate_id, deployment.deployed_by
        events = [AuditEvent("deployed", run_id, gate_id, actor, data)]
        if deployment.override is not None:
            data["override"] = deployment.override
            digest = self.store.get_model_version(deployment.model_version_id).digest
            events.append(
                AuditEvent("break_glass", run_id, gate_id, actor, {**data, "digest": digest})
            )
        self.store.append_audit(events, at=deployment.at)

    def _save_endpoint(self, endpoint: str, place: _Place, model_version_id: str | None) -> None:
        self.store.save_endpoint(
            EndpointRecord(
                name=endpoint,
                url=place.url,
                port=place.port,
                pid=place.pid,
                model_version_id=model_version_id,
                state="serving",
                updated_at=self.clock.now(),
            )
        )


def _whole(model: ModelVersionRecord) -> Rollout:
    """All traffic to ``model`` at once, with no probation (promote, rollback)."""
    return Rollout(Path(model.path), model.digest, model.label)
