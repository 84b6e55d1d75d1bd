"""One scheduler per SQLite database: an exclusive lock on a file beside the database.

SQLite is a single-machine database; two schedulers on one file would race without the
row locks PostgreSQL has, so the second refuses to start. The lock is ``flock`` on
``<database>.scheduler.lock``, held while the scheduler runs and released by the kernel when
its process ends, however it ends (``kill -9`` included). On PostgreSQL there is no lock:
several schedulers may run, and each firing still happens once (unique keys).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import IO

from signoff.errors import ConflictError

__all__ = ["SchedulerLock", "SchedulerLockedError"]


class SchedulerLockedError(ConflictError):
    """Another scheduler holds the lock of this SQLite database."""


class SchedulerLock:
    """The exclusive lock of one SQLite database's scheduler."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._file is not None

    def acquire(self) -> None:
        """Take the lock at once or raise :class:`SchedulerLockedError` naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            database = self.path.name.removesuffix(".scheduler.lock")
            raise SchedulerLockedError(
                f"another scheduler ({holder}) is running on the SQLite database "
                f"{self.path.parent / database}; only one may run on SQLite: stop it first, "
                "or use PostgreSQL (SIGNOFF_DATABASE_URL) to run several"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        """Let the lock go (the kernel also does when the process ends)."""
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
