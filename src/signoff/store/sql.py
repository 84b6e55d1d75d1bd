"""SqlStore: the Store port on SQLAlchemy Core, for SQLite and PostgreSQL alike.

The parts live in the ``_*.py`` mixins (runs and the one door for states in ``_runs``,
gates in ``_gates``, ...); this module opens engines and stores.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from signoff.store._base import WRITE as _WRITE
from signoff.store._gates import GatesStore
from signoff.store._registry import RegistryStore
from signoff.store._scheduling import SchedulingStore
from signoff.store._sessions import SqlSessionStore

__all__ = ["SqlStore", "create_sql_engine", "open_store"]


def create_sql_engine(url: str) -> Engine:
    """An engine tuned per backend: SQLite in WAL mode with immediate write transactions."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # A writing transaction takes the lock up front (IMMEDIATE): two writers never
            # deadlock on a lock upgrade. Reads stay deferred and never wait for a writer (WAL).
            write = conn.info.get(_WRITE, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return sa.create_engine(url, pool_pre_ping=True)


def open_store(url: str, *, migrate: bool = True) -> SqlStore:
    """Open (and by default migrate to the latest schema) the store at ``url``.

    A SQLite file holds sessions, decisions and personal data: it is created 0600 before
    SQLAlchemy opens it (SQLite gives its ``-wal`` and ``-shm`` files the same mode), and an
    existing one this user owns, with those two files, loses its group and world bits.
    """
    parsed = sa.engine.make_url(url)
    in_file = parsed.database not in (None, "", ":memory:") and not parsed.query.get("uri")
    if parsed.get_backend_name() == "sqlite" and in_file:
        db = Path(str(parsed.database))
        db.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(db, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            with contextlib.suppress(FileNotFoundError):
                info = path.stat()
                if info.st_uid == os.geteuid() and info.st_mode & 0o077:
                    path.chmod(stat.S_IMODE(info.st_mode) & ~0o077)
    engine = create_sql_engine(url)
    if migrate:
        from signoff.store.migrate import upgrade

        upgrade(engine)
    return SqlStore(engine)


class SqlStore(GatesStore, RegistryStore, SqlSessionStore, SchedulingStore):
    """The Store port on a SQLAlchemy engine (every role, one mixin per part)."""
