"""Flows on a real two-node Ray cluster (``raycluster``): placement, folders through the
artifact store, streamed logs, timeouts, cancel, placement timeout, kill -9 of the driver,
a gate holding nothing on Ray, and an in-process (``call:``) task on a node.

Every ``signoff`` process runs inside the cluster's network namespace; the test reads the
run's SQLite store from outside. Each test has its own home (store, runs) and a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from raycluster import RayCluster, ray_cluster  # noqa: F401  the shared cluster fixture

from signoff.domain.records import RunRecord, TaskRunRecord
from signoff.domain.states import RunState, TaskRunState
from signoff.store.sql import SqlStore, open_store

SIGNOFF = [sys.executable, "-m", "signoff.cli.main"]
RESOURCES = Path(__file__).parents[1] / "resources"

pytestmark = pytest.mark.timeout(240)


class Home:
    """One test's signoff home next to the cluster: its flow folder, store and clients."""

    def __init__(self, cluster: RayCluster, root: Path) -> None:
        self.cluster = cluster
        self.root = root
        self.home = root / "home"
        self.flow_dir = root / "flow"
        self.flow_dir.mkdir(parents=True)
        self._store: SqlStore | None = None

    def env(self, **extra: str) -> dict[str, str]:
        return {"SIGNOFF_HOME": str(self.home), **extra}

    def write(self, name: str, text: str) -> Path:
        path = self.flow_dir / name
        path.write_text(text)
        return path

    def signoff(self, *args: str, timeout: float = 180.0, code: int = 0, **extra: str) -> str:
        done = self.cluster.run([*SIGNOFF, *args], timeout=timeout, **self.env(**extra))
        assert done.returncode == code, done.stdout + done.stderr
        return done.stdout

    def run_flow(self, flow: Path, *, code: int = 0, **extra: str) -> RunRecord:
        """``signoff run`` to its end (or its gate); the run as the store has it."""
        self.signoff("run", str(flow), "--json", code=code, **extra)
        return self.the_run()

    def start(self, *args: str, **extra: str) -> Any:
        log = self.root / f"client-{len(self.cluster.procs)}.log"
        return self.cluster.start([*SIGNOFF, *args], log, **self.env(**extra))

    @property
    def store(self) -> SqlStore:
        if self._store is None:
            self._store = open_store(f"sqlite:///{self.home / 'signoff.db'}")
        return self._store

    def the_run(self) -> RunRecord:
        runs = self.store.list_runs()
        assert len(runs) == 1
        return runs[0]

    def task_runs(self, run_id: str) -> dict[str, TaskRunRecord]:
        return {tr.task_name: tr for tr in self.store.list_task_runs(run_id)}

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


@pytest.fixture
def home(ray_cluster: RayCluster, tmp_path: Path) -> Iterator[Home]:
    h = Home(ray_cluster, tmp_path)
    try:
        yield h
    finally:
        h.close()


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


MAKE = """\
import os, pathlib
pathlib.Path("output/data.txt").write_text("rows: 3\\n")
pathlib.Path("output/where.json").write_text(
    '{"cwd": "%s", "cuda": "%s"}' % (os.getcwd(), os.environ.get("CUDA_VISIBLE_DEVICES", "-"))
)
"""

USE = """\
import json, os, pathlib
data = pathlib.Path("inputs/make/data.txt")
pathlib.Path("output/where.json").write_text(json.dumps({
    "cwd": os.getcwd(),
    "cuda": os.environ.get("CUDA_VISIBLE_DEVICES", "-"),
    "input": os.path.realpath(data),
    "data": data.read_text(),
}))
print("used", data.read_text().strip())
"""

TWO_NODES = """\
flow: two-nodes
tasks:
  - title: make
    command: python make.py
    resources: {cpu: 2}
  - title: use
    command: python use.py
    resources: {cpu: 1, gpu: 1}
    depends_on: make
"""


