"""kill -9 inside the tasks signoff runs itself (select, gate, deploy) and inside a rollover.

Each test arms one named pause point (``SIGNOFF_FAILPOINTS``, see ``signoff.failpoints``): the
process stops itself there with SIGSTOP and says so in a file; the test checks it is stopped
(alive, at that point) and kills it with SIGKILL. Then ``signoff resume`` must finish the run
as if nothing happened, and the assertions are on what the endpoint process *actually*
serves (its ``/version`` digest), not only on what the store says.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gate_flows import write_flow

from conftest import Attacks

SIGNOFF = [sys.executable, "-m", "signoff.cli.main"]


class Cli:
    def __init__(self, tmp: Path, database_url: str) -> None:
        self.home = tmp / "home"
        keep = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
        self.env = {
            **keep,
            "SIGNOFF_HOME": str(self.home),
            "SIGNOFF_DATABASE_URL": database_url,
            "SIGNOFF_LEASE_SECONDS": "2",
            "SIGNOFF_USER": "carol",
        }
        self.killed: list[str] = []  # the points signoff was killed at, in order

    def json(self, *args: str) -> Any:
        proc = subprocess.run(
            [*SIGNOFF, *args, "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def resume(self, run_id: str) -> None:
        proc = subprocess.run(
            [*SIGNOFF, "resume", run_id, "--quiet"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr

    def kill_at(self, point: str, *args: str) -> None:
        """Run ``signoff ARGS`` until it reaches ``point``; prove it is there; kill -9 it."""
        marker = self.home / "failpoints" / point
        marker.unlink(missing_ok=True)
        proc = subprocess.Popen(
            [*SIGNOFF, *args],
            env={**self.env, "SIGNOFF_FAILPOINTS": point},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while not marker.exists():
            if proc.poll() is not None:
                raise AssertionError(f"exited before {point}: {proc.stderr.read()}")
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"never reached {point}")
            time.sleep(0.02)
        assert int(marker.read_text()) == proc.pid
        _wait_for(lambda: _state(proc.pid) == "T")  # stopped at the point, still alive
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        self.killed.append(point)


def _record_kills(attacks: Attacks, cli: Cli) -> None:
    """One row per point this test killed signoff at; called once the run has recovered."""
    for point in sorted(set(cli.killed)):
        kills = cli.killed.count(point)
        attacks.record(f"kill -9 at {point}, then resume", "process", kills, kills)


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"
    return stat.rsplit(")", 1)[1].split()[0]


def _wait_for(predicate: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def _serving_pids(home: Path) -> list[int]:
    """Endpoint processes of this home, found the hard way: by /proc, not by the store."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        mine = b"signoff.serving" in cmdline and f"SIGNOFF_HOME={home}".encode() in environ
        if mine and _state(int(proc.name)) not in ("Z", "gone"):
            found.append(int(proc.name))
    return found


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> Iterator[Cli]:
    c = Cli(tmp_path, database_url)
    try:
        yield c
    finally:
        for pid in _serving_pids(c.home):
            os.killpg(pid, signal.SIGKILL)


def _serves(url: str) -> dict[str, Any]:
    with httpx.Client(trust_env=False, timeout=10) as client:
        version: dict[str, Any] = client.get(f"{url}/version").json()
        return version


def _waiting_run(cli: Cli, flow: Path, seed: int = 0) -> str:
    started = cli.json("run", str(flow), "-p", f"seed={seed}")
    assert started["state"] == "waiting_for_approval"
    return str(started["run_id"])


def _gate(cli: Cli, run_id: str) -> dict[str, Any]:
    gate: dict[str, Any] = cli.json("show", run_id)["gates"][0]
    return gate


def _check_deployed(cli: Cli, run_id: str) -> dict[str, Any]:
    """The run succeeded once and its approved digest is what the one endpoint serves."""
    shown = cli.json("show", run_id)
    assert shown["state"] == "succeeded", shown
    gate = shown["gates"][0]
    assert [(d["actor"], d["decision"]) for d in gate["decisions"]] == [("alice", "approve")]
    endpoint = cli.json("endpoints")[0]
    served = _serves(endpoint["url"])
    assert served["digest"] == gate["model_digest"]
    assert _serving_pids(cli.home) == [endpoint["pid"]]  # one process, the recorded one
    history = cli.json("endpoints", "history", endpoint["name"])
    mine = [h for h in history if h["run_id"] == run_id]
    assert len(mine) == 1, history
    return endpoint


def test_kill_before_the_select_task_commits(cli: Cli, tmp_path: Path, attacks: Attacks) -> None:
    flow = write_flow(tmp_path / "flow")
    cli.kill_at("select.before_commit", "run", str(flow))
    run_id = cli.json("runs")[0]["run_id"]
    pick = next(t for t in cli.json("show", run_id)["tasks"] if t["task"] == "pick")
    assert pick["state"] == "running"  # never marked done by a process that died
    cli.resume(run_id)
    shown = cli.json("show", run_id)
    assert shown["state"] == "waiting_for_approval"
    pick = next(t for t in shown["tasks"] if t["task"] == "pick")
    assert pick["state"] == "succeeded"
    assert pick["attempt"] == 2
    assert len(shown["gates"]) == 1
    _record_kills(attacks, cli)


