"""LocalExecutor and stop_leftover on real shell commands: waits, timeouts, cancels, leftovers."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from signoff.domain.ports import TaskExecution, TaskOutcome
from signoff.executors.local import LOG_FILE, LocalExecutor, stop_leftover


@pytest.fixture
def executor() -> Iterator[LocalExecutor]:
    ex = LocalExecutor(slots=2)
    yield ex
    ex.shutdown()


def _run(tmp_path: Path, name: str, command: str, timeout: float | None = None) -> TaskExecution:
    work = tmp_path / name
    work.mkdir()
    return TaskExecution(
        task_run_id=name,
        command=command,
        work_dir=work,
        env={"SIGNOFF_TASK_RUN_ID": name},
        timeout=timeout,
    )


def _wait_all(ex: LocalExecutor, n: int, limit: float = 30) -> dict[str, TaskOutcome]:
    outcomes: dict[str, TaskOutcome] = {}
    deadline = time.monotonic() + limit
    while len(outcomes) < n and time.monotonic() < deadline:
        outcomes.update((o.task_run_id, o) for o in ex.wait_any(timeout=1.0))
    return outcomes


def _pids_in(path: Path, count: int, limit: float = 30) -> list[int]:
    """The pids a command wrote, once it wrote ``count`` of them."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if path.exists():
            pids = [int(p) for p in path.read_text().split()]
            if len(pids) >= count:
                return pids
        time.sleep(0.02)
    raise AssertionError(f"{path} did not get {count} pids")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pids: list[int], limit: float = 15) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if all(_gone(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def test_exit_codes_signals_and_output(executor: LocalExecutor, tmp_path: Path) -> None:
    executor.submit(_run(tmp_path, "ok", "echo out; echo err >&2"))
    executor.submit(_run(tmp_path, "fails", "exit 3"))
    outcomes = _wait_all(executor, 2)
    executor.submit(_run(tmp_path, "killed", "kill -KILL $$"))
    outcomes.update(_wait_all(executor, 1))
    assert outcomes["ok"] == TaskOutcome("ok", 0)
    assert (tmp_path / "ok" / LOG_FILE).read_text() == "out\nerr\n"
    assert outcomes["fails"] == TaskOutcome("fails", 3)
    assert outcomes["killed"] == TaskOutcome("killed", -9, error="killed by SIGKILL")
    assert executor.free_slots() == 2
    assert executor.in_flight() == 0


def test_submit_builds_the_working_folder_first(executor: LocalExecutor, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "say.sh").write_text("echo hi > output/said.txt\n")
    work = tmp_path / "runs" / "r1" / "say"  # not there yet: the executor makes it
    env = {"SIGNOFF_TASK_RUN_ID": "say"}
    executor.submit(TaskExecution("say", "sh say.sh", work, env, code=str(code)))
    nowhere = TaskExecution("lost", "true", tmp_path / "lost", env, code=str(tmp_path / "none"))
    executor.submit(nowhere)
    outcomes = _wait_all(executor, 2)
    assert outcomes["say"] == TaskOutcome("say", 0)
    assert (work / "say.sh").is_symlink()
    assert (work / "output" / "said.txt").read_text() == "hi\n"
    assert outcomes["lost"].exit_code == -1
    assert (outcomes["lost"].error or "").startswith("could not prepare the working folder: ")
    assert executor.free_slots() == 2


def test_wait_any_returns_empty_after_its_timeout(executor: LocalExecutor, tmp_path: Path) -> None:
    assert executor.wait_any(timeout=0) == []
    executor.submit(_run(tmp_path, "slow", "sleep 30"))
    started = time.monotonic()
    assert executor.wait_any(timeout=0.3) == []
    assert 0.25 <= time.monotonic() - started < 5
    assert executor.wait_any(timeout=-1) == []  # a deadline already past: no wait, no error
    executor.cancel("slow")
    assert _wait_all(executor, 1)["slow"].error == "killed by SIGTERM"


def test_slots_bound_what_runs(executor: LocalExecutor, tmp_path: Path) -> None:
    wide = _run(tmp_path, "wide", "true")
    executor.submit(TaskExecution(**{**_fields(wide), "cpu": 2.0}))
    assert executor.free_slots() == 0
    _wait_all(executor, 1)
    assert executor.free_slots() == 2


def _fields(execution: TaskExecution) -> dict[str, object]:
    return {name: getattr(execution, name) for name in execution.__dataclass_fields__}


def test_a_timeout_stops_the_command_and_its_children(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    command = f"sleep 60 & echo $! >> {pids}; echo $$ >> {pids}; wait"
    started = time.monotonic()
    executor.submit(_run(tmp_path, "slow", command, timeout=0.5))
    child, leader = _pids_in(pids, 2)
    assert _leader(child) == leader  # the background child is in the command's group
    outcome = _wait_all(executor, 1)["slow"]
    assert outcome == TaskOutcome("slow", -1, error="timed out after 0.5s")
    assert time.monotonic() - started < 5  # SIGTERM was enough: no grace period spent
    assert _wait_gone([leader, child])


def _leader(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return -1


def test_cancel_stops_a_child_that_left_the_group(executor: LocalExecutor, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # setsid: the child leads a session of its own, out of reach of a signal to the group
    command = f"setsid sleep 60 & echo $! >> {pids}; wait"
    executor.submit(_run(tmp_path, "escapes", command))
    (child,) = _pids_in(pids, 1)
    deadline = time.monotonic() + 10
    while _leader(child) != child and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _leader(child) == child  # in its own group now
    executor.cancel("escapes")
    assert _wait_all(executor, 1)["escapes"].error == "killed by SIGTERM"
    assert _wait_gone([child])


def test_stop_leftover_finds_the_command_by_its_environment(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # what a dead driver left behind: a command in its own session, with a child that
    # ignores SIGTERM (so SIGKILL must follow), and an unrelated command of another run
    leftover = subprocess.Popen(
        f"sh -c 'trap \"\" TERM; echo $$ >> {pids}; sleep 60' & echo $$ >> {pids}; wait",
        shell=True,
        env={**os.environ, "SIGNOFF_TASK_RUN_ID": "tr-left"},
        start_new_session=True,
    )
    other = subprocess.Popen(
        "sleep 60",
        shell=True,
        env={**os.environ, "SIGNOFF_TASK_RUN_ID": "tr-other"},
        start_new_session=True,
    )
    try:
        family = _pids_in(pids, 2)
        assert stop_leftover(tmp_path, "tr-nothing") is False
        started = time.monotonic()
        assert stop_leftover(tmp_path, "tr-left") is True
        assert time.monotonic() - started < 15
        assert leftover.wait(timeout=10) in (-signal.SIGTERM, -signal.SIGKILL)
        assert _wait_gone(family)
        assert other.poll() is None  # another task run's command is untouched
        assert stop_leftover(tmp_path, "tr-left") is False  # nothing is left
    finally:
        for proc in (leftover, other):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_shutdown_stops_what_still_runs(tmp_path: Path) -> None:
    ex = LocalExecutor(slots=2)
    pids = tmp_path / "pids"
    ex.submit(_run(tmp_path, "long", f"echo $$ >> {pids}; sleep 60"))
    (leader,) = _pids_in(pids, 1)
    ex.shutdown()
    assert _wait_gone([leader], limit=1)  # reaped by shutdown, not left a zombie
    with pytest.raises(psutil.NoSuchProcess):
        psutil.Process(leader)
