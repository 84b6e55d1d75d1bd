"""The server's background work: gate timers, and driving runs that can move.

One loop thread wakes every ``tick`` seconds: it expires overdue gates, sends reminders, and
hands every run that can move (queued or running, its lease free) to a small pool that drives
it. A decision made through the server schedules its run at once. The loop stops by itself
when the server stops.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from signoff.bootstrap import App
from signoff.domain.states import RunState
from signoff.engine.engine import RunBusyError
from signoff.errors import SignoffError
from signoff.scheduling import Scheduler, SchedulerLock, SchedulerLockedError

__all__ = ["Worker"]

log = logging.getLogger("signoff.server")


class Worker:
    """Timers and run driving for one server process."""

    # schedules and triggers: set one, or a worker with timers makes its own (run_scheduler)
    scheduler: Scheduler | None = None
    _scheduler_lock: SchedulerLock | None = None
    _scheduler_tried = False

    def __init__(self, app: App, *, tick: float = 2.0, drive: bool = True, timers: bool = True):
        self.app = app
        self.tick = tick
        self.drive_runs = drive
        self.timers = timers
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="drive")
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="signoff-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._scheduler_lock is not None:
            self._scheduler_lock.release()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def schedule(self, run_id: str) -> None:
        """Drive a run soon (after a decision); a run already being driven is left alone."""
        if not self.drive_runs:
            return
        with self._lock:
            if run_id in self._busy:
                return
            self._busy.add(run_id)
        self._pool.submit(self._drive, run_id)

    def _drive(self, run_id: str) -> None:
        try:
            self.app.engine.drive(run_id)
        except RunBusyError:
            pass  # another process drives it
        except SignoffError as exc:
            log.warning("driving run %s: %s", run_id, exc)
        except Exception:
            log.exception("driving run %s failed", run_id)
        finally:
            with self._lock:
                self._busy.discard(run_id)

    def run_scheduler(self) -> None:
        """Fire due schedules and trigger rules (``signoff.scheduling``); drive what started.

        Without a scheduler set, a worker that runs timers (the server's) is the scheduler:
        on SQLite it first takes the database's scheduler lock, and when a ``signoff
        scheduler`` holds it, leaves scheduling to that one.
        """
        if self.scheduler is None:
            if not self.timers or self._scheduler_tried:
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
            now = self.app.engine.clock.now()
            for run in self.app.store.list_runs(limit=500):
                if run.state not in (RunState.QUEUED, RunState.RUNNING):
                    continue
                owner, expires = self.app.store.lease_of(run.id)
                if owner is None or (expires is not None and expires < now):
                    self.schedule(run.id)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("worker pass failed")
            self._stop.wait(self.tick)
