"""Nothing under the home folder is readable by another local user.

Before, the outbox's ``.eml`` files (whose links decide a gate as their recipient) and
``signoff.db`` were 0644 under the usual umask 0o022. Now the home is 0700, so nothing below
it can be reached by another user, and every file holding a secret or personal data is 0600
itself: after a demo-like run through the real CLI (a flow with a gate, e-mails to the
outbox, an approval, a deploy that starts a real endpoint), the whole tree is walked.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gate_flows import write_flow

from conftest import Attacks
from signoff.bootstrap import Settings, build_app
from signoff.bootstrap.wiring import secret_key
from signoff.domain.ports import Message
from signoff.endpoints.local import LocalEndpointRunner
from signoff.errors import ExecutionError
from signoff.notify import OutboxNotifier
from signoff.store.sql import open_store

SIGNOFF = [sys.executable, "-m", "signoff.cli.main"]


_PRIVATE = (
    "*.eml",
    "*.key",
    "*.token",
    "*.db",
    "*.db-wal",
    "*.db-shm",
    "endpoint.log",
    "checkpoints-*.jsonl",
)


def _checked(home: Path) -> list[Path]:
    """The home itself and every file of a secret-holding kind under it."""
    private = {p for pattern in _PRIVATE for p in home.rglob(pattern)}
    return [home, *sorted(private)]


def _open_to_others(home: Path) -> list[str]:
    """The home itself, or any file of a secret-holding kind under it, with a group or world
    bit (the rest is safe behind the 0700 home)."""
    found = []
    for path in _checked(home):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            continue  # a symlink's own mode means nothing; its target is walked itself
        if stat.S_IMODE(info.st_mode) & 0o077:
            found.append(f"{oct(stat.S_IMODE(info.st_mode))} {path.relative_to(home)}")
    return found


@pytest.fixture
def umask() -> Iterator[None]:
    """The usual umask 0o022 for the test; the process's own umask is put back after."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


class Cli:
    """The real ``signoff`` in a child process with the umask the test chose."""

    def __init__(self, tmp: Path, mask: int) -> None:
        self.mask = mask
        self.home = tmp / "home"
        self.env = {**os.environ, "SIGNOFF_HOME": str(self.home), "SIGNOFF_USER": "bob"}
        for key in ("SIGNOFF_DATABASE_URL", "SIGNOFF_SMTP_HOST", "SIGNOFF_SECRET_KEY"):
            self.env.pop(key, None)
        self.cwd = tmp

    def __call__(self, *args: str) -> Any:
        proc = subprocess.run(
            [*SIGNOFF, *args, "--json"],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            umask=self.mask,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)


@pytest.mark.parametrize("mask", [0o022, 0o077], ids=oct)
def test_a_demo_like_run_leaves_nothing_readable_by_others(
    tmp_path: Path, mask: int, attacks: Attacks
) -> None:
    flow = write_flow(tmp_path / "flow", name="private", targets="alice")
    cli = Cli(tmp_path, mask)
    started = cli("run", str(flow))
    assert started["state"] == "waiting_for_approval"
    assert list((cli.home / "outbox").glob("*.eml"))  # the gate's e-mail to alice
    assert _open_to_others(cli.home) == []
    approved = cli("approve", started["run_id"], "--as", "alice", "--comment", "fine")
    try:
        assert approved["state"] == "succeeded", approved
        assert [d["endpoint"] for d in approved["deployments"]] == ["private"]
        assert (cli.home / "endpoints" / "private" / "endpoint.log").exists()
        assert (cli.home / "endpoints" / "private" / "admin.token").exists()
        assert _open_to_others(cli.home) == []
    finally:
        subprocess.run(
            [*SIGNOFF, "endpoints", "stop", "private"],
            env=cli.env,
            capture_output=True,
            timeout=120,
            check=False,
        )
    assert _open_to_others(cli.home) == []
    checked = _checked(cli.home)
    attacks.record(
        "another local user reads the home's e-mails, keys, tokens, database, logs",
        "files",
        len(checked),
        len(checked) - len(_open_to_others(cli.home)),
    )


