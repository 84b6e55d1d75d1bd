"""The CLI against a real server: ``SIGNOFF_SERVER_URL`` and ``SIGNOFF_TOKEN`` set.

The server runs under uvicorn on 127.0.0.1 over a SQLite store; ``signoff`` runs as a
subprocess twice for each question, once on the store (local mode) and once through the
REST API from an empty home (remote mode), and must print the same documents.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from signoff.bootstrap import App, Settings, build_app
from signoff.domain.records import UserRecord
from signoff.domain.states import RunState
from signoff.server import create_app
from signoff.server.tokens import issue_token
from signoff.server.worker import Worker
from signoff.spec import parse_flow
from signoff.views import build

FLOW = """flow: remote-demo
tasks:
  - title: say
    command: python -c "print('hello from say')"
  - title: grid
    command: python -c "print('n={{ n }}')"
    params:
      - key: n
        values: [1, 2]
  - title: sign-off
    depends_on: [say, grid]
    objective: human_validation
    target: alice,bob
  - title: after
    depends_on: sign-off
    command: python -c "print('after the gate')"
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Setup:
    """The server, its store, and how to call the CLI locally or remotely."""

    def __init__(self, app: App, url: str, base: Path) -> None:
        self.app = app
        self.url = url
        self.base = base
        self.tokens = {
            user: issue_token(
                app.store, user, scopes=("read", "decide"), now=time.time(), ttl_seconds=3600
            )
            for user in ("alice", "bob")
        }

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("SIGNOFF_") and "proxy" not in k.lower()
        }
        return {**keep, "COLUMNS": "120", **extra}

    def local(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = self._env(
            {
                "SIGNOFF_HOME": str(self.base / "home"),
                "SIGNOFF_DATABASE_URL": self.app.store.url,
            }
        )
        return _signoff(args, env, check)

    def remote(
        self, *args: str, user: str = "alice", token: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = self._env(
            {
                "SIGNOFF_HOME": str(self.base / "elsewhere"),  # no store: it must not be used
                "SIGNOFF_SERVER_URL": self.url,
                "SIGNOFF_TOKEN": token if token is not None else self.tokens[user],
            }
        )
        return _signoff(args, env, check)

    def start(self) -> str:
        loaded = parse_flow(FLOW, "flow.yaml", self.base)
        run = self.app.engine.start_run(loaded.spec, base_dir=None, started_by="carol")
        deadline = time.monotonic() + 60  # the server's worker drives it to its gate
        while self.app.store.get_run(run.id).state is not RunState.WAITING_FOR_APPROVAL:
            assert time.monotonic() < deadline, self.app.store.get_run(run.id)
            time.sleep(0.1)
        return run.id


def _signoff(
    args: tuple[str, ...], env: dict[str, str], check: bool
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "signoff.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("remote")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    app = build_app(
        Settings(
            home=base / "home",
            database_url=f"sqlite:///{base / 'signoff.db'}",
            base_url=url,
            slots=2,
        )
    )
    for name in ("alice", "bob"):
        app.store.add_user(UserRecord(name, f"{name}@example.org", ("approver",), True, 0.0))
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(app, worker=Worker(app, tick=0.2)),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield Setup(app, url, base)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        app.close()


@pytest.fixture(scope="module")
def waiting(setup: Setup) -> str:
    return setup.start()


def _json(proc: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(proc.stdout)


def _both(setup: Setup, *args: str) -> tuple[str, str]:
    """The output of the same command in remote and in local mode (run side by side)."""
    with ThreadPoolExecutor(2) as pool:
        remote = pool.submit(setup.remote, *args)
        local = pool.submit(setup.local, *args)
        return remote.result().stdout, local.result().stdout


def test_runs_show_gates_and_logs_print_the_same_documents(setup: Setup, waiting: str) -> None:
    for args in (("runs", "--json"), ("show", waiting[:6], "--json"), ("gates", "--json")):
        remote, local = _both(setup, *args)
        assert json.loads(remote) == json.loads(local), args
        assert waiting in remote
    for args in (("show", waiting), ("logs", waiting)):
        remote, local = _both(setup, *args)
        assert remote == local, args
    assert "n=2" in remote
    assert setup.remote("logs", waiting, "grid[1]").stdout == "n=2\n"
    followed = setup.remote("show", waiting, "--follow", "--json")  # settled: returns at once
    assert json.loads(followed.stdout)["state"] == "waiting_for_approval"
    assert f"run {waiting} waiting_for_approval" in followed.stderr
    assert not (setup.base / "elsewhere").exists()  # remote mode never opened a store


def test_errors_are_one_line_reasons(setup: Setup, waiting: str) -> None:
    unknown = setup.remote("show", "ffffffff", check=False)  # as local mode says it
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "error: no run 'ffffffff'"
    missing = setup.remote("logs", waiting, "nope", check=False)
    assert missing.returncode == 1
    assert "has no task 'nope'" in missing.stderr
    bad = setup.remote("runs", token="so_0000_nope", check=False)
    assert bad.returncode == 1
    assert "refused the token" in bad.stderr
    assert "Traceback" not in bad.stderr
    empty = setup.remote("runs", token="", check=False)
    assert empty.returncode == 1
    assert "SIGNOFF_TOKEN" in empty.stderr
    env = setup._env(
        {"SIGNOFF_SERVER_URL": f"http://127.0.0.1:{_free_port()}", "SIGNOFF_TOKEN": "x"}
    )
    down = _signoff(("runs",), env, False)
    assert down.returncode == 1
    assert "cannot reach the signoff server" in down.stderr


def test_approve_decides_as_the_tokens_user_and_waits_for_the_run(setup: Setup) -> None:
    run_id = setup.start()
    other = setup.remote("approve", run_id, "--as", "bob", check=False)
    assert other.returncode == 1
    assert "--as bob" in other.stderr
    assert "token's user (alice)" in other.stderr
    approved = setup.remote("approve", run_id, "--as", "alice", "-m", "fine", "--json")
    doc = _json(approved)
    store = setup.app.store
    final = store.get_run(run_id)
    summary = build.run_summary(store, final).model_dump(mode="json")
    assert doc == {**summary, "decision": "approved", "gate_state": "approved"}
    assert doc["state"] == "succeeded"
    gate = store.gates_of_run(run_id)[0]
    [decision] = store.list_decisions(gate.id)
    assert (decision.actor, decision.channel, decision.comment) == ("alice", "api", "fine")


def test_reject_as_the_token_user_with_text_output(setup: Setup) -> None:
    run_id = setup.start()
    no_comment = setup.remote("reject", run_id, user="bob", check=False)
    assert no_comment.returncode == 1
    assert "comment" in no_comment.stderr
    rejected = setup.remote("reject", run_id, "-m", "not now", user="bob")
    assert f"bob rejected run {run_id}: gate is now rejected" in rejected.stdout
    assert f"run {run_id} is rejected" in rejected.stdout
    assert setup.app.store.get_run(run_id).state.value == "rejected"
    again = setup.remote("approve", run_id, check=False)
    assert again.returncode == 1
    assert "already decided" in again.stderr
