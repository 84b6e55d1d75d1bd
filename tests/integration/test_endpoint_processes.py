"""How LocalEndpointRunner tells a running endpoint process, and stops all of it (no model)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

from signoff.endpoints import LocalEndpointRunner

# Stands in for an endpoint: "signoff.serving" is on its command line, and it starts a
# worker in a session of its own (out of the endpoint's process group), as model code may.
FAKE_ENDPOINT = textwrap.dedent(
    """
    import subprocess, sys, time
    worker = subprocess.Popen(["setsid", "sleep", "60"])
    with open(sys.argv[1], "w") as f:
        f.write(str(worker.pid))
    time.sleep(60)
    """
)


def _fake(tmp_path: Path, *, session: bool = True) -> tuple[subprocess.Popen[bytes], int]:
    note = tmp_path / "worker.pid"
    proc = subprocess.Popen(
        [sys.executable, "-c", FAKE_ENDPOINT, str(note), "-m", "signoff.serving"],
        start_new_session=session,
    )
    deadline = time.monotonic() + 30
    while not (note.exists() and note.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return proc, int(note.read_text())


def _gone(pid: int, limit: float = 15) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def _cleanup(*pids: int) -> None:
    for pid in pids:
        try:
            psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            continue


def test_a_zombie_is_not_running_and_gets_reaped(tmp_path: Path) -> None:
    proc, worker = _fake(tmp_path)
    try:
        runner = LocalEndpointRunner(tmp_path / "home")  # not the one that started it
        assert runner.is_alive(proc.pid)
        proc.kill()  # the process ends; nobody has waited for it yet: a zombie
        deadline = time.monotonic() + 10
        while psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert not runner.is_alive(proc.pid)
        assert not psutil.pid_exists(proc.pid)  # reaped by the runner, not left a zombie
    finally:
        _cleanup(proc.pid, worker)
        proc.wait(timeout=10)


def test_stop_reaches_a_worker_outside_the_group(tmp_path: Path) -> None:
    proc, worker = _fake(tmp_path)
    try:
        assert psutil.Process(worker).ppid() == proc.pid
        runner = LocalEndpointRunner(tmp_path / "home")
        started = time.monotonic()
        runner.stop(proc.pid, timeout=10)
        assert time.monotonic() - started < 10  # SIGTERM sufficed: no SIGKILL wait
        assert not runner.is_alive(proc.pid)
        assert _gone(worker)
    finally:
        _cleanup(proc.pid, worker)
        proc.wait(timeout=10)


def test_a_process_of_another_program_is_never_an_endpoint(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        runner = LocalEndpointRunner(tmp_path / "home")
        assert not runner.is_alive(other.pid)  # alive, but its command line is not ours
        runner.stop(other.pid)  # so stop leaves it alone
        assert other.poll() is None
    finally:
        other.kill()
        other.wait(timeout=10)
