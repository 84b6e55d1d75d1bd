"""The command line proves who decides once a store has users with passwords.

Attacks from the issue that found these holes: the run's starter approving her own run
``--as`` someone else; a viewer's token starting runs; unknown scopes. Every call is the real
``signoff`` process against a real store (SQLite and PostgreSQL); the REST login runs against
a real server on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from gate_flows import stop_endpoints_of, write_flow

from conftest import Attacks
from signoff.bootstrap import Settings, build_app
from signoff.domain.records import UserRecord
from signoff.server import create_app
from signoff.server.passwords import hash_password

SIGNOFF = [sys.executable, "-m", "signoff.cli.main"]
WRONG_PASSWORD = "wrong password at signoff login (local store or a server)"
PASSWORDS = {"alice": "alice-pw-1", "bob": "bob-pw-2", "carol": "carol-pw-3", "root": "root-pw"}
ROLES = {
    "alice": "approver",
    "bob": "approver",
    "carol": "editor",
    "vic": "viewer",
    "root": "admin",
}


class Cli:
    """The real CLI on one home and database, with a credentials file of its own."""

    def __init__(self, tmp: Path, database_url: str) -> None:
        self.home = tmp / "home"
        self.credentials = tmp / "config" / "signoff" / "credentials.json"
        keep = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
        self.env = {
            **keep,
            "SIGNOFF_HOME": str(self.home),
            "SIGNOFF_DATABASE_URL": database_url,
            "SIGNOFF_CREDENTIALS_FILE": str(self.credentials),
            "SIGNOFF_USER": "carol",
        }

    def __call__(self, *args: str, stdin: str | None = None, **env: str) -> Any:
        return subprocess.run(
            [*SIGNOFF, *args],
            env={**self.env, **env},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def ok(self, *args: str, **kw: Any) -> Any:
        proc = self(*args, **kw)
        assert proc.returncode == 0, proc.stderr
        return proc

    def json(self, *args: str, **kw: Any) -> Any:
        return json.loads(self.ok(*args, "--json", **kw).stdout)


def _add_users(cli: Cli, *, passwords: bool) -> None:
    app = build_app(Settings(home=cli.home, database_url=cli.env["SIGNOFF_DATABASE_URL"]))
    try:
        for name, role in ROLES.items():
            secret = PASSWORDS.get(name, "vic-pw") if passwords else None
            app.store.add_user(
                UserRecord(name, f"{name}@example.org", (role,), True, time.time()),
                password_hash=hash_password(secret) if secret else None,
            )
    finally:
        app.close()


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> Iterator[Cli]:
    c = Cli(tmp_path, database_url)
    try:
        yield c
    finally:
        stop_endpoints_of(c.home)  # approvals deploy: stop what they started


def _waiting_run(cli: Cli, tmp_path: Path) -> str:
    flow = write_flow(tmp_path / "flow", targets="alice,bob,carol", policy="quorum: 1")
    started = cli.json("run", str(flow))
    assert started["state"] == "waiting_for_approval"
    return str(started["run_id"])


def _decisions(cli: Cli, run_id: str) -> list[tuple[str, str]]:
    gate = cli.json("show", run_id)["gates"][0]
    return [(d["actor"], d["decision"]) for d in gate["decisions"]]


def _auth_of_decisions(cli: Cli, run_id: str) -> list[tuple[str, str]]:
    entries = cli.json("audit", "show", run_id)
    return [(e["actor"], e["data"]["auth"]) for e in entries if e["event"] == "decided"]


def test_on_a_laptop_store_as_is_taken_at_its_word_and_says_so(cli: Cli, tmp_path: Path) -> None:
    _add_users(cli, passwords=False)
    run_id = _waiting_run(cli, tmp_path)
    cli.ok("approve", run_id, "--as", "alice", "-m", "fine")
    assert _decisions(cli, run_id) == [("alice", "approve")]
    assert _auth_of_decisions(cli, run_id) == [("alice", "asserted")]


def test_the_starter_cannot_approve_as_someone_else(
    cli: Cli, tmp_path: Path, attacks: Attacks
) -> None:
    _add_users(cli, passwords=True)
    cli.ok("login", "carol", "--password-stdin", stdin=PASSWORDS["carol"] + "\n")
    run_id = _waiting_run(cli, tmp_path)
    assert cli.json("show", run_id)["started_by"] == "carol"  # the proven user, not SIGNOFF_USER
    impersonation = cli("approve", run_id, "--as", "alice", "-m", "ok")
    assert impersonation.returncode != 0
    assert "your saved login is carol's" in impersonation.stderr
    assert "Traceback" not in impersonation.stderr
    herself = cli("approve", run_id, "-m", "mine")
    assert herself.returncode != 0
    assert "started the run" in herself.stderr or "self" in herself.stderr
    assert [d for d in _decisions(cli, run_id) if d[1] != "refused"] == []
    tried = (impersonation, herself)
    attacks.record(
        "the run's starter approves --as another approver, or as herself",
        "cli",
        len(tried),
        sum(proc.returncode != 0 for proc in tried),
    )


def test_without_proof_a_team_store_refuses_as(cli: Cli, tmp_path: Path, attacks: Attacks) -> None:
    _add_users(cli, passwords=True)
    run_id = _waiting_run(cli, tmp_path)
    refused = cli("approve", run_id, "--as", "alice")
    assert refused.returncode != 0
    assert "signoff login NAME" in refused.stderr
    assert _decisions(cli, run_id) == []
    attacks.record("--as another user with no login, on a store with passwords", "cli", 1, 1)


def test_login_then_decide_with_the_saved_token(cli: Cli, tmp_path: Path, attacks: Attacks) -> None:
    _add_users(cli, passwords=True)
    run_id = _waiting_run(cli, tmp_path)
    wrong = cli("login", "alice", "--password-stdin", stdin="not-her-password\n")
    assert wrong.returncode != 0
    assert "wrong name or password" in wrong.stderr
    assert not cli.credentials.exists()
    cli.ok("login", "alice", "--password-stdin", stdin=PASSWORDS["alice"] + "\n")
    assert stat.S_IMODE(cli.credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.credentials.parent.stat().st_mode) == 0o700
    assert PASSWORDS["alice"] not in cli.credentials.read_text()
    done = cli.json("approve", run_id, "-m", "looks good")
    assert done["gate_state"] == "approved"
    assert _auth_of_decisions(cli, run_id) == [("alice", "login")]
    cli.ok("logout")
    saved_before = json.loads(cli.credentials.read_text())["logins"]
    assert saved_before == {}
    attacks.record(WRONG_PASSWORD, "cli", 1, 1)


def test_a_token_in_the_environment_decides_as_its_user_only(
    cli: Cli, tmp_path: Path, attacks: Attacks
) -> None:
    _add_users(cli, passwords=True)
    run_id = _waiting_run(cli, tmp_path)
    token = cli.ok("users", "token", "bob", "--scope", "read", "--scope", "decide").stdout.strip()
    forged = cli("approve", run_id, SIGNOFF_TOKEN="so_00000000_forged")
    assert forged.returncode != 0
    assert "not valid" in forged.stderr
    as_alice = cli("approve", run_id, "--as", "alice", SIGNOFF_TOKEN=token)
    assert as_alice.returncode != 0
    assert "SIGNOFF_TOKEN is bob's" in as_alice.stderr
    cli.ok("approve", run_id, "-m", "ok", SIGNOFF_TOKEN=token)
    assert _auth_of_decisions(cli, run_id) == [("bob", "token")]
    tried = (forged, as_alice)
    attacks.record(
        "forged SIGNOFF_TOKEN, or a real one used --as another user",
        "cli",
        len(tried),
        sum(proc.returncode != 0 for proc in tried),
    )


def test_a_read_only_token_cannot_decide(cli: Cli, tmp_path: Path, attacks: Attacks) -> None:
    _add_users(cli, passwords=True)
    run_id = _waiting_run(cli, tmp_path)
    token = cli.ok("users", "token", "bob", "--scope", "read").stdout.strip()
    refused = cli("approve", run_id, SIGNOFF_TOKEN=token)
    assert refused.returncode != 0
    assert "may not decide" in refused.stderr
    attacks.record("token used beyond its scopes (a read-only token decides)", "cli", 1, 1)


def test_failed_password_attempts_are_limited(cli: Cli, tmp_path: Path, attacks: Attacks) -> None:
    _add_users(cli, passwords=True)
    refused = 0
    for _ in range(5):
        assert cli("login", "alice", "--password-stdin", stdin="guess\n").returncode != 0
        refused += 1
    locked = cli("login", "alice", "--password-stdin", stdin=PASSWORDS["alice"] + "\n")
    assert locked.returncode != 0
    assert "too many failed sign-ins" in locked.stderr
    refused += 1
    attacks.record("password guessing at signoff login, past the limit", "cli", refused, refused)


def test_token_scopes_are_bounded_by_the_role_when_issued(cli: Cli, attacks: Attacks) -> None:
    _add_users(cli, passwords=True)
    viewer = cli("users", "token", "vic", "--scope", "run")
    assert viewer.returncode != 0
    assert "vic (viewer) may not hold a token with scope(s) run" in viewer.stderr
    bogus = cli("users", "token", "vic", "--scope", "bogus")
    assert bogus.returncode != 0
    assert "unknown scope(s) bogus" in bogus.stderr
    approver_admin = cli("users", "token", "alice", "--scope", "admin")
    assert approver_admin.returncode != 0
    assert cli("users", "token", "carol", "--scope", "run").returncode == 0
    assert cli("users", "token", "root", "--scope", "admin").returncode == 0
    tried = (viewer, bogus, approver_admin)
    for proc in tried:
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    attacks.record(
        "token asked for beyond the user's role, or with an unknown scope",
        "cli",
        len(tried),
        sum(proc.returncode != 0 for proc in tried),
    )


# ------------------------------------------------------------------ against a server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(cli: Cli) -> Iterator[str]:
    _add_users(cli, passwords=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    app = build_app(
        Settings(home=cli.home, database_url=cli.env["SIGNOFF_DATABASE_URL"], base_url=url)
    )
    srv = uvicorn.Server(
        uvicorn.Config(create_app(app), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield url
    finally:
        srv.should_exit = True
        thread.join(timeout=20)
        app.close()


def test_login_against_a_server_keeps_a_token_for_it(
    cli: Cli, tmp_path: Path, server: str, attacks: Attacks
) -> None:
    remote = {"SIGNOFF_SERVER_URL": server}
    wrong = cli("login", "vic", "--password-stdin", stdin="nope\n", **remote)
    assert wrong.returncode != 0
    assert "401" in wrong.stderr
    cli.ok("login", "vic", "--password-stdin", stdin="vic-pw\n", **remote)
    saved = json.loads(cli.credentials.read_text())["logins"][server]
    assert saved["user"] == "vic"
    assert cli.json("gates", **remote) == []  # the saved token is used
    import httpx

    with httpx.Client(base_url=f"{server}/api/v1", trust_env=False, timeout=10) as client:
        me = client.get("/users/me", headers={"Authorization": f"Bearer {saved['token']}"})
        assert me.json()["scopes"] == ["read", "decide"]  # a viewer's "*" is the viewer's
        started = client.post(
            "/runs",
            json={"flow": "gated"},
            headers={"Authorization": f"Bearer {saved['token']}"},
        )
        assert started.status_code == 403
    cli.ok("logout", **remote)
    with httpx.Client(base_url=f"{server}/api/v1", trust_env=False, timeout=10) as client:
        gone = client.get("/users/me", headers={"Authorization": f"Bearer {saved['token']}"})
        assert gone.status_code == 401
    attacks.record(WRONG_PASSWORD, "cli", 1, 1)
    attacks.record("a viewer's token starts a run", "api", 1, int(started.status_code == 403))
    attacks.record("token reused after signoff logout", "api", 1, int(gone.status_code == 401))
