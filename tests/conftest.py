"""Fixtures shared by every test: real stores on SQLite and on the real PostgreSQL server,
and the ``attacks`` log whose rows ``benchmarks/attacks.py`` turns into a table."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass
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


# ------------------------------------------------------------------ the attacks tried

ATTACK_CHANNELS = (
    "cli",
    "api",
    "web",
    "link",
    "webhook",
    "model file",
    "flow file",
    "store",
    "files",
    "process",
)
"""Where an attack comes in. ``store``: straight at the database, or at the one decision
function every channel calls; ``files``: the home folder's files; ``process``: kill -9."""
BACKENDS = ("sqlite", "postgres")
ATTACK_REPORT_ENV = "SIGNOFF_ATTACK_REPORT"


@dataclass(frozen=True)
class AttackRow:
    """One kind of attack one test tried: how many attempts, how many were answered right."""

    attack: str
    channel: str
    tries: int
    held: int
    test: str
    backend: str | None


class Attacks:
    """The attacks one test tried; its rows count only if the test passes."""

    def __init__(self, test: str, backend: str | None) -> None:
        self.test = test
        self.backend = backend
        self.rows: list[AttackRow] = []

    def record(self, attack: str, channel: str, tries: int, held: int) -> None:
        """Record one kind of attack, after the test's own assertions on it have passed.

        ``tries`` is how many attempts the test made (the length of what it iterated, the
        requests it counted), ``held`` how many were answered as they must be (refused, a
        4xx, detected, no marker file).
        """
        if not attack.strip():
            raise ValueError("an attack needs a description")
        if channel not in ATTACK_CHANNELS:
            raise ValueError(f"unknown channel {channel!r}; one of {', '.join(ATTACK_CHANNELS)}")
        if tries < 1 or not 0 <= held <= tries:
            raise ValueError(f"tries={tries}, held={held}: need tries >= 1 and 0 <= held <= tries")
        self.rows.append(AttackRow(attack, channel, tries, held, self.test, self.backend))


_PENDING = pytest.StashKey[Attacks]()
_PASSED = pytest.StashKey[list[AttackRow]]()


def _backend_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    value = callspec.params.get("database_url")
    return value if value in BACKENDS else None


@pytest.fixture
def attacks(request: pytest.FixtureRequest) -> Attacks:
    """Where an attack test records what it tried (see ``Attacks.record``)."""
    log = Attacks(request.node.nodeid, _backend_of(request.node))
    request.node.stash[_PENDING] = log
    return log


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # a row stands for attempts that held: a test failing after it recorded keeps nothing
    if report.when == "call" and report.passed and _PENDING in item.stash:
        item.config.stash.setdefault(_PASSED, []).extend(item.stash[_PENDING].rows)
    return report


def _write_attack_report(config: pytest.Config) -> None:
    target = os.environ.get(ATTACK_REPORT_ENV)
    if not target:
        return
    rows = config.stash.get(_PASSED, [])
    with Path(target).open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the attack rows when asked; in CI a skipped test is a failure (PostgreSQL and
    browser tests must really run)."""
    _write_attack_report(session.config)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skipped = reporter.stats.get("skipped", [])
    if os.environ.get("CI") and skipped:
        reporter.write_line(f"CI: {len(skipped)} test(s) skipped; every test must run here")
        session.exitstatus = 1