@pytest.mark.parametrize("before", [0o022, 0o077, 0o027], ids=oct)
def test_build_app_makes_the_home_private_and_leaves_the_umask_alone(
    tmp_path: Path, umask: None, before: int
) -> None:
    os.umask(before)
    app = build_app(Settings(home=tmp_path / "home"))
    app.close()
    assert os.umask(before) == before  # tasks writing outside the home keep the user's umask
    assert stat.S_IMODE((tmp_path / "home").stat().st_mode) == 0o700


def test_build_app_tightens_an_open_home_this_user_owns(
    tmp_path: Path, umask: None, attacks: Attacks
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    (home / "secret.key").write_text("k" * 64)
    (home / "secret.key").chmod(0o644)
    opened = [p for p in (home, *home.iterdir()) if stat.S_IMODE(p.stat().st_mode) & 0o077]
    app = build_app(Settings(home=home))
    app.close()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "secret.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "signoff.db").stat().st_mode) == 0o600
    attacks.record(
        "home and secret key left open by an older version",
        "files",
        len(opened),
        sum(not stat.S_IMODE(p.stat().st_mode) & 0o077 for p in opened),
    )


# ------------------------------------------------ each part sets its own modes (umask 0o022)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _message(key: str) -> Message:
    return Message("alice", "alice@example.org", "Review", "text", "<p>html</p>", key)


def test_outbox_files_are_0600_in_a_0700_folder(tmp_path: Path, umask: None) -> None:
    folder = tmp_path / "outbox"
    path = Path(OutboxNotifier(folder).send(_message("gate_alice_opened_0")))
    assert (_mode(folder), _mode(path)) == (0o700, 0o600)
    # left open by an older version: the folder is tightened, a replaced file too
    folder.chmod(0o755)
    path.chmod(0o644)
    again = Path(OutboxNotifier(folder).send(_message("gate_alice_opened_0")))
    assert _mode(folder) == 0o700
    assert _mode(again) == 0o600


def test_sqlite_database_and_its_wal_files_are_0600(tmp_path: Path, umask: None) -> None:
    db = tmp_path / "state" / "signoff.db"
    store = open_store(f"sqlite:///{db}")  # migrating it writes: the WAL files exist
    try:
        files = [db, db.with_name("signoff.db-wal"), db.with_name("signoff.db-shm")]
        assert all(p.exists() for p in files)
        assert [_mode(p) for p in files] == [0o600, 0o600, 0o600]
        assert _mode(db.parent) == 0o700
    finally:
        store.close()


def test_an_open_database_file_is_tightened(tmp_path: Path, umask: None) -> None:
    db = tmp_path / "signoff.db"
    open_store(f"sqlite:///{db}").close()
    for path in (db, db.with_name("signoff.db-wal"), db.with_name("signoff.db-shm")):
        if path.exists():
            path.chmod(0o644)
    store = open_store(f"sqlite:///{db}")
    try:
        assert _mode(db) == 0o600
        for extra in ("signoff.db-wal", "signoff.db-shm"):
            if db.with_name(extra).exists():
                assert _mode(db.with_name(extra)) == 0o600
    finally:
        store.close()


def test_secret_key_is_0600(tmp_path: Path, umask: None) -> None:
    home = tmp_path / "home"
    home.mkdir()
    key = secret_key(Settings(home=home))
    assert len(key) == 64
    assert _mode(home / "secret.key") == 0o600
    assert secret_key(Settings(home=home)) == key
    assert [p.name for p in home.iterdir()] == ["secret.key"]  # no temporary file left


def test_endpoint_folders_are_0700_and_logs_0600(tmp_path: Path, umask: None) -> None:
    home = tmp_path / "home"
    runner = LocalEndpointRunner(home, ready_timeout=30)
    with pytest.raises(ExecutionError, match="exited"):
        runner.start("broken", tmp_path / "no-model", "0" * 64, "v1", None)
    log = runner.log_path("broken")
    assert (_mode(home / "endpoints"), _mode(log.parent), _mode(log)) == (0o700, 0o700, 0o600)
    assert _mode(runner.token_path("broken")) == 0o600
    log.chmod(0o644)
    log.parent.chmod(0o755)
    with pytest.raises(ExecutionError, match="exited"):
        runner.start("broken", tmp_path / "no-model", "0" * 64, "v1", None)
    assert (_mode(log.parent), _mode(log)) == (0o700, 0o600)
