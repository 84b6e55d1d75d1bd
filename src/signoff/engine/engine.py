"""Engine: creates runs and drives them, one committed step at a time, until they end or wait.

The engine keeps no truth in memory: every step reads the task runs from the store, plans with
:func:`signoff.domain.planning.plan_run`, and changes state only through the store's one door.
A run waiting at a gate is only rows: ``drive`` returns, and whoever decides the gate calls
``drive`` again.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from signoff.domain.planning import plan_run
from signoff.domain.ports import Clock, EndpointRunner, Executor, Store, TaskExecution, TaskOutcome
from signoff.domain.records import GateRecord, RunRecord, TaskRunRecord
from signoff.domain.specs import FlowSpec, ParamValue, TaskKind
from signoff.domain.states import RunState, TaskRunState
from signoff.engine import builtin
from signoff.engine.ingest import ingest_outputs
from signoff.errors import SignoffError
from signoff.spec.templates import render, task_slug

__all__ = ["Engine", "EngineObserver", "new_id"]

_CODE_SKIP = {".git", ".signoff", "__pycache__", ".venv", "node_modules", ".mypy_cache"}
_CODE_MAX_BYTES = 50 * 1024 * 1024


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


@dataclass
class Engine:
    """Creates and drives runs. Built by ``signoff.bootstrap``; holds no run state itself."""

    store: Store
    clock: Clock
    home: Path
    executor_factory: Callable[[], Executor]
    endpoints: EndpointRunner
    observer: EngineObserver = _SilentObserver()  # noqa: RUF009 (stateless default)

    # ------------------------------------------------------------------ creating runs
    def start_run(
        self,
        spec: FlowSpec,
        *,
        base_dir: Path,
        source: str | None = None,
        params: Mapping[str, ParamValue] | None = None,
        started_by: str,
    ) -> RunRecord:
        """Pin the flow, snapshot its code and create the run with every task run pending."""
        overrides = dict(params or {})
        _check_overrides(spec, overrides)
        flow_params = _flow_params(spec, overrides)
        self.store.save_flow(spec, source)
        run_id = new_id()
        run_dir = self.home / "runs" / run_id
        code_dir = run_dir / "code"
        _snapshot_code(base_dir, code_dir)
        now = self.clock.now()
        task_runs: list[TaskRunRecord] = []
        for order, task in enumerate(spec.tasks):
            combos = task.grid(overrides)
            for idx, combo in enumerate(combos):
                suffix = f"-{idx}" if len(combos) > 1 else ""
                task_runs.append(
                    TaskRunRecord(
                        id=new_id(),
                        run_id=run_id,
                        task_name=task.name,
                        index=idx if len(combos) > 1 else -1,
                        kind=task.kind,
                        params={**flow_params, **combo},
                        state=TaskRunState.PENDING,
                        version=0,
                        attempt=0,
                        work_dir=str(run_dir / "tasks" / f"{task_slug(task.name)}{suffix}"),
                        created_at=now + order * 1e-6,
                    )
                )
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
        )
        self.store.create_run(run, task_runs)
        (run_dir / "flow.json").write_text(spec.canonical_json())
        return run

    # ------------------------------------------------------------------- driving runs
    def drive(self, run_id: str) -> RunRecord:
        """Advance a run until it ends or only a gate can move it; return where it stands."""
        run = self.store.get_run(run_id)
        if run.state.is_terminal:
            return run
        spec = self.store.get_flow(run.flow_hash)
        trs = self.store.list_task_runs(run.id)
        if run.state is RunState.WAITING_FOR_APPROVAL:
            if any(tr.state is TaskRunState.WAITING_FOR_APPROVAL for tr in trs):
                return run
            run = self._move_run(run, RunState.RUNNING, "gate decided")
        elif run.state is RunState.QUEUED:
            run = self._move_run(run, RunState.RUNNING, "started")
        executor = self.executor_factory()
        try:
            self._recover_orphans(trs)
            return self._loop(run, spec, executor)
        finally:
            executor.shutdown()

    def _loop(self, run: RunRecord, spec: FlowSpec, executor: Executor) -> RunRecord:
        while True:
            trs = self.store.list_task_runs(run.id)
            plan = plan_run(spec, trs)
            progressed = False
            for tr in plan.skip:
                upstream = ", ".join(spec.task(tr.task_name).depends_on)
                self._move_task(tr, TaskRunState.SKIPPED, f"upstream ({upstream}) did not succeed")
                progressed = True
            for tr in plan.ready:
                if tr.kind.runs_command:
                    task = spec.task(tr.task_name)
                    if executor.free_slots() < executor.slots_needed(task.resources.cpu):
                        continue
                    self._launch(run, spec, tr, trs, executor)
                else:
                    self._run_builtin(run, spec, tr)
                progressed = True
            if progressed:
                continue
            if executor.in_flight():
                for outcome in executor.wait_any(timeout=1.0):
                    self._finish(run, outcome)
                continue
            if plan.outcome is not None:
                return self._move_run(run, plan.outcome, _outcome_reason(plan.outcome, trs))
            if plan.waiting_gates:
                return self._move_run(run, RunState.WAITING_FOR_APPROVAL, "waiting at a gate")
            stuck = ", ".join(f"{tr.label}={tr.state}" for tr in trs if not tr.state.is_terminal)
            return self._move_run(run, RunState.FAILED, f"no task can move: {stuck}")

    def _recover_orphans(self, trs: list[TaskRunRecord]) -> None:
        # A task run left queued or running by a process that died is run again: execution
        # is at-least-once, never silently marked done.
        for tr in trs:
            if tr.state is TaskRunState.RUNNING:
                self._move_task(tr, TaskRunState.QUEUED, "the process running it stopped")

    # ---------------------------------------------------------------- command tasks
    def _launch(
        self,
        run: RunRecord,
        spec: FlowSpec,
        tr: TaskRunRecord,
        all_trs: list[TaskRunRecord],
        executor: Executor,
    ) -> None:
        task = spec.task(tr.task_name)
        if tr.state is TaskRunState.PENDING:
            tr = self._move_task(tr, TaskRunState.QUEUED, None)
        work = Path(tr.work_dir)
        output = work / "output"
        inputs = work / "inputs"
        _prepare_work_dir(work, Path(run.work_dir) / "code", inputs, output)
        for upstream_name in task.depends_on:
            ups = [u for u in all_trs if u.task_name == upstream_name]
            _link_inputs(inputs / task_slug(upstream_name), ups)
        variables: dict[str, object] = {
            **tr.params,
            "run_id": run.id,
            "task": task.name,
            "output_dir": str(output),
            "inputs": str(inputs),
        }
        try:
            command = render(task.command or "", variables)
        except SignoffError as exc:
            self._move_task(
                tr, TaskRunState.RUNNING, None, changes={"started_at": self.clock.now()}
            )
            self._fail(tr.id, f"command template: {exc}")
            return
        env = {
            "SIGNOFF_RUN_ID": run.id,
            "SIGNOFF_TASK": task.name,
            "SIGNOFF_TASK_RUN_ID": tr.id,
            "SIGNOFF_PARAMS": json.dumps(tr.params, default=str),
            "SIGNOFF_OUTPUT_DIR": str(output),
            "SIGNOFF_INPUTS_DIR": str(inputs),
            "SIGNOFF_RECORDS_FILE": str(work / "records.jsonl"),
            **{f"SIGNOFF_PARAM_{_env_key(k)}": str(v) for k, v in tr.params.items()},
            **dict(task.env),
        }
        (work / "records.jsonl").unlink(missing_ok=True)
        self._move_task(tr, TaskRunState.RUNNING, None, changes={"started_at": self.clock.now()})
        executor.submit(
            TaskExecution(
                task_run_id=tr.id,
                command=command,
                work_dir=work,
                env=env,
                cpu=task.resources.cpu,
                gpu=task.resources.gpu,
            )
        )

    def _finish(self, run: RunRecord, outcome: TaskOutcome) -> None:
        tr = self.store.get_task_run(outcome.task_run_id)
        now = self.clock.now()
        if outcome.error is not None:
            self._fail(tr.id, outcome.error)
            return
        if outcome.exit_code != 0:
            tail = _log_tail(Path(tr.work_dir))
            self._fail(tr.id, f"exit code {outcome.exit_code}" + (f": {tail}" if tail else ""))
            return
        try:
            ingest_outputs(self.store, run, tr, now=now, new_id=new_id)
        except SignoffError as exc:
            self._fail(tr.id, f"could not record outputs: {exc}")
            return
        self._move_task(
            tr,
            TaskRunState.SUCCEEDED,
            None,
            changes={"ended_at": now, "exit_code": 0},
        )

    def _fail(self, task_run_id: str, reason: str) -> None:
        tr = self.store.get_task_run(task_run_id)
        self._move_task(tr, TaskRunState.FAILED, reason, changes={"ended_at": self.clock.now()})

    # -------------------------------------------------------------- built-in tasks
    def _run_builtin(self, run: RunRecord, spec: FlowSpec, tr: TaskRunRecord) -> None:
        task = spec.task(tr.task_name)
        if tr.kind is TaskKind.HUMAN_VALIDATION:
            gate, tr = builtin.open_gate(self.store, self.clock, run, spec, task, tr, new_id)
            self.observer.after_task_transition(tr)
            self.observer.on_gate_opened(gate)
            return
        tr = self._move_task(tr, TaskRunState.QUEUED, None)
        tr = self._move_task(
            tr, TaskRunState.RUNNING, None, changes={"started_at": self.clock.now()}
        )
        try:
            if tr.kind is TaskKind.SELECT:
                result = builtin.select(self.store, run, spec, task, tr)
            elif tr.kind is TaskKind.DEPLOY:
                result = builtin.deploy(
                    self.store, self.clock, self.endpoints, self.home, run, spec, task, tr, new_id
                )
            else:  # pragma: no cover - the loader admits no other kinds
                raise SignoffError(f"unknown task kind {tr.kind}")
        except SignoffError as exc:
            self._fail(tr.id, str(exc))
            return
        self._move_task(
            tr,
            TaskRunState.SUCCEEDED,
            None,
            changes={"ended_at": self.clock.now(), "result": result},
        )

    # ------------------------------------------------------------------- state moves
    def _move_task(
        self,
        tr: TaskRunRecord,
        new: TaskRunState,
        reason: str | None,
        *,
        changes: Mapping[str, Any] | None = None,
    ) -> TaskRunRecord:
        moved = self.store.transition_task_run(
            tr, new, at=self.clock.now(), reason=reason, changes=changes
        )
        self.observer.after_task_transition(moved)
        return moved

    def _move_run(self, run: RunRecord, new: RunState, reason: str | None) -> RunRecord:
        moved = self.store.transition_run(run, new, at=self.clock.now(), reason=reason)
        self.observer.after_run_transition(moved)
        return moved


# ------------------------------------------------------------------------ helpers
def _check_overrides(spec: FlowSpec, overrides: Mapping[str, ParamValue]) -> None:
    known = {p.key for p in spec.params} | {p.key for t in spec.tasks for p in t.params}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise SignoffError(
            f"unknown param(s) {', '.join(unknown)}; the flow declares: {', '.join(sorted(known))}"
        )


def _flow_params(spec: FlowSpec, overrides: Mapping[str, ParamValue]) -> dict[str, ParamValue]:
    values: dict[str, ParamValue] = {}
    for p in spec.params:
        if p.key in overrides:
            values[p.key] = overrides[p.key]
        elif p.is_grid:
            raise SignoffError(
                f"flow-level param {p.key} has several values; put a grid on a task instead"
            )
        else:
            values[p.key] = p.values[0]
    return values


def _snapshot_code(src: Path, dest: Path) -> None:
    """Copy the flow's folder (code and small files) so the run can be reproduced as it was."""
    dest.mkdir(parents=True, exist_ok=True)
    total = 0
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d not in _CODE_SKIP and not d.startswith("."))
        rel = Path(root).relative_to(src)
        for name in sorted(files):
            path = Path(root) / name
            size = path.stat().st_size
            total += size
            if total > _CODE_MAX_BYTES:
                raise SignoffError(
                    f"the flow's folder {src} holds over {_CODE_MAX_BYTES >> 20} MB; keep data "
                    "out of it (tasks fetch data) so runs stay cheap to snapshot"
                )
            (dest / rel).mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest / rel / name)