def test_gpu_task_lands_on_the_gpu_node_and_its_input_comes_through_the_store(
    home: Home, ray_cluster: RayCluster
) -> None:
    home.write("make.py", MAKE)
    home.write("use.py", USE)
    flow = home.write("flow.yaml", TWO_NODES)
    run = home.run_flow(flow)
    assert run.state is RunState.SUCCEEDED, run.reason
    trs = home.task_runs(run.id)
    # the outputs are in the driver's folders, fetched from the store
    make = json.loads((Path(trs["make"].work_dir) / "output" / "where.json").read_text())
    use = json.loads((Path(trs["use"].work_dir) / "output" / "where.json").read_text())
    # `make` asked 2 CPUs: only the head has them; `use` asked a GPU: only the GPU node has one
    assert make["cwd"].startswith(str(ray_cluster.head_root))
    assert make["cuda"] == "-"
    assert use["cwd"].startswith(str(ray_cluster.gpu_root))
    assert use["cuda"] == "0"
    # the input was fetched into the GPU node's own cache, not linked to another folder
    assert use["input"].startswith(str(ray_cluster.gpu_root / "cache"))
    assert use["data"] == "rows: 3\n"
    assert not use["input"].startswith(trs["make"].work_dir)
    assert "used rows: 3" in (Path(trs["use"].work_dir) / "stdout.log").read_text()
    # the run's record names the executor and each node (by name and Ray node id)
    shown = json.loads(home.signoff("show", run.id, "--json"))
    ran = {t["task"]: (t["executor"], t["node"]) for t in shown["tasks"]}
    assert ran["make"][0] == ran["use"][0] == "ray"
    assert ran["make"][1].startswith("head (ray node ")
    assert ran["use"][1].startswith("gpu-node (ray node ")


LOGS = """\
flow: logs
tasks:
  - title: talk
    command: python -u -c "import time; print('first line'); time.sleep(6); print('last line')"
"""


def test_logs_reach_the_driver_while_the_task_runs(home: Home) -> None:
    flow = home.write("flow.yaml", LOGS)
    driver = home.start("run", str(flow))
    run = wait_for("the run", home.store.list_runs)[0]

    def streamed() -> bool:
        trs = home.task_runs(run.id)
        if "talk" not in trs:
            return False
        log = Path(trs["talk"].work_dir) / "stdout.log"
        return log.is_file() and "first line" in log.read_text()

    wait_for("the first line in the driver's stdout.log", streamed, timeout=60)
    talk = home.task_runs(run.id)["talk"]
    assert talk.state is TaskRunState.RUNNING  # the line came before the task ended
    assert "last line" not in (Path(talk.work_dir) / "stdout.log").read_text()
    assert driver.wait(timeout=90) == 0
    talk = home.task_runs(run.id)["talk"]
    assert talk.state is TaskRunState.SUCCEEDED
    assert "last line" in (Path(talk.work_dir) / "stdout.log").read_text()


TIMEOUT = """\
flow: slow
tasks:
  - title: slow
    command: sleep 60
    timeout: 2s
"""


def test_a_timeout_is_enforced_on_the_node(home: Home) -> None:
    flow = home.write("flow.yaml", TIMEOUT)
    started = time.monotonic()
    run = home.run_flow(flow, code=1)
    assert time.monotonic() - started < 50
    slow = home.task_runs(run.id)["slow"]
    assert slow.state is TaskRunState.FAILED
    reasons = [t.reason or "" for t in home.store.list_transitions(run.id)]
    assert any("timed out after 2s" in r for r in reasons), reasons


CANCEL = """\
flow: cancelled
params:
  - key: pidfile
    values: /nowhere
tasks:
  - title: long
    command: python long.py {{ pidfile }} 120
"""

LONG = """\
import os, sys, time
with open(sys.argv[1], "a") as f:
    f.write(str(os.getpid()) + chr(10))
time.sleep(float(sys.argv[2]))
"""


