"""Runs driven per second by 1, 2, 4... `signoff worker` processes on one PostgreSQL store.

    .venv/bin/python benchmarks/workers.py [--database-url URL] [--runs 40] [--workers 1,2,4]
        [--kinds call,command] [--rounds 3] [--threads 4] [--poll 0.2] [--deadline 900]

For each task kind and each worker count K, in a fresh PostgreSQL database (created for the
measurement, dropped after it): N runs of a two-task flow (a -> b) are queued and not driven,
then K `signoff worker` subprocesses are started at once, and the store is polled until every
run has ended. Kinds: `call` (both tasks are in-process Python calls that append one line to
a log) and `command` (both are the shell line `echo ... >> log`, a subprocess each).

Figures per measurement: the wall time from handing the runs to the workers (they are
queued first, held by a lease of the script's until every worker is up, then released in one
statement) until the store shows the last one ended; the drive span from the first task's
start to the last run's end (read from the store); runs/s over the drive span and its speed-up
against the lowest worker count measured in the same round (rounds interleave the counts;
the table shows the median of the rounds); the workers' start-up and how fast
`Engine.start_run` queued the runs, each timed on its own. Checks: every run succeeded; every
task run ran exactly once (attempt 1, one transition into `running`, one line in the log);
both tasks of a run ran in the same worker (the log line carries its pid), and how many runs
each worker drove. CPU seconds of the workers and of every `postgres` process on the machine
over the drive show what saturates.
Every worker it starts is stopped (SIGTERM, then SIGKILL) and the script has a deadline.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa

from signoff.bootstrap import Settings, build_app
from signoff.domain.specs import FlowSpec, ParamSpec, TaskKind, TaskSpec
from signoff.domain.states import RunState, TaskRunState
from signoff.tracking.context import current_task

HERE = Path(__file__).resolve().parent
SIGNOFF = [sys.executable, "-m", "signoff.cli.main"]
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
KINDS = ("call", "command")
POLL_STORE = 0.02  # seconds between two looks at the store while the workers drive
HOLD = "bench:held"  # the lease owner that keeps queued runs from the workers until they are up
READY = "signoff worker on "  # what a worker prints once it is up, before its first pass


def record(log: str) -> None:
    """The `call:` task: append "<task run id> <pid>" to ``log`` (the pid is the worker's)."""
    ctx = current_task()
    task_run = ctx.task_run_id if ctx is not None else "?"
    with open(log, "a") as f:  # one short append: a whole line
        f.write(f"{task_run} {os.getpid()}\n")


class BenchError(Exception):
    """A measurement that could not be made (no database, a deadline passed, a check failed)."""


@dataclass
class Measurement:
    """One kind, one worker count, one round."""

    kind: str
    workers: int
    round: int
    runs: int
    wall_s: float
    drive_s: float
    queue_s: float
    startup_s: float
    first_task_s: float
    worker_cpu_s: float
    postgres_cpu_s: float
    load_before: float
    runs_per_worker: list[int] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.runs / self.drive_s

    @property
    def wall_rate(self) -> float:
        return self.runs / self.wall_s


# ----------------------------------------------------------------------------- the store


def fresh_database(admin: sa.Engine) -> tuple[str, str]:
    name = f"signoff_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return name, admin.url.set(database=name).render_as_string(hide_password=False)


def drop_database(admin: sa.Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def flow(kind: str, log: Path) -> FlowSpec:
    """a -> b, both `call:` tasks or both shell commands, each logging who ran it."""
    params = (ParamSpec(key="log", values=(str(log),)),)
    call = "workers:record" if kind == "call" else None
    # the shell's $PPID is the worker that started it
    command = None if call else 'echo "$SIGNOFF_TASK_RUN_ID $PPID" >> {{ log }}'
    tasks = tuple(
        TaskSpec(
            name=name,
            kind=TaskKind.EXEC,
            params=params,
            call=call,
            command=command,
            depends_on=deps,
        )
        for name, deps in (("a", ()), ("b", ("a",)))
    )
    return FlowSpec(name=f"bench-workers-{kind}", tasks=tasks)


def queue_runs(home: Path, url: str, kind: str, log: Path, n: int, until: float) -> list[str]:
    """Create ``n`` queued runs, each held by a lease of ours so that no worker takes it yet.

    The first process to open the store creates its tables: this one, before any worker.
    """
    app = build_app(Settings(home=home, database_url=url))
    try:
        spec = flow(kind, log)
        ids = []
        for _ in range(n):
            if time.monotonic() > until:
                raise BenchError("the deadline passed while queueing runs")
            ids.append(app.engine.start_run(spec, base_dir=None, started_by="bench").id)
        now = app.engine.clock.now()
        for run_id in ids:
            if app.store.claim_run(run_id, HOLD, now=now, ttl=3600) is not None:
                raise BenchError(f"run {run_id} was taken before the workers started")
        return ids
    finally:
        app.close()


def release_all(engine: sa.Engine) -> None:
    """Give every held run to the workers in one statement: they all become free at once."""
    with engine.begin() as conn:
        q = "UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = :o"
        conn.execute(sa.text(q), {"o": HOLD})


def ended_count(engine: sa.Engine, terminal: list[str]) -> int:
    with engine.connect() as conn:
        q = sa.text("SELECT count(*) FROM runs WHERE state = ANY(:s)")
        return int(conn.execute(q, {"s": terminal}).scalar_one())


# --------------------------------------------------------------------------- the workers


def start_workers(k: int, home: Path, url: str, args: argparse.Namespace) -> list[psutil.Popen]:
    env = {
        **os.environ,
        "SIGNOFF_HOME": str(home),
        "SIGNOFF_DATABASE_URL": url,
        "PYTHONUNBUFFERED": "1",  # the ready line reaches its file at once
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [*SIGNOFF, "worker", "--poll", str(args.poll), "--threads", str(args.threads)]
    procs: list[psutil.Popen] = []
    for i in range(k):
        out = (home.parent / f"worker{i}.out").open("w")
        procs.append(psutil.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT))
        out.close()
    return procs


def alive(procs: list[psutil.Popen], work: Path) -> None:
    dead = [p.pid for p in procs if p.poll() is not None]
    if dead:
        raise BenchError(f"worker(s) {dead} exited early; see {work}/worker*.out")


def wait_ready(procs: list[psutil.Popen], work: Path, until: float) -> None:
    """Until every worker has printed that it is up (its first pass comes right after)."""
    outs = [work / f"worker{i}.out" for i in range(len(procs))]
    while not all(READY in out.read_text() for out in outs):
        alive(procs, work)
        if time.monotonic() > until:
            raise BenchError(f"workers not up within the deadline; see {work}/worker*.out")
        time.sleep(POLL_STORE)


def cpu_of(proc: psutil.Process) -> float:
    """CPU seconds of a process and of its children it has waited for."""
    with contextlib.suppress(psutil.Error):
        t = proc.cpu_times()
        return t.user + t.system + t.children_user + t.children_system
    return 0.0


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of every `postgres` process now (the server's backends on this machine)."""
    seen: dict[int, float] = {}
    for p in psutil.process_iter(["name", "cpu_times"]):
        if p.info["name"] == "postgres" and p.info["cpu_times"] is not None:
            t = p.info["cpu_times"]
            seen[p.pid] = t.user + t.system
    return seen


def stop_workers(procs: list[psutil.Popen]) -> None:
    """SIGTERM every worker, give them 20 s to settle, then SIGKILL what is left."""
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.send_signal(signal.SIGTERM)
    until = time.monotonic() + 20
    for p in procs:
        try:
            p.wait(timeout=max(0.1, until - time.monotonic()))
        except psutil.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)
        except psutil.Error:
            pass


# ------------------------------------------------------------------------------ checking


def check(home: Path, url: str, run_ids: list[str], log: Path) -> dict[int, int]:
    """Every run succeeded and every task run ran once; runs driven per worker pid."""
    lines = [line.split() for line in log.read_text().splitlines() if line.strip()]
    runs_by_task_run = Counter(tr for tr, _ in lines)
    pid_of = {tr: int(pid) for tr, pid in lines}
    app = build_app(Settings(home=home, database_url=url))
    try:
        per_pid: Counter[int] = Counter()
        for run_id in run_ids:
            run = app.store.get_run(run_id)
            if run.state is not RunState.SUCCEEDED:
                raise BenchError(f"run {run_id} ended {run.state}: {run.reason}")
            entered = Counter(
                t.entity_id
                for t in app.store.list_transitions(run_id)
                if t.entity == "task_run" and t.to_state == TaskRunState.RUNNING.value
            )
            task_runs = app.store.list_task_runs(run_id)
            for tr in task_runs:
                if tr.state is not TaskRunState.SUCCEEDED:
                    raise BenchError(f"task run {tr.id} ended {tr.state}")
                times = (tr.attempt, entered[tr.id], runs_by_task_run[tr.id])
                if times != (1, 1, 1):
                    raise BenchError(
                        f"task run {tr.id} ran more than once: attempt {times[0]}, "
                        f"{times[1]} transitions into running, {times[2]} log lines"
                    )
            pids = {pid_of[tr.id] for tr in task_runs}
            if len(pids) != 1:
                raise BenchError(f"run {run_id} was driven by several workers: {sorted(pids)}")
            per_pid[pids.pop()] += 1
        if len(lines) != 2 * len(run_ids):
            raise BenchError(f"{len(lines)} task executions for {2 * len(run_ids)} task runs")
        return dict(per_pid)
    finally:
        app.close()


def drive_span(url: str) -> tuple[float, float]:
    """(first task start, last run end) as the store recorded them."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            first = conn.execute(sa.text("SELECT min(started_at) FROM task_runs")).scalar_one()
            last = conn.execute(sa.text("SELECT max(ended_at) FROM runs")).scalar_one()
        return float(first), float(last)
    finally:
        engine.dispose()


# ------------------------------------------------------------------------- one measurement


def measure(
    admin: sa.Engine, base: Path, kind: str, k: int, rnd: int, args: argparse.Namespace
) -> Measurement:
    terminal = [s.value for s in RunState if s.is_terminal]
    name, url = fresh_database(admin)
    work = base / f"{kind}-{k}-{rnd}"
    home, log = work / "home", work / "tasks.log"
    work.mkdir()
    log.touch()
    procs: list[psutil.Popen] = []
    poller = sa.create_engine(url)
    until = min(args.until, time.monotonic() + args.timeout)
    phases: dict[str, float] = {}
    mark = time.monotonic()
    try:
        run_ids = queue_runs(home, url, kind, log, args.runs, until)
        phases["queue"] = time.monotonic() - mark
        spawned = time.monotonic()
        procs = start_workers(k, home, url, args)
        wait_ready(procs, work, until)
        startup = time.monotonic() - spawned
        load = os.getloadavg()[0]
        pg_before, cpu_before = postgres_cpu(), sum(cpu_of(p) for p in procs)
        wall0, t0 = time.time(), time.monotonic()
        release_all(poller)
        while ended_count(poller, terminal) < len(run_ids):
            alive(procs, work)
            if time.monotonic() > until:
                raise BenchError(f"runs not ended within the deadline ({kind}, {k} workers)")
            time.sleep(POLL_STORE)
        wall = time.monotonic() - t0
        worker_cpu = sum(cpu_of(p) for p in procs) - cpu_before
        pg_after = postgres_cpu()
        mark = time.monotonic()
        stop_workers(procs)
        phases["stop"] = time.monotonic() - mark
        first_start, last_end = drive_span(url)
        mark = time.monotonic()
        per_pid = check(home, url, run_ids, log)
        phases["check"] = time.monotonic() - mark
        if args.verbose:
            took = ", ".join(f"{p} {s:.1f}s" for p, s in phases.items())
            print(f"  {kind} K={k} round {rnd}: {took}", file=sys.stderr, flush=True)
        unknown = set(per_pid) - {p.pid for p in procs}
        if unknown:
            raise BenchError(f"runs driven by processes that are not our workers: {unknown}")
        return Measurement(
            kind=kind,
            workers=k,
            round=rnd,
            runs=len(run_ids),
            wall_s=wall,
            drive_s=last_end - first_start,
            queue_s=phases["queue"],
            startup_s=startup,
            first_task_s=first_start - wall0,
            worker_cpu_s=worker_cpu,
            postgres_cpu_s=sum(v - pg_before.get(pid, 0.0) for pid, v in pg_after.items()),
            load_before=load,
            runs_per_worker=sorted((per_pid.get(p.pid, 0) for p in procs), reverse=True),
        )
    finally:
        stop_workers(procs)
        poller.dispose()
        drop_database(admin, name)


# ----------------------------------------------------------------------------- reporting


def median_row(rows: list[Measurement], base_rates: list[float]) -> dict[str, Any]:
    rates = [m.rate for m in rows]
    speedups = [m.rate / b for m, b in zip(rows, base_rates, strict=True)]
    first = rows[0]
    wall = statistics.median(m.wall_s for m in rows)
    return {
        "kind": first.kind,
        "workers": first.workers,
        "runs": first.runs,
        "rounds": len(rows),
        "wall_s": round(wall, 3),
        "wall_runs_per_s": round(first.runs / wall, 1),
        "drive_s": round(statistics.median(m.drive_s for m in rows), 3),
        "runs_per_s": round(statistics.median(rates), 1),
        "runs_per_s_range": [round(min(rates), 1), round(max(rates), 1)],
        "speedup": round(statistics.median(speedups), 2),
        "queue_runs_per_s": round(first.runs / statistics.median(m.queue_s for m in rows), 1),
        "startup_s": round(statistics.median(m.startup_s for m in rows), 2),
        "first_task_s": round(statistics.median(m.first_task_s for m in rows), 3),
        "worker_cpu_s": round(statistics.median(m.worker_cpu_s for m in rows), 2),
        "postgres_cpu_s": round(statistics.median(m.postgres_cpu_s for m in rows), 2),
        # what the drive cost: CPU of the workers and of PostgreSQL, per run and per second
        "cpu_ms_per_run": round(
            statistics.median((m.worker_cpu_s + m.postgres_cpu_s) / m.runs for m in rows) * 1000,
            1,
        ),
        "cores_busy": round(
            statistics.median((m.worker_cpu_s + m.postgres_cpu_s) / m.drive_s for m in rows), 2
        ),
        "runs_per_worker": [m.runs_per_worker for m in rows],
        "load_before": [round(m.load_before, 2) for m in rows],
    }


def print_row(row: dict[str, Any]) -> None:
    lo, hi = row["runs_per_s_range"]
    print(
        f"{row['kind']:<8} {row['workers']:>2} worker(s) {row['runs']:>4} runs: "
        f"wall {row['wall_s']:6.2f}s ({row['wall_runs_per_s']:6.1f} runs/s), "
        f"drive {row['drive_s']:6.2f}s -> {row['runs_per_s']:6.1f} runs/s "
        f"[{lo}-{hi}], x{row['speedup']:.2f} vs 1, start-up {row['startup_s']:.2f}s, "
        f"first task after {row['first_task_s']:.2f}s, "
        f"CPU workers {row['worker_cpu_s']:.1f}s postgres {row['postgres_cpu_s']:.1f}s "
        f"({row['cpu_ms_per_run']} ms/run, {row['cores_busy']} cores busy), "
        f"runs per worker {row['runs_per_worker']}; queued at {row['queue_runs_per_s']} runs/s",
        flush=True,
    )


# ---------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL, help="a PostgreSQL server")
    parser.add_argument("--runs", type=int, default=40, help="runs queued per measurement")
    parser.add_argument("--workers", default="1,2,4", help="worker counts, e.g. 1,2,4")
    parser.add_argument("--kinds", default=",".join(KINDS), help="call, command or both")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each count")
    parser.add_argument("--threads", type=int, default=4, help="`signoff worker --threads`")
    parser.add_argument("--poll", type=float, default=0.2, help="`signoff worker --poll`")
    parser.add_argument("--timeout", type=float, default=180, help="seconds per measurement")
    parser.add_argument("--deadline", type=float, default=900, help="seconds for everything")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="time of each phase, on stderr")
    parser.add_argument("--dir", default=None, help="where the temporary homes go")
    args = parser.parse_args(argv)
    try:
        args.worker_counts = [int(w) for w in args.workers.split(",") if w.strip()]
    except ValueError:
        parser.error(f"--workers: a comma-separated list of counts, not {args.workers!r}")
    if not args.worker_counts or any(not 1 <= w <= 32 for w in args.worker_counts):
        parser.error("--workers: counts between 1 and 32")
    args.kind_list = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not args.kind_list or set(args.kind_list) - set(KINDS):
        parser.error(f"--kinds: any of {', '.join(KINDS)}, not {args.kinds!r}")
    for name, low in (("runs", 1), ("rounds", 1), ("threads", 1)):
        if getattr(args, name) < low:
            parser.error(f"--{name}: at least {low}")
    if args.poll < 0.05 or args.timeout <= 0 or args.deadline <= 0:
        parser.error("--poll at least 0.05; --timeout and --deadline positive")
    if not args.database_url.startswith("postgresql"):
        parser.error("--database-url: a PostgreSQL URL (postgresql+psycopg://...)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.until = time.monotonic() + args.deadline
    url = args.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        print(f"PostgreSQL is not reachable at {args.database_url}: {exc.orig}", file=sys.stderr)
        return 2
    cores = os.cpu_count() or 1
    if not args.json:
        print(
            f"{cores} cores; {args.runs} runs of 2 tasks per measurement; "
            f"workers {args.worker_counts} x {args.threads} threads; {args.rounds} round(s)",
            flush=True,
        )
    results: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(dir=args.dir, prefix=".bench-workers-") as tmp:
            for kind in args.kind_list:
                by_k: dict[int, list[Measurement]] = {k: [] for k in args.worker_counts}
                for rnd in range(args.rounds):
                    order = args.worker_counts if rnd % 2 == 0 else args.worker_counts[::-1]
                    for k in order:
                        by_k[k].append(measure(admin, Path(tmp), kind, k, rnd, args))
                base = by_k[min(args.worker_counts)]
                for k in args.worker_counts:
                    row = median_row(by_k[k], [m.rate for m in base])
                    row["cores"] = cores
                    results.append(row)
                    if not args.json:
                        print_row(row)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        admin.dispose()
    if args.json:
        print(json.dumps(results, indent=2))
    elif max(args.worker_counts) > cores:
        print(
            f"(more workers than the {cores} cores: the workers, their tasks and PostgreSQL "
            "share those cores, so runs/s is bounded by CPU, not by the number of workers)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
