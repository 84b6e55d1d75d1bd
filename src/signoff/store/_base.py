"""What every part of the SQL store shares: the engine and transactions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from signoff.errors import NotFoundError

__all__ = ["AUDIT_HEAD", "WRITE", "SqlBase"]

WRITE = "signoff_write"  # marks a connection whose transaction writes (SQLite: BEGIN IMMEDIATE)
AUDIT_HEAD = "signoff_audit_head"  # (seq, hash, at) of the last audit entry this tx appended


class SqlBase:
    """An engine, writing transactions and small read helpers."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """A writing transaction: committed when the block ends, rolled back on error.

        A transaction that appended audit entries is anchored after it commits
        (:meth:`_after_audit_commit`).
        """
        head: tuple[int, str, float] | None = None
        with self.engine.connect() as conn:
            conn.info[WRITE] = True
            try:
                with conn.begin():
                    yield conn
                head = conn.info.get(AUDIT_HEAD)
            finally:
                conn.info.pop(WRITE, None)
                conn.info.pop(AUDIT_HEAD, None)
        if head is not None:
            self._after_audit_commit(*head)

    def _after_audit_commit(self, seq: int, head: str, at: float) -> None:
        """Called once a transaction that appended audit entries has committed."""

    def _one(self, query: sa.Select[Any], what: str) -> Row[Any]:
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFoundError(f"no {what}")
        return row

    def _all(self, query: sa.Select[Any]) -> list[Row[Any]]:
        with self.engine.connect() as conn:
            return list(conn.execute(query).all())