def test_cancel_stops_the_command_on_the_node(home: Home) -> None:
    home.write("long.py", LONG)
    flow = home.write("flow.yaml", CANCEL)
    pidfile = home.root / "long.pid"
    driver = home.start("run", str(flow), "-p", f"pidfile={pidfile}")
    pid = int(wait_for("the command", lambda: pidfile.is_file() and pidfile.read_text().split())[0])
    assert alive(pid)
    run = home.the_run()
    home.signoff("cancel", run.id, "-m", "test")
    wait_for("the command to stop", lambda: not alive(pid), timeout=30)
    assert driver.wait(timeout=60) == 0
    assert home.store.get_run(run.id).state is RunState.CANCELLED
    assert home.task_runs(run.id)["long"].state is TaskRunState.CANCELLED


TOO_BIG = """\
flow: too-big
tasks:
  - title: huge
    command: "true"
    resources: {cpu: 1, gpu: 4}
"""


def test_a_task_no_node_can_place_fails_after_the_placement_timeout(home: Home) -> None:
    flow = home.write("flow.yaml", TOO_BIG)
    run = home.run_flow(flow, code=1, SIGNOFF_RAY_PLACEMENT_TIMEOUT="3")
    huge = home.task_runs(run.id)["huge"]
    assert huge.state is TaskRunState.FAILED
    reasons = " ".join(t.reason or "" for t in home.store.list_transitions(run.id))
    assert "no Ray node could place it within 3s" in reasons
    assert "'GPU': 4" in reasons
    assert "cluster has" in reasons
    assert "'GPU': 1.0" in reasons  # what the cluster really has
    log = (Path(huge.work_dir) / "stdout.log").read_text()
    assert log.startswith("waiting for resources on Ray: asks {")


KILLED = """\
flow: killed
params:
  - key: log
    values: /nowhere
tasks:
  - title: slow
    command: python long.py {{ log }} 5
"""


def test_kill_9_of_the_driver_then_take_over_runs_the_task_again_and_records_it_once(
    home: Home,
) -> None:
    home.write("long.py", LONG)
    flow = home.write("flow.yaml", KILLED)
    starts = home.root / "starts.log"
    lease = {"SIGNOFF_LEASE_SECONDS": "2"}
    driver = home.start("run", str(flow), "-p", f"log={starts}", **lease)
    first = int(wait_for("the command", lambda: starts.is_file() and starts.read_text().split())[0])
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(timeout=10)
    # Ray ends a dead driver's tasks; the command dies with its worker
    wait_for("the dead driver's command to stop", lambda: not alive(first), timeout=60)
    run = home.the_run()
    assert home.task_runs(run.id)["slow"].state is TaskRunState.RUNNING
    time.sleep(2.5)  # the lease runs out
    home.signoff("worker", "--once", "--poll", "0.2", timeout=180, **lease)
    run = home.store.get_run(run.id)
    assert run.state is RunState.SUCCEEDED, run.reason
    assert len(starts.read_text().split()) == 2  # it ran again, once
    slow = home.task_runs(run.id)["slow"]
    assert slow.state is TaskRunState.SUCCEEDED
    moves = home.store.list_transitions(run.id)
    succeeded = [t for t in moves if t.entity_id == slow.id and t.to_state == "succeeded"]
    assert len(succeeded) == 1
    assert any("running it again" in (t.reason or "") for t in moves)


GATED = """\
flow: gated-ray
tasks:
  - title: train
    command: python train.py 1
  - title: pick
    type: select
    depends_on: train
    conditions: [{tag_key: auc}]
  - title: sign-off
    depends_on: pick
    objective: human_validation
    target: alice
"""

RAY_STATE = """\
import json, ray
from ray.util import state
ray.init(address="auto", logging_level="ERROR")
live = lambda rows: [r for r in rows if r["state"] not in ("FINISHED", "FAILED", "DEAD", "REMOVED")]
print(json.dumps({
    "actors": live(state.list_actors(raise_on_missing_output=False)),
    "groups": live(state.list_placement_groups(raise_on_missing_output=False)),
    "tasks": [t for t in live(state.list_tasks(raise_on_missing_output=False, limit=10000))
              if t["name"].startswith("signoff")],
    "available": ray.available_resources().get("CPU"),
    "total": ray.cluster_resources().get("CPU"),
}, default=str))
"""


