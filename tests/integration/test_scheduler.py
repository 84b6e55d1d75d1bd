"""The scheduler on real SQLite and PostgreSQL: each scheduled time fires once.

Catch-up after downtime, the overlap policies, daylight-saving nights, a crash between
recording a firing and starting its run, two schedulers ticking at once on PostgreSQL, the
single-scheduler lock of SQLite, and a real ``kill -9`` of ``signoff scheduler``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from signoff.bootstrap import App, Settings, build_app
from signoff.domain.ports import FiringState
from signoff.domain.records import RunRecord
from signoff.domain.specs import Catchup, FlowSpec, ParamValue
from signoff.domain.states import RunState, TaskRunState
from signoff.errors import ConflictError
from signoff.scheduling import Scheduler, SchedulerLock, SchedulerLockedError, schedule_key
from signoff.server.worker import Worker
from signoff.store.sql import open_store

# the CLI with the schedule commands registered (as `signoff` does once main.py imports them)
SIGNOFF = [
    sys.executable,
    "-c",
    "import signoff.cli.schedule_commands; from signoff.cli.main import main; main()",
]


class FakeClock:
    """Time that moves only when the test says so."""

    def __init__(self, start: datetime) -> None:
        self.t = start.timestamp()

    def now(self) -> float:
        return self.t

    def at(self, moment: datetime) -> float:
        self.t = moment.timestamp()
        return self.t


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def write_flow(folder: Path, schedule: str, *, gate: bool = False, name: str = "nightly") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tasks = "tasks:\n  - title: work\n    command: 'true'\n"
    if gate:
        tasks += (
            "  - title: sign-off\n    objective: human_validation\n    target: alice\n"
            "    depends_on: work\n"
        )
    path = folder / "flow.yaml"
    path.write_text(f"flow: {name}\nschedule: {schedule}\n{tasks}")
    return path


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[App]:
    a = build_app(Settings(home=tmp_path / "home", database_url=database_url))
    try:
        yield a
    finally:
        a.close()


def scheduler(app: App, clock: FakeClock, **kw: Any) -> Scheduler:
    return Scheduler(app.store, app.engine, clock, endpoints=app.endpoints, **kw)


def states(app: App, flow: str = "nightly") -> dict[str, str]:
    """Scheduled time (UTC, HH:MM) -> firing state."""
    return {
        f.key.rsplit("T", 1)[1][:5]: f.state.value
        for f in app.store.list_firings(flow=flow, limit=1000)
        if f.kind == "schedule"
    }


def runs_by_key(app: App) -> Counter[str]:
    return Counter(r.facts["trigger"]["key"] for r in app.store.list_runs(1000))


# ------------------------------------------------------------------ exactly once
def test_each_scheduled_time_is_recorded_once_under_its_key(
    app: App, tmp_path: Path, database_url: str
) -> None:
    clock = FakeClock(utc(2026, 5, 4, 0, 0, 30))
    first = scheduler(app, clock)
    first.add(write_flow(tmp_path / "flow", "'0 * * * *'"))
    assert first.tick().recorded == []  # nothing due before 01:00

    clock.at(utc(2026, 5, 4, 1, 0, 10))
    report = first.tick()
    key = schedule_key("nightly", utc(2026, 5, 4, 1))
    assert [f.key for f in report.recorded] == [key] == [k for k, _ in report.started]
    assert first.tick().recorded == []  # the same moment again: nothing new

    other_store = open_store(database_url)  # a second scheduler on the same database
    try:
        other = Scheduler(other_store, app.engine, clock)
        assert other.tick().recorded == []
        assert other_store.get_firing(key) is not None
    finally:
        other_store.close()

    firing = app.store.get_firing(key)
    assert firing is not None
    assert firing.state is FiringState.STARTED
    assert not app.store.add_firing(firing)  # the key is unique
    with pytest.raises(ConflictError):  # a stale scheduler cannot move next_at back
        app.store.advance_schedule(
            "nightly", expected_next_at=firing.scheduled_at, next_at=0.0, firings=[], at=0.0
        )
    run = app.store.get_run(firing.run_id or "")
    assert run.started_by == "signoff:scheduler"
    assert run.facts["trigger"]["key"] == key
    assert run.facts["trigger"]["scheduled_for"] == "2026-05-04T01:00:00Z"
    assert runs_by_key(app) == {key: 1}


# ------------------------------------------------------------------ catch-up
@pytest.mark.parametrize(
    ("catchup", "expected"),
    [
        (Catchup.NONE, {"01:00": "missed", "02:00": "missed", "03:00": "missed"}),
        (Catchup.LATEST, {"01:00": "missed", "02:00": "missed", "03:00": "started"}),
        (Catchup.ALL, {"01:00": "started", "02:00": "queued", "03:00": "queued"}),
    ],
)
def test_scheduler_down_for_three_intervals(
    app: App, tmp_path: Path, catchup: Catchup, expected: dict[str, str]
) -> None:
    clock = FakeClock(utc(2026, 5, 4, 0, 10))
    sched = scheduler(app, clock)
    policies = f"catchup: {catchup.value}, overlap: queue"
    sched.add(write_flow(tmp_path / "f", f"{{cron: '0 * * * *', {policies}}}"))
    clock.at(utc(2026, 5, 4, 3, 40))  # 01:00, 02:00 and 03:00 passed while it was down
    sched.tick()
    assert states(app) == expected
    missed = [f for f in app.store.list_firings(flow="nightly") if f.state is FiringState.MISSED]
    assert all("no scheduler was running" in (f.reason or "") for f in missed)
    for run_id in app.store.active_run_ids("nightly"):
        app.engine.cancel(run_id, actor="test")
    clock.at(utc(2026, 5, 4, 4, 0, 20))  # back to normal: the next time is on time
    sched.tick()
    assert states(app)["04:00"] in ("started", "queued")
    assert max(runs_by_key(app).values()) == 1


# ------------------------------------------------------------------ overlap
def test_overlap_skip_leaves_the_running_flow_alone(app: App, tmp_path: Path) -> None:
    clock = FakeClock(utc(2026, 5, 4, 0, 10))
    sched = scheduler(app, clock)
    sched.add(write_flow(tmp_path / "f", "'0 * * * *'"))
    clock.at(utc(2026, 5, 4, 1, 0, 5))
    [(_, first)] = sched.tick().started  # not driven: it stays queued
    clock.at(utc(2026, 5, 4, 2, 0, 5))
    report = sched.tick()
    assert report.skipped == [schedule_key("nightly", utc(2026, 5, 4, 2))]
    skipped = app.store.get_firing(report.skipped[0])
    assert skipped is not None
    assert f"run {first} of the flow was still going" in (skipped.reason or "")
    app.engine.drive(first)
    clock.at(utc(2026, 5, 4, 3, 0, 5))
    assert len(sched.tick().started) == 1
    assert states(app) == {"01:00": "started", "02:00": "skipped", "03:00": "started"}


def test_overlap_queue_runs_every_time_one_after_another(app: App, tmp_path: Path) -> None:
    clock = FakeClock(utc(2026, 5, 4, 0, 10))
    sched = scheduler(app, clock)
    sched.add(write_flow(tmp_path / "f", "{cron: '0 * * * *', overlap: queue}"))
    clock.at(utc(2026, 5, 4, 1, 0, 5))
    [(_, first)] = sched.tick().started
    clock.at(utc(2026, 5, 4, 2, 0, 5))
    assert len(sched.tick().queued) == 1
    clock.at(utc(2026, 5, 4, 3, 0, 5))
    sched.tick()
    assert states(app) == {"01:00": "started", "02:00": "queued", "03:00": "queued"}
    assert app.engine.drive(first).state is RunState.SUCCEEDED
    [(key, second)] = sched.tick().started  # the oldest waiting time goes first
    assert key == schedule_key("nightly", utc(2026, 5, 4, 2))
    assert sched.tick().started == []  # the flow is busy again
    app.engine.drive(second)
    [(key, _)] = sched.tick().started
    assert key == schedule_key("nightly", utc(2026, 5, 4, 3))
    assert runs_by_key(app).most_common(1)[0][1] == 1


def test_overlap_supersede_cancels_a_run_waiting_at_its_gate(app: App, tmp_path: Path) -> None:
    clock = FakeClock(utc(2026, 5, 4, 0, 10))
    sched = scheduler(app, clock)
    sched.add(write_flow(tmp_path / "f", "{cron: '0 * * * *', overlap: supersede}", gate=True))
    clock.at(utc(2026, 5, 4, 1, 0, 5))
    [(_, first)] = sched.tick().started
    assert app.engine.drive(first).state is RunState.WAITING_FOR_APPROVAL
    clock.at(utc(2026, 5, 4, 2, 0, 5))
    [(_, second)] = sched.tick().started
    old = app.store.get_run(first)
    assert old.state is RunState.CANCELLED
    assert "superseded by the run due 2026-05-04T02:00:00Z" in (old.reason or "")
    gate = next(tr for tr in app.store.list_task_runs(first) if tr.task_name == "sign-off")
    assert gate.state is TaskRunState.CANCELLED
    assert app.store.get_run(second).state is RunState.QUEUED


# ------------------------------------------------------------------ daylight saving
@pytest.mark.parametrize(
    ("cron", "night", "expected_utc"),
    [
        ("'30 2 * * *'", utc(2026, 10, 24, 22), ["00:30"]),  # fall back: 02:30 twice, once
        ("'0 * * * *'", utc(2026, 10, 24, 22), ["23:00", "00:00", "01:00", "02:00", "03:00"]),
        ("'30 2 * * *'", utc(2026, 3, 28, 22), ["01:00"]),  # spring forward: at 03:00 CEST
    ],
)
def test_a_night_with_a_clock_change_in_paris(
    app: App, tmp_path: Path, cron: str, night: datetime, expected_utc: list[str]
) -> None:
    clock = FakeClock(night)
    sched = scheduler(app, clock)
    sched.add(write_flow(tmp_path / "f", f"{{cron: {cron}, timezone: Europe/Paris}}"))
    for step in range(1, 5 * 12 + 1):  # every five minutes for five hours
        clock.at(datetime.fromtimestamp(night.timestamp() + step * 300, UTC))
        sched.tick()
        for run_id in app.store.active_run_ids("nightly"):
            app.engine.cancel(run_id, actor="test")
    assert sorted(states(app)) == sorted(expected_utc)
    assert set(states(app).values()) == {"started"}


# ------------------------------------------------------------------ crashes
class _CrashError(BaseException):
    """The process dies here (nothing catches a BaseException on the way out)."""


class CrashingStarter:
    """The engine, but the process dies just before or just after a run is created."""

    def __init__(self, app: App, *, after_create: bool) -> None:
        self.app = app
        self.after_create = after_create

    def start_run(
        self,
        spec: FlowSpec,
        *,
        base_dir: Path | None,
        source: str | None = None,
        params: Mapping[str, ParamValue] | None = None,
        started_by: str,
        reproduces: str | None = None,
        trigger: Mapping[str, Any] | None = None,
    ) -> RunRecord:
        if not self.after_create:
            raise _CrashError
        self.app.engine.start_run(
            spec, base_dir=base_dir, source=source, started_by=started_by, trigger=trigger
        )
        raise _CrashError

    def cancel(self, run_id: str, *, actor: str, reason: str | None = None) -> RunRecord:
        return self.app.engine.cancel(run_id, actor=actor, reason=reason)


@pytest.mark.parametrize("after_create", [False, True], ids=["before-run", "after-run"])
def test_a_crash_between_recording_and_starting_never_double_fires(
    app: App, tmp_path: Path, database_url: str, after_create: bool
) -> None:
    clock = FakeClock(utc(2026, 5, 4, 0, 10))
    exclusive = database_url.startswith("sqlite")  # the restarted one holds the SQLite lock
    dying = Scheduler(app.store, CrashingStarter(app, after_create=after_create), clock)
    dying.add(write_flow(tmp_path / "f", "'0 * * * *'"))
    clock.at(utc(2026, 5, 4, 1, 0, 5))
    with pytest.raises(_CrashError):
        dying.tick()
    key = schedule_key("nightly", utc(2026, 5, 4, 1))
    firing = app.store.get_firing(key)
    assert firing is not None
    assert firing.state is FiringState.STARTING
    assert len(runs_by_key(app)) == (1 if after_create else 0)

    clock.at(utc(2026, 5, 4, 1, 0, 20))
    restarted = scheduler(app, clock, exclusive=exclusive, stale_after=0.0)
    report = restarted.tick()
    assert [k for k, _ in report.started] == [key]
    firing = app.store.get_firing(key)
    assert firing is not None
    assert firing.state is FiringState.STARTED
    assert runs_by_key(app) == {key: 1}
    assert app.store.get_run(firing.run_id or "").facts["trigger"]["key"] == key


# ------------------------------------------------------------------ several schedulers
@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_schedulers_ticking_at_once_on_postgres_fire_each_time_once(
    tmp_path: Path, database_url: str
) -> None:
    apps = [build_app(Settings(home=tmp_path / "home", database_url=database_url))]
    apps.append(build_app(Settings(home=tmp_path / "home", database_url=database_url)))
    clock = FakeClock(utc(2026, 5, 4, 0, 0, 30))
    try:
        pair = [scheduler(a, clock) for a in apps]
        pair[0].add(write_flow(tmp_path / "f", "{cron: '*/10 * * * *', catchup: all}"))
        pair[1].tick()  # both see the schedule
        reports: list[list[Any]] = [[], []]
        errors: list[BaseException] = []
        rounds = 12
        barrier = threading.Barrier(3, timeout=60)

        def run(i: int) -> None:
            try:
                for _ in range(rounds):
                    barrier.wait()  # go together
                    reports[i].append(pair[i].tick())
                    barrier.wait()  # both done
            except BaseException as exc:  # reported below, not lost in the thread
                errors.append(exc)
                barrier.abort()

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for _ in range(rounds):
            clock.at(datetime.fromtimestamp(clock.t + 600, UTC))  # one scheduled time a round
            barrier.wait()
            barrier.wait()
            for run_id in apps[0].store.active_run_ids("nightly"):  # the run "finished"
                apps[0].engine.cancel(run_id, actor="test")
        for t in threads:
            t.join(timeout=60)
        assert errors == []
        started = [k for r in reports for rep in r for k, _ in rep.started]
        assert len(started) == len(set(started)) == rounds
        assert runs_by_key(apps[0]) == Counter(dict.fromkeys(started, 1))
        assert {f.state for f in apps[0].store.list_firings(limit=100)} == {FiringState.STARTED}
    finally:
        for a in apps:
            a.close()


# ------------------------------------------------------------------ the SQLite lock
def _env(home: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    return {**env, "SIGNOFF_HOME": str(home), "SIGNOFF_DATABASE_URL": database_url}


def _start_scheduler(env: dict[str, str], cwd: Path, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*SIGNOFF, "scheduler", "--tick", "0.1", *extra],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # printed once the lock is held and the loop starts
    assert line.startswith("scheduler on "), line
    return proc


def test_a_second_scheduler_on_sqlite_refuses_to_start(tmp_path: Path) -> None:
    home = tmp_path / "home"
    url = f"sqlite:///{home / 'signoff.db'}"
    env = _env(home, url)
    first = _start_scheduler(env, tmp_path)
    try:
        second = subprocess.run(
            [*SIGNOFF, "scheduler"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 1
        assert f"another scheduler (pid {first.pid} since" in second.stderr
        assert "only one may run on SQLite" in second.stderr
        assert "Traceback" not in second.stderr
        # a server in the same situation serves, and leaves scheduling to the running one
        app = build_app(Settings(home=home, database_url=url))
        try:
            worker = Worker(app, tick=0.1)
            worker.run_once()
            assert worker.scheduler is None
            with pytest.raises(SchedulerLockedError):
                SchedulerLock(app.store.scheduler_lock_path() or home).acquire()
        finally:
            app.close()
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0
    again = _start_scheduler(env, tmp_path)  # the lock went with the process
    again.send_signal(signal.SIGTERM)
    assert again.wait(timeout=30) == 0


def test_kill_9_mid_tick_then_restart_fires_each_time_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    url = f"sqlite:///{home / 'signoff.db'}"
    env = _env(home, url)
    flow_dir = tmp_path / "flow"
    path = write_flow(flow_dir, "{cron: '* * * * * *', catchup: all, overlap: supersede}")
    for i in range(150):  # a folder to snapshot makes each start take a while
        (flow_dir / f"part_{i:03}.txt").write_text("x" * 2000)
    add = subprocess.run(
        [*SIGNOFF, "schedule", "add", str(path)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert add.returncode == 0, add.stderr
    rng = random.Random(7)
    for _ in range(3):
        proc = _start_scheduler(env, tmp_path, "--no-drive")
        time.sleep(rng.uniform(1.2, 2.2))
        proc.kill()  # SIGKILL: mid-tick, wherever it is
        proc.wait(timeout=10)
        time.sleep(1.2)  # times pass while no scheduler runs
    last = _start_scheduler(env, tmp_path, "--no-drive")
    time.sleep(2.5)
    last.send_signal(signal.SIGTERM)
    assert last.wait(timeout=60) == 0

    store = open_store(url)
    try:
        firings = store.list_firings(flow="nightly", limit=10_000, oldest_first=True)
        runs = store.list_runs(10_000)
    finally:
        store.close()
    assert len(firings) >= 8
    times = [f.scheduled_at or 0.0 for f in firings]
    assert times == [times[0] + i for i in range(len(times))]  # every second, once
    assert {f.state for f in firings} <= {FiringState.STARTED, FiringState.FAILED}
    by_key = Counter(r.facts["trigger"]["key"] for r in runs)
    assert max(by_key.values()) == 1  # no scheduled time started two runs
    started = {f.key: f.run_id for f in firings if f.state is FiringState.STARTED}
    assert {r.facts["trigger"]["key"]: r.id for r in runs} == started


# ------------------------------------------------------------------ server and CLI
def test_a_server_worker_is_the_scheduler_and_drives_what_it_starts(tmp_path: Path) -> None:
    app = build_app(Settings(home=tmp_path / "home", database_url=None))
    try:
        Scheduler(app.store, app.engine, app.engine.clock).add(
            write_flow(tmp_path / "f", "'* * * * * *'")  # every second (an advanced option)
        )
        worker = Worker(app, tick=0.1)
        worker.run_once()
        assert worker.scheduler is not None  # it took the SQLite lock
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.3)
            worker.run_once()
            done = [r for r in app.store.list_runs() if r.state is RunState.SUCCEEDED]
            if done:
                break
        worker.stop()
        assert done
        assert done[0].facts["trigger"]["kind"] == "schedule"
    finally:
        app.close()


def test_the_schedule_commands(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    import signoff.cli.schedule_commands  # noqa: F401  (registers the commands)
    from signoff.cli.commands import app as cli_app

    home = tmp_path / "home"
    env = {"SIGNOFF_HOME": str(home), "SIGNOFF_DATABASE_URL": f"sqlite:///{home / 'db'}"}
    cli = CliRunner()

    def run(*args: str) -> Any:
        result = cli.invoke(cli_app, list(args), env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout) if "--json" in args else result.stdout

    flow = tmp_path / "f" / "flow.yaml"
    flow.parent.mkdir()
    flow.write_text(
        "flow: nightly\nschedule: {cron: '30 2 * * *', timezone: Europe/Paris}\n"
        "triggers:\n  - {on: data, path: in/}\n  - {on: webhook}\n"
        "tasks:\n  - title: work\n    command: 'true'\n"
    )
    added = run("schedule", "add", str(flow), "--json")
    assert (added["cron"], added["timezone"], len(added["next"])) == (
        "30 2 * * *",
        "Europe/Paris",
        3,
    )
    assert all(t.endswith(("02:30:00+01:00", "02:30:00+02:00")) for t in added["next_local"])
    moved = run("schedule", "add", str(flow), "--timezone", "America/New_York", "--json")
    assert moved["timezone"] == "America/New_York"
    bad = cli.invoke(cli_app, ["schedule", "add", str(flow), "--timezone", "Nowhere"], env=env)
    assert bad.exit_code == 1
    assert "--timezone: unknown time zone 'Nowhere'" in str(bad.exception)
    [row] = run("schedule", "list", "--json")
    assert row["flow"] == "nightly"
    run("schedule", "pause", "nightly")
    assert run("schedule", "--json")[0]["paused"] is True
    assert "resumed; next:" in run("schedule", "resume", "nightly")

    added_rule = run("triggers", "add", "nightly", "--on", "drift", "--endpoint", "churn")
    assert "drift psi > 0.2 on endpoint churn" in added_rule
    rules = run("triggers", "list", "--json")
    assert [(r["on"], r["origin"]) for r in rules] == [
        ("data", "file"),
        ("webhook", "file"),
        ("drift", "cli"),
    ]
    checks = run("triggers", "fire-check", "--json")
    assert {c["kind"]: c["note"] for c in checks} == {
        "data": "first look: contents recorded",
        "drift": "no endpoint 'churn' yet",
    }
    run("schedule", "add", str(flow))  # the CLI rule stays when the file is added again
    assert len(run("triggers", "--json")) == 3
    run("triggers", "remove", "nightly", rules[2]["id"])
    assert len(run("triggers", "list", "--json")) == 2
    assert run("firings", "--json") == []
    run("schedule", "remove", "nightly")
    assert run("schedule", "list", "--json") == []
