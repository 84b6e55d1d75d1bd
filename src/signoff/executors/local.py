"""LocalExecutor: task runs as local subprocesses (or in-process callables), several at a time.

A pool of slots (by default one per core) bounds parallelism; a task asking for ``cpu: 2``
takes two slots. A command's output (stdout and stderr together) goes to ``stdout.log`` in
its working folder and its pid to ``.pid``, so a later process can find and stop a command
left behind by a driver that died. A Python callable (``call: "module:function"``) runs in a
worker thread of this process with its task context set; its traceback goes to the log.
"""

from __future__ import annotations

import importlib
import inspect
import math
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

from signoff.domain.ports import TaskExecution, TaskOutcome
from signoff.tracking.context import TaskContext, task_context

__all__ = ["LOG_FILE", "PID_FILE", "LocalExecutor", "stop_leftover"]

LOG_FILE = "stdout.log"
PID_FILE = ".pid"


class LocalExecutor:
    """Runs task runs locally, at most ``slots`` cores' worth at a time."""

    def __init__(self, slots: int | None = None, base_env: dict[str, str] | None = None) -> None:
        self._slots = max(1, slots or os.cpu_count() or 1)
        self._used = 0
        self._lock = threading.Lock()
        self._done: queue.SimpleQueue[TaskOutcome] = queue.SimpleQueue()
        self._running: set[str] = set()
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._pool = ThreadPoolExecutor(max_workers=self._slots, thread_name_prefix="task")
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
            self._running.add(execution.task_run_id)
        self._pool.submit(self._run, execution, need)

    def _run(self, execution: TaskExecution, need: int) -> None:
        try:
            if execution.call is not None:
                outcome = self._call(execution)
            else:
                outcome = self._spawn(execution)
        except Exception as exc:
            outcome = TaskOutcome(execution.task_run_id, -1, error=f"executor error: {exc}")
        with self._lock:
            self._used -= need
        self._done.put(outcome)

    def _spawn(self, execution: TaskExecution) -> TaskOutcome:
        env = {**self._base_env, **execution.env}
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
        (work / PID_FILE).write_text(str(proc.pid))
        with self._lock:
            self._procs[execution.task_run_id] = proc
        try:
            code = proc.wait(timeout=execution.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait()
            return TaskOutcome(
                execution.task_run_id, -1, error=f"timed out after {execution.timeout:g}s"
            )
        finally:
            with self._lock:
                self._procs.pop(execution.task_run_id, None)
        (work / PID_FILE).unlink(missing_ok=True)
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return TaskOutcome(execution.task_run_id, code, error=f"killed by {name}")
        return TaskOutcome(execution.task_run_id, code)

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
        )
        try:
            target: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                target = getattr(target, part)
            target = getattr(target, "__wrapped_task__", target)
            kwargs = _accepted(target, execution.params)
            with task_context(ctx):
                target(**kwargs)
        except Exception as exc:
            with (execution.work_dir / LOG_FILE).open("a") as log:
                log.write(traceback.format_exc())
            return TaskOutcome(execution.task_run_id, 1, error=f"{type(exc).__name__}: {exc}")
        return TaskOutcome(execution.task_run_id, 0)

    def wait_any(self, timeout: float | None = None) -> list[TaskOutcome]:
        """Block until at least one task run ended (or ``timeout``), return all that ended."""
        outcomes: list[TaskOutcome] = []
        try:
            outcomes.append(self._done.get(timeout=timeout))
        except queue.Empty:
            return outcomes
        while True:
            try:
                outcomes.append(self._done.get_nowait())
            except queue.Empty:
                break
        with self._lock:
            for o in outcomes:
                self._running.discard(o.task_run_id)
        return outcomes

    def cancel(self, task_run_id: str) -> None:
        """Stop one running command (its whole process group)."""
        with self._lock:
            proc = self._procs.get(task_run_id)
        if proc is not None and proc.poll() is None:
            _kill_group(proc.pid)

    def shutdown(self) -> None:
        """Stop whatever still runs (only on an abnormal exit) and release the threads."""
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            if proc.poll() is None:
                _kill_group(proc.pid)
        self._pool.shutdown(wait=True, cancel_futures=True)


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
    """Stop a command a dead driver left running in ``work_dir``; True if one was stopped.

    The pid is trusted only if that process still carries the task run's id in its
    environment, so a recycled pid is never killed.
    """
    pid_file = work_dir / PID_FILE
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return False
    marker = f"SIGNOFF_TASK_RUN_ID={task_run_id}".encode()
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        pid_file.unlink(missing_ok=True)
        return False
    if marker not in environ.split(b"\0"):
        pid_file.unlink(missing_ok=True)
        return False
    _kill_group(pid)
    pid_file.unlink(missing_ok=True)
    return True
