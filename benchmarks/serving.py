"""Serving: a signoff endpoint next to a minimal FastAPI app, then rollovers under load.

    .venv/bin/python benchmarks/serving.py [--seconds 3] [--connections 4] [--rollovers 10]
                                           [--rate 100] [--database-url URL]

(a) Single-row POST /predict on 127.0.0.1 against a signoff endpoint serving a random
    forest like the example's (120 trees, depth 8, 8 features), and against a minimal
    FastAPI + uvicorn app calling the same model's predict_proba (one worker each, the same
    keep-alive clients): requests per second and p50/p99 latency, measured twice each,
    interleaved. Also the in-process predict time. Targets: throughput at least 0.9x the
    minimal app's, p99 at most 1.2x.
(b) A flow (train -> human_validation -> deploy) run N+1 times through the engine; each
    run's gate is approved and its deploy rolls the endpoint over while clients post
    steadily (``--rate`` requests per second, below one worker's capacity). Prints failed
    requests (target 0) and the time from the approval to the first answer from the new
    version seen by a client (target under 2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from signoff.bootstrap import Settings, build_app
from signoff.domain.specs import DeploySpec, FlowSpec, GatePolicy, ParamSpec, TaskKind, TaskSpec
from signoff.endpoints import LocalEndpointRunner
from signoff.engine.engine import new_id
from signoff.gates.decide import decide
from signoff.registry.flavors import folder_digest, load_model

FEATURES = (
    "user_age", "user_activity", "user_history_size", "item_popularity",
    "item_price_tier", "item_freshness", "same_category", "user_item_affinity",
)  # fmt: skip
ROW = {
    "user_age": 2, "user_activity": 0.5, "user_history_size": 10, "item_popularity": 0.3,
    "item_price_tier": 1, "item_freshness": 0.4, "same_category": 1, "user_item_affinity": 0.6,
}  # fmt: skip
HOST = "127.0.0.1"

TRAIN = '''
"""Train the benchmark's random forest (synthetic data shaped like the example's)."""
import argparse

import numpy as np
from sklearn.ensemble import RandomForestClassifier

import signoff

FEATURES = {features!r}


def data(seed):
    rng = np.random.default_rng(seed)
    n = 4000
    x = np.column_stack([
        rng.integers(0, 6, n), rng.random(n), rng.integers(0, 60, n), rng.random(n),
        rng.integers(0, 4, n), rng.random(n), rng.integers(0, 2, n), rng.random(n),
    ]).astype(float)
    logit = 2.5 * x[:, 7] + 1.5 * x[:, 6] + x[:, 3] - 0.4 * x[:, 4] - 1.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    x, y = data(args.seed)
    model = RandomForestClassifier(n_estimators=120, max_depth=8, n_jobs=1, random_state=args.seed)
    model.fit(x, y)
    example = {{name: x[:50, i].tolist() for i, name in enumerate(FEATURES)}}
    if args.out:
        from signoff.registry.flavors import save_model
        save_model(model, __import__("pathlib").Path(args.out), input_example=example)
    else:
        signoff.log_model(model, "bench-forest", input_example=example)
        signoff.log_metric("auc", 0.5)


main()
'''

MINIMAL_APP = '''
"""A minimal FastAPI app over the same model file: the baseline."""
import sys

import numpy as np
import skops.io as sio
import uvicorn
from fastapi import FastAPI, Request

path, port = sys.argv[1], int(sys.argv[2])
model = sio.load(path, trusted=sio.get_untrusted_types(file=path))
FEATURES = {features!r}
app = FastAPI()


@app.post("/predict")
async def predict(request: Request):
    body = await request.json()
    x = np.array([[row[f] for f in FEATURES] for row in body["rows"]], dtype=float)
    return {{"predictions": model.predict_proba(x)[:, 1].tolist()}}


@app.get("/health")
async def health():
    return {{"status": "ready"}}


uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning", access_log=False)
'''


# ------------------------------------------------------------------ load generator
@dataclass
class Tally:
    """What the clients saw: latencies of 200s, failures, and (optionally) versions by time."""

    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    first_seen: dict[str, float] = field(default_factory=dict)  # version -> perf_counter


def _request(port: int) -> bytes:
    body = json.dumps({"rows": [ROW]}).encode()
    head = (
        f"POST /predict HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _client(
    port: int, until: threading.Event | float, tally: Tally, versions: bool, rate: float = 0.0
) -> None:
    """One keep-alive connection posting back to back, or ``rate`` requests per second."""
    request = _request(port)
    next_at = time.perf_counter()

    def done() -> bool:
        if isinstance(until, threading.Event):
            return until.is_set()
        return time.perf_counter() >= until

    while not done():
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            tally.failures += 1
            await asyncio.sleep(0.01)
            continue
        try:
            while not done():
                if rate:
                    next_at += 1.0 / rate
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                now = time.perf_counter()
                if head[9:12] != b"200":
                    tally.failures += 1
                    continue
                tally.latencies.append(now - started)
                if versions:
                    label = json.loads(body)["model_version"]
                    tally.first_seen.setdefault(label, now)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            tally.failures += 1
        finally:
            writer.close()


def measure(port: int, seconds: float, connections: int) -> tuple[float, float, float]:
    """Requests per second, p50 and p99 (ms) over ``seconds`` after a short warm-up."""

    async def run(duration: float) -> Tally:
        tally = Tally()
        until = time.perf_counter() + duration
        await asyncio.gather(*(_client(port, until, tally, False) for _ in range(connections)))
        return tally

    asyncio.run(run(0.5))
    tally = asyncio.run(run(seconds))
    if tally.failures:
        raise SystemExit(f"{tally.failures} failed requests during a throughput measurement")
    lat = sorted(tally.latencies)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return len(lat) / seconds, statistics.median(lat) * 1000, p99 * 1000


class SteadyLoad:
    """Clients posting ``rate`` requests per second in all, in a background thread, until
    ``stop``; records when each version was first seen."""

    def __init__(self, port: int, connections: int, rate: float) -> None:
        self.tally = Tally()
        self._stop = threading.Event()
        per_connection = rate / connections

        async def run() -> None:
            await asyncio.gather(
                *(
                    _client(port, self._stop, self.tally, True, per_connection)
                    for _ in range(connections)
                )
            )

        self._thread = threading.Thread(target=lambda: asyncio.run(run()), daemon=True)
        self._thread.start()

    def stop(self) -> Tally:
        self._stop.set()
        self._thread.join(timeout=30)
        return self.tally


# ------------------------------------------------------------------------ helpers
def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the minimal app exited before it was ready")
        try:
            if httpx.get(f"http://{HOST}:{port}/health", trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit("the minimal app was not ready in 60 s")


def in_process(model_dir: Path) -> tuple[float, float]:
    """Median ms of signoff's checked predict and of the estimator's own predict_proba."""
    import skops.io as sio

    loaded = load_model(model_dir, expected_digest=folder_digest(model_dir))
    path = model_dir / "model.skops"
    raw = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    x = np.array([[float(ROW[f]) for f in FEATURES]])

    samples: dict[str, list[float]] = {"checked": [], "bare": []}
    calls = {
        "checked": lambda: loaded.predict(loaded.rows_to_matrix([ROW])),
        "bare": lambda: raw.predict_proba(x)[:, 1],
    }
    for i in range(400):  # interleaved, so both see the same machine
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            if i >= 50:
                samples[name].append(time.perf_counter() - t0)
    return statistics.median(samples["checked"]) * 1000, statistics.median(samples["bare"]) * 1000


# ------------------------------------------------------------------------- phases
def compare(work: Path, seconds: float, connections: int) -> None:
    model_dir = work / "forest"
    train = work / "train_forest.py"
    train.write_text(TRAIN.format(features=FEATURES))
    subprocess.run([sys.executable, str(train), "--out", str(model_dir)], check=True)
    checked, bare = in_process(model_dir)

    runner = LocalEndpointRunner(work / "home")
    endpoint = runner.start("bench", model_dir, folder_digest(model_dir), "forest:v1", None)
    minimal_port = _free_port()
    app_file = work / "minimal_app.py"
    app_file.write_text(MINIMAL_APP.format(features=FEATURES))
    minimal = subprocess.Popen(
        [sys.executable, str(app_file), str(model_dir / "model.skops"), str(minimal_port)]
    )
    try:
        _wait_ready(minimal_port, minimal)
        results: dict[str, list[tuple[float, float, float]]] = {"signoff": [], "minimal": []}
        for _ in range(2):
            results["signoff"].append(measure(endpoint.port, seconds, connections))
            results["minimal"].append(measure(minimal_port, seconds, connections))
    finally:
        runner.stop(endpoint.pid)
        minimal.terminate()
        minimal.wait(timeout=10)

    def mean(name: str, i: int) -> float:
        return statistics.fmean(r[i] for r in results[name])

    print(f"\nsingle-row POST /predict, 1 worker, {connections} keep-alive connections, "
          f"{seconds:g} s x 2 rounds each (interleaved)")  # fmt: skip
    print(f"{'server':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}   rounds (req/s)")
    for name in ("signoff", "minimal"):
        rounds = ", ".join(f"{r[0]:.0f}" for r in results[name])
        print(f"{name:<10} {mean(name, 0):>9.0f} {mean(name, 1):>8.2f} {mean(name, 2):>8.2f}   "
              f"{rounds}")  # fmt: skip
    print(f"ratio      {mean('signoff', 0) / mean('minimal', 0):>9.2f} "
          f"{mean('signoff', 1) / mean('minimal', 1):>8.2f} "
          f"{mean('signoff', 2) / mean('minimal', 2):>8.2f}   "
          "(targets: req/s >= 0.90, p99 <= 1.20)")  # fmt: skip
    print(f"in-process predict, one row: signoff {checked:.3f} ms (signature check + "
          f"predict_proba), estimator alone {bare:.3f} ms")  # fmt: skip


def rollovers(
    work: Path, count: int, connections: int, rate: float, database_url: str | None
) -> None:
    flow_dir = work / "flow"
    flow_dir.mkdir()
    (flow_dir / "train.py").write_text(TRAIN.format(features=FEATURES))
    spec = FlowSpec(
        name="bench-serving",
        tasks=(
            TaskSpec("train", TaskKind.EXEC, command="python train.py --seed {{ seed }}",
                     params=(ParamSpec("seed", (0,)),)),
            TaskSpec("sign-off", TaskKind.HUMAN_VALIDATION, depends_on=("train",),
                     gate=GatePolicy(targets=("approver",))),
            TaskSpec("deploy", TaskKind.DEPLOY, depends_on=("sign-off",),
                     deploy=DeploySpec("bench")),
        ),
    )  # fmt: skip
    app = build_app(Settings(home=work / "state", database_url=database_url))
    load: SteadyLoad | None = None
    to_serving: list[float] = []
    switches: list[float] = []
    try:
        for i in range(count + 1):
            run = app.engine.start_run(spec, base_dir=flow_dir, params={"seed": i}, started_by="ci")
            app.engine.drive(run.id)
            approved = time.perf_counter()
            decide(app.store, app.engine.clock, run.id, actor="approver", approve=True,
                   comment=None, channel="cli", new_id=new_id)  # fmt: skip
            final = app.engine.drive(run.id)
            if final.state.value != "succeeded":
                raise SystemExit(f"run {run.id} ended {final.state}: {final.reason}")
            deployed = next(
                tr.result for tr in app.store.list_task_runs(run.id) if tr.task_name == "deploy"
            )
            if load is None:  # the first run starts the endpoint; the load starts after it
                port = int(deployed["url"].rsplit(":", 1)[1])
                load = SteadyLoad(port, connections, rate)
                time.sleep(1.0)
                continue
            label = deployed["model_version"]
            deadline = time.monotonic() + 10
            while label not in load.tally.first_seen and time.monotonic() < deadline:
                time.sleep(0.005)
            to_serving.append(load.tally.first_seen[label] - approved)
            switches.append(deployed["switch_seconds"])
        time.sleep(0.5)
    finally:
        tally = load.stop() if load is not None else Tally()
        endpoint = app.store.get_endpoint("bench")
        if endpoint is not None and endpoint.pid:
            app.endpoints.stop(endpoint.pid)
        app.close()
    print(f"\n{count} rollovers under a steady {rate:g} req/s ({connections} keep-alive "
          f"connections, {len(tally.latencies) + tally.failures} requests)")  # fmt: skip
    print(f"failed requests: {tally.failures} (target: 0)")
    print(f"approved -> new version answering a client: median "
          f"{statistics.median(to_serving):.2f} s, max {max(to_serving):.2f} s "
          "(target: under 2 s)")  # fmt: skip
    print(f"  of which the rollover call (state, load + warm-up, switch): median "
          f"{statistics.median(switches):.2f} s")  # fmt: skip
    log = (work / "state" / "endpoints" / "bench" / "endpoint.log").read_text()
    loads = [float(line.rsplit(" in ", 1)[1].rstrip("s")) for line in log.splitlines()
             if ": loaded " in line]  # fmt: skip
    if loads:
        print(f"  of which loading + warm-up in the endpoint (its log): median "
              f"{statistics.median(loads):.2f} s, max {max(loads):.2f} s")  # fmt: skip
    lat = sorted(tally.latencies)
    print(f"latency during the rollovers: p50 {statistics.median(lat) * 1000:.2f} ms, "
          f"p99 {lat[int(len(lat) * 0.99)] * 1000:.2f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per throughput measurement")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rollovers", type=int, default=10)
    parser.add_argument(
        "--rate", type=float, default=100.0, help="req/s of the steady load during rollovers"
    )
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp folder")
    args = parser.parse_args()
    os.environ.pop("SIGNOFF_PREDICTION_LOG_SAMPLE", None)  # logging off: measure serving only
    with tempfile.TemporaryDirectory(prefix="signoff-bench-serving-") as tmp:
        work = Path(tmp)
        compare(work, args.seconds, args.connections)
        rollovers(work, args.rollovers, args.connections, args.rate, args.database_url)


if __name__ == "__main__":
    main()
