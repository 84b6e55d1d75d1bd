"""Fixtures shared by every test: real stores on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from signoff.store.sql import SqlStore, open_store

PG_ADMIN_URL = os.environ.get(
    "SIGNOFF_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
RESOURCES = Path(__file__).parent / "resources"
TEST_AUDIT_KEY = b"test-audit-key-0123456789abcdef"
"""The audit key of stores opened directly by tests (an App makes its own in its home)."""
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[sa.Engine]:
    """The PostgreSQL server; its absence fails the tests (it never skips them)."""
    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required at {PG_ADMIN_URL}: {exc}", pytrace=False)
    yield engine
    engine.dispose()


def _fresh_pg_database(admin: sa.Engine) -> tuple[str, str]:
    name = f"signoff_t_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    return name, url


def _drop_pg_database(admin: sa.Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: SQLite in a temp folder, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'signoff.db'}"
        return
    admin: sa.Engine = request.getfixturevalue("pg_admin")
    name, url = _fresh_pg_database(admin)
    try:
        yield url
    finally:
        _drop_pg_database(admin, name)


@pytest.fixture
def store(database_url: str) -> Iterator[SqlStore]:
    """A migrated store on each backend."""
    s = open_store(database_url)
    s.configure_audit(TEST_AUDIT_KEY)
    try:
        yield s
    finally:
        s.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: PostgreSQL and browser tests must really run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skipped = reporter.stats.get("skipped", [])
    if os.environ.get("CI") and skipped:
        reporter.write_line(f"CI: {len(skipped)} test(s) skipped; every test must run here")
        session.exitstatus = 1
