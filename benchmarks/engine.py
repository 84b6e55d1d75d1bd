"""Engine overhead per task, next to physical baselines measured in the same run.

    .venv/bin/python benchmarks/engine.py [--database-url URL] [--inprocess N] [--subprocess N]

(a) N in-process Python tasks (a chain, and a fan-out of N from one root), against a plain
    loop that commits one row per durable state change on the same database (as many commits
    per task as the engine makes: launch, and finish with outputs).
(b) N subprocess tasks running `true` (chain and fan-out), against spawning the same shell
    commands directly (same parallelism) plus the commit loop.
Targets: in-process under 1 ms per task on SQLite and at most 3x the commit loop;
subprocess at most 1.3x (direct spawning + commit loop).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))

from signoff.bootstrap import Settings, build_app
from signoff.domain.specs import FlowSpec, TaskKind, TaskSpec
from signoff.store.sql import create_sql_engine

COMMITS_PER_TASK = 2  # launch (pending→queued→running), finish (outputs + succeeded)


def flow(n: int, shape: str, *, call: str | None, command: str | None) -> FlowSpec:
    tasks = []
    for i in range(n):
        if shape == "chain":
            deps: tuple[str, ...] = (f"t{i - 1}",) if i else ()
        else:
            deps = ("t0",) if i else ()
        tasks.append(
            TaskSpec(name=f"t{i}", kind=TaskKind.EXEC, command=command, call=call, depends_on=deps)
        )
    return FlowSpec(name=f"bench-{shape}-{n}", tasks=tuple(tasks))


def run_engine(spec: FlowSpec, home: Path, url: str, slots: int) -> float:
    app = build_app(Settings(home=home, database_url=url, slots=slots))
    try:
        t0 = time.perf_counter()  # creating the run (its task runs) is part of the overhead
        run = app.engine.start_run(spec, base_dir=None, started_by="bench")
        final = app.engine.drive(run.id)
        elapsed = time.perf_counter() - t0
        assert final.state.value == "succeeded", final.reason
        return elapsed
    finally:
        app.close()


def commit_loop(url: str, n: int) -> float:
    """The physical floor: COMMITS_PER_TASK committed single-row inserts per task."""
    engine = create_sql_engine(url)
    meta = sa.MetaData()
    table = sa.Table(
        f"bench_commit_{os.getpid()}",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task", sa.String(32)),
        sa.Column("state", sa.String(32)),
    )
    meta.create_all(engine)
    try:
        t0 = time.perf_counter()
        for i in range(n):
            for state in ("running", "succeeded")[:COMMITS_PER_TASK]:
                with engine.connect() as conn:
                    conn.info["signoff_write"] = True
                    with conn.begin():
                        conn.execute(table.insert().values(task=f"t{i}", state=state))
        return time.perf_counter() - t0
    finally:
        meta.drop_all(engine)
        engine.dispose()


def direct_spawn(n: int, shape: str, slots: int) -> float:
    def spawn() -> None:
        subprocess.run("true", shell=True, check=True)

    t0 = time.perf_counter()
    if shape == "chain":
        for _ in range(n):
            spawn()
    else:
        spawn()
        with ThreadPoolExecutor(max_workers=slots) as pool:
            list(pool.map(lambda _: spawn(), range(n - 1)))
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp folder")
    parser.add_argument("--inprocess", type=int, default=1000)
    parser.add_argument("--subprocess", type=int, default=200)
    parser.add_argument("--slots", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--dir", default=".", help="where the temporary home and database go (default: here)"
    )
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix=".bench-") as tmp:
        base = Path(tmp)
        url = args.database_url or f"sqlite:///{base / 'bench.db'}"
        backend = url.split(":", 1)[0]
        for kind, n in (("in-process", args.inprocess), ("subprocess", args.subprocess)):
            for shape in ("chain", "fan-out"):
                spec = flow(
                    n,
                    shape,
                    call="bench_tasks:noop" if kind == "in-process" else None,
                    command="true" if kind == "subprocess" else None,
                )
                home = base / f"{kind}-{shape}"
                engine_s = run_engine(spec, home, url, args.slots)
                loop_s = commit_loop(url, n)
                row = {
                    "backend": backend,
                    "kind": kind,
                    "shape": shape,
                    "tasks": n,
                    "engine_s": round(engine_s, 4),
                    "engine_ms_per_task": round(engine_s / n * 1000, 3),
                    "commit_loop_s": round(loop_s, 4),
                }
                if kind == "in-process":
                    row["ratio"] = round(engine_s / loop_s, 2)
                    row["target"] = "< 1 ms/task (SQLite) and ratio <= 3"
                    row["ok"] = row["ratio"] <= 3 and (
                        backend != "sqlite" or row["engine_ms_per_task"] < 1
                    )
                else:
                    spawn_s = direct_spawn(n, shape, args.slots)
                    row["direct_spawn_s"] = round(spawn_s, 4)
                    row["ratio"] = round(engine_s / (spawn_s + loop_s), 2)
                    row["target"] = "ratio <= 1.3 (vs direct spawn + commit loop)"
                    row["ok"] = row["ratio"] <= 1.3
                results.append(row)
                if not args.json:
                    print(
                        f"{backend:<10} {kind:<10} {shape:<8} {n:>5} tasks: "
                        f"engine {engine_s:7.3f}s ({row['engine_ms_per_task']:.3f} ms/task), "
                        f"commit loop {loop_s:6.3f}s"
                        + (
                            f", direct spawn {row['direct_spawn_s']:6.3f}s"
                            if "direct_spawn_s" in row
                            else ""
                        )
                        + f" -> ratio {row['ratio']:.2f} [{'ok' if row['ok'] else 'MISS'}]",
                        flush=True,
                    )
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
