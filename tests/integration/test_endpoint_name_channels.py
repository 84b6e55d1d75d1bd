"""Endpoint names through every channel: the real CLI, the REST API, and the endpoint runner.

Each refused name gets a one-line reason (CLI: exit non-zero, no traceback; API: 404 with a
reason), and nothing is written outside the home folder: the whole temporary tree is compared
before and after. Valid names still pass.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from conftest import Attacks
from signoff.bootstrap import Settings, build_app
from signoff.cli.main import main
from signoff.domain.names import InvalidNameError
from signoff.domain.records import EndpointRecord, UserRecord
from signoff.endpoints.local import LocalEndpointRunner
from signoff.server import create_app
from signoff.server.tokens import issue_token

BAD_NAMES = [
    "../x",
    "../../x",
    "../../../x",
    "/abs",
    "/tmp/x",
    "a/b",
    "a/../../x",
    ".",
    "..",
    "x\0y",
    "r\u0435csys",  # a Cyrillic letter that looks like "e"
    "\uff52ecsys",  # a fullwidth "r"
    "x" * 64,
    "Recsys",
    "rec sys",
    "recsys\n",
    "",
]
GOOD_NAMES = ["recsys", "churn", "a-b_1"]
BAD_NAME = "path-traversal, look-alike or overlong endpoint name"


def _tree(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


class Cli:
    """``signoff`` run in this process through its real entry point (``main``)."""

    def __init__(
        self, root: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
    ) -> None:
        self.root = root
        self.home = root / "home"
        self.monkeypatch = monkeypatch
        self.capfd = capfd
        monkeypatch.setenv("SIGNOFF_HOME", str(self.home))
        monkeypatch.setenv("SIGNOFF_DATABASE_URL", f"sqlite:///{self.home / 'signoff.db'}")
        monkeypatch.setenv("SIGNOFF_USER", "root")
        work = root / "work" / "deep"
        work.mkdir(parents=True)
        monkeypatch.chdir(work)  # relative names would land in the tree under test

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capfd.readouterr()
        self.monkeypatch.setattr(sys, "argv", ["signoff", *args])
        code: int | str | None = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        out, err = self.capfd.readouterr()
        return (code if isinstance(code, int) else 1), out, err


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path, monkeypatch, capfd)


COMMANDS = [
    ("deploy", "{name}", "recsys:v1"),
    ("rollback", "{name}"),
    ("promote", "{name}"),
    ("endpoints", "history", "{name}"),
    ("endpoints", "export", "{name}"),
    ("endpoints", "stop", "{name}"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]).replace("{name}", ""))
def test_cli_refuses_bad_names_in_one_line_and_writes_nothing_outside_home(
    cli: Cli, command: tuple[str, ...], attacks: Attacks
) -> None:
    assert cli("endpoints")[0] == 0  # the home exists: only what a refusal writes counts
    before = _tree(cli.root)
    refused = 0
    for name in BAD_NAMES:
        args = [a.replace("{name}", name) for a in command]
        code, out, err = cli(*args)
        assert code != 0, (args, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1, (args, err)
        assert lines[0].startswith("error: "), (args, err)
        assert "Traceback" not in err + out
        if command[:2] != ("endpoints", "stop"):  # stop only looks the name up
            assert "endpoint name" in lines[0], lines[0]
        new = _tree(cli.root) - before
        assert all(p.is_relative_to(cli.home) for p in new), (args, new)
        refused += 1
    assert not (cli.root / "x").exists()
    assert not (cli.root / "work" / "x").exists()
    attacks.record(BAD_NAME, "cli", len(BAD_NAMES), refused)


def test_cli_accepts_valid_names(cli: Cli) -> None:
    app = build_app(Settings())
    try:
        for name in GOOD_NAMES:
            app.store.save_endpoint(
                EndpointRecord(name, "http://127.0.0.1:1", 1, None, None, "stopped", 1.0)
            )
    finally:
        app.close()
    for name in GOOD_NAMES:
        code, out, err = cli("endpoints", "history", name, "--json")
        assert (code, out.strip()) == (0, "[]"), err
        code, _, err = cli("endpoints", "export", name)
        assert code != 0
        assert f"endpoint {name} serves no model version yet" in err
        code, _, err = cli("deploy", name, "nothing:v1")
        assert code != 0
        assert "endpoint name" not in err  # past the name, refused for the model
    code, out, _ = cli("endpoints", "--json")
    assert code == 0
    assert sorted(r["name"] for r in json.loads(out)) == sorted(GOOD_NAMES)


def test_a_subprocess_prints_one_line_and_no_traceback(tmp_path: Path, attacks: Attacks) -> None:
    env = {
        "SIGNOFF_HOME": str(tmp_path / "home"),
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    tried = (["deploy", "../../x", "m:v1"], ["endpoints", "history", "/abs"])
    refused = 0
    for args in tried:
        proc = subprocess.run(
            [sys.executable, "-m", "signoff.cli.main", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=tmp_path,
        )
        assert proc.returncode == 1
        assert proc.stderr.count("\n") == 1
        assert "Traceback" not in proc.stderr
        assert proc.stderr.startswith("error: invalid endpoint name")
        refused += 1
    assert not (tmp_path / "home").exists()  # refused before anything was opened
    attacks.record(BAD_NAME, "cli", len(tried), refused)


# ---------------------------------------------------------------- REST API


@pytest.fixture
def api(tmp_path: Path) -> Iterator[httpx.Client]:
    """The real server on loopback (uvicorn) with one stopped endpoint and a read token."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    app = build_app(
        Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    )
    app.store.save_endpoint(
        EndpointRecord("recsys", "http://127.0.0.1:1", 1, None, None, "stopped", 1.0)
    )
    app.store.add_user(UserRecord("reader", "reader@example.org", ("viewer",), True, 0.0))
    token = issue_token(app.store, "reader", scopes=("read",), now=time.time(), ttl_seconds=600)
    config = uvicorn.Config(create_app(app), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers=headers, trust_env=False, timeout=30
        ) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        app.close()


