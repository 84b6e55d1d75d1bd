"""A two-node Ray cluster on loopback, once per test run, for the Ray executor's tests.

As root, a network namespace with only ``lo`` keeps every packet of Ray on 127.0.0.1 (Ray
replaces 127.0.0.1 by the host's address otherwise) and lets two nodes share one machine: a
head (2 CPUs, no GPU) and a worker node declaring one logical GPU and a ``gpu_pool``
resource. Each node has its own working-folder root (``SIGNOFF_RAY_NODE_ROOT``), and the
artifact store is a bucket on moto's S3 server started in the same namespace, so whatever
reaches a task from another task came through S3. Every client (``signoff run``,
``signoff worker``, a check script) runs inside the namespace; the test process stays
outside and reads the SQLite store file directly.

Teardown stops exactly the processes inside the namespace (``ip netns pids``), never
``ray stop`` (which stops every Ray process of the machine), then deletes the namespace.
Without root or ``ip`` the tests fail in CI and are skipped elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from s3_server import S3Endpoint

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
START_DEADLINE = 120.0


@dataclass
class RayCluster:
    """The running cluster and how to run a client next to it."""

    namespace: str
    address: str
    root: Path
    head_root: Path
    gpu_root: Path
    artifacts: str  # the artifact store's URL: a bucket on the S3 server in the namespace
    env: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def command(self, args: Sequence[str]) -> list[str]:
        """``args`` run inside the cluster's namespace."""
        return ["ip", "netns", "exec", self.namespace, *args]

    def client_env(self, **extra: str) -> dict[str, str]:
        return {**self.env, **extra}

    def run(
        self, args: Sequence[str], *, timeout: float = 120.0, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        """Run a client to its end inside the namespace (bounded)."""
        return subprocess.run(
            self.command(args),
            env=self.client_env(**extra),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, args: Sequence[str], log: Path, **extra: str) -> subprocess.Popen[bytes]:
        """Start a client inside the namespace in its own process group; stopped at teardown."""
        proc = subprocess.Popen(
            self.command(args),
            env=self.client_env(**extra),
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def python(self, code: str, *, timeout: float = 60.0) -> str:
        """Run Python code as a Ray client in the namespace; its stdout."""
        done = self.run([sys.executable, "-c", code], timeout=timeout)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


def _fail_or_skip(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the Ray cluster tests need {reason}", pytrace=False)
    pytest.skip(f"needs {reason}")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _namespace_pids(namespace: str) -> list[int]:
    done = subprocess.run(
        ["ip", "netns", "pids", namespace], capture_output=True, text=True, timeout=30, check=False
    )
    return [int(p) for p in done.stdout.split()]


def _stop_namespace(namespace: str, procs: list[subprocess.Popen[bytes]]) -> None:
    """Stop every process inside the namespace (they are all ours), then delete it."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        pids = _namespace_pids(namespace)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while _namespace_pids(namespace) and time.monotonic() < deadline:
            time.sleep(0.1)
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    subprocess.run(
        ["ip", "netns", "delete", namespace], capture_output=True, timeout=30, check=False
    )


S3_BUCKET = "signoff-ray"


def _make_bucket(cluster: RayCluster) -> None:
    code = f"import boto3; boto3.client('s3').create_bucket(Bucket='{S3_BUCKET}')"
    deadline = time.monotonic() + START_DEADLINE
    while True:
        done = cluster.run([sys.executable, "-c", code], timeout=60)
        if done.returncode == 0:
            return
        if time.monotonic() > deadline or cluster.procs[0].poll() is not None:
            raise AssertionError(f"the S3 server did not come up: {done.stderr[-2000:]}")
        time.sleep(0.5)


def _wait_for_nodes(cluster: RayCluster, count: int) -> None:
    code = (
        "import ray, json; ray.init(address='auto', logging_level='ERROR');"
        "print(json.dumps(sum(1 for n in ray.nodes() if n['Alive'])))"
    )
    deadline = time.monotonic() + START_DEADLINE
    while True:
        ended = [p for p in cluster.procs if p.poll() is not None]
        if ended:
            logs = "".join(f.read_text()[-1500:] for f in cluster.root.glob("*.log"))
            raise AssertionError(f"a Ray node stopped while starting: {logs}")
        done = cluster.run([sys.executable, "-c", code], timeout=60)
        if done.returncode == 0 and json.loads(done.stdout.strip().splitlines()[-1]) >= count:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the Ray cluster did not come up: {done.stderr[-2000:]}")
        time.sleep(1.0)


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    """Head + GPU worker node in a fresh network namespace (see the module's docstring)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        _fail_or_skip("root and the `ip` command (a network namespace per test run)")
    root = tmp_path_factory.mktemp("ray")
    namespace = f"signoff-ray-{os.getpid()}"
    port = random.randint(20000, 40000)
    home = root / "home"
    home.mkdir()
    # Ray's own folder (sessions, sockets, the "current cluster" file that a plain
    # `ray.init()` of any process on the machine would read), kept apart and short (socket
    # paths have a length limit).
    ray_tmp = Path(tempfile.mkdtemp(prefix="signoff-ray-"))
    cluster = RayCluster(
        namespace=namespace,
        address=f"127.0.0.1:{port}",
        root=root,
        head_root=root / "node-head",
        gpu_root=root / "node-gpu",
        artifacts=f"s3://{S3_BUCKET}/artifacts",
    )
    s3 = S3Endpoint(f"http://127.0.0.1:{port + 1}", S3_BUCKET)
    cluster.env = {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(home),
        "PYTHONPATH": str(REPO / "src"),
        "RAY_AUTH_MODE": "token",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_TMPDIR": str(ray_tmp),
        "RAY_ADDRESS": cluster.address,
        "LANG": "C.UTF-8",
        "SIGNOFF_EXECUTOR": "ray",
        "SIGNOFF_RAY_ADDRESS": cluster.address,
        "SIGNOFF_ARTIFACTS_URL": cluster.artifacts,
        **s3.env,
    }
    # Token authentication is on in Ray 2.60: one token in HOME serves every node and client.
    subprocess.run(
        [str(BIN / "ray"), "get-auth-token", "--generate"],
        env=cluster.env,
        capture_output=True,
        timeout=60,
        check=True,
    )
    _ip("netns", "add", namespace)
    try:
        _ip("netns", "exec", namespace, "ip", "link", "set", "lo", "up")
        # S3 (moto's server) inside the namespace: the nodes and the clients all reach it
        cluster.start(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port + 1)], root / "s3.log"
        )
        _make_bucket(cluster)
        ray = str(BIN / "ray")
        common = ["--node-ip-address", "127.0.0.1", "--disable-usage-stats", "--block"]
        cluster.start(
            [ray, "start", "--head", "--port", str(port), "--num-cpus", "2", "--num-gpus", "0",
             "--node-name", "head", "--include-dashboard", "true", "--temp-dir", str(ray_tmp),
             "--dashboard-host", "127.0.0.1", *common],
            root / "head.log",
            SIGNOFF_RAY_NODE_ROOT=str(cluster.head_root),
        )  # fmt: skip
        _wait_for_nodes(cluster, 1)
        cluster.start(
            [ray, "start", "--address", cluster.address, "--num-cpus", "1", "--num-gpus", "1",
             "--resources", json.dumps({"gpu_pool": 1}), "--node-name", "gpu-node", *common],
            root / "gpu-node.log",
            SIGNOFF_RAY_NODE_ROOT=str(cluster.gpu_root),
        )  # fmt: skip
        _wait_for_nodes(cluster, 2)
        yield cluster
    finally:
        _stop_namespace(namespace, cluster.procs)
        shutil.rmtree(ray_tmp, ignore_errors=True)
