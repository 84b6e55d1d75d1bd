"""LocalExecutor: task runs as local subprocesses (or in-process callables), several at a time.

A pool of slots (by default one per core) bounds parallelism; a task asking for ``cpu: 2``
takes two slots. GPUs are handed out by id, each to one task run at a time, through
``CUDA_VISIBLE_DEVICES``; memory is a budget of the machine's total
(``signoff.executors.admission``). A request the machine can never meet is a failed outcome
before anything starts. ``submit`` first builds the task run's working folder from its
``TaskExecution`` (``signoff.executors.materialise``). A command's output (stdout and stderr
together) goes to ``stdout.log`` in its working folder; its environment names its task run,
so a later process can find and stop a command left behind by a driver that died. A Python
callable (``call: "module:function"``) runs in a worker thread of this process with its task
context set; its traceback goes to the log.

Supervision (psutil): each command is the leader of a new session, so it and everything it
starts share a process group. A watcher thread per command blocks in ``psutil`` 's wait
(pidfd on Linux, kqueue on macOS and the BSDs: no polling), stops the command when its
timeout passes, and hands the outcome to ``wait_any`` through a queue. Stopping a command
signals its process group and every descendant that left the group: SIGTERM, then SIGKILL
for whatever still runs after a grace period.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

from signoff.domain.ports import TaskExecution, TaskOutcome
from signoff.domain.specs import Resources
from signoff.errors import SignoffError
from signoff.executors.admission import ResourcePool
from signoff.executors.gpus import Gpus
from signoff.executors.materialise import materialise
from signoff.tracking.context import TaskContext, task_context

__all__ = [
    "CUDA_ENV",
    "LOG_FILE",
    "TASK_RUN_ENV",
    "LocalExecutor",
    "machine_pool",
    "stop_leftover",
]

LOG_FILE = "stdout.log"
TASK_RUN_ENV = "SIGNOFF_TASK_RUN_ID"  # every command carries its task run's id under this name
CUDA_ENV = "CUDA_VISIBLE_DEVICES"  # the GPU ids a command was given, comma-separated
_MB = 1024 * 1024
_DEFERRED_POLL = 0.1  # seconds between tries of a task run waiting for another run's GPUs
_STOP_GRACE = 5.0
_POLL_INTERVAL = 0.05


def machine_pool(
    slots: int | None = None, gpus: Gpus | None = None, memory_mb: int | None = None
) -> ResourcePool:
    """This machine's slots (default: its cores), GPU ids and memory (default: its total)."""
    total_mb = psutil.virtual_memory().total // _MB if memory_mb is None else memory_mb
    return ResourcePool(slots or os.cpu_count() or 1, gpus or Gpus(), total_mb)


