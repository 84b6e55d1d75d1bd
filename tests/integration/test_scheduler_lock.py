"""The single-scheduler lock of a SQLite database, on real files and real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from signoff.scheduling import SchedulerLock, SchedulerLockedError

HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from signoff.scheduling import SchedulerLock

    lock = SchedulerLock(Path(sys.argv[1]))
    lock.acquire()
    print("held", flush=True)
    time.sleep(120)
    """
)


def _lock_path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "signoff.db.scheduler.lock"


def _holder(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "held\n"
    return proc


def test_a_second_lock_refuses_and_names_the_holder(tmp_path: Path) -> None:
    path = _lock_path(tmp_path)
    first = SchedulerLock(path)
    first.acquire()  # creates the missing folder too
    assert first.held
    second = SchedulerLock(path)
    with pytest.raises(SchedulerLockedError) as refused:
        second.acquire()
    message = str(refused.value)
    assert f"another scheduler (pid {os.getpid()} since " in message
    assert f"SQLite database {path.parent / 'signoff.db'};" in message
    assert "only one may run on SQLite" in message
    assert not second.held
    first.release()
    assert not first.held
    second.acquire()
    assert second.held
    second.release()


def test_acquiring_twice_then_releasing_once_frees_it(tmp_path: Path) -> None:
    path = _lock_path(tmp_path)
    lock = SchedulerLock(path)
    lock.acquire()
    lock.acquire()  # already held: a no-op, not a second hold to undo
    lock.release()
    other = SchedulerLock(path)
    other.acquire()
    other.release()


def test_kill_9_of_the_holder_releases_the_lock(tmp_path: Path) -> None:
    path = _lock_path(tmp_path)
    proc = _holder(path)
    try:
        with pytest.raises(SchedulerLockedError, match=rf"another scheduler \(pid {proc.pid} "):
            SchedulerLock(path).acquire()
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    lock = SchedulerLock(path)
    lock.acquire()  # the kernel let it go with the process; the stale note is replaced
    with pytest.raises(SchedulerLockedError, match=rf"\(pid {os.getpid()} "):
        SchedulerLock(path).acquire()
    lock.release()


def test_a_lock_taken_in_one_thread_is_released_from_another(tmp_path: Path) -> None:
    path = _lock_path(tmp_path)
    lock = SchedulerLock(path)
    worker = threading.Thread(target=lock.acquire)
    worker.start()
    worker.join(timeout=30)
    assert lock.held
    with pytest.raises(SchedulerLockedError):
        SchedulerLock(path).acquire()
    lock.release()  # the server stops its worker thread, then lets the lock go
    assert not lock.held
    again = SchedulerLock(path)
    again.acquire()
    again.release()
