"""Real endpoint processes on loopback, started and stopped by LocalEndpointRunner."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_text import Samples

from signoff.endpoints import EndpointProcess, LocalEndpointRunner
from signoff.errors import ExecutionError
from signoff.registry.flavors import folder_digest, save_model

ROWS = [
    {"x1": 0.1, "x2": 1.0, "x3": 3.0},
    {"x1": 0.9, "x2": 0.2, "x3": 1.0},
    {"x1": 0.4, "x2": 0.8, "x3": 2.5},
    {"x1": 0.7, "x2": 0.1, "x3": 0.5},
]
LABELS = [0, 1, 0, 1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path_factory.mktemp("models") / "logreg"
    matrix = np.array([[r["x1"], r["x2"], r["x3"]] for r in ROWS])
    save_model(
        LogisticRegression().fit(matrix, LABELS),
        folder,
        input_example={k: [r[k] for r in ROWS] for k in ("x1", "x2", "x3")},
    )
    return folder


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[LocalEndpointRunner]:
    runner = _TrackingRunner(tmp_path / "home", ready_timeout=60.0)
    yield runner
    for pid in runner.started:
        runner.stop(pid, timeout=5.0)
    assert not any(runner.is_alive(pid) for pid in runner.started)


class _TrackingRunner(LocalEndpointRunner):
    """Remembers every pid it started so the fixture can always stop them."""

    def __init__(self, home: Path, ready_timeout: float) -> None:
        super().__init__(home, ready_timeout=ready_timeout)
        self.started: list[int] = []

    def start(
        self, name: str, model_dir: Path, digest: str, model_version: str, port: int | None
    ) -> EndpointProcess:
        endpoint = super().start(name, model_dir, digest, model_version, port)
        self.started.append(endpoint.pid)
        return endpoint


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_start_predict_stop(runner: LocalEndpointRunner, model_dir: Path) -> None:
    digest = folder_digest(model_dir)
    started = time.monotonic()
    endpoint = runner.start("churn", model_dir, digest, "v1", port=None)
    elapsed = time.monotonic() - started
    print(f"endpoint ready in {elapsed:.2f}s")

    assert endpoint.url == f"http://127.0.0.1:{endpoint.port}"
    assert runner.is_alive(endpoint.pid)
    assert runner.health(endpoint.url)
    with httpx.Client(base_url=endpoint.url, trust_env=False, timeout=10) as client:
        response = client.post("/predict", json={"rows": ROWS})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model_version"] == "v1"
        assert body["endpoint"] == "churn"
        assert len(body["predictions"]) == len(ROWS)
        assert client.post("/predict", json=[{"x1": 1}]).status_code == 422
        assert client.get("/version").json()["digest"] == digest
        metrics = Samples(client.get("/metrics").text)
        assert metrics("signoff_requests_total", endpoint="churn", version="v1", status="422") == 1

    runner.stop(endpoint.pid)
    assert not runner.is_alive(endpoint.pid)
    assert not runner.health(endpoint.url)
    with pytest.raises(ProcessLookupError):
        os.kill(endpoint.pid, 0)  # reaped, not a zombie
    log = (runner.home / "endpoints" / "churn" / "endpoint.log").read_text()
    assert "serving v1" in log


def test_wrong_digest_fails_fast_with_reason(runner: LocalEndpointRunner, model_dir: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ExecutionError, match="digest") as info:
        runner.start("churn", model_dir, "0" * 64, "v1", port=None)
    assert time.monotonic() - started < 20
    assert "exited with code 3" in str(info.value)
    assert "\n" not in str(info.value)


def test_given_port_is_used(runner: LocalEndpointRunner, model_dir: Path) -> None:
    port = _free_port()
    endpoint = runner.start("churn", model_dir, folder_digest(model_dir), "v2", port=port)
    assert endpoint.port == port
    response = httpx.get(f"http://127.0.0.1:{port}/health", trust_env=False, timeout=5)
    assert response.json() == {"status": "ready", "model_version": "v2"}


def test_port_in_use_raises(runner: LocalEndpointRunner, model_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ExecutionError, match="exited with code"):
            runner.start("churn", model_dir, folder_digest(model_dir), "v1", port=port)


def test_process_outlives_a_new_runner_and_is_stopped_by_it(
    runner: LocalEndpointRunner, model_dir: Path, tmp_path: Path
) -> None:
    endpoint = runner.start("churn", model_dir, folder_digest(model_dir), "v1", port=None)
    other = LocalEndpointRunner(tmp_path / "home")  # e.g. a later CLI command
    assert other.is_alive(endpoint.pid)
    assert other.health(endpoint.url)
    other.stop(endpoint.pid)
    assert not other.is_alive(endpoint.pid)
    assert not runner.is_alive(endpoint.pid)


def test_stop_of_a_gone_process_is_silent(runner: LocalEndpointRunner, model_dir: Path) -> None:
    endpoint = runner.start("churn", model_dir, folder_digest(model_dir), "v1", port=None)
    os.kill(endpoint.pid, signal.SIGKILL)
    runner.stop(endpoint.pid)
    runner.stop(endpoint.pid)
    assert not runner.is_alive(endpoint.pid)


def test_is_alive_is_false_for_other_programs(tmp_path: Path) -> None:
    runner = LocalEndpointRunner(tmp_path)
    assert not runner.is_alive(os.getpid())  # alive, but not an endpoint
    assert not runner.health("http://127.0.0.1:1")
