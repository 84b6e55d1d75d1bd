"""Ray executor overhead per task, next to bare Ray tasks doing the same work, in one run.

    .venv/bin/python benchmarks/ray_overhead.py [--tasks N] [--rounds R] [--sleep S] [--json]

On a local Ray (``ray.init(num_cpus=2)``), N trivial command tasks (``echo ok >
output/ok.txt``) go one after another through ``RayExecutor`` (submit -> outcome: the code
snapshot uploaded once, the working folder built on the node, the output uploaded to a local
artifact folder and fetched into the driver's folder, the log streamed back), against N bare
Ray tasks that run the same shell command in a temporary folder and return its exit code.
Both start warm (one untimed task each). Figures: median and p95 per task, and the ratio of
the medians, and the overhead per task in ms. ``--sleep S`` makes each command sleep S
seconds first (a task that does some work). Target: at most 1.5x.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import ray
from signoff.artifacts import open_artifact_store
from signoff.domain.ports_execution import TaskExecution
from signoff.executors.ray import RayExecutor

TRIVIAL = "echo ok > output/ok.txt"
TARGET = 1.5


@ray.remote(max_retries=0)
def bare(command: str) -> int:
    """The same work without signoff: the command in a fresh folder, its exit code."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "output").mkdir()
        return subprocess.run(command, shell=True, cwd=folder, check=False).returncode


def time_bare(n: int, command: str) -> list[float]:
    assert ray.get(bare.remote(command)) == 0  # warm: a worker is up
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        assert ray.get(bare.remote(command)) == 0
        times.append(time.perf_counter() - t0)
    return times


def time_executor(n: int, root: Path, command: str) -> list[float]:
    code = root / "code"
    code.mkdir(parents=True)
    (code / "task.py").write_text("print('ok')\n")
    executor = RayExecutor(None, str(root / "artifacts"), 60.0, open_store=open_artifact_store)
    times = []
    try:
        for i in range(n + 1):
            work = root / "runs" / f"t{i}"
            execution = TaskExecution(
                f"tr{i:04d}", command, work, {"SIGNOFF_TASK": "bench"}, code=str(code)
            )
            t0 = time.perf_counter()
            executor.submit(execution)
            outcomes = executor.wait_any(60.0)
            elapsed = time.perf_counter() - t0
            assert [o.exit_code for o in outcomes] == [0], outcomes
            assert (work / "output" / "ok.txt").read_text() == "ok\n"
            if i:  # the first one warms the worker up
                times.append(elapsed)
    finally:
        executor.shutdown()
    return times


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of each")
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds each command works")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    command = f"sleep {args.sleep:g}; {TRIVIAL}" if args.sleep else TRIVIAL
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    bare_times: list[float] = []
    ours: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds):  # alternate, so machine noise hits both alike
                bare_times += time_bare(args.tasks, command)
                ours += time_executor(args.tasks, Path(tmp) / f"round{r}", command)
    finally:
        ray.shutdown()
    results = {
        "tasks": len(ours),
        "bare_median_ms": statistics.median(bare_times) * 1000,
        "bare_p95_ms": p95(bare_times) * 1000,
        "executor_median_ms": statistics.median(ours) * 1000,
        "executor_p95_ms": p95(ours) * 1000,
    }
    results["ratio"] = results["executor_median_ms"] / results["bare_median_ms"]
    results["overhead_ms"] = results["executor_median_ms"] - results["bare_median_ms"]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"Ray executor vs bare Ray tasks, {results['tasks']} tasks each, one at a time")
    print(f"command: {command}")
    print(f"{'':22}{'median':>10}{'p95':>10}")
    print(
        f"{'bare Ray task':22}{results['bare_median_ms']:>8.1f}ms{results['bare_p95_ms']:>8.1f}ms"
    )
    print(
        f"{'RayExecutor':22}{results['executor_median_ms']:>8.1f}ms"
        f"{results['executor_p95_ms']:>8.1f}ms"
    )
    verdict = "ok" if results["ratio"] <= TARGET else "over target"
    print(f"ratio {results['ratio']:.2f}x (target <= {TARGET}x): {verdict}")
    print(f"overhead {results['overhead_ms']:.1f} ms per task")


if __name__ == "__main__":
    main()