def test_a_run_at_a_gate_holds_nothing_on_ray(home: Home, ray_cluster: RayCluster) -> None:
    (home.flow_dir / "train.py").write_text((RESOURCES / "gates" / "train.py").read_text())
    flow = home.write("flow.yaml", GATED)
    run = home.run_flow(flow)
    assert run.state is RunState.WAITING_FOR_APPROVAL, run.reason
    train = home.task_runs(run.id)["train"]
    assert (Path(train.work_dir) / "output" / "models" / "tiny" / "model.skops").is_file()
    held = json.loads(ray_cluster.python(RAY_STATE).strip().splitlines()[-1])
    assert held["actors"] == []
    assert held["groups"] == []
    assert held["tasks"] == []
    assert held["available"] == held["total"]


CALLED = """\
flow: called
tasks:
  - title: make
    command: python make.py
  - title: summarise
    call: summary:summarise
    depends_on: make
    params:
      - key: label
        values: ray
"""

SUMMARY = """\
import os
from pathlib import Path

import signoff


def summarise(label):
    text = (signoff.input_dir("make") / "data.txt").read_text()
    signoff.log_metric("rows", float(text.split()[1]))
    (signoff.output_dir() / "summary.txt").write_text(f"{label}: {text} at {os.getcwd()}")
"""


def test_a_call_task_runs_on_a_node_with_its_inputs_fetched(home: Home) -> None:
    home.write("make.py", MAKE)
    home.write("summary.py", SUMMARY)
    flow = home.write("flow.yaml", CALLED)
    run = home.run_flow(flow)
    assert run.state is RunState.SUCCEEDED, run.reason
    summarise = home.task_runs(run.id)["summarise"]
    summary = (Path(summarise.work_dir) / "output" / "summary.txt").read_text()
    assert summary.startswith("ray: rows: 3")
    metrics = home.store.list_metrics([summarise.id])
    assert [(m.key, m.value) for m in metrics] == [("rows", 3.0)]


POOLED = """\
import sys
from signoff.bootstrap import Settings, build_app
from signoff.domain.specs import FlowSpec, Resources, TaskKind, TaskSpec

pooled = TaskSpec(
    name="pooled",
    kind=TaskKind.EXEC,
    command="pwd > output/where.txt",
    resources=Resources(cpu=0.5, custom=(("gpu_pool", 1.0),)),
)
app = build_app(Settings())
run = app.engine.start_run(FlowSpec(name="pooled", tasks=(pooled,)), base_dir=None, started_by="t")
print(app.engine.drive(run.id).state.value)
"""