_RESERVED = {"inputs", "output", "records.jsonl", "stdout.log"}


def _prepare_work_dir(work: Path, code: Path, inputs: Path, output: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    if output.exists():  # a retry starts from an empty output folder
        shutil.rmtree(output)
    output.mkdir()
    inputs.mkdir(exist_ok=True)
    for entry in code.iterdir():
        link = work / entry.name
        if entry.name in _RESERVED or link.exists() or link.is_symlink():
            continue
        link.symlink_to(entry)


def _link_inputs(target: Path, upstream: list[TaskRunRecord]) -> None:
    if target.is_symlink() or target.exists():
        if target.is_symlink() or target.is_file():
            target.unlink()
        else:
            shutil.rmtree(target)
    if len(upstream) == 1:
        target.symlink_to(_output_of(upstream[0]))
        return
    target.mkdir(parents=True)
    for u in upstream:
        (target / str(u.index)).symlink_to(_output_of(u))


def _output_of(tr: TaskRunRecord) -> Path:
    out = Path(tr.work_dir) / "output"
    return out.resolve() if out.is_symlink() else out


def _env_key(key: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in key).upper()


def _log_tail(work: Path, lines: int = 3) -> str:
    log = work / "stdout.log"
    if not log.is_file():
        return ""
    text = log.read_text(errors="replace").strip().splitlines()
    return " | ".join(line.strip() for line in text[-lines:])


def _outcome_reason(outcome: RunState, trs: list[TaskRunRecord]) -> str:
    if outcome is RunState.SUCCEEDED:
        return "every task succeeded"
    culprits = [
        tr for tr in trs if tr.state.value == outcome.value and tr.state is not TaskRunState.SKIPPED
    ]
    if culprits:
        first = culprits[0]
        return f"{first.label} {outcome}" + (f": {first.reason}" if first.reason else "")
    return str(outcome)
