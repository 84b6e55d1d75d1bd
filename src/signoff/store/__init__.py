"""Durable state on SQLAlchemy 2: SQLite (WAL) by default, PostgreSQL for teams."""

from signoff.store.sql import SqlStore, open_store

__all__ = ["SqlStore", "open_store"]