class LocalExecutor:
    """Runs task runs locally, at most ``slots`` cores' worth at a time.

    ``gpus`` are the GPU ids it may hand out (none by default; ``bootstrap`` finds them from
    ``SIGNOFF_GPUS`` or ``nvidia-smi``); ``memory_mb`` is the memory budget (default: the
    machine's total). ``pool`` instead shares one machine's slots, GPUs and memory between
    the executors of every run a process drives at once (``bootstrap`` gives one per
    process): a task run whose GPUs another run took between ``fits`` and ``submit`` waits
    here until they are free, never fails for it.

    Commands are spawned by the caller's thread, each watched by a thread of its own that
    waits for it; Python callables run on a small thread pool. Both report to one queue,
    which ``wait_any`` reads.
    """

    def __init__(
        self,
        slots: int | None = None,
        base_env: dict[str, str] | None = None,
        gpus: Gpus | None = None,
        memory_mb: int | None = None,
        pool: ResourcePool | None = None,
    ) -> None:
        self._machine = pool or machine_pool(slots, gpus, memory_mb)
        self._deferred: list[TaskExecution] = []  # admitted, waiting for GPUs another run holds
        self._done: queue.SimpleQueue[TaskOutcome] = queue.SimpleQueue()
        self._commands: dict[str, _Command] = {}  # task run id -> running command
        self._pool: ThreadPoolExecutor | None = None
        self._base_env = dict(base_env if base_env is not None else os.environ)
        # `python` in a task command means this environment's interpreter.
        bin_dir = str(Path(sys.executable).parent)
        self._base_env["PATH"] = bin_dir + os.pathsep + self._base_env.get("PATH", "")
        self._lock = threading.Lock()
        self._submitted: set[str] = set()  # task run ids whose outcome wait_any has not given

    @property
    def capacity(self) -> int:
        return self._machine.slots

    def refusal(self, resources: Resources) -> str | None:
        """Why ``resources`` can never be had here: more GPUs or memory than the machine has."""
        return self._machine.refusal(resources)

    def fits(self, resources: Resources) -> bool:
        """Whether ``resources`` (CPU slots, whole GPUs, memory) are free now."""
        return self._machine.fits(resources)

    def free_slots(self) -> int:
        return self._machine.free_slots()

    def in_flight(self) -> int:
        with self._lock:
            return len(self._submitted)

    def submit(self, execution: TaskExecution) -> None:
        with self._lock:
            self._submitted.add(execution.task_run_id)
        grant = self._machine.take(execution.task_run_id, _resources(execution))
        if grant is None:  # busy: another run's task runs hold it; tried again in wait_any
            self._deferred.append(execution)
            return
        if isinstance(grant, str):  # refused: the command never starts
            self._done.put(TaskOutcome(execution.task_run_id, -1, error=grant))
            return
        if grant.gpus:
            env = {**execution.env, CUDA_ENV: ",".join(grant.gpus)}
            execution = dataclasses.replace(execution, env=env)
        failed = _prepare(execution) or self._start(execution)
        if failed is not None:
            self._done.put(failed)

    def _start(self, execution: TaskExecution) -> TaskOutcome | None:
        """Start the command or the callable; the outcome if it could not even start."""
        if execution.call is not None:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.capacity, thread_name_prefix="task"
                )
            self._pool.submit(self._run_call, execution)
            return None
        command = _Command.start(execution, self._base_env, self._done)
        if isinstance(command, TaskOutcome):
            return command
        self._commands[execution.task_run_id] = command
        return None

    def _run_call(self, execution: TaskExecution) -> None:
        try:
            outcome = self._call(execution)
        except Exception as exc:  # an executor bug must not lose the outcome
            outcome = TaskOutcome(execution.task_run_id, -1, error=f"executor error: {exc}")
        self._done.put(outcome)

    def _call(self, execution: TaskExecution) -> TaskOutcome:
        assert execution.call is not None
        module_name, _, qualname = execution.call.partition(":")
        ctx = TaskContext(
            run_id=execution.env.get("SIGNOFF_RUN_ID", ""),
            task=execution.env.get("SIGNOFF_TASK", ""),
            task_run_id=execution.task_run_id,
            output_dir=execution.work_dir / "output",
            inputs_dir=execution.work_dir / "inputs",
            records_file=execution.work_dir / "records.jsonl",
            params=dict(execution.params),
            inputs=dict(execution.inputs),
        )
        try:
            target: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                target = getattr(target, part)
            target = getattr(target, "__wrapped_task__", target)
            kwargs = _accepted(target, execution.params)
            with task_context(ctx):
                target(**kwargs)
        except Exception as exc:  # user code: any error is the task's failure
            execution.work_dir.mkdir(parents=True, exist_ok=True)
            with (execution.work_dir / LOG_FILE).open("a") as log:
                log.write(traceback.format_exc())
            return TaskOutcome(execution.task_run_id, 1, error=f"{type(exc).__name__}: {exc}")
        return TaskOutcome(execution.task_run_id, 0)

    def wait_any(self, timeout: float | None = None) -> list[TaskOutcome]:
        """Block until at least one task run ended (or ``timeout``), return all that ended."""
        self._start_deferred()
        outcomes = self._drain()
        if not outcomes:
            wait = None if timeout is None else max(0.0, timeout)
            if self._deferred:  # look again soon: another run may give its GPUs back
                wait = _DEFERRED_POLL if wait is None else min(wait, _DEFERRED_POLL)
            with contextlib.suppress(queue.Empty):
                outcomes.append(self._done.get(timeout=wait))
            outcomes.extend(self._drain())
        with self._lock:
            self._submitted.difference_update(o.task_run_id for o in outcomes)
        for o in outcomes:
            self._machine.release(o.task_run_id)
        for o in outcomes:
            command = self._commands.pop(o.task_run_id, None)
            if command is not None:
                command.watcher.join()  # it has put its outcome: this returns at once
        return outcomes

    def _start_deferred(self) -> None:
        waiting, self._deferred = self._deferred, []
        for execution in waiting:
            self.submit(execution)  # counted in flight already; deferred again if still busy

    def _drain(self) -> list[TaskOutcome]:
        outcomes: list[TaskOutcome] = []
        while True:
            try:
                outcomes.append(self._done.get_nowait())
            except queue.Empty:
                return outcomes

    def cancel(self, task_run_id: str) -> None:
        """Stop one running command (its whole process group and descendants)."""
        for waiting in [e for e in self._deferred if e.task_run_id == task_run_id]:
            self._deferred.remove(waiting)
            self._done.put(TaskOutcome(task_run_id, -1, error="cancelled before it started"))
        command = self._commands.get(task_run_id)
        # Not proc.poll(): reaping belongs to the watcher alone, or the exit code could be lost.
        if command is not None and command.watcher.is_alive():
            _stop_command(command.proc.pid)

    def shutdown(self) -> None:
        """Stop whatever still runs (only on an abnormal exit) and release resources."""
        for command in list(self._commands.values()):
            if command.watcher.is_alive():
                _stop_command(command.proc.pid)
            command.watcher.join()
        self._commands.clear()
        self._deferred.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:  # a shared pool outlives this executor: give back what is held
            held, self._submitted = self._submitted, set()
        for task_run_id in held:
            self._machine.release(task_run_id)