def test_kill_after_the_gate_opens_before_anyone_is_told(
    cli: Cli, tmp_path: Path, attacks: Attacks
) -> None:
    flow = write_flow(tmp_path / "flow")
    cli.kill_at("gate.after_open", "run", str(flow))
    run_id = cli.json("runs")[0]["run_id"]
    assert cli.json("outbox") == []  # the dead process sent nothing
    cli.resume(run_id)
    assert cli.json("show", run_id)["state"] == "waiting_for_approval"
    mails = sorted(m["to"] for m in cli.json("outbox"))
    assert len(mails) == 2  # alice and bob, once each
    assert any("alice" in m for m in mails)
    assert any("bob" in m for m in mails)
    cli.resume(run_id)  # once more: nobody is told twice
    assert len(cli.json("outbox")) == 2
    opened = [e for e in cli.json("audit", "show", run_id) if e["event"] == "gate_opened"]
    assert len(opened) == 1
    _record_kills(attacks, cli)


def test_kill_right_after_the_decision_commits(cli: Cli, tmp_path: Path, attacks: Attacks) -> None:
    run_id = _waiting_run(cli, write_flow(tmp_path / "flow"))
    cli.kill_at("decide.after_commit", "approve", run_id, "--as", "alice", "-m", "ok")
    assert _gate(cli, run_id)["state"] == "approved"  # the approval stood
    assert cli.json("endpoints") == []
    cli.resume(run_id)
    _check_deployed(cli, run_id)
    _record_kills(attacks, cli)


def test_kill_before_a_first_deploy_starts_its_endpoint(
    cli: Cli, tmp_path: Path, attacks: Attacks
) -> None:
    run_id = _waiting_run(cli, write_flow(tmp_path / "flow"))
    cli.kill_at("deploy.before_start", "approve", run_id, "--as", "alice")
    assert _serving_pids(cli.home) == []
    cli.resume(run_id)
    _check_deployed(cli, run_id)
    _record_kills(attacks, cli)


def test_kill_after_a_first_deploy_started_its_endpoint(
    cli: Cli, tmp_path: Path, attacks: Attacks
) -> None:
    run_id = _waiting_run(cli, write_flow(tmp_path / "flow"))
    cli.kill_at("deploy.after_start", "approve", run_id, "--as", "alice")
    orphans = _serving_pids(cli.home)
    assert len(orphans) == 1  # running, serving, and recorded nowhere
    assert cli.json("endpoints") == []
    cli.resume(run_id)
    endpoint = _check_deployed(cli, run_id)
    assert endpoint["pid"] == orphans[0]  # adopted, not started twice
    _record_kills(attacks, cli)


def test_kill_after_a_deploy_is_recorded_before_the_task_succeeds(
    cli: Cli, tmp_path: Path, attacks: Attacks
) -> None:
    run_id = _waiting_run(cli, write_flow(tmp_path / "flow"))
    cli.kill_at("deploy.before_commit", "approve", run_id, "--as", "alice")
    deploy = next(t for t in cli.json("show", run_id)["tasks"] if t["task"] == "deploy")
    assert deploy["state"] == "running"
    cli.resume(run_id)
    _check_deployed(cli, run_id)
    _record_kills(attacks, cli)


@pytest.mark.parametrize("point", ["rollover.after_load", "rollover.after_switch"])
def test_kill_inside_a_rollover(cli: Cli, tmp_path: Path, point: str, attacks: Attacks) -> None:
    flow = write_flow(tmp_path / "flow")
    first = _waiting_run(cli, flow, seed=0)
    cli.json("approve", first, "--as", "alice")
    before = cli.json("endpoints")[0]
    old_digest = _serves(before["url"])["digest"]
    second = _waiting_run(cli, flow, seed=1)
    new_digest = _gate(cli, second)["model_digest"]
    assert new_digest != old_digest
    cli.kill_at(point, "approve", second, "--as", "alice")
    serving_now = _serves(before["url"])["digest"]
    recorded = cli.json("endpoints")[0]
    if point == "rollover.after_load":
        assert serving_now == old_digest  # loaded beside, no traffic yet
    else:
        assert serving_now == new_digest  # switched, but the store does not know
    assert recorded["model_version"] == before["model_version"]
    cli.resume(second)
    after = _check_deployed(cli, second)
    assert after["pid"] == before["pid"]  # rolled over in place
    models = cli.json("models", "tiny")
    champion = [m for m in models if "champion" in m.get("aliases", [])]
    assert [m["digest"] for m in champion] == [new_digest]
    _record_kills(attacks, cli)


def test_a_notice_claimed_by_a_dead_process_is_sent_by_the_next(
    tmp_path: Path, database_url: str, attacks: Attacks
) -> None:
    from signoff.bootstrap import Settings, build_app
    from signoff.spec import load_flow

    app = build_app(Settings(home=tmp_path / "home", database_url=database_url, slots=2))
    try:
        hook, app.engine.after_gate_opened = app.engine.after_gate_opened, None
        loaded = load_flow(write_flow(tmp_path / "flow"))
        run = app.engine.start_run(loaded.spec, base_dir=loaded.base_dir, started_by="carol")
        app.engine.drive(run.id)  # the gate opens; its follow-up never runs (the "crash")
        gate = app.store.gates_of_run(run.id)[0]
        assert app.store.gate_policy(gate.id)["announced_at"] is None
        # the dead process had reserved alice's e-mail and died before the outbox took it
        assert app.store.claim_notification(
            key=f"{gate.id}:alice:opened:0:email",
            gate_id=gate.id,
            user="alice",
            kind="opened",
            channel="email",
            at=1.0,
        )
        assert hook is not None
        hook(gate)  # what a restarted driver runs for a gate not yet announced
        outbox = sorted(p.name for p in (tmp_path / "home" / "outbox").glob("*.eml"))
        assert len(outbox) == 2, outbox  # alice's too, and each once
        hook(gate)
        assert len(list((tmp_path / "home" / "outbox").glob("*.eml"))) == 2
        assert app.store.gate_policy(gate.id)["announced_at"] is not None
    finally:
        app.close()
    attacks.record("process dead after reserving a notice, before sending it", "process", 1, 1)
