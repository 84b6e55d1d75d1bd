"""The server's background work: gate timers, schedules, and driving runs that can move.

One loop thread wakes every ``tick`` seconds: it fires due schedules, expires overdue gates,
sends reminders, and hands every run that can move to the engine's
:class:`~signoff.engine.driving.RunDriver` (queued or running with its lease free, or waiting
at a gate that was decided). A decision made through the server schedules its run at once.
The loop stops by itself when the server stops. ``signoff worker`` and ``signoff scheduler``
run the same loop without the HTTP server.
"""

from __future__ import annotations

import logging
import threading

from signoff.bootstrap import App
from signoff.engine.driving import RunDriver
from signoff.scheduling import Scheduler, SchedulerLock, SchedulerLockedError

__all__ = ["Worker"]

log = logging.getLogger("signoff.server")


class Worker:
    """Timers and run driving for one server process."""

    # schedules and triggers: set one, or a worker with timers makes its own (run_scheduler)
    scheduler: Scheduler | None = None
    _scheduler_lock: SchedulerLock | None = None
    _scheduler_tried = False

    def __init__(
        self,
        app: App,
        *,
        tick: float = 2.0,
        drive: bool = True,
        timers: bool = True,
        schedules: bool | None = None,
        threads: int = 4,
    ):
        self.app = app
        self.tick = tick
        self.drive_runs = drive
        self.timers = timers
        # without a scheduler set, one that runs timers fires the schedules too (the server)
        self.schedules = timers if schedules is None else schedules
        self.driver = RunDriver(app.engine, threads=threads)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="signoff-worker", daemon=True)
        self._thread.start()

    def stop(self, *, wait: bool = True) -> None:
        """Stop the loop; with ``wait``, let the runs being driven settle first."""
        self._stop.set()
        if self._scheduler_lock is not None:
            self._scheduler_lock.release()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.driver.close(wait=wait)

    def schedule(self, run_id: str) -> None:
        """Drive a run soon (after a decision); a run already being driven is left alone."""
        if self.drive_runs:
            self.driver.schedule(run_id)

    def run_scheduler(self) -> None:
        """Fire due schedules and trigger rules (``signoff.scheduling``); drive what started.

        Without a scheduler set, a worker with ``schedules`` on (by default one that runs
        timers: the server's) is the scheduler:
        on SQLite it first takes the database's scheduler lock, and when a ``signoff
        scheduler`` holds it, leaves scheduling to that one.
        """
        if self.scheduler is None:
            if not self.schedules or self._scheduler_tried:
                return
            self._scheduler_tried = True
            lock_path = self.app.store.scheduler_lock_path()
            if lock_path is not None:
                lock = SchedulerLock(lock_path)
                try:
                    lock.acquire()
                except SchedulerLockedError as exc:
                    log.warning("this process does not schedule: %s", exc)
                    return
                self._scheduler_lock = lock
            self.scheduler = Scheduler(
                self.app.store,
                self.app.engine,
                self.app.engine.clock,
                endpoints=self.app.endpoints,
                exclusive=lock_path is not None,
                grace=max(60.0, 3 * self.tick),
                after_start=self.schedule,
            )
        self.scheduler.tick()

    def run_once(self) -> None:
        """One pass: timers, then schedule every run that can move."""
        self.run_scheduler()
        if self.timers:
            for run_id in self.app.gates.expire_due():
                log.info("gate of run %s expired", run_id)
            self.app.gates.remind_due()
        if self.drive_runs:
            self.driver.drive_ready()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("worker pass failed")
            self._stop.wait(self.tick)