class _Command:
    """One running command: its process and the thread that waits for it."""

    def __init__(
        self,
        execution: TaskExecution,
        proc: subprocess.Popen[bytes],
        done: queue.SimpleQueue[TaskOutcome],
    ) -> None:
        self.task_run_id = execution.task_run_id
        self.proc = proc
        self.timeout = execution.timeout
        self._done = done
        self.watcher = threading.Thread(target=self._watch, name=f"watch-{proc.pid}", daemon=True)
        self.watcher.start()

    @staticmethod
    def start(
        execution: TaskExecution, base_env: dict[str, str], done: queue.SimpleQueue[TaskOutcome]
    ) -> _Command | TaskOutcome:
        env = {**base_env, **execution.env}
        work = execution.work_dir
        try:
            with (work / LOG_FILE).open("ab") as log:
                proc = subprocess.Popen(  # noqa: S602
                    execution.command,
                    shell=True,  # commands are shell lines, as in cnvrg flow files
                    cwd=work,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except OSError as exc:
            return TaskOutcome(execution.task_run_id, -1, error=f"could not start: {exc}")
        return _Command(execution, proc, done)

    def _watch(self) -> None:
        try:
            outcome = self._wait()
        except Exception as exc:  # a supervision bug must not lose the outcome
            outcome = TaskOutcome(self.task_run_id, -1, error=f"executor error: {exc}")
        self._done.put(outcome)

    def _wait(self) -> TaskOutcome:
        try:
            # psutil waits on a pidfd (Linux) or kqueue (macOS, BSD), then reaps the child.
            code = _wait_child(self.proc, self.timeout)
        except psutil.TimeoutExpired:
            _stop_command(self.proc.pid)
            _wait_child(self.proc, None)
            return TaskOutcome(self.task_run_id, -1, error=f"timed out after {self.timeout:g}s")
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return TaskOutcome(self.task_run_id, code, error=f"killed by {name}")
        return TaskOutcome(self.task_run_id, code)


def _resources(execution: TaskExecution) -> Resources:
    return Resources(cpu=execution.cpu, gpu=execution.gpu, memory_mb=execution.memory_mb)


def _prepare(execution: TaskExecution) -> TaskOutcome | None:
    """Build the working folder; the failed outcome if it cannot be built."""
    try:
        materialise(execution)
    except (OSError, SignoffError) as exc:
        error = f"could not prepare the working folder: {exc}"
        return TaskOutcome(execution.task_run_id, -1, error=error)
    return None


def _wait_child(proc: subprocess.Popen[bytes], timeout: float | None) -> int:
    """Wait for our child without polling; record its exit code on ``proc`` too."""
    if proc.returncode is None:
        code = psutil.Process(proc.pid).wait(timeout)
        # Reaped by psutil: tell Popen, or its own poll() would find no child and guess 0.
        # (None: the status was lost, which only a second reaper could cause.)
        proc.returncode = -1 if code is None else code
    return proc.returncode


def _accepted(func: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The params a Python task function declares (all of them if it takes ``**kwargs``)."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return dict(params)
    return {k: v for k, v in params.items() if k in sig.parameters}


def _stop_command(pid: int, grace: float = _STOP_GRACE) -> None:
    """Stop a command: SIGTERM to its process group and descendants, SIGKILL after ``grace``."""
    try:
        leader = psutil.Process(pid)
        family = [leader, *leader.children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    _signal_command(pid, family, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(_is_running(p) for p in family) and time.monotonic() < deadline:
        time.sleep(_POLL_INTERVAL)
    # What ignored SIGTERM goes now, the group's members psutil cannot see included.
    _signal_command(pid, [p for p in family if _is_running(p)], signal.SIGKILL)


def _signal_command(pgid: int, family: list[psutil.Process], sig: signal.Signals) -> None:
    """``sig`` once to every process of the group ``pgid`` and of ``family``."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    for proc in family:
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(proc.pid) != pgid:  # left the group (its own session): not signalled yet
                proc.send_signal(sig)


def _is_running(proc: psutil.Process) -> bool:
    """Alive and not a zombie (an ended child nobody has reaped yet holds no resources)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stop_leftover(work_dir: Path, task_run_id: str) -> bool:
    """Stop a command a dead driver left running for this task run; True if one was stopped.

    Every command carries ``SIGNOFF_TASK_RUN_ID`` in its environment, and so does everything
    it started: the processes carrying this task run's id are the leftover, so a recycled
    pid is never killed. Each of them whose parent does not carry it (the command signoff
    started, or a descendant its parent left behind) is stopped with its group and
    descendants. (Looked up only when a run is recovered, so no per-task bookkeeping.)
    """
    marked: dict[int, psutil.Process] = {}
    me = os.getpid()
    for proc in psutil.process_iter():
        try:
            if proc.pid != me and proc.environ().get(TASK_RUN_ENV) == task_run_id:
                marked[proc.pid] = proc
        except psutil.Error:  # gone, a zombie, or someone else's: not ours
            continue
    roots = []
    for proc in marked.values():
        try:
            if proc.ppid() not in marked:
                roots.append(proc)
        except psutil.Error:
            continue
    for proc in roots:
        _stop_command(proc.pid)
    return bool(roots)
