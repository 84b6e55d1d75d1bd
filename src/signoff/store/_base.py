"""What every part of the SQL store shares: the engine and transactions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from signoff.errors import NotFoundError

__all__ = ["WRITE", "SqlBase"]

WRITE = "signoff_write"  # marks a connection whose transaction writes (SQLite: BEGIN IMMEDIATE)


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
        """A writing transaction: committed when the block ends, rolled back on error."""
        with self.engine.connect() as conn:
            conn.info[WRITE] = True
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.info.pop(WRITE, None)

    def _one(self, query: sa.Select[Any], what: str) -> Row[Any]:
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFoundError(f"no {what}")
        return row

    def _all(self, query: sa.Select[Any]) -> list[Row[Any]]:
        with self.engine.connect() as conn:
            return list(conn.execute(query).all())
