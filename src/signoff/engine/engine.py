"""Engine: creates runs and drives them, one committed step at a time, until they end or wait.

The store is the only truth. A driving process holds the run's lease (renewed as it works);
it keeps an index of the task runs it read and wrote itself, and rereads the run row on every
turn so a cancel from elsewhere stops it. A run waiting at a gate is only rows: ``drive``
returns, and whoever decides the gate calls ``drive`` again.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from signoff import failpoints
from signoff.domain.planning import evaluate_tasks, run_outcome
from signoff.domain.ports import Clock, EndpointRunner, Executor, Store, TaskOutcome
from signoff.domain.ports_execution import ArtifactStore
from signoff.domain.records import GateRecord, RunRecord, TaskOutputs, TaskRunRecord
from signoff.domain.retries import RetryPolicy, retry_delay
from signoff.domain.specs import FlowSpec, ParamValue, TaskSpec
from signoff.domain.states import RunState, TaskRunState
from signoff.engine.cache import CachePolicy
from signoff.engine.ingest import read_outputs
from signoff.engine.kinds import KindContext, builtin_kind
from signoff.engine.launch import render_task, task_execution
from signoff.engine.lease import Lease, RunBusyError
from signoff.engine.plan import check_overrides, plan_task_runs, resolve_flow_params, run_facts
from signoff.engine.workdir import log_tail, snapshot_code
from signoff.errors import ConflictError, SignoffError

__all__ = ["Engine", "EngineObserver", "RunBusyError", "new_id"]

_T = TaskRunState


def new_id() -> str:
    """A short random identifier (12 hex digits) for runs, task runs, gates and models."""
    return uuid.uuid4().hex[:12]


class EngineObserver(Protocol):
    """Hooks the engine calls after each committed change (the CLI draws progress with them)."""

    def after_task_transition(self, task_run: TaskRunRecord) -> None: ...

    def after_run_transition(self, run: RunRecord) -> None: ...

    def on_gate_opened(self, gate: GateRecord) -> None: ...


class _SilentObserver:
    def after_task_transition(self, task_run: TaskRunRecord) -> None:
        pass

    def after_run_transition(self, run: RunRecord) -> None:
        pass

    def on_gate_opened(self, gate: GateRecord) -> None:
        pass


def _default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class Engine:
    """Creates and drives runs. Built by ``signoff.bootstrap``; holds no run state itself."""

    store: Store
    clock: Clock
    home: Path
    executor_factory: Callable[[], Executor]
    endpoints: EndpointRunner
    artifacts: ArtifactStore
    observer: EngineObserver = field(default_factory=_SilentObserver)
    lease_seconds: float = 30.0
    max_lost_attempts: int = 3
    owner: str = field(default_factory=_default_owner)
    # supersede, auto-approval and notices when a gate opens (the review service, wired in
    # bootstrap); the gate is already committed when it is called
    after_gate_opened: Callable[[GateRecord], None] | None = None
    # stops a command a dead driver left running (the executor's knowledge, wired in bootstrap)
    stop_leftover: Callable[[Path, str], bool] = field(default=lambda _work, _id: False)

    # ------------------------------------------------------------------ creating runs
    def start_run(
        self,
        spec: FlowSpec,
        *,
        base_dir: Path | None,
        source: str | None = None,
        params: Mapping[str, ParamValue] | None = None,
        started_by: str,
        reproduces: str | None = None,
        trigger: Mapping[str, Any] | None = None,
    ) -> RunRecord:
        """Pin the flow, snapshot its code and create the run with every task run pending.

        The run records what it ran with (code version, environment, seeds). A reproduction
        (``reproduces=RUN_ID``) runs every task but its gates and deployments. ``trigger``
        (what started the run: a scheduled time, a rule and its evidence) goes into the
        run's facts as ``trigger``.
        """
        overrides = dict(params or {})
        check_overrides(spec, overrides)
        flow_params = resolve_flow_params(spec, overrides)
        self.store.save_flow(spec, source)
        run_id = new_id()
        run_dir = self.home / "runs" / run_id
        code_dir = run_dir / "code"
        code_dir.mkdir(parents=True, exist_ok=True)
        if base_dir is not None:
            snapshot_code(base_dir, code_dir, skip=self.home)
        now = self.clock.now()
        task_runs = plan_task_runs(spec, run_id, run_dir, flow_params, overrides, now, new_id)
        facts = run_facts(base_dir, code_dir, task_runs, reproduces=reproduces, trigger=trigger)
        run = RunRecord(
            id=run_id,
            flow_name=spec.name,
            flow_hash=spec.spec_hash,
            state=RunState.QUEUED,
            version=0,
            params={**flow_params, **overrides},
            started_by=started_by,
            work_dir=str(run_dir),
            created_at=now,
            updated_at=now,
            facts=facts,
        )
        self.store.create_run(run, task_runs)
        (run_dir / "flow.json").write_text(spec.canonical_json())
        return run

    # ------------------------------------------------------------------- driving runs
    def drive(self, run_id: str) -> RunRecord:
        """Advance a run until it ends or only a gate can move it; return where it stands.

        Raises :class:`RunBusyError` when another process, or another thread of this one, is
        driving the run: each call holds its own lease.
        """
        run = self.store.get_run(run_id)
        if run.state.is_terminal:
            return run
        owner = f"{self.owner}/{new_id()[:6]}"
        lease = Lease(self.store, self.clock, run.id, owner, self.lease_seconds)
        lease.claim()
        try:
            return _Drive(self, self.store.get_run(run.id), lease).go()
        finally:
            lease.release()

    def cancel(self, run_id: str, *, actor: str, reason: str | None = None) -> RunRecord:
        """Cancel a run: every task run that has not ended is cancelled, commands stopped."""
        run = self.store.get_run(run_id)
        if run.state.is_terminal:
            raise ConflictError(f"run {run.id} already ended: {run.state}")
        why = f"cancelled by {actor}" + (f": {reason}" if reason else "")
        run = self.move_run(run, RunState.CANCELLED, why)
        for listed in self.store.list_task_runs(run.id):
            self._cancel_task(listed, why, actor)
        return run

    def _cancel_task(self, tr: TaskRunRecord, why: str, actor: str) -> None:
        """Cancel one task run through the door; a concurrent change is reread and retried."""
        while not tr.state.is_terminal:
            try:
                self.move_task(tr, _T.CANCELLED, why, actor=actor)
            except ConflictError:
                tr = self.store.get_task_run(tr.id)
                continue
            if tr.state is _T.RUNNING:
                self.stop_leftover(Path(tr.work_dir), tr.id)
            return

    # ------------------------------------------------------------------- state moves
    def move_task(
        self,
        tr: TaskRunRecord,
        new: TaskRunState,
        reason: str | None,
        *,
        changes: Mapping[str, Any] | None = None,
        via: tuple[TaskRunState, ...] = (),
        outputs: TaskOutputs | None = None,
        actor: str | None = None,
    ) -> TaskRunRecord:
        """The engine's door to the store's door: every task state change passes here."""
        moved = self.store.transition_task_run(
            tr,
            new,
            at=self.clock.now(),
            reason=reason,
            actor=actor,
            changes=changes,
            via=via,
            outputs=outputs,
        )
        self.observer.after_task_transition(moved)
        return moved

    def move_run(self, run: RunRecord, new: RunState, reason: str | None) -> RunRecord:
        """The engine's door for run state changes (the observer sees each one)."""
        moved = self.store.transition_run(run, new, at=self.clock.now(), reason=reason)
        self.observer.after_run_transition(moved)
        return moved


