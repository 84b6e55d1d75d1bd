"""Three ``signoff worker`` processes on one PostgreSQL store, one of them killed with -9.

Every run ends succeeded; the killed worker's run is taken over by another worker once its
lease ran out; no task run ever runs in two processes at once (each command appends its
start and end to a log, and at its start checks that no earlier process of the same task
run is still alive). The lease is short (2 s), the first task longer (3 s): the dead
worker's task is still running when another takes over, and must be stopped first. The
whole test has a deadline and kills every process it started.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from signoff.bootstrap import App, Settings, build_app
from signoff.domain.states import RunState, TaskRunState
from signoff.spec import load_flow

SIGNOFF = [sys.executable, "-m", "signoff.cli.main"]
LEASE = 2.0
DEADLINE = 120.0

TASK = """\
import json, os, sys, time

log, seconds = sys.argv[1], float(sys.argv[2])
me, tr = os.getpid(), os.environ["SIGNOFF_TASK_RUN_ID"]


def alive(pid):
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def write(**record):
    with open(log, "a") as f:  # one short append per line: whole lines
        f.write(json.dumps({"tr": tr, "pid": me, "t": time.time(), **record}) + "\\n")


earlier = []
if os.path.exists(log):
    earlier = [json.loads(line) for line in open(log)]
ended = {r["pid"] for r in earlier if r["tr"] == tr and r["event"] == "end"}
started = {r["pid"] for r in earlier if r["tr"] == tr and r["event"] == "start"}
write(event="start", run=os.environ["SIGNOFF_RUN_ID"],
      overlap=sorted(p for p in started - ended if alive(p)))
time.sleep(seconds)
write(event="end")
"""

FLOW = """\
flow: team
params:
  - key: log
    values: /tmp/none
tasks:
  - title: first
    command: python task.py {{ log }} 3
  - title: second
    command: python task.py {{ log }} 1
    depends_on: first
"""


@pytest.fixture
def team(tmp_path: Path, database_url: str) -> Iterator[App]:
    app = build_app(Settings(home=tmp_path / "home", database_url=database_url))
    try:
        yield app
    finally:
        app.close()


def _start_runs(app: App, tmp_path: Path, log: Path, n: int) -> list[str]:
    flow_dir = tmp_path / "flow"
    flow_dir.mkdir()
    (flow_dir / "task.py").write_text(TASK)
    (flow_dir / "flow.yaml").write_text(FLOW)
    loaded = load_flow(flow_dir / "flow.yaml")
    return [
        app.engine.start_run(
            loaded.spec,
            base_dir=loaded.base_dir,
            source=FLOW,
            params={"log": str(log)},
            started_by="test",
        ).id
        for _ in range(n)
    ]


def _worker(tmp_path: Path, database_url: str, i: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "SIGNOFF_HOME": str(tmp_path / "home"),
        "SIGNOFF_DATABASE_URL": database_url,
        "SIGNOFF_LEASE_SECONDS": str(LEASE),
    }
    return subprocess.Popen(
        [*SIGNOFF, "worker", "--poll", "0.2", "--threads", "2"],
        env=env,
        stdout=(tmp_path / f"worker{i}.out").open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(what: str, predicate: Callable[[], Any], until: float) -> Any:
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > until:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _records(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _holder_pid(app: App, run_id: str) -> int | None:
    owner, _ = app.store.lease_of(run_id)
    return None if owner is None else int(owner.split(":")[1])  # "<host>:<pid>:<id>/<id>"


def _victim(app: App, log: Path, workers: dict[int, Any]) -> tuple[str, int] | None:
    """A run one of the workers drives while one of its tasks runs, and that worker's pid."""
    records = _records(log)
    ended = {(r["tr"], r["pid"]) for r in records if r["event"] == "end"}
    for r in records:
        if r["event"] == "start" and (r["tr"], r["pid"]) not in ended:
            holder = _holder_pid(app, r["run"])
            if holder in workers:
                return r["run"], holder
    return None


def _assert_never_twice(records: list[dict[str, Any]]) -> None:
    spans: dict[tuple[str, int], list[float]] = defaultdict(list)
    for r in records:
        assert not r.get("overlap"), f"task run {r['tr']} started while {r['overlap']} ran it"
        spans[(r["tr"], r["pid"])].append(r["t"])
    by_task_run: dict[str, list[list[float]]] = defaultdict(list)
    for (tr, _pid), times in spans.items():
        by_task_run[tr].append(times)
    for tr, attempts in by_task_run.items():
        done = sorted((t[0], t[1]) for t in attempts if len(t) == 2)
        for (_, end), (start, _) in itertools.pairwise(done):
            assert end <= start, f"task run {tr} ran in two processes at once"


@pytest.mark.postgres
@pytest.mark.timeout(DEADLINE + 60)
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_three_workers_one_killed_every_run_succeeds_once_at_a_time(
    tmp_path: Path, database_url: str, team: App
) -> None:
    until = time.monotonic() + DEADLINE
    log = tmp_path / "tasks.jsonl"
    run_ids = _start_runs(team, tmp_path, log, 5)
    procs: list[subprocess.Popen[str]] = []
    try:
        procs = [_worker(tmp_path, database_url, i) for i in range(3)]
        workers = {p.pid: p for p in procs}
        victim_run, victim_pid = _wait_for(
            "a worker driving a task", lambda: _victim(team, log, workers), until
        )
        workers[victim_pid].send_signal(signal.SIGKILL)
        workers[victim_pid].wait(timeout=10)
        _, last_expiry = team.store.lease_of(victim_run)  # the dead worker renews no more

        takers: set[int] = set()

        def all_ended() -> bool:
            holder = _holder_pid(team, victim_run)
            if holder is not None and holder != victim_pid:
                takers.add(holder)
            return all(team.store.get_run(r).state.is_terminal for r in run_ids)

        _wait_for("every run to end", all_ended, until)

        assert {team.store.get_run(r).state for r in run_ids} == {RunState.SUCCEEDED}
        for run_id in run_ids:
            states = {tr.state for tr in team.store.list_task_runs(run_id)}
            assert states == {TaskRunState.SUCCEEDED}
        # another worker finished the killed worker's run, after its lease ran out
        assert takers
        assert takers <= set(workers) - {victim_pid}
        again = [
            t
            for t in team.store.list_transitions(victim_run)
            if t.reason and "stopped; running it again" in t.reason
        ]
        assert again, "the task the dead worker ran was not run again"
        assert last_expiry is not None
        assert all(t.at >= last_expiry for t in again)
        _assert_never_twice(_records(log))

        for p in procs:  # the others stop cleanly on SIGTERM: nothing left to settle
            if p.pid != victim_pid:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            if p.pid != victim_pid:
                assert p.wait(timeout=30) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
