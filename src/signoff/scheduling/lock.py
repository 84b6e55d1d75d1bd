"""One scheduler per SQLite database: an exclusive lock on a file beside the database.

SQLite is a single-machine database; two schedulers on one file would race without the
row locks PostgreSQL has, so the second refuses to start. The lock is a ``filelock.FileLock``
on ``<database>.scheduler.lock``: an OS lock (``flock`` on POSIX, ``LockFileEx`` on
Windows) held while the scheduler runs and released by the kernel when its process ends,
however it ends (``kill -9`` included). Not a ``SoftFileLock``: a lock that is only a file's
existence outlives a killed holder. Who holds it is noted in ``<database>.scheduler.holder``
(the lock file itself may be truncated by anyone opening it), so a refusal can name the
holder. On PostgreSQL there is no lock: several schedulers may run, and each firing still
happens once (unique keys).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from filelock import FileLock, Timeout

from signoff.errors import ConflictError

__all__ = ["SchedulerLock", "SchedulerLockedError"]

_SUFFIX = ".scheduler.lock"


class SchedulerLockedError(ConflictError):
    """Another scheduler holds the lock of this SQLite database."""


class SchedulerLock:
    """The exclusive lock of one SQLite database's scheduler."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._holder = path.with_name(path.name.removesuffix(_SUFFIX) + ".scheduler.holder")
        # timeout=0: one attempt, never wait. thread_local=False: the server takes the lock
        # in its worker thread and may let it go from another one.
        self._lock = FileLock(path, timeout=0, thread_local=False)

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._lock.is_locked

    def acquire(self) -> None:
        """Take the lock at once or raise :class:`SchedulerLockedError` naming the holder."""
        if self.held:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            database = self.path.name.removesuffix(_SUFFIX)
            raise SchedulerLockedError(
                f"another scheduler ({self._read_holder()}) is running on the SQLite database "
                f"{self.path.parent / database}; only one may run on SQLite: stop it first, "
                "or use PostgreSQL (SIGNOFF_DATABASE_URL) to run several"
            ) from None
        self._write_holder()

    def release(self) -> None:
        """Let the lock go (the kernel also does when the process ends)."""
        if self.held:
            with contextlib.suppress(OSError):
                self._holder.unlink()
            self._lock.release(force=True)

    def _write_holder(self) -> None:
        # Written whole then renamed: a refused process never reads half a note.
        note = f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"
        tmp = self._holder.with_name(f".{self._holder.name}.{os.getpid()}")
        tmp.write_text(note, encoding="utf-8")
        os.replace(tmp, self._holder)

    def _read_holder(self) -> str:
        try:
            return self._holder.read_text(encoding="utf-8").strip() or "another process"
        except OSError:  # the holder has not written its note yet
            return "another process"
