"""LocalExecutor: each task run is a subprocess in its own working folder, several in parallel.

A pool of slots (by default one per core) bounds parallelism; a task asking for ``cpu: 2``
takes two slots. Output (stdout and stderr together) goes to ``stdout.log`` in the task's
working folder, so ``signoff logs`` and the engine read the same bytes.
"""

from __future__ import annotations

import math
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

from signoff.domain.ports import TaskExecution, TaskOutcome

__all__ = ["LOG_FILE", "LocalExecutor"]

LOG_FILE = "stdout.log"


class LocalExecutor:
    """Runs task commands as local subprocesses, at most ``slots`` cores' worth at a time."""

    def __init__(self, slots: int | None = None, base_env: dict[str, str] | None = None) -> None:
        self._slots = max(1, slots or os.cpu_count() or 1)
        self._used = 0
        self._lock = threading.Lock()
        self._done: queue.Queue[TaskOutcome] = queue.Queue()
        self._threads: dict[str, threading.Thread] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
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
            return len(self._threads)

    def submit(self, execution: TaskExecution) -> None:
        need = self.slots_needed(execution.cpu)
        with self._lock:
            self._used += need
            thread = threading.Thread(
                target=self._run, args=(execution, need), name=f"task-{execution.task_run_id}"
            )
            self._threads[execution.task_run_id] = thread
        thread.start()

    def _run(self, execution: TaskExecution, need: int) -> None:
        env = {**self._base_env, **execution.env}
        log_path = execution.work_dir / LOG_FILE
        outcome: TaskOutcome
        try:
            with log_path.open("ab") as log:
                proc = subprocess.Popen(  # noqa: S602
                    execution.command,
                    shell=True,  # commands are shell lines, as in cnvrg flow files
                    cwd=execution.work_dir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                with self._lock:
                    self._procs[execution.task_run_id] = proc
                code = proc.wait()
            outcome = TaskOutcome(execution.task_run_id, code)
        except OSError as exc:
            outcome = TaskOutcome(execution.task_run_id, -1, error=f"could not start: {exc}")
        finally:
            with self._lock:
                self._used -= need
                self._procs.pop(execution.task_run_id, None)
        self._done.put(outcome)

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
                thread = self._threads.pop(o.task_run_id, None)
                if thread is not None:
                    thread.join()
        return outcomes

    def shutdown(self) -> None:
        """Stop whatever still runs (only on an abnormal exit) and wait for the threads."""
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout=10)
