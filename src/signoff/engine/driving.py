"""Driving the runs that can move, from a small thread pool: what every worker process does.

A pass (:meth:`RunDriver.drive_ready`) reads the store and hands to the pool every run that
can move without a person: queued or running with its lease free (never claimed, released,
or expired after its driver died), and waiting at a gate that is no longer open (decided
through another process). Each one is driven by :meth:`Engine.drive`, which claims the run's
lease first: several processes, on several machines, may pass over the same store at once;
the lease makes sure one drives a run at a time, and the others skip it. ``signoff server``'s
worker thread and ``signoff worker`` both drive runs with this class.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from signoff.domain.planning import plan_run
from signoff.domain.records import RunRecord
from signoff.domain.states import RunState
from signoff.engine.engine import Engine
from signoff.engine.lease import RunBusyError
from signoff.errors import SignoffError

__all__ = ["RunDriver"]

log = logging.getLogger("signoff.worker")

_SCAN_LIMIT = 500  # runs read per pass, newest first


class RunDriver:
    """A pool of threads driving runs of one engine; a run is driven by one thread at a time."""

    def __init__(self, engine: Engine, *, threads: int = 4) -> None:
        self.engine = engine
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="drive")
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._closed = False

    def schedule(self, run_id: str) -> bool:
        """Drive a run soon; a run this process already drives is left alone (False)."""
        with self._lock:
            if self._closed or run_id in self._busy:
                return False
            self._busy.add(run_id)
        self._pool.submit(self._drive, run_id)
        return True

    def busy(self) -> list[str]:
        """The runs this process is driving now."""
        with self._lock:
            return sorted(self._busy)

    def drive_ready(self) -> list[str]:
        """One pass over the store: schedule every run that can move; return those scheduled."""
        store = self.engine.store
        now = self.engine.clock.now()
        open_gates = {gate.run_id for gate in store.waiting_gates()}
        partly_decided = set(store.runs_with_decided_gates()) & open_gates
        scheduled: list[str] = []
        for run in store.list_runs(limit=_SCAN_LIMIT):
            if run.state is RunState.WAITING_FOR_APPROVAL:
                if run.id in open_gates and not (run.id in partly_decided and self._can_move(run)):
                    continue  # waiting costs nothing: only a decision moves it
            elif run.state not in (RunState.QUEUED, RunState.RUNNING):
                continue
            owner, expires = store.lease_of(run.id)
            if owner is not None and (expires is None or expires >= now):
                continue  # a live driver holds it
            if self.schedule(run.id):
                scheduled.append(run.id)
        return scheduled

    def _can_move(self, run: RunRecord) -> bool:
        """Whether a run with one gate decided and another open has tasks to start or skip."""
        store = self.engine.store
        plan = plan_run(store.get_flow(run.flow_hash), store.list_task_runs(run.id))
        return bool(plan.ready or plan.skip)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no run is being driven here; False when ``timeout`` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._busy, timeout=timeout)

    def close(self, *, wait: bool = True) -> None:
        """Take no more runs; with ``wait``, let the runs being driven settle first."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def release_held(self) -> list[str]:
        """Give up the leases this process holds, before it leaves without settling its runs.

        Another process takes the runs over at once instead of after the lease time; what
        their tasks left running is stopped by that driver before they run again.
        """
        store = self.engine.store
        mine = f"{self.engine.owner}/"  # Engine.drive's lease owners are "<engine owner>/<id>"
        released: list[str] = []
        for run_id in self.busy():
            owner, _ = store.lease_of(run_id)
            if owner is not None and owner.startswith(mine):
                store.release_run(run_id, owner)
                released.append(run_id)
        return released

    def _drive(self, run_id: str) -> None:
        try:
            self.engine.drive(run_id)
        except RunBusyError:
            pass  # another process drives it
        except SignoffError as exc:
            log.warning("driving run %s: %s", run_id, exc)
        except Exception:
            log.exception("driving run %s failed", run_id)
        finally:
            with self._idle:
                self._busy.discard(run_id)
                self._idle.notify_all()