class _Drive:
    """One process driving one run: an index of its task runs, the executor, the lease."""

    def __init__(self, engine: Engine, run: RunRecord, lease: Lease) -> None:
        self.lease = lease
        self.engine = engine
        self.store = engine.store
        self.run = run
        self.spec = self.store.get_flow(run.flow_hash)
        self.tasks = {t.name: t for t in self.spec.tasks}
        self.upstreams = {t.name: t.depends_on for t in self.spec.tasks}
        self.downstreams: dict[str, list[str]] = {t.name: [] for t in self.spec.tasks}
        for t in self.spec.tasks:
            for up in t.depends_on:
                self.downstreams[up].append(t.name)
        self.trs: dict[str, TaskRunRecord] = {}
        self.by_task: dict[str, list[TaskRunRecord]] = {t.name: [] for t in self.spec.tasks}
        for tr in self.store.list_task_runs(run.id):
            self._index(tr)
        self.executor: Executor | None = None
        self.in_flight: set[str] = set()
        self.dirty: set[str] = {t.name for t in self.spec.tasks}
        self.launch: deque[str] = deque()  # command task runs ready to start, in order
        self.delayed: set[str] = set()  # queued retries waiting for their not_before
        self.builtin_again: set[str] = set()  # built-in task runs a dead driver left behind
        self.unfinished = sum(1 for tr in self.trs.values() if not tr.state.is_terminal)
        self.check_run_at = 0.0
        self.cache = CachePolicy(self.store, run, new_id)

    # ------------------------------------------------------------------ bookkeeping
    def _index(self, tr: TaskRunRecord) -> None:
        old = self.trs.get(tr.id)
        self.trs[tr.id] = tr
        group = self.by_task.setdefault(tr.task_name, [])
        if old is None:
            group.append(tr)
            return
        group[group.index(old)] = tr
        if tr.state.is_terminal and not old.state.is_terminal:
            self.unfinished -= 1
            self.dirty.update(self.downstreams[tr.task_name])

    def _move(self, tr: TaskRunRecord, new: TaskRunState, reason: str | None, **kw: Any) -> None:
        self._index(self.engine.move_task(tr, new, reason, **kw))

    def _now(self) -> float:
        return self.engine.clock.now()

    # ------------------------------------------------------------------------ loop
    def go(self) -> RunRecord:
        run = self.run
        if run.state is RunState.WAITING_FOR_APPROVAL:
            if any(tr.state is _T.WAITING_FOR_APPROVAL for tr in self.trs.values()):
                # another gate is open: move only if a decided one let tasks become ready
                ready, skip = evaluate_tasks(self.spec, self.by_task, self.dirty, self.upstreams)
                if not (ready or skip):
                    return run
            run = self.engine.move_run(run, RunState.RUNNING, "gate decided")
        elif run.state is RunState.QUEUED:
            run = self.engine.move_run(run, RunState.RUNNING, "started")
        self.run = run
        self._recover()
        self.executor = self.engine.executor_factory()
        try:
            return self._loop()
        finally:
            self.executor.shutdown()

    def _recover(self) -> None:
        # A task run left `running` by a process that died may have started: stop what is left
        # of it and run it again (at-least-once), never mark it done. Too many losses fail it.
        # A built-in task (select, deploy) has no command to stop: it runs again by its kind,
        # and deploy is idempotent (it adopts an endpoint process it had started, and skips a
        # switch that already happened), so it ends only once the endpoint serves its digest.
        for tr in list(self.trs.values()):
            if tr.state is _T.QUEUED:
                (self.delayed if tr.kind.runs_command else self.builtin_again).add(tr.id)
            if tr.state is _T.WAITING_FOR_APPROVAL:
                self._announce_again(tr)
            if tr.state is not _T.RUNNING:
                continue
            if tr.kind.runs_command:
                self.engine.stop_leftover(Path(tr.work_dir), tr.id)
            lost = int(tr.result.get("lost", 0)) + 1
            if lost > self.engine.max_lost_attempts:
                self._move(
                    tr,
                    _T.FAILED,
                    f"lost {lost} times with the process running it",
                    changes={"ended_at": self._now()},
                )
            else:
                self._move(
                    tr,
                    _T.QUEUED,
                    f"the process running attempt {tr.attempt} stopped; running it again",
                    changes={"result": {**tr.result, "lost": lost}, "not_before": None},
                )
                (self.delayed if tr.kind.runs_command else self.builtin_again).add(tr.id)

    def _announce_again(self, tr: TaskRunRecord) -> None:
        """A gate whose opening was committed but whose follow-up (notices, supersede, the
        auto-approve rule) may not have run: run it again (each part is keyed or idempotent)."""
        gate = self.store.gate_of_task_run(tr.id)
        hook = self.engine.after_gate_opened
        if gate is None or hook is None:
            return
        if self.store.gate_policy(gate.id).get("announced_at") is not None:
            return
        hook(gate)
        now = self.store.get_task_run(tr.id)
        if now.state is not tr.state:
            self._index(now)

    def _loop(self) -> RunRecord:
        assert self.executor is not None
        executor = self.executor
        while True:
            self.lease.renew_if_due()
            if self._now() >= self.check_run_at:
                # A cancel from another process ends the run; look at most 5 times a second.
                self.check_run_at = self._now() + 0.2
                ended = self._ended_elsewhere(executor)
                if ended is not None:
                    return ended
            try:
                progressed = self._advance(executor)
            except ConflictError:
                # A task run changed under this driver: if the run ended elsewhere, so be it.
                ended = self._ended_elsewhere(executor)
                if ended is None:
                    raise
                return ended
            if progressed:
                continue
            if self.in_flight:
                for outcome in executor.wait_any(timeout=min(1.0, self._next_due())):
                    self.in_flight.discard(outcome.task_run_id)
                    self._finish(outcome)
                continue
            delay = self._next_due()
            if delay < float("inf"):
                self.engine.clock.sleep(min(delay, 1.0))
                continue
            trs = list(self.trs.values())
            if self.unfinished == 0:
                outcome_state = run_outcome(trs)
                return self._settle(outcome_state, _outcome_reason(outcome_state, trs))
            if any(tr.state is _T.WAITING_FOR_APPROVAL for tr in trs):
                return self._settle(RunState.WAITING_FOR_APPROVAL, "waiting at a gate")
            stuck = ", ".join(f"{tr.label}={tr.state}" for tr in trs if not tr.state.is_terminal)
            return self._settle(RunState.FAILED, f"no task can move: {stuck}")

    def _ended_elsewhere(self, executor: Executor) -> RunRecord | None:
        """The run, if another process ended it (its commands here are then stopped)."""
        run = self.store.get_run(self.run.id)
        if not run.state.is_terminal:
            return None
        for trid in list(self.in_flight):
            executor.cancel(trid)
        return run

    def _settle(self, state: RunState, reason: str) -> RunRecord:
        """End (or park) the run; if it changed meanwhile (a cancel), the store's word wins."""
        try:
            return self.engine.move_run(self.run, state, reason)
        except ConflictError:
            return self.store.get_run(self.run.id)

    def _next_due(self) -> float:
        if not self.delayed:
            return float("inf")
        now = self._now()
        return min(max(0.0, (self.trs[i].not_before or now) - now) for i in self.delayed)

    def _advance(self, executor: Executor) -> bool:
        progressed = False
        for trid in sorted(self.builtin_again, key=lambda i: self.trs[i].created_at):
            self.builtin_again.discard(trid)
            tr = self.trs[trid]
            if tr.state is _T.QUEUED:
                self._run_builtin(self.tasks[tr.task_name], tr)
                progressed = True
        while self.dirty:
            names, self.dirty = self.dirty, set()
            ready, skip = evaluate_tasks(self.spec, self.by_task, names, self.upstreams)
            for tr in skip:
                upstream = ", ".join(self.upstreams[tr.task_name])
                try:
                    self._move(tr, _T.SKIPPED, f"upstream ({upstream}) did not succeed")
                except ConflictError:  # changed meanwhile (a cancel): the store's word wins
                    self._index(self.store.get_task_run(tr.id))
                progressed = True
            for tr in sorted(ready, key=lambda r: r.created_at):
                if tr.kind.runs_command:
                    self.launch.append(tr.id)
                else:
                    self._run_builtin(self.tasks[tr.task_name], tr)
                    progressed = True
        if self.delayed:
            now = self._now()
            due = sorted(
                (i for i in self.delayed if (self.trs[i].not_before or 0.0) <= now),
                key=lambda i: self.trs[i].created_at,
            )
            for i in due:
                self.delayed.discard(i)
                self.launch.append(i)
        while self.launch:
            tr = self.trs[self.launch[0]]
            task = self.tasks[tr.task_name]
            if not executor.fits(task.resources) and executor.refusal(task.resources) is None:
                break  # it fits once running task runs end; a refused one fails in _launch
            self.launch.popleft()
            if tr.state not in (_T.PENDING, _T.QUEUED):
                continue
            self._launch(task, tr, executor)
            progressed = True
        return progressed

    # ---------------------------------------------------------------- command tasks
    def _launch(self, task: TaskSpec, tr: TaskRunRecord, executor: Executor) -> None:
        via = (_T.QUEUED,) if tr.state is _T.PENDING else ()
        refused = executor.refusal(task.resources)
        if refused is not None:  # more than the machine has: it fails before it starts
            self._fail_unstarted(tr, f"resources: {refused}", via)
            return
        try:
            rendered = render_task(self.run, task, tr)
        except SignoffError as exc:
            self._fail_unstarted(tr, f"template: {exc}", via)
            return
        key = None
        if task.cache:
            key = self.cache.key(task, rendered.command, rendered.params, self.by_task)
            if self._reuse(tr, key, via):
                return
        execution = task_execution(self.run, task, tr, rendered, self.by_task)
        self._move(
            tr,
            _T.RUNNING,
            None,
            via=via,
            changes={"started_at": self._now(), "cache_key": key, "not_before": None},
        )
        self.in_flight.add(tr.id)
        executor.submit(execution)

    def _fail_unstarted(
        self, tr: TaskRunRecord, reason: str, via: tuple[TaskRunState, ...]
    ) -> None:
        """End a task run whose command never started (refused resources, a bad template)."""
        ended = {"ended_at": self._now()}
        self._move(tr, _T.FAILED, reason, via=(*via, _T.RUNNING), changes=ended)

    def _reuse(self, tr: TaskRunRecord, key: str, via: tuple[TaskRunState, ...]) -> bool:
        now = self._now()
        reuse = self.cache.reuse(tr, key, now)
        if reuse is None:
            return False
        earlier = reuse.earlier
        self._move(
            tr,
            _T.SUCCEEDED,
            f"cached: reused {earlier.label} of run {earlier.run_id}",
            via=(*via, _T.RUNNING),
            changes={
                "started_at": now,
                "ended_at": now,
                "exit_code": earlier.exit_code,
                "cache_key": key,
                "result": {**tr.result, "cached_from": earlier.id},
            },
            outputs=reuse.outputs,
        )
        return True

    def _finish(self, outcome: TaskOutcome) -> None:
        # This process holds the lease: its index is current; a cancel from elsewhere makes
        # the compare-and-set below fail, and the store's version wins.
        tr = self.trs[outcome.task_run_id]
        now = self._now()
        ran_on = {"executor": outcome.executor, "node": outcome.node}
        ran_on = {key: value for key, value in ran_on.items() if value}
        if outcome.error is not None or outcome.exit_code != 0:
            why = outcome.error or f"exit code {outcome.exit_code}"
            tail = log_tail(Path(tr.work_dir))
            why += f": {tail}" if tail and outcome.error is None else ""
            self._failed(tr, why, result={**tr.result, **ran_on})
            return
        try:
            outputs = read_outputs(
                self.run, tr, now=now, new_id=new_id, artifacts=self.engine.artifacts
            )
        except (SignoffError, OSError) as exc:
            self._failed(tr, f"could not record outputs: {exc}")
            return
        try:
            self._move(
                tr,
                _T.SUCCEEDED,
                None,
                changes={"ended_at": now, "exit_code": 0, "result": {**tr.result, **ran_on}},
                outputs=outputs,
            )
        except ConflictError:
            self._index(self.store.get_task_run(tr.id))

    def _failed(self, tr: TaskRunRecord, why: str, result: dict[str, Any] | None = None) -> None:
        task = self.tasks[tr.task_name]
        noted: dict[str, Any] = {} if result is None else {"result": result}
        lost = int(tr.result.get("lost", 0))
        tries_used = tr.attempt - lost
        delay = retry_delay(tries_used, RetryPolicy(task.retries, task.retry_delay))
        try:
            if delay is not None:
                self._move(
                    tr,
                    _T.QUEUED,
                    f"attempt {tr.attempt} failed ({why}); retry {tries_used} of {task.retries}"
                    + (f" in {delay:g}s" if delay else ""),
                    changes={"not_before": self._now() + delay, "exit_code": None, **noted},
                )
                self.delayed.add(tr.id)
            else:
                self._move(tr, _T.FAILED, why, changes={"ended_at": self._now(), **noted})
        except ConflictError:
            self._index(self.store.get_task_run(tr.id))

    # -------------------------------------------------------------- built-in tasks
    def _run_builtin(self, task: TaskSpec, tr: TaskRunRecord) -> None:
        kind = builtin_kind(tr.kind)
        if self.run.facts.get("reproduces") and not kind.in_reproduction:
            self._move(tr, _T.SKIPPED, "a reproduction does not ask for approval or deploy")
            return
        if kind.open_gate is not None:
            self._open_gate(kind.open_gate(self._context(task, tr)))
            return
        assert kind.work is not None
        via = (_T.QUEUED,) if tr.state is _T.PENDING else ()
        self._move(tr, _T.RUNNING, None, via=via, changes={"started_at": self._now()})
        tr = self.trs[tr.id]
        try:
            result = kind.work(self._context(task, tr))
            failpoints.reached(f"{tr.kind.value}.before_commit")
        except SignoffError as exc:
            changes: dict[str, Any] = {"ended_at": self._now()}
            refused = getattr(exc, "result", None)  # a refused champion check keeps its record
            if isinstance(refused, dict):
                changes["result"] = refused
            self._move(tr, _T.FAILED, str(exc), changes=changes)
            return
        self._move(tr, _T.SUCCEEDED, None, changes={"ended_at": self._now(), "result": result})

    def _context(self, task: TaskSpec, tr: TaskRunRecord) -> KindContext:
        engine = self.engine
        return KindContext(
            self.store, engine.clock, engine.endpoints, self.run, self.spec, task, tr, new_id
        )

    def _open_gate(self, opened: tuple[GateRecord, TaskRunRecord]) -> None:
        """A gate was opened (committed): tell the observer, then run its follow-up."""
        engine = self.engine
        gate, moved = opened
        self._index(moved)
        engine.observer.after_task_transition(moved)
        engine.observer.on_gate_opened(gate)
        failpoints.reached("gate.after_open")
        if engine.after_gate_opened is not None:
            engine.after_gate_opened(gate)
            now = self.store.get_task_run(moved.id)  # an auto-approval may have decided it
            if now.state is not moved.state:
                self._index(now)
                engine.observer.after_task_transition(now)


# ------------------------------------------------------------------------ helpers
def _outcome_reason(outcome: RunState, trs: list[TaskRunRecord]) -> str:
    if outcome is RunState.SUCCEEDED:
        return "every task succeeded"
    culprits = [tr for tr in trs if tr.state.value == outcome.value]
    if culprits:
        first = culprits[0]
        return f"{first.label} {outcome}" + (f": {first.reason}" if first.reason else "")
    return str(outcome)
