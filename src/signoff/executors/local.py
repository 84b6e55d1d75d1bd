"""LocalExecutor: task runs as local subprocesses (or in-process callables), several at a time.

A pool of slots (by default one per core) bounds parallelism; a task asking for ``cpu: 2``
takes two slots. A command's output (stdout and stderr together) goes to ``stdout.log`` in
its working folder; its environment names its task run, so a later process can find and stop
a command left behind by a driver that died. A Python callable (``call: "module:function"``)
runs in a worker thread of this process with its task context set; its traceback goes to the
log.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import math
import os
import queue
import selectors
import signal
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from signoff.domain.ports import TaskExecution, TaskOutcome
from signoff.tracking.context import TaskContext, task_context

__all__ = ["LOG_FILE", "LocalExecutor", "stop_leftover"]

LOG_FILE = "stdout.log"


class LocalExecutor:
    """Runs task runs locally, at most ``slots`` cores' worth at a time.

    Commands are spawned by the caller's thread and watched through pidfds (no thread per
    command); Python callables run on a small thread pool. ``wait_any`` waits on both.
    """

    def __init__(self, slots: int | None = None, base_env: dict[str, str] | None = None) -> None:
        self._slots = max(1, slots or os.cpu_count() or 1)
        self._used = 0
        self._lock = threading.Lock()
        self._done: queue.SimpleQueue[TaskOutcome] = queue.SimpleQueue()
        self._running: dict[str, int] = {}  # task run id -> slots held
        self._procs: dict[int, _Command] = {}  # pidfd -> running command
        self._pool: ThreadPoolExecutor | None = None
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._base_env = dict(base_env if base_env is not None else os.environ)
        # `python` in a task command means this environment's interpreter.
        bin_dir = str(Path(sys.executable).parent)
        self._base_env["PATH"] = bin_dir + os.pathsep + self._base_env.get("PATH", "")

    @property
    def capacity(self) -> int:
        return self._slots

    def slots_needed(self, cpu: float) -> int:
        return min(self._slots, max(1, math.ceil(cpu)))

    def free_slots(self) -> int:
        with self._lock:
            return self._slots - self._used

    def in_flight(self) -> int:
        with self._lock:
            return len(self._running)

    def submit(self, execution: TaskExecution) -> None:
        need = self.slots_needed(execution.cpu)
        with self._lock:
            self._used += need
            self._running[execution.task_run_id] = need
        if execution.call is not None:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self._slots, thread_name_prefix="task")
            self._pool.submit(self._run_call, execution)
            return
        command = _Command.start(execution, self._base_env)
        if isinstance(command, TaskOutcome):
            self._done.put(command)
            os.write(self._wake_w, b"x")
            return
        self._procs[command.pidfd] = command
        self._selector.register(command.pidfd, selectors.EVENT_READ)

    def _run_call(self, execution: TaskExecution) -> None:
        try:
            outcome = self._call(execution)
        except Exception as exc:  # an executor bug must not lose the outcome
            outcome = TaskOutcome(execution.task_run_id, -1, error=f"executor error: {exc}")
        self._done.put(outcome)
        os.write(self._wake_w, b"x")

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
        outcomes = self._drain()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not outcomes:
            wait = self._next_timeout(deadline)
            if wait is not None and wait <= 0:
                outcomes = self._expire()
                if outcomes or (deadline is not None and time.monotonic() >= deadline):
                    break
                continue
            for key, _ in self._selector.select(wait):
                fd = int(key.fd)
                if fd == self._wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                else:
                    outcomes.append(self._reap(fd))
            outcomes.extend(self._drain())
            outcomes.extend(self._expire())
            if deadline is not None and time.monotonic() >= deadline:
                break
        with self._lock:
            for o in outcomes:
                self._used -= self._running.pop(o.task_run_id, 0)
        return outcomes

    def _drain(self) -> list[TaskOutcome]:
        outcomes: list[TaskOutcome] = []
        while True:
            try:
                outcomes.append(self._done.get_nowait())
            except queue.Empty:
                return outcomes

    def _next_timeout(self, deadline: float | None) -> float | None:
        limits = [c.deadline for c in self._procs.values() if c.deadline is not None]
        if deadline is not None:
            limits.append(deadline)
        return None if not limits else min(limits) - time.monotonic()

    def _expire(self) -> list[TaskOutcome]:
        now = time.monotonic()
        expired = [
            fd for fd, c in self._procs.items() if c.deadline is not None and c.deadline <= now
        ]
        outcomes = []
        for fd in expired:
            command = self._procs[fd]
            _kill_group(command.proc.pid)
            outcome = self._reap(fd)
            outcomes.append(
                TaskOutcome(outcome.task_run_id, -1, error=f"timed out after {command.timeout:g}s")
            )
        return outcomes

    def _reap(self, fd: int) -> TaskOutcome:
        command = self._procs.pop(fd)
        self._selector.unregister(fd)
        os.close(fd)
        return command.finish()

    def cancel(self, task_run_id: str) -> None:
        """Stop one running command (its whole process group)."""
        for command in list(self._procs.values()):
            if command.task_run_id == task_run_id and command.proc.poll() is None:
                _kill_group(command.proc.pid)

    def shutdown(self) -> None:
        """Stop whatever still runs (only on an abnormal exit) and release resources."""
        for fd in list(self._procs):
            command = self._procs[fd]
            if command.proc.poll() is None:
                _kill_group(command.proc.pid)
            self._reap(fd)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)


class _Command:
    """One running command: its process, pidfd and deadline."""

    def __init__(self, execution: TaskExecution, proc: subprocess.Popen[bytes]) -> None:
        self.task_run_id = execution.task_run_id
        self.work_dir = execution.work_dir
        self.proc = proc
        self.pidfd = os.pidfd_open(proc.pid)
        self.timeout = execution.timeout
        self.deadline = None if execution.timeout is None else time.monotonic() + execution.timeout

    @staticmethod
    def start(execution: TaskExecution, base_env: dict[str, str]) -> _Command | TaskOutcome:
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
        return _Command(execution, proc)

    def finish(self) -> TaskOutcome:
        code = self.proc.wait()
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return TaskOutcome(self.task_run_id, code, error=f"killed by {name}")
        return TaskOutcome(self.task_run_id, code)


def _accepted(func: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The params a Python task function declares (all of them if it takes ``**kwargs``)."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return dict(params)
    return {k: v for k, v in params.items() if k in sig.parameters}


def _kill_group(pid: int, grace: float = 5.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def stop_leftover(work_dir: Path, task_run_id: str) -> bool:
    """Stop a command a dead driver left running for this task run; True if one was stopped.

    Every command carries ``SIGNOFF_TASK_RUN_ID`` in its environment: the process group
    whose leader carries this task run's id is the leftover, so a recycled pid is never
    killed. (Looked up only when a run is recovered, so no per-task bookkeeping is needed.)
    """
    marker = f"SIGNOFF_TASK_RUN_ID={task_run_id}".encode()
    stopped = False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if marker not in environ.split(b"\0"):
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pid:  # the group leader: the shell signoff started
            _kill_group(pid)
            stopped = True
    return stopped
