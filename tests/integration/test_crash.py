"""kill -9 of a driving process at the worst moments, then a restart: nothing is lost.

These tests kill real `signoff` processes. The lease is short (2 s) so the restarted process
takes over quickly; execution is at-least-once, so a task that may have started runs again,
and what was left running by the dead process is stopped first (never twice at once).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import Attacks

ENGINE = Path(__file__).parents[1] / "resources" / "engine"
SIGNOFF = [sys.executable, "-m", "signoff.cli.main"]


class Cli:
    def __init__(self, tmp: Path, database_url: str) -> None:
        self.env = {
            **os.environ,
            "SIGNOFF_HOME": str(tmp / "home"),
            "SIGNOFF_DATABASE_URL": database_url,
            "SIGNOFF_LEASE_SECONDS": "2",
            "LONG_TASK_SECONDS": "2",
        }

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*SIGNOFF, *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def __call__(self, *args: str) -> Any:
        proc = subprocess.run(
            [*SIGNOFF, *args, "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
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
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> Cli:
    return Cli(tmp_path, database_url)


def _wait_for(predicate: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def _pids(marker: Path) -> list[int]:
    return [int(x) for x in marker.read_text().split()] if marker.exists() else []


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _only_run(cli: Cli) -> dict[str, Any]:
    runs = cli("runs")
    assert len(runs) == 1
    return cli("show", runs[0]["run_id"])


def test_kill_while_a_task_runs(cli: Cli, tmp_path: Path, attacks: Attacks) -> None:
    marker = tmp_path / "marker"
    driver = cli.start("run", str(ENGINE / "long.yaml"), "-p", f"marker={marker}")
    _wait_for(lambda: len(_pids(marker)) == 1)
    assert driver.poll() is None  # the driver is alive while its task runs: the kill lands
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    orphan = _pids(marker)[0]
    assert _alive(orphan)  # the task outlived its driver
    run_id = _only_run(cli)["run_id"]
    cli.resume(run_id)
    shown = cli("show", run_id)
    assert shown["state"] == "waiting_for_approval"
    first, _ = _pids(marker)
    assert first == orphan
    assert not _alive(first)  # stopped before the task ran again
    long_task = next(t for t in shown["tasks"] if t["task"] == "long")
    assert long_task["state"] == "succeeded"
    assert long_task["attempt"] == 2
    attacks.record("kill -9 of the driver while its task runs, then resume", "process", 1, 1)


def test_kill_between_a_task_ending_and_its_commit(
    cli: Cli, tmp_path: Path, attacks: Attacks
) -> None:
    marker = tmp_path / "marker"
    driver = cli.start("run", str(ENGINE / "long.yaml"), "-p", f"marker={marker}")
    _wait_for(lambda: len(_pids(marker)) == 1)
    task_pid = _pids(marker)[0]
    driver.send_signal(signal.SIGSTOP)  # the driver cannot record what happens next
    _wait_for(lambda: not _alive(task_pid))  # the task finished its work
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    run_id = _only_run(cli)["run_id"]
    before = next(t for t in cli("show", run_id)["tasks"] if t["task"] == "long")
    assert before["state"] == "running"  # never silently marked done
    cli.resume(run_id)
    shown = cli("show", run_id)
    assert shown["state"] == "waiting_for_approval"
    assert len(_pids(marker)) == 2  # at-least-once: it ran again
    attacks.record("kill -9 between a task's end and its commit, then resume", "process", 1, 1)


def test_kill_right_after_approval(cli: Cli, tmp_path: Path, attacks: Attacks) -> None:
    marker = tmp_path / "marker"
    started = cli("run", str(ENGINE / "long.yaml"), "-p", f"marker={marker}")
    run_id = started["run_id"]
    assert started["state"] == "waiting_for_approval"
    point = Path(cli.env["SIGNOFF_HOME"]) / "failpoints" / "decide.after_commit"
    approver = subprocess.Popen(
        [*SIGNOFF, "approve", run_id, "--as", "alice", "-m", "ok"],
        env={**cli.env, "SIGNOFF_FAILPOINTS": "decide.after_commit"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for(point.exists)  # the approver stopped itself right after its commit...
    assert int(point.read_text()) == approver.pid
    _wait_for(lambda: _state(approver.pid) == "T")  # ...and is alive there when killed
    approver.send_signal(signal.SIGKILL)
    approver.wait()
    assert cli("show", run_id)["state"] == "waiting_for_approval"  # nothing driven on yet
    cli.resume(run_id)
    shown = cli("show", run_id)
    assert shown["state"] == "succeeded"
    decisions = [(d["actor"], d["decision"]) for d in shown["gates"][0]["decisions"]]
    assert decisions == [("alice", "approve")]  # the approval stood, recorded once
    attacks.record("kill -9 at decide.after_commit, then resume", "process", 1, 1)


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"
    return stat.rsplit(")", 1)[1].split()[0]