def test_a_custom_resource_takes_the_task_to_the_node_that_declares_it(
    home: Home, ray_cluster: RayCluster
) -> None:
    script = home.write("pooled.py", POOLED)
    done = ray_cluster.run([sys.executable, str(script)], **home.env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "succeeded"
    run = home.the_run()
    pooled = home.task_runs(run.id)["pooled"]
    where = (Path(pooled.work_dir) / "output" / "where.txt").read_text()
    assert where.startswith(str(ray_cluster.gpu_root))


LOST = """\
flow: lost
params:
  - key: pidfile
    values: /nowhere
tasks:
  - title: big
    command: python long.py {{ pidfile }} 120
    resources: {cpu: 3}
    retries: 1
"""


def _processes_with(variable: str) -> list[int]:
    """Processes whose environment holds ``variable`` (``NAME=value``): one node's."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if variable.encode() in (proc / "environ").read_bytes().split(b"\0"):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


@pytest.mark.timeout(300)
def test_a_node_lost_mid_task_fails_the_attempt_and_the_retry_policy_applies(
    home: Home, ray_cluster: RayCluster
) -> None:
    # A third node, the only one with 3 CPUs, killed (every process of it) while it runs a task.
    doomed_root = home.root / "node-doomed"
    node = ray_cluster.start(
        [str(Path(sys.executable).parent / "ray"), "start", "--address", ray_cluster.address,
         "--num-cpus", "3", "--num-gpus", "0", "--node-name", "doomed",
         "--node-ip-address", "127.0.0.1", "--disable-usage-stats", "--block"],
        home.root / "doomed.log",
        SIGNOFF_RAY_NODE_ROOT=str(doomed_root),
    )  # fmt: skip
    count = "import ray; ray.init(address='auto', logging_level='ERROR'); print(len([n for n in ray.nodes() if n['Alive']]))"  # noqa: E501
    wait_for("the third node", lambda: ray_cluster.python(count).split()[-1] == "3", timeout=120)
    home.write("long.py", LONG)
    flow = home.write("flow.yaml", LOST)
    pidfile = home.root / "big.pid"
    driver = home.start(
        "run", str(flow), "-p", f"pidfile={pidfile}", SIGNOFF_RAY_PLACEMENT_TIMEOUT="3"
    )
    pid = int(wait_for("the command", lambda: pidfile.is_file() and pidfile.read_text().split())[0])
    marked = f"SIGNOFF_RAY_NODE_ROOT={doomed_root}"
    assert pid in _processes_with(marked)
    for p in _processes_with(marked):
        os.kill(p, signal.SIGKILL)
    node.wait(timeout=30)
    assert driver.wait(timeout=200) == 1  # the run failed
    run = home.the_run()
    assert run.state is RunState.FAILED
    reasons = [t.reason or "" for t in home.store.list_transitions(run.id)]
    lost = [r for r in reasons if "lost on Ray" in r]
    assert lost, reasons
    assert "retry 1 of 1" in lost[0]
    # the retry found no node with 3 CPUs any more: it failed after the placement timeout
    assert any("no Ray node could place it within 3s" in r for r in reasons), reasons


REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "examples" / "recsys" / "flow.yaml"
SMALL = ["--param", "n_users=300", "--param", "n_items=80"]

FINISHED = """\
import json, ray
from ray.util import state
ray.init(address="auto", logging_level="ERROR")
rows = state.list_tasks(filters=[("state", "=", "FINISHED")], limit=10000,
                        raise_on_missing_output=False)
print(json.dumps(sorted({r["name"] for r in rows})))
"""

PREDICT = """\
import json, sys, httpx
row = {"user_age": 2, "user_activity": 0.5, "user_history_size": 10, "item_popularity": 0.3,
       "item_price_tier": 1, "item_freshness": 0.4, "same_category": 1,
       "user_item_affinity": 0.6}
answer = httpx.post(sys.argv[1] + "/predict", json={"rows": [row, row]}, timeout=10)
print(json.dumps({"status": answer.status_code, "body": answer.json()}))
"""


@pytest.mark.timeout(600)
def test_the_reference_example_end_to_end_on_ray_and_s3(
    home: Home, ray_cluster: RayCluster
) -> None:
    started = json.loads(home.signoff("run", str(REFERENCE), *SMALL, "--json", timeout=500))
    run_id = started["run_id"]
    assert started["state"] == "waiting_for_approval"
    # every command task run was a Ray task (named after it) and finished there
    names = json.loads(ray_cluster.python(FINISHED).splitlines()[-1])
    for tr in home.store.list_task_runs(run_id):
        if tr.kind.runs_command:
            assert f"signoff {tr.task_name} {tr.id[:8]}" in names, tr.label
            assert (Path(tr.work_dir) / "stdout.log").stat().st_size > 0, tr.label
    try:
        approved = json.loads(
            home.signoff("approve", run_id, "--as", "alice", "--comment", "ok", "--json")
        )
        assert approved["state"] == "succeeded"
        url = approved["deployments"][0]["url"]
        script = home.write("predict.py", PREDICT)
        done = ray_cluster.run([sys.executable, str(script), url])  # the endpoint is in there
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout.splitlines()[-1])
        assert answer["status"] == 200
        assert len(answer["body"]["predictions"]) == 2
    finally:
        ray_cluster.run([*SIGNOFF, "endpoints", "stop", "recsys"], **home.env())