def test_api_answers_bad_names_with_404_and_a_reason(
    api: httpx.Client, tmp_path: Path, attacks: Attacks
) -> None:
    client = api
    before = _tree(tmp_path)
    tried = [n for n in BAD_NAMES if n]
    refused = 0
    for name in tried:
        # every byte percent-encoded: the client normalizes nothing ("." stays a name)
        encoded = "".join(f"%{b:02X}" for b in name.encode())
        answer = client.get(f"/api/v1/endpoints/{encoded}")
        assert answer.status_code == 404, (name, answer.status_code, answer.text)
        detail = answer.json()["detail"]
        if "/" not in name:  # a "/" makes another path, which no route serves
            assert "endpoint name" in detail, (name, detail)
        refused += 1
    assert _tree(tmp_path) == before
    detail = client.get("/api/v1/endpoints/Recsys").json()["detail"]
    assert "invalid endpoint name 'Recsys'" in detail
    assert "for example 'recsys'" in detail
    assert client.get("/api/v1/endpoints/recsys").json()["name"] == "recsys"
    assert client.get("/api/v1/endpoints/a-b_1").status_code == 404  # valid, just not there
    attacks.record(BAD_NAME, "api", len(tried), refused)


# ---------------------------------------------------------------- the runner (last line)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_runner_refuses_bad_names_before_touching_the_disk(
    name: str, tmp_path: Path, attacks: Attacks
) -> None:
    home = tmp_path / "home"
    runner = LocalEndpointRunner(home, ready_timeout=5)
    with pytest.raises(InvalidNameError):
        runner.folder(name)
    with pytest.raises(InvalidNameError):
        runner.log_path(name)
    with pytest.raises(InvalidNameError):
        runner.token_path(name)
    with pytest.raises(InvalidNameError):
        runner.start(name, tmp_path, "0" * 64, "v1", None)
    assert _tree(tmp_path) == set()
    attacks.record(f"{BAD_NAME} given to the endpoint runner", "files", 1, 1)


def test_runner_refuses_a_folder_that_a_symlink_leads_elsewhere(
    tmp_path: Path, attacks: Attacks
) -> None:
    home = tmp_path / "home"
    outside = tmp_path / "outside"
    outside.mkdir()
    (home / "endpoints").mkdir(parents=True)
    (home / "endpoints" / "evil").symlink_to(outside)
    runner = LocalEndpointRunner(home, ready_timeout=5)
    with pytest.raises(InvalidNameError, match="outside"):
        runner.start("evil", tmp_path, "0" * 64, "v1", None)
    assert list(outside.iterdir()) == []
    attacks.record("endpoint folder a symlink leads out of the home", "files", 1, 1)


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_runner_paths_of_valid_names_are_inside_the_home(name: str, tmp_path: Path) -> None:
    runner = LocalEndpointRunner(tmp_path / "home")
    folder = (tmp_path / "home").resolve() / "endpoints" / name
    assert runner.folder(name) == folder
    assert runner.log_path(name) == folder / "endpoint.log"
    assert runner.token_path(name) == folder / "admin.token"


@pytest.mark.parametrize("name", ["../../x", "/abs", "a/b"])
def test_the_endpoint_process_refuses_a_name_that_would_be_a_path(
    name: str, tmp_path: Path, attacks: Attacks
) -> None:
    logs = tmp_path / "logs"
    flags = ["--model-dir", str(tmp_path), "--digest", "0" * 64, "--model-version", "v1"]
    proc = subprocess.run(
        [sys.executable, "-m", "signoff.serving", "--name", name, *flags, "--port", "1"],
        env={"PATH": "/usr/bin:/bin", "SIGNOFF_PREDICTION_LOG_PARQUET": str(logs)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "endpoint name" in proc.stderr
    assert not logs.exists()
    assert not (tmp_path.parent / "x").exists()
    attacks.record("endpoint process started with a name that would be a path", "process", 1, 1)
