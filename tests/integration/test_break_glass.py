"""An admin cannot serve a version no gate approved, except by breaking the glass, on record.

The hole: ``signoff deploy ENDPOINT VERSION`` served a version whose quorum-2 gate was still
waiting for its second approval. Now a manual deploy needs a gate that approved that version
(with that digest), or ``--break-glass --reason TEXT`` from a proven admin; the override is
audited (``break_glass``) and shown in the endpoint's history, API and page.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gate_flows import stop_endpoints_of, write_flow

from conftest import Attacks
from signoff.bootstrap import Settings, build_app
from signoff.domain.records import UserRecord
from signoff.server.passwords import hash_password

SIGNOFF = [sys.executable, "-m", "signoff.cli.main"]
USERS = {"alice": "approver", "bob": "approver", "carol": "editor", "root": "admin"}


class Cli:
    def __init__(self, tmp: Path, database_url: str) -> None:
        self.home = tmp / "home"
        keep = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
        self.env = {
            **keep,
            "SIGNOFF_HOME": str(self.home),
            "SIGNOFF_DATABASE_URL": database_url,
            "SIGNOFF_CREDENTIALS_FILE": str(tmp / "credentials.json"),
            "SIGNOFF_USER": "carol",
            "COLUMNS": "200",  # one line per table row
        }

    def __call__(self, *args: str, stdin: str | None = None) -> Any:
        return subprocess.run(
            [*SIGNOFF, *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def json(self, *args: str) -> Any:
        proc = self(*args, "--json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def login(self, name: str) -> None:
        proc = self("login", name, "--password-stdin", stdin=f"{name}-secret\n")
        assert proc.returncode == 0, proc.stderr


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> Iterator[Cli]:
    c = Cli(tmp_path, database_url)
    app = build_app(Settings(home=c.home, database_url=database_url))
    try:
        for name, role in USERS.items():
            app.store.add_user(
                UserRecord(name, None, (role,), True, time.time()),
                password_hash=hash_password(f"{name}-secret"),
            )
    finally:
        app.close()
    try:
        yield c
    finally:
        stop_endpoints_of(c.home)


def test_a_waiting_gate_is_not_an_approval_and_breaking_the_glass_is_on_record(
    cli: Cli, tmp_path: Path, attacks: Attacks
) -> None:
    flow = write_flow(tmp_path / "flow", name="quorum", targets="alice,bob", policy="quorum: 2")
    cli.login("carol")
    run_id = cli.json("run", str(flow))["run_id"]
    cli.login("alice")
    assert cli.json("approve", run_id, "-m", "one of two")["gate_state"] == "waiting_for_approval"
    cli.login("root")

    refused = cli("deploy", "quorum", "tiny:v1")
    assert refused.returncode != 0
    assert "tiny:v1 was not approved: gate" in refused.stderr
    assert "is waiting_for_approval (1 approval(s))" in refused.stderr
    assert "--break-glass --reason" in refused.stderr
    no_reason = cli("deploy", "quorum", "tiny:v1", "--break-glass")
    assert no_reason.returncode != 0
    assert "needs --reason" in no_reason.stderr
    assert cli.json("endpoints") == []  # nothing started

    cli.login("alice")  # an approver may not break the glass
    not_admin = cli("deploy", "quorum", "tiny:v1", "--break-glass", "--reason", "x")
    assert not_admin.returncode != 0
    assert "alice may not do that: it takes the admin role" in not_admin.stderr
    as_root = cli("deploy", "quorum", "tiny:v1", "--as", "root", "--break-glass", "--reason", "x")
    assert as_root.returncode != 0  # --as cannot name anyone but the signed-in user
    assert "alice" in as_root.stderr

    cli.login("root")
    served = cli("deploy", "quorum", "tiny:v1", "--break-glass", "--reason", "prod is down")
    assert served.returncode == 0, served.stderr
    assert "break-glass: root serves tiny:v1, which no gate approved" in served.stderr
    history = cli.json("endpoints", "history", "quorum")
    assert [(h["deployed_by"], h["override"], h["gate_id"]) for h in history] == [
        ("root", "prod is down", None)
    ]
    table = cli("endpoints", "history", "quorum").stdout
    assert "BREAK-GLASS: prod is down" in table
    assert "(override)" in table
    audit = [e for e in cli.json("audit", "show") if e["event"] == "break_glass"]
    assert len(audit) == 1
    assert audit[0]["actor"] == "root"
    assert audit[0]["data"]["override"] == "prod is down"
    assert audit[0]["data"]["digest"] == cli.json("show", run_id)["gates"][0]["model_digest"]
    assert cli.json("audit", "verify")["intact"] is True
    attempts = [refused, no_reason, not_admin, as_root]
    attacks.record(
        "manual deploy of a version whose gate still waits (plain, no reason, non-admin, "
        "--as an admin)",
        "cli",
        len(attempts),
        sum(1 for p in attempts if p.returncode != 0),
    )


def test_an_approved_version_deploys_without_breaking_the_glass(cli: Cli, tmp_path: Path) -> None:
    flow = write_flow(tmp_path / "flow", name="once", targets="alice")
    cli.login("carol")
    run_id = cli.json("run", str(flow))["run_id"]
    cli.login("alice")
    assert cli.json("approve", run_id)["state"] == "succeeded"  # the flow deployed it
    cli("endpoints", "stop", "once")
    cli.login("root")
    again = cli.json("deploy", "once", "tiny:v1")
    assert again["model_version"] == "tiny:v1"
    history = cli.json("endpoints", "history", "once")
    assert [h["override"] for h in history] == [None, None]
    assert all(h["approved_by"] == ["alice"] for h in history)
